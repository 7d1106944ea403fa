#!/usr/bin/env node
// `npm run soak`: the long runs outside CI (docs/SOAK.md). Each piece prints what it measured,
// the whole run ends with one summary table on stdout, and every figure goes to
// bench/soak-results.json. Progress goes to stderr. Nothing here has a wall-clock limit: a
// piece fails on a wrong result, never on a slow machine.
//
//   node bench/soak.mjs                         every piece (about an hour on 2 cores)
//   node bench/soak.mjs --only cli,browser      some pieces: sim, native, cli, browser
//
// sim      the deterministic simulator at ten times its default seeds (SIM_SEEDS=x10): 0 failures
// native   bench-native at 1M, 16M and 1M items again: peak engine heap at 16M ≤ 1.2× that at
//          1M, and the engine's rate at 16M ≥ 0.8× the better 1M rate
// cli      `statesync sync` into LevelDB on a 4M-item state from 4 `statesync serve --synthetic`
//          peers, SIGKILLed at 20 random points: how much each kill lost against one batch, what
//          the last run fetched against what was missing, and `verify` at the end
// browser  the page syncing synthetic-1000000 into IndexedDB, reloaded at 5 random points,
//          verified at the end; what each reload lost
//
// Options: --out FILE (default bench/soak-results.json), --seed N (the kill and reload points,
// default 1), --kills N (20), --reloads N (5), --cli-items N (4000000), --native-items A,B,…
// (1000000,16000000,1000000), --browser-state synthetic:N (synthetic:1000000), --keep (the CLI's
// database stays, its path printed), --no-build, --update (with --only: keep the other pieces'
// figures from the results file; each piece then names the run it came from).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { BENCH_DIR, REPO, parseArgs, log, machineInfo, gitInfo, loadWasm, buildSource, parseStateSpec } from './lib.mjs';
import { startCli, runCli, lastJson } from '../tests/node/helpers.mjs';
import { seededRandom, startPeerServer } from '../web/cli/peer-server.mjs';
import { count } from '../web/cli/cli-report.mjs';
import { startStaticServer } from '../web/cli/static-server.mjs';

const args = parseArgs(process.argv.slice(2));
const only = args.only ? new Set(String(args.only).split(',')) : null;
const want = (piece) => !only || only.has(piece);
const out = path.resolve(args.out ?? path.join(BENCH_DIR, 'soak-results.json'));
const seed = Number(args.seed ?? 1);
const kills = Number(args.kills ?? 20);
const reloads = Number(args.reloads ?? 5);
const cliItems = Number(args['cli-items'] ?? 4_000_000);
// The small state before and after the large one: the machine's load may drift in between.
const nativeItems = String(args['native-items'] ?? '1000000,16000000,1000000').split(',').map(Number);
const browserState = String(args['browser-state'] ?? 'synthetic:1000000');
// The generator's items per account at a million accounts and more (15.7 M items from 5.5 M
// accounts, 3.6 M from 1.25 M): the soak sizes its states by items, unlike the benchmarks' names.
const ITEMS_PER_ACCOUNT = 2.8;
// The engine's default commit batch (EngineConfig: batch_bytes, batch_items), which both the
// CLI and the page use: a kill or a reload may lose at most one.
const BATCH_BYTES = 1024 * 1024;
const BATCH_ITEMS = 8192;
/** One batch in items, for a state whose mean item is `itemBytes`. */
const batchItemsFor = (itemBytes) => Math.min(BATCH_ITEMS, Math.ceil(BATCH_BYTES / itemBytes));

const results = { date: new Date().toISOString(), seed, machine: machineInfo(), git: gitInfo(), sim: null, native: null, cli: null, browser: null, errors: [] };
// --update: keep the pieces not run now from the results file, so that one piece can be run
// again without losing the others' figures.
if (args.update && fs.existsSync(out)) {
  const previous = JSON.parse(fs.readFileSync(out, 'utf8'));
  for (const piece of ['sim', 'native', 'cli', 'browser']) {
    if (!want(piece) && previous[piece]) results[piece] = { ...previous[piece], from_run: previous[piece].from_run ?? { date: previous.date, git: previous.git, machine: previous.machine } };
  }
  results.errors = (previous.errors ?? []).filter((e) => !want(e.piece));
}
const began = Date.now();
const children = new Set();
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));
process.on('SIGINT', () => process.exit(130));

