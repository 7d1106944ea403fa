#!/usr/bin/env node
// statesync: the Node.js tool. Syncs an Ethereum state from WebSocket peers into LevelDB,
// verifies a stored state, serves one (from a genesis file, a synthetic state or a synced
// database), and runs the demo. The engine is the same WebAssembly package the browser uses.
// docs/CLI.md documents every command, option and exit code.

import { parseArgs } from 'node:util';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startPeerServer, parseFaults, DEFAULT_LIMITS } from './peer-server.mjs';
import { startStaticServer } from './static-server.mjs';
import { JsonReporter, TextReporter, count, formatBytes, formatSeconds, shortHash } from './cli-report.mjs';

const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REPO_DIR = path.dirname(WEB_DIR);
const GENESIS_FIXTURE = path.join(REPO_DIR, 'fixtures', 'genesis_mainnet.json');

/** Exit codes; docs/CLI.md has the same table. */
export const EXIT = Object.freeze({
  OK: 0,
  FAILED: 1, // anything not below: an engine failure, a missing wasm build, a bug
  USAGE: 2, // bad arguments
  BAD_ROOT: 3, // a root that is not 32 bytes of hex
  UNREACHABLE: 4, // no peer connected within --connect-timeout
  ROOT_MISMATCH: 5, // the database holds a sync towards another root
  LOCKED: 6, // the database is locked by another process
  INCOMPLETE: 7, // verify found a gap
  STORE: 8, // the database cannot be opened, read or written
  STALLED: 9, // no peer could serve what is left for --stall-timeout; everything verified was written
  INTERRUPTED: 130, // SIGINT: the current batch was flushed; run again to resume
});

/** An error that ends the command with `exitCode` and a one-line `message`. */
class CliError extends Error {
  constructor(exitCode, code, message, fields = {}) {
    super(message);
    this.exitCode = exitCode;
    this.code = code;
    this.fields = fields;
  }
}

const usageError = (command, message) =>
  new CliError(EXIT.USAGE, 'USAGE', `${message} (see 'statesync ${command ? `${command} ` : ''}--help')`);

// ── the package ─────────────────────────────────────────────────────────────────────────

let library;
/**
 * The package's Node.js build (web/lib/node.mjs) with its wasm module loaded. Imported on
 * first use, so that --help and argument errors work in a checkout that is not built yet.
 */
async function lib() {
  if (!library) {
    try {
      const module = await import('../lib/node.mjs');
      await module.init();
      library = module;
    } catch (err) {
      throw new CliError(EXIT.FAILED, 'NOT_BUILT', `the WebAssembly package is not built (${err.code ?? err.message}): run 'npm run build' (bash scripts/build-wasm.sh)`);
    }
  }
  return library;
}

// ── argument helpers ────────────────────────────────────────────────────────────────────

/** A root as 0x + 64 lowercase hex digits, or exit code 3. */
export function parseRoot(text) {
  const match = /^(0x)?([0-9a-fA-F]{64})$/.exec(String(text).trim());
  if (!match) {
    throw new CliError(EXIT.BAD_ROOT, 'BAD_ROOT', `malformed root "${text}": expected a 32-byte hash as 64 hex digits (0x…)`);
  }
  return `0x${match[2].toLowerCase()}`;
}

function number(command, name, value, { min = 0, max = Infinity, integer = true } = {}) {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value === '' || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    const range = max === Infinity ? `${integer ? 'an integer' : 'a number'} ≥ ${min}` : `${integer ? 'an integer' : 'a number'} from ${min} to ${max}`;
    throw usageError(command, `--${name} needs ${range}, got "${value}"`);
  }
  return n;
}

/** A duration in seconds as milliseconds; 0 or absent is `undefined` (no limit). */
function secondsOption(command, name, value) {
  const seconds = number(command, name, value, { integer: false });
  return seconds ? Math.round(seconds * 1000) : undefined;
}

