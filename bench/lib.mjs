// Shared by the Node.js benchmarks: loading separate instances of the WebAssembly package
// (so the serving state and the engine do not share one linear memory), building the states,
// and a sync from in-process peers that times the engine with the peers' serving excluded.

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { loadWasmInstance } from '../web/lib/wasm-node.mjs';

export const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.dirname(BENCH_DIR);
export const CLI = path.join(REPO, 'web', 'cli', 'cli.mjs');
export const GENESIS_FIXTURE = path.join(REPO, 'fixtures', 'genesis_mainnet.json');

/** About 3.2 hashed items per account with the generator's default mix (as bench-native). */
export const ITEMS_PER_ACCOUNT = 3.2;
/** The synthetic generator's seed bench-native uses, so both measure the same state. */
export const SYNTHETIC_SEED = 1;

let instances = 0;

/**
 * A fresh instance of the wasm package, with its own linear memory: `{ wasm, memory }` (a
 * separate module instance per call, web/lib/wasm-node.mjs).
 */
export async function loadWasm() {
  try {
    return await loadWasmInstance(++instances);
  } catch (err) {
    throw new Error(`cannot load the wasm package (${err.code ?? err.message}): run 'npm run build' (bash scripts/build-wasm.sh)`);
  }
}

/** `genesis` or `synthetic:N` (N: target hashed items). */
export function parseStateSpec(spec) {
  if (spec === 'genesis' || spec === 'mainnet-genesis') return { kind: 'genesis', name: 'mainnet-genesis' };
  const m = /^synthetic[:-](\d+)$/.exec(spec);
  if (!m) throw new Error(`unknown state "${spec}" (genesis or synthetic:N)`);
  const target = Number(m[1]);
  return { kind: 'synthetic', target, accounts: Math.floor(target / ITEMS_PER_ACCOUNT), name: `synthetic-${target}` };
}

/** Builds a `StateSource` for a state spec in the given wasm instance. */
export function buildSource(wasm, spec) {
  const s = parseStateSpec(spec);
  if (s.kind === 'genesis') return wasm.StateSource.fromGenesis(fs.readFileSync(GENESIS_FIXTURE, 'utf8'));
  return wasm.StateSource.synthetic(s.accounts, SYNTHETIC_SEED);
}

/** A JS store that discards writes and finds nothing: what the engine itself holds. */
export function discardStore() {
  return {
    has: (keys) => keys.map(() => false),
    get: (keys) => keys.map(() => null),
    write: () => {},
    readProgress: () => null,
    scan: () => [],
  };
}

/**
 * A JS store that keeps everything in a Map (keys as latin1 strings): LevelDB's work without
 * LevelDB. It copies what it keeps: the engine's keys and values are views valid only during
 * the call (wasm/src/types.rs, JsStore).
 */
export function memoryStore() {
  const map = new Map();
  let progress = null;
  const name = (key) => Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
  return {
    has: (keys) => keys.map((k) => map.has(name(k))),
    get: (keys) => keys.map((k) => map.get(name(k)) ?? null),
    write(puts, deletes, _progressKey, record) {
      for (const [k, v] of puts) map.set(name(k), v.slice());
      for (const k of deletes) map.delete(name(k));
      progress = record.slice();
    },
    readProgress: () => progress,
    scan(prefix) {
      const p = name(prefix);
      const out = [];
      for (const [k, v] of map) if (k.startsWith(p)) out.push([Uint8Array.from(Buffer.from(k, 'latin1')), v]);
      return out;
    },
  };
}

/**
 * Syncs `source` with a `StateSync` of `wasm` from `peers` in-process peers.
 * Zero latency (`latencyMs` 0): each answer is delivered on the next turn of the event loop
 * (setImmediate), and the time spent in `source.answer` (serving, which on a network runs
 * elsewhere) is measured and subtracted. With latency each answer arrives `latencyMs` after its
 * request (the round trip), and the wall time is reported as is: serving overlaps the wait.
 * With `kbps` (kilobytes a second) each peer also sends its answers over a link of that rate,
 * one after another: an answer leaves when the request has reached the peer (half the round
 * trip) and the peer's earlier answers have been sent, takes its bytes / rate to send, and
 * arrives half a round trip later.
 * Resolves with `{ ms, wallMs, servingMs, progress }`.
 */