if (!args['no-build'] && (want('cli') || want('browser'))) await command('build the wasm package', 'bash', ['scripts/build-wasm.sh']);

for (const [piece, run] of [
  ['sim', soakSimulator],
  ['native', soakNative],
  ['cli', soakCli],
  ['browser', soakBrowser],
]) {
  if (!want(piece)) continue;
  log(`── ${piece}`);
  const started = Date.now();
  try {
    results[piece] = await run();
    results[piece].elapsed_s = (Date.now() - started) / 1000;
  } catch (err) {
    log(`${piece}: FAILED: ${err.stack ?? err}`);
    results.errors.push({ piece, message: String(err.message ?? err) });
  }
  log(`   ${piece} done in ${Math.round((Date.now() - started) / 1000)} s`);
}

results.elapsed_s = (Date.now() - began) / 1000;
results.machine.load_average_end = os.loadavg();
results.summary = summarize(results);
fs.writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write(renderSummary(results.summary));
log(`wrote ${path.relative(process.cwd(), out)} in ${Math.round(results.elapsed_s)} s`);
process.exit(results.errors.length || results.summary.some((r) => r.met === false) ? 1 : 0);

// ── sim ─────────────────────────────────────────────────────────────────────────────────

/** The simulator suite at ten times its seeds; each scenario prints a `| name | seeds | … |` row. */
async function soakSimulator() {
  const { code, stdout, stderr } = await command('simulator, SIM_SEEDS=x10', 'cargo', ['test', '-q', '--locked', '-p', 'statesync-tests', '--test', 'simulator', '--', '--nocapture'], {
    env: { ...process.env, SIM_SEEDS: 'x10' },
    allowFailure: true,
    captureStderr: true,
  });
  const scenarios = [...stdout.matchAll(/\| ([a-z_]+) \| (\d+) \| (\d+) \|/g)].map((m) => ({ name: m[1], seeds: Number(m[2]), mean_items: Number(m[3]) }));
  const result = /test result: (\w+)\. (\d+) passed; (\d+) failed/.exec(stdout);
  if (!result) throw new Error(`no test result in the simulator's output (exit ${code})`);
  // A failing scenario stops at its first failing seed and says how to replay it.
  const failures = [...stderr.matchAll(/^scenario `([a-z_]+)` seed (\d+) (.*)$/gm)].map((m) => ({
    scenario: m[1],
    seed: Number(m[2]),
    what: m[3].slice(0, 400),
    replay: `SIM_SEED=${m[2]} cargo test -p statesync-tests --test simulator ${m[1]}`,
  }));
  const r = { tests_passed: Number(result[2]), tests_failed: Number(result[3]), seeds: scenarios.reduce((a, s) => a + s.seeds, 0), scenarios, failures };
  log(`simulator: ${r.tests_passed} tests passed, ${r.tests_failed} failed, ${r.seeds} seeds over ${scenarios.length} passing scenarios`);
  for (const f of failures) log(`simulator: ${f.scenario} seed ${f.seed} ${f.what.slice(0, 160)}; replay: ${f.replay}`);
  return r;
}

// ── native ──────────────────────────────────────────────────────────────────────────────