function peerUrls(command, values) {
  const urls = (values ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
  if (urls.length === 0) throw usageError(command, '--peer URL is required (ws://host:port, repeat it for more peers)');
  for (const url of urls) {
    let parsed;
    try {
      parsed = new URL(url);
    } catch {
      throw usageError(command, `--peer "${url}" is not a URL`);
    }
    if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') throw usageError(command, `--peer "${url}" is not a ws:// or wss:// URL`);
  }
  return urls;
}

function parse(command, spec, argv) {
  const options = { help: { type: 'boolean', short: 'h' }, ...spec.options };
  // parseArgs refuses '--option -1' as ambiguous (the value could be an option). A value
  // that is a negative number is the option's: joined as '--option=-1', the number checks
  // below say what range is allowed.
  const args = [];
  for (let i = 0; i < argv.length; i++) {
    const name = /^--([^=]+)$/.exec(argv[i])?.[1];
    if (options[name]?.type === 'string' && /^-\d|^-\.\d/.test(argv[i + 1] ?? '')) args.push(`${argv[i]}=${argv[++i]}`);
    else args.push(argv[i]);
  }
  try {
    return parseArgs({ args, options, allowPositionals: false, strict: true }).values;
  } catch (err) {
    // Node's messages carry advice about '--' after the first sentence; the first is the reason.
    const reason = String(err.message).split(/\.\s/)[0].replace(/\.$/, '');
    throw usageError(command, reason.charAt(0).toLowerCase() + reason.slice(1));
  }
}

async function openStore(dir, { createIfMissing = true } = {}) {
  const { openLevelStore } = await import('../lib/leveldb-store.mjs');
  try {
    return await openLevelStore(dir, { createIfMissing });
  } catch (err) {
    if (err.code === 'LOCKED') throw new CliError(EXIT.LOCKED, 'LOCKED', err.message);
    throw new CliError(EXIT.STORE, err.code ?? 'STORE', err.message);
  }
}

function reporterFor(values, { intervalMs } = {}) {
  return values.json ? new JsonReporter() : new TextReporter({ intervalMs });
}

// ── sync ────────────────────────────────────────────────────────────────────────────────

const SYNC = {
  summary: 'download the state under a root from peers into LevelDB',
  usage: `usage: statesync sync --peer URL [--peer URL…] --root HASH --db DIR [options]

Downloads every trie node and contract code under --root from the peers, verifies each
against its hash and stores it in the LevelDB database DIR (created if missing). Progress
survives anything: Ctrl-C flushes the current batch and exits 130, and running the same
command again resumes where it stopped.

options:
  --peer URL              a peer (ws:// or wss://); repeat, or separate with commas
  --root HASH             the state root to sync (0x + 64 hex digits)
  --db DIR                the LevelDB database directory
  --switch-root           the database holds a sync towards another root: sync it towards
                          --root instead, keeping (and skipping) everything stored
  --json                  one JSON object per line per event instead of the progress bar
  --batch-bytes N         bytes per atomic write batch at most (default 1048576); also the
                          most verified data held unwritten, i.e. what a crash can lose
  --batch-items N         puts per write batch at most (default 8192)
  --stall-timeout S       exit 9 after S seconds in which no connected peer could serve what
                          is left, naming the first missing item; everything verified is
                          written first (default: wait for peers forever)
  --max-in-flight N       requests outstanding per peer at most (default 16)
  --max-items N           items per request at most, 1 to 1024 (default 1024)
  --max-pending N         entries the scheduler holds at most (default 98304, ~21 MB);
                          196608 syncs large states 1.3-1.6x faster at 100-300 ms round trips
  --connect-timeout S     exit 4 when no peer is connected for S seconds (default 10;
                          0 waits forever)
  --progress-interval MS  time between progress events (default 250 on a terminal, else 500)
  -h, --help              this help

exit codes: 0 complete, 2 bad arguments, 3 malformed root, 4 no peer reachable,
5 database synced towards another root, 6 database locked, 8 storage error,
9 stalled past --stall-timeout (resumable), 130 interrupted (resumable), 1 anything else`,
  options: {
    peer: { type: 'string', multiple: true },
    root: { type: 'string' },
    db: { type: 'string' },
    'switch-root': { type: 'boolean' },
    json: { type: 'boolean' },
    'batch-bytes': { type: 'string' },
    'batch-items': { type: 'string' },
    'stall-timeout': { type: 'string' },
    'max-in-flight': { type: 'string' },
    'max-items': { type: 'string' },
    'max-pending': { type: 'string' },
    'connect-timeout': { type: 'string' },
    'progress-interval': { type: 'string' },
  },
  async run(values) {
    if (values.root === undefined) throw usageError('sync', '--root HASH is required');
    if (values.db === undefined) throw usageError('sync', '--db DIR is required');
    const peers = peerUrls('sync', values.peer);
    const options = {
      peers,
      db: values.db,
      switchRoot: Boolean(values['switch-root']),
      batchBytes: number('sync', 'batch-bytes', values['batch-bytes'], { min: 1 }),
      batchItems: number('sync', 'batch-items', values['batch-items'], { min: 1 }),
      stallTimeoutMs: secondsOption('sync', 'stall-timeout', values['stall-timeout']),
      maxInFlight: number('sync', 'max-in-flight', values['max-in-flight'], { min: 1 }),
      maxItems: number('sync', 'max-items', values['max-items'], { min: 1, max: 1024 }),
      maxPending: number('sync', 'max-pending', values['max-pending'], { min: 1, max: 1 << 26 }),
      connectTimeoutMs: 1000 * (number('sync', 'connect-timeout', values['connect-timeout'], { integer: false }) ?? 10),
      progressIntervalMs: number('sync', 'progress-interval', values['progress-interval'], { min: 1 }),
    };
    options.root = parseRoot(values.root);
    const reporter = reporterFor(values);
    const result = await syncWithSignals(options, reporter);
    reporter.result({
      type: 'summary',
      ok: true,
      exitCode: EXIT.OK,
      ...result.fields,
      text: syncSummary(result),
    });
    return EXIT.OK;
  },
};

/** Human summary of a finished sync. */
function syncSummary({ fields: f }) {
  const lines = [`synced ${f.root} into ${f.db} in ${formatSeconds(f.elapsedMs)}`];
  lines.push(`  ${count(f.committed)} items stored (${formatBytes(f.committedBytes)}); this run fetched ${count(f.processed)}` + (f.restored ? `, took ${count(f.restored)} verified items back from the last run` : '') + (f.skipped ? `, skipped ${count(f.skipped)} subtries already stored` : '') + `, ${count(f.duplicate)} duplicate, ${count(f.unexpected)} unexpected`);
  if (f.processed === 0) lines.push('  (the database already held the complete state: nothing to fetch)');
  return lines.join('\n');
}

/**
 * Runs a sync through the package's syncState with Ctrl-C handling: the first SIGINT aborts
 * (the engine flushes what is complete, at most 15 s), a second one exits at once.
 * Resolves with the summary fields; throws CliError.
 */
async function syncWithSignals(options, reporter) {
  const { syncState } = await lib();
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (signal) => {
    interrupts++;
    if (interrupts > 1) {
      reporter.error({ code: 'INTERRUPTED', exitCode: EXIT.INTERRUPTED, message: `${signal} again: exiting without waiting for the flush (every written batch is intact)` });
      process.exit(EXIT.INTERRUPTED);
    }
    reporter.info(`${signal}: flushing the current batch; Ctrl-C again to exit at once`);
    controller.abort(new Error(signal));
    setTimeout(() => {
      reporter.error({ code: 'INTERRUPTED', exitCode: EXIT.INTERRUPTED, message: 'the flush did not finish within 15 s; exiting (written batches are intact)' });
      process.exit(EXIT.INTERRUPTED);
    }, 15_000).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const { root, db } = options;
  try {
    const { progress: _final, ...summary } = await syncState({
      root,
      peers: options.peers,
      db,
      switchRoot: options.switchRoot,
      batchBytes: options.batchBytes,
      batchItems: options.batchItems,
      stallTimeoutMs: options.stallTimeoutMs,
      maxInFlight: options.maxInFlight,
      maxItemsPerRequest: options.maxItems,
      maxPending: options.maxPending,
      connectTimeoutMs: options.connectTimeoutMs,
      progressIntervalMs: options.progressIntervalMs ?? (reporter instanceof TextReporter && reporter.tty ? 250 : 500),
      signal: controller.signal,
      onEvent: (event) => report(event, reporter, db),
    });
    reporter.done();
    return { fields: { ...summary, db } };
  } catch (err) {
    reporter.done();
    throw syncFailure(err, db);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Prints one syncState event. */
function report(event, reporter, db) {
  switch (event.type) {
    case 'start': {
      const { root, storedRoot, storedItems, storedBytes } = event;
      if (storedRoot && storedRoot !== root) {
        reporter.info(`switching ${db} from ${storedRoot} to ${root}; the ${count(storedItems)} stored items are kept and skipped`, { resumed: true, storedItems, storedRoot });
      } else if (event.complete) {
        reporter.info(`${db} already holds the complete state under ${root}: checking the root and finishing`, { resumed: true, storedItems });
      } else if (event.resumed) {
        const { committedItems, stagedItems } = event;
        const staged = stagedItems ? ` and ${count(stagedItems)} verified items of unfinished subtries` : '';
        reporter.info(`resuming: ${db} already holds ${count(committedItems)} items (${formatBytes(storedBytes)})${staged} of ${root}`, { resumed: true, storedItems, committedItems, stagedItems });
      } else {
        reporter.info(`syncing ${root} into ${db} from ${event.peers} peer${event.peers === 1 ? '' : 's'}`, { resumed: false });
      }
      return;
    }
    case 'peer':
      reporter.peer({ url: event.url, id: event.id, state: event.state, error: event.error, retryInMs: event.retryInMs });
      return;
    case 'peerDisconnected':
      if (reporter instanceof JsonReporter) reporter.event(event);
      else reporter.peer({ url: event.url, id: event.peer, state: 'dropped', reason: event.reason });
      return;
    case 'warning': {
      const { type: _type, message, ...fields } = event;
      reporter.warn(message, fields);
      return;
    }
    default:
      reporter.event(event);
  }
}

/** A syncState rejection as the CLI's exit code and message. */
function syncFailure(err, db) {
  if (err instanceof CliError) return err;
  const code = err?.code ?? 'FAILED';
  const message = err?.message ?? String(err);
  const items = (err?.committed ?? 0) + (err?.staged ?? 0);
  const stored = items ? `${count(items)} items (${formatBytes((err.committedBytes ?? 0) + (err.stagedBytes ?? 0))}) stored in ${db}` : `nothing stored in ${db} yet`;
  const fields = err?.committed === undefined ? {} : { committed: err.committed, staged: err.staged ?? 0, processed: err.processed };
  // The store's diagnosis of a failed read or write (a full disk, permissions): the line ends
  // with what to do.
  if (err?.failure) return new CliError(EXIT.STORE, err.failure.code, `${err.failure.reason}; ${stored}: ${err.failure.advice}`, fields);
  switch (code) {
    case 'STALLED':
      return new CliError(EXIT.STALLED, code, `${message}; everything verified is written (${stored}): run the same command again when a peer that has ${err.first ?? 'the rest'} is available`, { ...fields, first: err.first, unservable: err.unservable });
    case 'ABORTED':
      return new CliError(EXIT.INTERRUPTED, 'INTERRUPTED', `interrupted: ${stored}; run the same command again to resume`, fields);
    case 'UNREACHABLE':
      return new CliError(EXIT.UNREACHABLE, code, `${err.reason}; ${stored}`, fields);
    case 'ROOT_MISMATCH':
      return new CliError(
        EXIT.ROOT_MISMATCH,
        code,
        `the database ${db} holds a sync towards another root, ${err.storedRoot} (${err.storedComplete ? 'complete' : `${count(err.storedItems)} items stored`}); ` +
          'run again with --switch-root to sync it towards the new root keeping what is stored, or use another --db',
        { storedRoot: err.storedRoot },
      );
    case 'BAD_ROOT':
      return new CliError(EXIT.BAD_ROOT, code, message);
    case 'BAD_OPTION':
      return new CliError(EXIT.USAGE, 'USAGE', message);
    case 'LOCKED':
      return new CliError(EXIT.LOCKED, code, message);
    case 'STORE_BLOCKED':
      return new CliError(EXIT.LOCKED, 'LOCKED', `the database ${db} is locked: ${message}`);
    case 'NOT_BUILT':
      return new CliError(EXIT.FAILED, code, message);
    default:
      // Opening the database failed (leveldb-store's StoreOpenError): the message ends with the advice.
      if (err?.advice !== undefined || code === 'OPEN_FAILED') return new CliError(EXIT.STORE, code, message);
      if (code.startsWith('STORE_')) return new CliError(EXIT.STORE, code, `${err.reason ? `writing to ${db}: ${err.reason}` : `storage failed: ${message}`}; ${stored}: fix the cause and run the same command again`, fields);
      return new CliError(EXIT.FAILED, code, `sync failed: ${message}`, fields);
  }
}

// ── verify ──────────────────────────────────────────────────────────────────────────────

const VERIFY = {
  summary: 'walk a stored state from its root and check that nothing is missing',
  usage: `usage: statesync verify --db DIR [--root HASH] [--json]

Walks the state under the root in the LevelDB database DIR: every trie node is read and
hashed, every account's storage trie and code must be present. Prints the counts; any gap is
exit code 7 with a message naming it.

options:
  --db DIR        the LevelDB database directory
  --root HASH     the root to verify (default: the root of the sync stored in DIR)
  --json          print the result as one JSON object
  -h, --help      this help

exit codes: 0 complete, 2 bad arguments, 3 malformed root, 6 database locked,
7 incomplete (a gap), 8 no database / storage error, 1 anything else`,
  options: {
    db: { type: 'string' },
    root: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(values) {
    if (values.db === undefined) throw usageError('verify', '--db DIR is required');
    let root = values.root === undefined ? undefined : parseRoot(values.root);
    const reporter = reporterFor(values);
    const result = await runVerify({ db: values.db, root });
    reporter.result({ type: 'verified', ok: true, exitCode: EXIT.OK, ...result.fields, text: verifySummary(result.fields) });
    return EXIT.OK;
  },
};

async function runVerify({ db, root }) {
  const { verifyState } = await lib();
  try {
    const { record: _record, ...report } = await verifyState({ db, root });
    return { fields: { db, ...report } };
  } catch (err) {
    if (err.failure) throw new CliError(EXIT.STORE, err.failure.code, `${err.failure.reason}: ${err.failure.advice}`);
    switch (err.code) {
      case 'INCOMPLETE': {
        if (err.root === undefined) throw new CliError(EXIT.INCOMPLETE, 'INCOMPLETE', `${db} holds no sync (no progress record); pass --root HASH to walk a root anyway`);
        const r = err.record;
        const partial = r && r.root === err.root && !r.complete ? ` (a sync towards it stopped after ${count(r.committedItems)} items: run sync again to finish)` : '';
        throw new CliError(EXIT.INCOMPLETE, 'INCOMPLETE', `the state under ${err.root} in ${db} is incomplete: ${err.message}${partial}`, { root: err.root });
      }
      case 'BAD_ROOT':
        throw new CliError(EXIT.BAD_ROOT, err.code, err.message);
      case 'LOCKED':
        throw new CliError(EXIT.LOCKED, 'LOCKED', err.message);
      case 'NOT_BUILT':
        throw new CliError(EXIT.FAILED, err.code, err.message);
      default:
        // Opening the database failed (leveldb-store's StoreOpenError): the message ends with the advice.
        if (err.advice !== undefined || err.code === 'OPEN_FAILED') throw new CliError(EXIT.STORE, err.code, err.message);
        throw new CliError(EXIT.STORE, err.code ?? 'STORE', `reading ${db} failed: ${err.message}; fix the cause and run the same command again`);
    }
  }
}

function verifySummary(f) {
  const row = (label, value) => `  ${label.padEnd(15)}${value}`;
  return [
    `verified root ${f.root} in ${f.db} (${formatSeconds(f.elapsedMs)})`,
    row('accounts', count(f.accounts)),
    row('contracts', `${count(f.contracts)} (${count(f.codes)} distinct code blobs, ${formatBytes(f.codeBytes)})`),
    row('storage tries', count(f.storageTries)),
    row('storage slots', count(f.values)),
    row('trie nodes', `${count(f.nodes)} (${formatBytes(f.nodeBytes)})`),
    row('total bytes', formatBytes(f.bytes)),
  ].join('\n');
}

// ── serve ───────────────────────────────────────────────────────────────────────────────

const FAULT_FLAGS = {
  latency: 'latencyMs',
  jitter: 'jitterMs',
  'drop-rate': 'dropRate',
  'corrupt-rate': 'corruptRate',
  'partial-rate': 'partialRate',
  'stall-rate': 'stallRate',
  'garbage-rate': 'garbageRate',
  'close-after': 'closeAfter',
};

/** serve's limit flags and the `startPeerServer` limits they set. */
const LIMIT_FLAGS = {
  'max-connections': 'maxConnections',
  'max-in-flight': 'maxInFlight',
  'max-queued-bytes': 'maxQueuedBytes',
};

const SERVE = {
  summary: 'serve a state to peers over WebSocket (genesis file, synthetic state or synced database)',
  usage: `usage: statesync serve (--genesis FILE | --synthetic ACCOUNTS[:SEED] | --db DIR [--root HASH]) [options]

A WebSocket peer speaking the statesync wire protocol with geth's serving limits (at most
1024 items and about 2 MiB per answer). Serving from a synced database means any synced node
can serve others. Runs until Ctrl-C (exit 0).

source (exactly one):
  --genesis FILE            a genesis allocation (e.g. fixtures/genesis_mainnet.json)
  --synthetic N[:SEED]      a seeded synthetic state of N accounts (seed default 1)
  --db DIR                  a LevelDB database written by 'statesync sync'
  --root HASH               with --db: the root to announce (default: the stored sync's)

options:
  --port N                  port to listen on (default 0: any free port, printed)
  --host HOST               address to bind (default 127.0.0.1)
  --network-id N            network id in the Status frame (default 1)
  --json                    print 'listening' and final 'stats' as JSON lines
  -h, --help                this help

limits (what one client may make the server hold; refusals are counted in the stats):
  --max-connections N       open connections; more are refused with HTTP 503 (default ${DEFAULT_LIMITS.maxConnections})
  --max-in-flight N         requests answered at once per connection; past it the
                            connection is not read until one is sent (default ${DEFAULT_LIMITS.maxInFlight})
  --max-queued-bytes N      answer bytes waiting for a client that does not read; past it
                            answers wait, and so does reading (default ${DEFAULT_LIMITS.maxQueuedBytes})

fault injection (a test peer; rates are probabilities per request, 0 to 1):
  --latency MS              delay before each answer
  --jitter MS               plus up to this much, uniformly
  --drop-rate P             never answer
  --corrupt-rate P          flip a byte of the last blob
  --partial-rate P          answer only half of what was asked
  --stall-rate P            answer only after 20 s
  --garbage-rate P          send random bytes instead
  --close-after N           close each connection after N requests
  --faults k=v,...          the same by peer-server name (latencyMs, jitterMs, dropRate,
                            stallRate, stallMs, corruptRate, partialRate, garbageRate,
                            closeAfter, maxItems, softBytes)
  --seed N                  seed of the fault generator (default 1)

exit codes: 0 stopped by Ctrl-C, 2 bad arguments, 3 malformed root, 6 database locked,
8 no database / storage error, 1 anything else (e.g. the port is taken)`,
  options: {
    genesis: { type: 'string' },
    synthetic: { type: 'string' },
    db: { type: 'string' },
    root: { type: 'string' },
    port: { type: 'string' },
    host: { type: 'string' },
    'network-id': { type: 'string' },
    json: { type: 'boolean' },
    faults: { type: 'string' },
    seed: { type: 'string' },
    ...Object.fromEntries([...Object.keys(FAULT_FLAGS), ...Object.keys(LIMIT_FLAGS)].map((k) => [k, { type: 'string' }])),
  },
  async run(values) {
    const sources = ['genesis', 'synthetic', 'db'].filter((k) => values[k] !== undefined);
    if (sources.length !== 1) throw usageError('serve', sources.length ? `give one source, not ${sources.map((s) => `--${s}`).join(' and ')}` : 'a source is required: --genesis FILE, --synthetic N[:SEED] or --db DIR');
    if (values.root !== undefined && !values.db) throw usageError('serve', '--root goes with --db');
    const port = number('serve', 'port', values.port, { max: 65535 }) ?? 0;
    const networkId = number('serve', 'network-id', values['network-id'], { max: 2 ** 32 - 1 }) ?? 1;
    const seed = number('serve', 'seed', values.seed, { max: 2 ** 32 - 1 }) ?? 1;
    let faults;
    try {
      faults = parseFaults(values.faults);
    } catch (err) {
      throw usageError('serve', `--faults: ${err.message}`);
    }
    for (const [flag, key] of Object.entries(FAULT_FLAGS)) {
      if (values[flag] === undefined) continue;
      const rate = flag.endsWith('-rate');
      faults[key] = number('serve', flag, values[flag], { max: rate ? 1 : Infinity, integer: !rate });
    }
    const limits = {};
    for (const [flag, key] of Object.entries(LIMIT_FLAGS)) limits[key] = number('serve', flag, values[flag], { min: 1 }) ?? DEFAULT_LIMITS[key];
    const synthetic = values.synthetic === undefined ? undefined : parseSynthetic('serve', values.synthetic);
    const root = values.root === undefined ? undefined : parseRoot(values.root);
    const reporter = reporterFor(values);

    const engine = await lib();
    let source;
    let store;
    let describe;
    if (values.genesis !== undefined) {
      source = await genesisSource(values.genesis);
      describe = `${count(source.accounts)} accounts, ${count(source.nodeCount)} nodes, ${count(source.codeCount)} codes, ${formatBytes(source.bytes)}`;
    } else if (synthetic) {
      source = engine.StateSource.synthetic(synthetic.accounts, synthetic.seed);
      describe = `synthetic: ${count(source.accounts)} accounts (seed ${synthetic.seed}), ${count(source.nodeCount)} nodes, ${count(source.codeCount)} codes, ${formatBytes(source.bytes)}`;
    } else {
      store = await openStore(values.db, { createIfMissing: false });
      const record = await engine.readProgress({ store }).catch(() => null);
      const announced = root ?? record?.root;
      if (!announced) {
        await store.close();
        throw usageError('serve', `${values.db} holds no sync record: pass --root HASH`);
      }
      if (!record || record.root !== announced || !record.complete) {
        reporter.warn(`${values.db} does not hold the complete state under ${announced}: peers get what is stored`);
      }
      const { levelSource } = await import('../lib/leveldb-store.mjs');
      source = levelSource(store, announced, engine);
      describe = `database ${values.db}${record ? `, ${count(record.committedItems)} items (${formatBytes(record.committedBytes)})` : ''}`;
    }

    let server;
    try {
      server = await startPeerServer({ source, port, host: values.host ?? '127.0.0.1', networkId, faults, limits, seed, log: (m) => reporter.warn(m) });
    } catch (err) {
      await store?.close();
      throw new CliError(EXIT.FAILED, err.code ?? 'LISTEN', `cannot listen on ${values.host ?? '127.0.0.1'}:${port}: ${err.message}`);
    }
    const active = Object.entries(faults).filter(([k, v]) => v && k !== 'stallMs');
    reporter.result({
      type: 'listening',
      url: server.url,
      port: server.port,
      root: source.root,
      faults: Object.fromEntries(active),
      text: `serving ${source.root} (${describe}) at ${server.url}${active.length ? ` with faults ${active.map(([k, v]) => `${k}=${v}`).join(',')}` : ''}; Ctrl-C to stop`,
    });
    await new Promise((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await server.close();
    await store?.close();
    const s = server.stats;
    const refused = Object.entries(s.refused).filter(([, n]) => n > 0);
    const refusedText = refused.length ? `; refused: ${refused.map(([kind, n]) => `${count(n)} ${kind}`).join(', ')}` : '; refused nothing';
    reporter.result({ type: 'stats', ...s, limits: server.limits, text: `stopped: ${count(s.connections)} connections, ${count(s.requests)} requests, ${count(s.answered)} answered${refusedText}` });
    return EXIT.OK;
  },
};

function parseSynthetic(command, text) {
  const m = /^(\d+)(?::(\d+))?$/.exec(text);
  if (!m || Number(m[1]) < 1 || Number(m[1]) > 2 ** 32 - 1 || Number(m[2] ?? 1) > 2 ** 32 - 1) {
    throw usageError(command, `--synthetic needs ACCOUNTS[:SEED] (positive integers), got "${text}"`);
  }
  return { accounts: Number(m[1]), seed: Number(m[2] ?? 1) };
}

async function genesisSource(file) {
  const { StateSource } = await lib();
  let json;
  try {
    json = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(EXIT.USAGE, 'USAGE', `cannot read the genesis file ${file}: ${err.code ?? err.message}`);
  }
  try {
    return StateSource.fromGenesis(json);
  } catch (err) {
    throw new CliError(EXIT.USAGE, err.code ?? 'BAD_GENESIS', `${file} is not a genesis allocation: ${err.message}`);
  }
}

// ── demo ────────────────────────────────────────────────────────────────────────────────

const DEMO = {
  summary: "the README's main job: sync the mainnet genesis state from local peers, verify it, serve the page",
  usage: `usage: statesync demo [--db DIR] [--port N] [--exit | --serve] [--fresh] [--synthetic N[:SEED]] [--json]

Starts three local peers serving the mainnet genesis state (fixtures/genesis_mainnet.json;
the third one is mildly faulty: slow, sometimes corrupt), syncs it into ./statesync-data
with the progress bar, verifies the root and prints a summary. Then it serves the browser
page at a printed localhost address, so the same sync can be watched in a browser, until
Ctrl-C. Running it again resumes from ./statesync-data (and finishes at once when complete).

options:
  --db DIR        where to store the state (default ./statesync-data)
  --port N        port of the browser page (default 8080; any free port if taken)
  --exit          exit after verifying instead of serving the page (the default when
                  stdout is not a terminal or CI=true)
  --serve         serve the page even when stdout is not a terminal
  --fresh         delete the database first, to watch a sync from scratch
  --synthetic N[:SEED]
                  a seeded synthetic state of N accounts instead of the genesis state
                  (e.g. 100000:7 for a longer sync); the database follows the demo's root
  --json          JSON lines instead of the progress bar
  -h, --help      this help

exit codes: as 'statesync sync' and 'statesync verify'; 0 after Ctrl-C while serving`,
  options: {
    db: { type: 'string' },
    port: { type: 'string' },
    exit: { type: 'boolean' },
    serve: { type: 'boolean' },
    fresh: { type: 'boolean' },
    synthetic: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(values) {
    const synthetic = values.synthetic === undefined ? undefined : parseSynthetic('demo', values.synthetic);
    if (values.exit && values.serve) throw usageError('demo', '--exit and --serve contradict each other');
    const pagePort = number('demo', 'port', values.port, { max: 65535 }) ?? 8080;
    const db = values.db ?? './statesync-data';
    const ci = process.env.CI && !['0', 'false', ''].includes(process.env.CI.toLowerCase());
    const keepServing = values.serve || (!values.exit && process.stdout.isTTY && !ci);
    const reporter = reporterFor(values);
    const t0 = Date.now();

    if (values.fresh) fs.rmSync(db, { recursive: true, force: true });
    const source = synthetic ? (await lib()).StateSource.synthetic(synthetic.accounts, synthetic.seed) : await genesisSource(GENESIS_FIXTURE);
    const root = source.root;
    const what = synthetic ? `a synthetic state (seed ${synthetic.seed})` : 'the mainnet genesis state';
    reporter.info(`statesync demo: ${what}, ${count(source.accounts)} accounts, ${count(source.nodeCount)} trie nodes, ${count(source.codeCount)} contract codes, ${formatBytes(source.bytes)}, root ${shortHash(root)}`, { root });

    const faulty = { latencyMs: 30, jitterMs: 40, corruptRate: 0.03, dropRate: 0.02 };
    const servers = [];
    const closeServers = () => Promise.all(servers.map((s) => s.close()));
    try {
      for (let i = 0; i < 3; i++) servers.push(await startPeerServer({ source, port: 0, faults: i === 2 ? faulty : {}, seed: 7 + i }));
    } catch (err) {
      await closeServers();
      throw new CliError(EXIT.FAILED, 'LISTEN', `cannot start the local peers: ${err.message}`);
    }
    const urls = servers.map((s) => s.url);
    reporter.info(`peers: ${urls.join(', ')} (the last one is faulty: ${faulty.latencyMs}+${faulty.jitterMs} ms latency, ${faulty.corruptRate * 100}% corrupt, ${faulty.dropRate * 100}% dropped answers)`, { peers: urls });

    let synced;
    let verified;
    try {
      // The demo database follows whichever state the demo runs (genesis or synthetic).
      synced = await syncWithSignals({ peers: urls, root, db, switchRoot: true, connectTimeoutMs: 10_000 }, reporter);
      reporter.info(`verifying ${db} from the root …`);
      verified = await runVerify({ db, root });
    } catch (err) {
      await closeServers();
      throw err;
    }
    const s = synced.fields;
    const v = verified.fields;
    const resumedText = s.resumed ? (s.processed === 0 ? ` (resumed: ${db} already held the complete state, so nothing was fetched; --fresh syncs from scratch)` : ` (resumed from ${db}: fetched ${count(s.processed)} of ${count(s.committed)} items this run)`) : '';
    reporter.result({
      type: 'summary',
      ok: true,
      exitCode: EXIT.OK,
      ...s,
      verified: v,
      totalMs: Date.now() - t0,
      text: [
        `root verified: ${root}`,
        `  accounts ${count(v.accounts)} · trie nodes ${count(v.nodes)} · ${formatBytes(v.bytes)} · synced in ${formatSeconds(s.elapsedMs)}, verified in ${formatSeconds(v.elapsedMs)}${resumedText}`,
      ].join('\n'),
    });

    if (!keepServing) {
      await closeServers();
      return EXIT.OK;
    }
    let site;
    try {
      site = await startStaticServer({ port: pagePort, config: { peers: urls, root } });
    } catch (err) {
      if (err.code !== 'EADDRINUSE') throw err;
      site = await startStaticServer({ port: 0, config: { peers: urls, root } });
    }
    if (!fs.existsSync(path.join(WEB_DIR, 'page', 'index.html'))) reporter.warn('web/page/index.html is missing: the page is not built into this checkout');
    reporter.result({
      type: 'serving',
      url: site.url,
      peers: urls,
      root,
      text: `\nWatch the same sync in a browser: ${site.url}\n(the page syncs into IndexedDB from the same three peers; Ctrl-C to stop)`,
    });
    await new Promise((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await site.close();
    await closeServers();
    reporter.info('stopped');
    return EXIT.OK;
  },
};

// ── main ────────────────────────────────────────────────────────────────────────────────

const COMMANDS = { sync: SYNC, verify: VERIFY, serve: SERVE, demo: DEMO };

const MAIN_USAGE = `usage: statesync <command> [options]

Ethereum state sync: download a whole state trie from untrusted peers, verify every byte,
keep it in LevelDB so nothing is lost.

commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(8)}${c.summary}`)
  .join('\n')}

'statesync <command> --help' describes each command.

exit codes:
  0    success
  1    failure not listed below (engine failure, wasm package not built, port taken)
  2    bad arguments
  3    malformed root
  4    no peer reachable within --connect-timeout
  5    the database holds a sync towards another root (use --switch-root)
  6    the database is locked by another process
  7    verify: the stored state is incomplete
  8    the database cannot be opened, read or written
  9    stalled past --stall-timeout: no peer could serve what is left (resumable)
  130  interrupted by Ctrl-C after flushing; run the same command again to resume`;

export async function main(argv) {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${MAIN_USAGE}\n`);
    return command === undefined ? EXIT.USAGE : EXIT.OK;
  }
  const spec = COMMANDS[command];
  let json = rest.includes('--json');
  try {
    if (!spec) throw usageError('', `unknown command "${command}" (commands: ${Object.keys(COMMANDS).join(', ')})`);
    const values = parse(command, spec, rest);
    json = Boolean(values.json);
    if (values.help) {
      process.stdout.write(`${spec.usage}\n`);
      return EXIT.OK;
    }
    return await spec.run(values);
  } catch (err) {
    const e = err instanceof CliError ? err : new CliError(EXIT.FAILED, err?.code ?? 'FAILED', err?.stack ?? String(err));
    // The reason on stderr; with --json also one parseable line on stdout, the run's last.
    process.stderr.write(`statesync${spec ? ` ${command}` : ''}: ${e.message}\n`);
    if (json) process.stdout.write(`${JSON.stringify({ time: Date.now(), type: 'error', code: e.code, exitCode: e.exitCode, message: e.message, ...e.fields })}\n`);
    return e.exitCode;
  }
}

/** Whether this file is the program node runs (not a module another one imports). */
function isMain() {
  try {
    return Boolean(process.argv[1]) && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false; // argv[1] is no file: node -e, a REPL
  }
}

if (isMain()) {
  const code = await main(process.argv.slice(2));
  process.stdout.write('', () => process.exit(code));
}