export async function syncInProcess({ wasm, source, peers = 4, latencyMs = 0, kbps = 0, options = {} }) {
  const sync = new wasm.StateSync({ root: source.root, progressIntervalMs: 3_600_000, ...options });
  let servingMs = 0;
  const status = source.statusFrame(1);
  const slow = latencyMs > 0 || kbps > 0;
  for (let id = 1; id <= peers; id++) {
    const deliver = (frame) => sync.receive(id, frame);
    // When this peer's link has sent everything queued on it (kbps only).
    let linkFreeAt = 0;
    sync.addPeer(id, (frame) => {
      const t0 = performance.now();
      const answer = source.answer(frame);
      servingMs += performance.now() - t0;
      if (!answer) return;
      if (!slow) {
        setImmediate(deliver, answer);
        return;
      }
      let arrival = t0 + latencyMs;
      if (kbps > 0) {
        const sent = Math.max(t0 + latencyMs / 2, linkFreeAt) + answer.byteLength / kbps;
        linkFreeAt = sent;
        arrival = sent + latencyMs / 2;
      }
      setTimeout(deliver, Math.max(0, arrival - performance.now()), answer);
    });
  }
  const started = performance.now();
  const done = sync.start();
  for (let id = 1; id <= peers; id++) sync.receive(id, status);
  const progress = await done;
  const wallMs = performance.now() - started;
  sync.free();
  if (progress?.phase !== 'done') throw new Error(`sync ended in phase ${progress?.phase}`);
  const ms = slow ? wallMs : wallMs - servingMs;
  return { ms, wallMs, servingMs, progress };
}

/**
 * Best (smallest `ms`) of at least `repeat` runs of an async function returning `{ ms, ... }`.
 * Short runs go on until `minTotalMs` of them have been measured (at most `maxRuns`): a run
 * of a few milliseconds is at the mercy of a timer tick or a garbage collection, and the
 * first ones also wait for V8 to tier the wasm code up.
 */
export async function bestOf(repeat, run, { minTotalMs = 1000, maxRuns = 30 } = {}) {
  let best;
  let total = 0;
  for (let i = 0; i < Math.max(1, repeat) || (total < minTotalMs && i < maxRuns); i++) {
    const r = await run(i);
    total += r.ms;
    if (!best || r.ms < best.ms) best = { ...r, runs: i + 1 };
  }
  return best;
}

/** `--name value` and `--flag` arguments into an object (values as strings, flags true). */
export function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const key = a.slice(2);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) out[key] = true;
    else {
      out[key] = next;
      i++;
    }
  }
  return out;
}

export const log = (...parts) => process.stderr.write(`bench: ${parts.join(' ')}\n`);

export function machineInfo() {
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  let cpuDetail = null;
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const field = (name) => new RegExp(`^${name}\\s*:\\s*(.+)$`, 'm').exec(info)?.[1].trim();
    cpu = field('model name') ?? cpu;
    const flags = field('flags') ?? '';
    cpuDetail = {
      family: field('cpu family') ?? null,
      model: field('model') ?? null,
      mhz: field('cpu MHz') ?? null,
      virtualized: /\bhypervisor\b/.test(flags),
      avx2: /\bavx2\b/.test(flags),
      avx512f: /\bavx512f\b/.test(flags),
    };
  } catch {
    /* not Linux */
  }
  const run = (cmd, argv) => {
    try {
      return execFileSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return null;
    }
  };
  return {
    cpu,
    cpu_detail: cpuDetail,
    cores: os.availableParallelism?.() ?? os.cpus().length,
    memory_bytes: os.totalmem(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    rustc: run('rustc', ['--version']),
    chromium: null,
    load_average_start: os.loadavg(),
  };
}

export function gitInfo() {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return { commit, dirty };
  } catch {
    return null;
  }
}

/** `statesync serve --synthetic spec` (answers `latencyMs` late) on a free port; resolves with
 * its `listening` line and the child once it listens. */
export function serveSynthetic(spec, latencyMs = 0) {
  return new Promise((resolve, reject) => {
    const latency = latencyMs > 0 ? ['--latency', String(latencyMs)] : [];
    const child = spawn(process.execPath, [CLI, 'serve', '--synthetic', spec, '--port', '0', '--json', ...latency], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buffered = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      buffered += chunk;
      const line = buffered.split('\n').find((l) => l.includes('"listening"'));
      if (line) resolve({ ...JSON.parse(line), child });
    });
    child.on('exit', (code) => reject(new Error(`serve exited ${code}`)));
  });
}

/** Runs `command` in the repository; resolves with its exit code and output. */
export function runCommand(command, argv) {
  return new Promise((resolve) => {
    const child = spawn(command, argv, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c) => (stderr += c));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