/** bench-native (release) at two sizes: peak engine heap and engine rate, the large against the small. */
async function soakNative() {
  const { stdout } = await command('bench-native at ' + nativeItems.join(' and ') + ' items', 'cargo', [
    'run', '-q', '--release', '--locked', '-p', 'statesync-tests', '--bin', 'bench-native', '--',
    '--sizes', nativeItems.join(','), '--peers', '4', '--repeat', '1', '--items-per-account', String(ITEMS_PER_ACCOUNT),
  ]);
  const states = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).filter((s) => s.state.startsWith('synthetic'));
  const fewest = Math.min(...states.map((s) => s.items));
  const most = Math.max(...states.map((s) => s.items));
  // Against the better small run: the ratios only err towards failing.
  const best = (list, key, pick) => list.reduce((a, b) => (pick(b[key], a[key]) === b[key] ? b : a));
  const small = { ...best(states.filter((s) => s.items === fewest), 'engine_items_per_sec', Math.max) };
  small.peak_engine_heap_bytes = Math.min(...states.filter((s) => s.items === fewest).map((s) => s.peak_engine_heap_bytes));
  const large = best(states.filter((s) => s.items === most), 'engine_items_per_sec', Math.max);
  const r = {
    states,
    small,
    large,
    memory_ratio: large.peak_engine_heap_bytes / small.peak_engine_heap_bytes,
    rate_ratio: large.engine_items_per_sec / small.engine_items_per_sec,
  };
  log(`native: peak engine heap ${mb(small.peak_engine_heap_bytes)} at ${count(small.items)} items, ${mb(large.peak_engine_heap_bytes)} at ${count(large.items)} (×${r.memory_ratio.toFixed(2)}); ` +
    `engine ${count(small.engine_items_per_sec)} → ${count(large.engine_items_per_sec)} items/s (×${r.rate_ratio.toFixed(2)})`);
  return r;
}

// ── cli ─────────────────────────────────────────────────────────────────────────────────

/**
 * Four `serve --synthetic` peers, then `sync` runs SIGKILLed when the engine's completed
 * fraction passes each of `kills` seeded random points, then one run to the end and `verify`.
 * Per kill: the items the killed run fetched and verified, and how many of them the next run
 * found stored; the difference is what the kill lost.
 */
async function soakCli() {
  const accounts = Math.round(cliItems / ITEMS_PER_ACCOUNT);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'statesync-soak-'));
  const db = path.join(dir, 'db');
  log(`cli: starting 4 peers serving synthetic ${accounts}:1 (building the state takes a minute or two each)`);
  const peers = await Promise.all(Array.from({ length: 4 }, () => servePeer(['--synthetic', `${accounts}:1`])));
  const root = peers[0].root;
  const urls = peers.flatMap((p) => ['--peer', p.url]);
  const syncArgs = ['sync', ...urls, '--root', root, '--db', db, '--json', '--progress-interval', '100'];
  const random = seededRandom(seed);
  const points = Array.from({ length: kills }, () => 0.02 + 0.96 * random()).sort((a, b) => a - b);
  const runs = [];
  try {
    for (const [i, point] of points.entries()) {
      const run = await syncUntil(syncArgs, (e) => e.processed > 0 && e.fraction >= point);
      run.kill_at = point;
      runs.push(run);
      log(`cli: kill ${i + 1}/${kills} at ${(100 * run.fraction).toFixed(1)}%: started with ${count(run.stored_at_start)} stored, fetched ${count(run.processed)}, reported ${count(run.committed)} committed, after ${(run.ms / 1000).toFixed(1)} s`);
      if (!run.killed) throw new Error(`run ${i + 1} ended (exit ${run.code}) before its kill point: ${run.stderr.slice(-500)}`);
    }
    const last = await syncUntil(syncArgs, () => false);
    if (last.code !== 0) throw new Error(`the last run failed (exit ${last.code}): ${last.stderr.slice(-500)}`);
    runs.push(last);
    log(`cli: the last run started with ${count(last.stored_at_start)} stored and fetched ${count(last.processed)} in ${(last.ms / 1000).toFixed(1)} s`);
    const verify = await runCli(['verify', '--db', db, '--root', root, '--json']);
    const verified = lastJson(verify);
    if (verify.code !== 0) throw new Error(`verify failed (exit ${verify.code}): ${verify.stderr}`);
    const items = verified.nodes + verified.codes;
    const batchItems = batchItemsFor(verified.bytes / items);
    // What each kill lost: fetched and verified by the killed run, not found stored by the next.
    for (let i = 0; i < runs.length - 1; i++) {
      const run = runs[i];
      run.stored_at_next_start = runs[i + 1].stored_at_start;
      run.kept = run.stored_at_next_start - run.stored_at_start;
      run.lost = Math.max(0, run.processed - run.kept);
      run.committed_kept = run.stored_at_next_start >= run.committed;
    }
    const killed = runs.slice(0, -1);
    const r = {
      accounts,
      items,
      bytes: verified.bytes,
      batch_bytes: BATCH_BYTES,
      batch_items: batchItems,
      verified: { accounts: verified.accounts, nodes: verified.nodes, codes: verified.codes, bytes: verified.bytes, ok: true },
      runs,
      kills: killed.length,
      max_lost: Math.max(...killed.map((x) => x.lost)),
      mean_lost: killed.reduce((a, x) => a + x.lost, 0) / killed.length,
      kills_within_one_batch: killed.filter((x) => x.lost <= batchItems).length,
      every_reported_commit_kept: killed.every((x) => x.committed_kept),
      last_run_rest: items - last.stored_at_start,
      last_run_fetched: last.processed,
      total_fetched: runs.reduce((a, x) => a + x.processed, 0),
    };
    log(`cli: verified ${count(verified.accounts)} accounts, ${count(items)} items; one batch ≈ ${count(batchItems)} items; ` +
      `${r.kills_within_one_batch}/${r.kills} kills lost at most one batch (max lost ${count(r.max_lost)}); fetched ${count(r.total_fetched)} in all`);
    return r;
  } finally {
    await Promise.all(peers.map((p) => p.stop()));
    if (args.keep) log(`cli: the database is kept at ${db}`);
    else fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** `statesync serve` with `extra`; resolves once it listens. */
async function servePeer(extra) {
  let listening;
  const ready = new Promise((resolve) => (listening = resolve));
  const run = startCli(['serve', '--port', '0', '--json', ...extra], { onLine: (_l, e) => e?.type === 'listening' && listening(e) });
  children.add(run.child);
  const exited = run.done.then((r) => {
    throw new Error(`serve exited (${r.code}): ${r.stderr}`);
  });
  const { url, root } = await Promise.race([ready, exited]);
  exited.catch(() => {});
  return {
    url,
    root,
    stop: async () => {
      run.child.kill('SIGINT');
      await run.done;
      children.delete(run.child);
    },
  };
}

/** One `sync` run, SIGKILLed at the first progress event `when` accepts. */
async function syncUntil(syncArgs, when) {
  const started = Date.now();
  let info;
  let last;
  let killed = false;
  const run = startCli(syncArgs, {
    onLine: (_line, e) => {
      if (e?.type === 'info' && !info) info = e;
      if (e?.type !== 'progress' || killed) return;
      last = e;
      if (when(e)) {
        killed = true;
        run.child.kill('SIGKILL');
      }
    },
  });
  children.add(run.child);
  const done = await run.done;
  children.delete(run.child);
  const end = killed ? last : (done.json.find((e) => e.type === 'finished') ?? last);
  return {
    killed,
    code: done.code,
    stderr: done.stderr,
    ms: Date.now() - started,
    stored_at_start: info?.storedItems ?? 0,
    fraction: end?.fraction ?? 0,
    processed: killed ? end.processed : (lastJson(done)?.processed ?? end?.processed ?? 0),
    committed: end?.committed ?? 0,
  };
}

// ── browser ─────────────────────────────────────────────────────────────────────────────

/**
 * The page (web/page) in headless Chromium syncing `browserState` from 4 local peers into
 * IndexedDB, reloaded when its completed fraction passes each of `reloads` seeded random
 * points; it resumes by itself each time, and verifies the state when done.
 */
async function soakBrowser() {
  const { chromium } = await import('playwright-core');
  const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
  const spec = parseStateSpec(browserState);
  const { wasm } = await loadWasm();
  log(`browser: building ${spec.name}`);
  const source = buildSource(wasm, browserState);
  const items = source.nodeCount + source.codeCount;
  const peers = [];
  for (let i = 0; i < 4; i++) peers.push(await startPeerServer({ source }));
  const site = await startStaticServer({ config: { peers: peers.map((p) => p.url), root: source.root } });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'statesync-soak-browser-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 0,
  });
  context.setDefaultTimeout(0);
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const hook = () =>
      page.evaluate(() => {
        const h = window.statesync;
        return h && { ready: h.ready, autoStarted: h.autoStarted, resumedFrom: h.resumedFrom, lastProgress: h.lastProgress, verified: h.verified, error: h.error };
      });
    const waitFor = async (what, predicate) => {
      for (;;) {
        const h = await hook().catch(() => null); // null while the page reloads
        if (h?.error) throw new Error(`page error while waiting for ${what}: ${JSON.stringify(h.error)}`);
        if (h && predicate(h)) return h;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    const started = Date.now();
    await page.goto(site.url);
    await waitFor('the page to load', (h) => h.ready);
    await page.getByRole('button', { name: 'Start' }).click();
    const random = seededRandom(seed + 1);
    const points = Array.from({ length: reloads }, () => 0.05 + 0.9 * random()).sort((a, b) => a - b);
    const sessions = [];
    let storedAtStart = 0;
    // What the peers delivered: the page's progress reports lag (items verified after the last
    // one would be invisible), so the loss is measured from the peers' side instead.
    const delivered = () => peers.reduce((n, p) => n + p.stats.answeredHashes, 0);
    let deliveredAtStart = 0;
    for (const [i, point] of points.entries()) {
      const before = await waitFor(`${(point * 100).toFixed(1)}%`, (h) => h.lastProgress && h.lastProgress.fraction >= point && h.lastProgress.processed > 0);
      // Freeze the peers (their answers parked) and reload at once: the page is still verifying
      // and writing what it received; everything it received is counted.
      const releases = peers.map((p) => p.hold());
      const sent = delivered() - deliveredAtStart;
      await page.reload();
      const resumed = await waitFor('the page to resume by itself', (h) => h.ready && h.autoStarted);
      deliveredAtStart = delivered();
      for (const release of releases) release();
      const p = before.lastProgress;
      // Stored = committed + staged (verified items whose subtries were not complete yet).
      const stored = resumed.resumedFrom.committedItems + (resumed.resumedFrom.stagedItems ?? 0);
      const session = { reload_at: point, fraction: p.fraction, stored_at_start: storedAtStart, processed: p.processed, committed: p.committed, delivered: sent, stored_at_next_start: stored };
      session.kept = stored - storedAtStart;
      // An upper bound: what the peers delivered this session includes re-requests and hedges.
      session.lost = Math.max(0, sent - session.kept);
      sessions.push(session);
      log(`browser: reload ${i + 1}/${reloads} at ${(100 * p.fraction).toFixed(1)}%: peers delivered ${count(sent)} this session (the page last reported ${count(p.processed)}), ${count(stored)} stored after the reload (lost at most ${count(session.lost)})`);
      storedAtStart = stored;
    }
    const done = await waitFor('the sync to finish and verify', (h) => h.verified);
    const v = done.verified;
    if (v.accounts !== source.accounts || v.nodes !== source.nodeCount) throw new Error(`verified ${JSON.stringify(v)}, expected ${source.accounts} accounts and ${source.nodeCount} nodes`);
    sessions.push({ stored_at_start: storedAtStart, processed: done.lastProgress.processed, committed: done.lastProgress.committed });
    const batchItems = batchItemsFor(source.bytes / items);
    const reloaded = sessions.slice(0, -1);
    const r = {
      state: spec.name,
      accounts: source.accounts,
      items,
      bytes: source.bytes,
      batch_bytes: BATCH_BYTES,
      batch_items: batchItems,
      verified: v,
      sessions,
      reloads: reloaded.length,
      max_lost: Math.max(...reloaded.map((s) => s.lost)),
      reloads_within_one_batch: reloaded.filter((s) => s.lost <= batchItems).length,
      last_session_rest: items - storedAtStart,
      last_session_fetched: done.lastProgress.processed,
      total_fetched: sessions.reduce((a, s) => a + s.processed, 0),
      ms: Date.now() - started,
    };
    log(`browser: verified ${count(v.accounts)} accounts and ${count(v.nodes)} nodes after ${reloaded.length} reloads in ${(r.ms / 1000).toFixed(0)} s; ` +
      `${r.reloads_within_one_batch}/${r.reloads} reloads lost at most one batch (${count(batchItems)} items; max lost ${count(r.max_lost)})`);
    return r;
  } finally {
    await context.close().catch(() => {});
    await Promise.all(peers.map((p) => p.close()));
    await site.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

// ── the summary ─────────────────────────────────────────────────────────────────────────

function summarize(r) {
  const rows = [];
  const row = (check, figure, target, met) => rows.push({ check, figure, target, met });
  if (r.sim) {
    const failed = r.sim.failures.map((f) => `${f.scenario} seed ${f.seed}`).join(', ');
    row('simulator, SIM_SEEDS=x10', `${r.sim.tests_failed} failed of ${r.sim.tests_passed + r.sim.tests_failed} tests${failed ? ` (${failed})` : ''}; ${count(r.sim.seeds)} seeds in the passing ones`, '0 failures', r.sim.tests_failed === 0);
  }
  if (r.native) {
    const { small, large } = r.native;
    row(`native peak engine heap, ${count(large.items)} vs ${count(small.items)} items`, `${mb(large.peak_engine_heap_bytes)} vs ${mb(small.peak_engine_heap_bytes)} = ${r.native.memory_ratio.toFixed(2)}×`, '≤ 1.2×', r.native.memory_ratio <= 1.2);
    row(`native engine rate, ${count(large.items)} vs ${count(small.items)} items`, `${count(large.engine_items_per_sec)} vs ${count(small.engine_items_per_sec)} items/s = ${r.native.rate_ratio.toFixed(2)}×`, '≥ 0.8×', r.native.rate_ratio >= 0.8);
  }
  if (r.cli) {
    row(`CLI, ${count(r.cli.items)} items, ${r.cli.kills} SIGKILLs: lost per kill`, `max ${count(r.cli.max_lost)}, mean ${count(r.cli.mean_lost)} items; ${r.cli.kills_within_one_batch}/${r.cli.kills} within one batch`, `≤ one batch (${count(r.cli.batch_items)} items)`, r.cli.kills_within_one_batch === r.cli.kills);
    row('CLI: the last run fetched', `${count(r.cli.last_run_fetched)} of ${count(r.cli.last_run_rest)} missing`, '≤ the rest + one batch', r.cli.last_run_fetched <= r.cli.last_run_rest + r.cli.batch_items);
    row('CLI: every reported commit survived its kill', String(r.cli.every_reported_commit_kept), 'true', r.cli.every_reported_commit_kept);
    row('CLI: verify at the end', `${count(r.cli.verified.accounts)} accounts, ${count(r.cli.items)} items`, 'passes', r.cli.verified.ok);
  }
  if (r.browser) {
    row(`browser, ${r.browser.state}, ${r.browser.reloads} reloads: lost per reload`, `max ${count(r.browser.max_lost)} items; ${r.browser.reloads_within_one_batch}/${r.browser.reloads} within one batch`, `≤ one batch (${count(r.browser.batch_items)} items)`, r.browser.reloads_within_one_batch === r.browser.reloads);
    row('browser: verified at the end', `${count(r.browser.verified.accounts)} accounts, ${count(r.browser.verified.nodes)} nodes`, 'passes', true);
  }
  for (const e of r.errors) row(`${e.piece}: failed`, e.message.slice(0, 120), 'no error', false);
  return rows;
}

function renderSummary(rows) {
  const cells = rows.map((r) => [r.check, r.figure, r.target, r.met ? 'yes' : 'NO']);
  const header = ['check', 'figure', 'target', 'met?'];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const fmt = (c) => c.map((x, i) => x.padEnd(widths[i])).join('  ').trimEnd();
  return `${[fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(fmt)].join('\n')}\n`;
}

// ── helpers ─────────────────────────────────────────────────────────────────────────────

/**
 * Runs a command from the repo root; resolves with its exit code and stdout (and stderr with
 * `captureStderr`, which is also passed through as it comes).
 */
function command(title, cmd, argv, { env = process.env, allowFailure = false, captureStderr = false } = {}) {
  log(`   ${title}`);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { cwd: REPO, env, stdio: ['ignore', 'pipe', captureStderr ? 'pipe' : 'inherit'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk) => {
      stderr += chunk;
      process.stderr.write(chunk);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      children.delete(child);
      if (code !== 0 && !allowFailure) reject(new Error(`${title}: exited with ${signal ?? code}\n${stdout.slice(-2000)}`));
      else resolve({ code, stdout, stderr });
    });
  });
}

function mb(bytes) {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}
