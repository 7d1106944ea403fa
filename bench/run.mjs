#!/usr/bin/env node
// `npm run bench`: every benchmark of this repository, one after another, then one table on
// stdout and every raw figure in bench/results.json. Progress goes to stderr.
// docs/BENCHMARKS.md explains what each figure measures.
//
//   node bench/run.mjs                  the full run (several minutes: states up to 4M items)
//   node bench/run.mjs --quick          a smoke run: small states, one repeat
//   node bench/run.mjs --from bench/results.json [--markdown]   re-print a saved table
//
// Options: --repeat N (best of N; default 3, quick 1), --out FILE (default bench/results.json,
// quick: bench/results-quick.json), --only native,wasm,e2e,cli,product,browser,latency,sim (a subset),
// --cargo-profile NAME (the Cargo profile of the Rust benches: default release; the smoke
// test uses test, which reuses what `cargo test` compiled), --markdown (the table as Markdown),
// --no-build (do not run scripts/build-wasm.sh first).
//
// Every ratio divides two figures measured in this run.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { BENCH_DIR, REPO, parseArgs, log, machineInfo, gitInfo } from './lib.mjs';

const args = parseArgs(process.argv.slice(2));
const quick = Boolean(args.quick);
const markdown = Boolean(args.markdown);

if (args.from) {
  const saved = JSON.parse(fs.readFileSync(args.from, 'utf8'));
  process.stdout.write(renderTable(saved.rows, markdown));
  process.exit(0);
}

const repeat = Number(args.repeat ?? (quick ? 1 : 3));
// Short measurements repeat until this much of them was timed (bench/lib.mjs, bestOf).
const minTotalMs = quick ? 100 : 1000;
const out = path.resolve(args.out ?? path.join(BENCH_DIR, quick ? 'results-quick.json' : 'results.json'));
const cargoProfile = args['cargo-profile'] ?? 'release';
const cargoProfileArgs = cargoProfile === 'release' ? ['--release'] : ['--profile', cargoProfile];
const only = args.only ? new Set(String(args.only).split(',')) : null;
const want = (piece) => !only || only.has(piece);

// What runs where. Sizes are target hashed-item counts (accounts = size / 3.2, seed 1, as
// bench-native), the simulator's state is given in accounts.
const plan = quick
  ? {
      nativeSizes: [10_000, 40_000],
      wasmStates: ['genesis', 'synthetic:10000', 'synthetic:40000'],
      memorySizes: [10_000, 40_000],
      e2eStates: ['genesis', 'synthetic:10000'],
      cliStates: ['10000:7', '30000:5'],
      productState: '10000:5',
      browserStates: ['genesis'],
      opfsStates: ['genesis'],
      latencyStates: ['synthetic:10000'],
      simSeeds: 1,
      simAccounts: 1_000,
    }
  : {
      nativeSizes: [100_000, 1_000_000, 4_000_000],
      wasmStates: ['genesis', 'synthetic:100000', 'synthetic:1000000', 'synthetic:4000000'],
      memorySizes: [100_000, 1_000_000, 4_000_000],
      e2eStates: ['genesis', 'synthetic:100000'],
      // The CLI from a fast local peer: 279,208 and 850,337 items (the durability issue's states).
      cliStates: ['100000:7', '300000:5'],
      // The product path (issue 12): 4 CLI peers serving 300,000 synthetic accounts, the CLI's
      // sync into LevelDB at 0 and LATENCY_MS, beside the wasm engine alone on the same state.
      productState: '300000:5',
      browserStates: ['genesis', 'synthetic:100000', 'synthetic:1000000'],
      // The OPFS store (issue 14's targets): beside the IndexedDB rows of the same states.
      opfsStates: ['synthetic:100000', 'synthetic:1000000'],
      // Issue 12's latency rows: 100 and 300 ms, and 1 MB/s per peer at 100 ms, engine defaults.
      // 1M items are 97 MB: 24 s at 4 × 1 MB/s, so the whole 1M state fits.
      latencyStates: ['synthetic:100000', 'synthetic:1000000'],
      simSeeds: 3,
      simAccounts: 7_000,
    };
const LATENCY_MS = 100;
// The round trips of the latency rows (the first also carries the bandwidth row) and each
// in-process peer's rate there, KB/s.
const LATENCIES_MS = [LATENCY_MS, 300];
const PEER_KBPS = 1000;
// States at least this large are held to ≥ 0.8 of their zero-latency rate at a round trip;
// smaller ones, whose sync is a few round trips, to 1.3 × the larger of the depth bound and
// their zero-latency time (issue 12).
const RATE_TARGET_ITEMS = 500_000;
/** The columns of sim-sweep's table (tests/src/bin/sim-sweep.rs prints them). */
const SIM_COLUMNS = ['bandwidth', 'rtt ms', 'peers', 'seed', 'items', 'levels', 'items/virtual s', 'virtual s', 'depth bound s', 'requests', 'top peer %', 'dup'];

const results = {
  date: new Date().toISOString(),
  quick,
  repeat,
  min_total_ms: minTotalMs,
  cargo_profile: cargoProfile,
  machine: machineInfo(),
  git: gitInfo(),
  plan: { ...plan, latencyMs: LATENCY_MS, latenciesMs: LATENCIES_MS, peerKbps: PEER_KBPS, peers: 4 },
  native: [],
  wasm: [],
  e2e: [],
  cli: [],
  product: null,
  browser: [],
  browserOpfs: [],
  sim: null,
  rows: [],
  errors: [],
};
const began = Date.now();

if (!args['no-build'] && (want('wasm') || want('e2e') || want('product') || want('browser') || want('latency'))) {
  await step('build the wasm package', 'bash', ['scripts/build-wasm.sh']);
}

if (want('native')) {
  const sizes = [...plan.nativeSizes];
  const lines = await step('native: bench-native (limit, engine, peak heap)', 'cargo', [
    'run', '-q', ...cargoProfileArgs, '--locked', '-p', 'statesync-tests', '--bin', 'bench-native', '--',
    '--sizes', sizes.join(','), '--peers', '4', '--repeat', String(repeat),
  ]);
  results.native = jsonLines(lines);
}

if (want('wasm') || want('latency')) {
  for (const state of plan.wasmStates) {
    const latency = want('latency') && plan.latencyStates.includes(state) ? ['--latency-ms', LATENCIES_MS.join(','), '--kbps', String(PEER_KBPS)] : [];
    if (!want('wasm') && !latency.length) continue;
    // The memory passes belong to the wasm piece.
    const memory = want('wasm') ? [] : ['--no-memory'];
    const lines = await step(`wasm in Node: ${state}${latency.length ? ` (and ${LATENCIES_MS.join(', ')} ms RTT, ${PEER_KBPS} KB/s per peer)` : ''}`, process.execPath, [
      path.join(BENCH_DIR, 'node-wasm.mjs'), '--state', state, '--repeat', String(repeat), '--min-total-ms', String(minTotalMs), '--peers', '4', ...latency, ...memory,
    ]);
    results.wasm.push(...jsonLines(lines));
  }
}

if (want('e2e')) {
  for (const state of plan.e2eStates) {
    const lines = await step(`Node end to end (WebSockets, LevelDB): ${state}`, process.execPath, [
      path.join(BENCH_DIR, 'node-e2e.mjs'), '--state', state, '--repeat', String(repeat), '--min-total-ms', String(minTotalMs), '--peers', '4',
    ]);
    results.e2e.push(...jsonLines(lines));
  }
}

if (want('cli')) {
  const lines = await step('the CLI from a fast local peer: peak RSS, largest batch and lag', process.execPath, [
    path.join(BENCH_DIR, 'cli-durability.mjs'), '--states', plan.cliStates.join(','),
  ]);
  results.cli = jsonLines(lines);
}

if (want('product')) {
  const lines = await step(`the product path: CLI sync from 4 CLI peers into LevelDB, 0 and ${LATENCY_MS} ms`, process.execPath, [
    path.join(BENCH_DIR, 'cli-e2e.mjs'), '--synthetic', plan.productState, '--peers', '4', '--stores', 'leveldb', '--latency', `0,${LATENCY_MS}`, '--repeat', String(repeat),
  ]);
  results.product = jsonLines(lines)[0] ?? null;
}

if (want('browser')) {
  const lines = await step('browser: headless Chromium, IndexedDB', process.execPath, [
    path.join(BENCH_DIR, 'browser.mjs'), '--states', plan.browserStates.join(','), '--repeat', String(repeat),
  ]);
  results.browser = jsonLines(lines);
  if (results.browser[0]?.chromium) results.machine.chromium = results.browser[0].chromium;
  const opfsLines = await step('browser: headless Chromium, OPFS store in a Worker', process.execPath, [
    path.join(BENCH_DIR, 'browser.mjs'), '--storage', 'opfs', '--states', plan.opfsStates.join(','), '--repeat', String(repeat), ...(quick ? ['--no-raw-idb'] : []),
  ]);
  results.browserOpfs = jsonLines(opfsLines);
}

if (want('sim')) {
  const lines = await step(`latency-bound, simulator: sim-sweep ${plan.simSeeds} ${plan.simAccounts}`, 'cargo', [
    'run', '-q', ...cargoProfileArgs, '--locked', '-p', 'statesync-tests', '--bin', 'sim-sweep', '--',
    String(plan.simSeeds), String(plan.simAccounts),
  ]);
  if (lines) {
    try {
      results.sim = parseSimSweep(lines);
    } catch (err) {
      results.errors.push({ step: 'sim-sweep output', message: err.message, output: lines.join('\n') });
      log(`sim-sweep: ${err.message}`);
    }
  }
}

results.elapsed_s = (Date.now() - began) / 1000;
results.machine.load_average_end = os.loadavg();
results.rows = buildRows(results);
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write(renderTable(results.rows, markdown));
log(`wrote ${path.relative(process.cwd(), out) || out} in ${Math.round(results.elapsed_s)} s${quick ? ' (quick: small states, figures not comparable with a full run)' : ''}`);
if (results.errors.length) {
  log(`${results.errors.length} step(s) failed: ${results.errors.map((e) => e.step).join('; ')}`);
  process.exit(1);
}

// ── steps ──────────────────────────────────────────────────────────────────────────────

/** Runs a command from the repo root, stderr passed through; resolves with its stdout lines, or null on failure. */
function step(title, command, argv) {
  log(`── ${title}`);
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(command, argv, { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.on('error', (err) => {
      results.errors.push({ step: title, message: err.message });
      resolve(null);
    });
    child.on('close', (code, signal) => {
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      if (code !== 0) {
        const message = `exited with ${signal ?? code}`;
        log(`   ${title}: FAILED (${message}, ${seconds} s)`);
        results.errors.push({ step: title, message, stdout: stdout.slice(-4000) });
        resolve(null);
        return;
      }
      log(`   done in ${seconds} s`);
      resolve(stdout.split('\n').filter((l) => l.trim() !== ''));
    });
  });
}

function jsonLines(lines) {
  if (!lines) return [];
  const out = [];
  for (const line of lines) {
    if (!line.trimStart().startsWith('{')) continue;
    out.push(JSON.parse(line));
  }
  return out;
}

/**
 * sim-sweep prints Markdown for people: a line naming the state, then one row per bandwidth,
 * round trip, number of peers and seed under a header of SIM_COLUMNS. A header or a row of
 * another shape is an error (the binary changed; update SIM_COLUMNS and this parser with it),
 * not rows quietly skipped.
 */
function parseSimSweep(lines) {
  const cellsOf = (line) => line.split('|').slice(1, -1).map((c) => c.trim());
  const at = lines.findIndex((l) => /^\|\s*bandwidth\s*\|/.test(l));
  if (at < 0) throw new Error('no table header in the sim-sweep output');
  const header = cellsOf(lines[at]);
  if (header.join('|') !== SIM_COLUMNS.join('|')) throw new Error(`sim-sweep columns changed: "${header.join(' | ')}", expected "${SIM_COLUMNS.join(' | ')}"`);
  if (!/^\|(-+\|)+$/.test(lines[at + 1] ?? '')) throw new Error(`no rule under the sim-sweep header: "${lines[at + 1]}"`);
  const runs = [];
  for (const line of lines.slice(at + 2)) {
    const cells = cellsOf(line);
    if (cells.length !== SIM_COLUMNS.length || !cells.slice(1).every((c) => /^\d+(\.\d+)?$/.test(c))) throw new Error(`unexpected sim-sweep row "${line}"`);
    const numbers = cells.slice(1).map(Number);
    const [rtt, peers, seed, items, levels, rate, seconds, depthBound, requests, top, dup] = numbers;
    runs.push({ bandwidth: cells[0], rtt_ms: rtt, peers, seed, items, levels, items_per_virtual_sec: rate, virtual_s: seconds, depth_bound_s: depthBound, requests, top_peer_share: top / 100, duplicates: dup });
  }
  if (!runs.length) throw new Error('no rows in the sim-sweep output');
  const groups = new Map();
  for (const r of runs) {
    const key = `${r.bandwidth}|${r.rtt_ms}|${r.peers}`;
    if (!groups.has(key)) groups.set(key, { bandwidth: r.bandwidth, rtt_ms: r.rtt_ms, peers: r.peers, runs: [] });
    groups.get(key).runs.push(r);
  }
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const summary = [...groups.values()].map((g) => ({
    bandwidth: g.bandwidth,
    rtt_ms: g.rtt_ms,
    peers: g.peers,
    seeds: g.runs.length,
    mean_items: mean(g.runs.map((r) => r.items)),
    mean_items_per_virtual_sec: mean(g.runs.map((r) => r.items_per_virtual_sec)),
    mean_virtual_s: mean(g.runs.map((r) => r.virtual_s)),
    mean_depth_bound_s: mean(g.runs.map((r) => r.depth_bound_s)),
  }));
  return { header: lines.slice(0, at + 1), runs, summary };
}

// ── the table ───────────────────────────────────────────────────────────────────────────

function buildRows(r) {
  const rows = [];
  const row = (measurement, state, figure, unit, ratio = null, target = null, extra = {}) => {
    let met = null;
    if (target && ratio !== null && Number.isFinite(ratio)) met = target.op === '>=' ? ratio >= target.value : ratio <= target.value;
    rows.push({ measurement, state, figure, unit, ratio, target: target ? `${target.op === '>=' ? '≥' : '≤'} ${target.value}` : null, met, ...extra });
  };
  const native = new Map(r.native.map((n) => [n.state, n]));
  const wasm = new Map(r.wasm.map((w) => [w.state, w]));

  // The limit and the native engine.
  for (const n of r.native) {
    row('limit: keccak + decode, native', n.state, n.limit_items_per_sec, 'items/s');
    row('engine, native, memory store, 0 ms', n.state, n.engine_items_per_sec, 'items/s', n.engine_to_limit, { op: '>=', value: 0.7 }, { ratio_of: 'engine / native limit' });
    // The same two passes on the thread's CPU clock: on a shared machine, wall time also counts
    // the time the thread waited for a core.
    if (n.engine_to_limit_cpu !== undefined) {
      row('engine, native, CPU time (not wall)', n.state, n.engine_cpu_items_per_sec, 'items/CPU s', n.engine_to_limit_cpu, null, { ratio_of: 'engine / native limit, both on the CPU clock' });
    }
  }
  // WebAssembly in Node.
  for (const w of r.wasm) {
    const n = native.get(w.state);
    row('limit: keccak + decode, wasm in Node', w.state, w.limit_items_per_sec, 'items/s', n ? w.limit_items_per_sec / n.limit_items_per_sec : null, null, { ratio_of: 'wasm limit / native limit' });
    row('engine, wasm in Node, memory store, 0 ms', w.state, w.engine_items_per_sec, 'items/s', n ? w.engine_items_per_sec / n.engine_items_per_sec : null, { op: '>=', value: 0.5 }, { ratio_of: 'wasm engine / native engine' });
  }
  // Node end to end.
  for (const e of r.e2e) {
    row('Node e2e: WebSockets → LevelDB', e.state, e.items_per_sec, 'items/s');
    row('Node e2e: WebSockets → LevelDB', e.state, e.mb_per_sec, 'MB/s');
    if (e.largest_batch_items !== undefined) {
      row('Node e2e: largest batch (ops)', e.state, e.largest_batch_items, 'ops');
      row('Node e2e: largest batch (bytes)', e.state, e.largest_batch_bytes / 1e6, 'MB');
      row('Node e2e: largest durability lag', e.state, e.peak_unwritten_items, 'items');
    }
  }
  // The CLI as users run it: memory and durability.
  for (const c of r.cli) {
    row('CLI sync, 1 fast peer: peak RSS', c.state, c.max_rss_bytes / 2 ** 20, 'MiB');
    row('CLI sync, 1 fast peer', c.state, c.items_per_sec, 'items/s');
    row('CLI sync: largest batch (ops)', c.state, c.largest_batch_items, 'ops');
    row('CLI sync: largest batch (bytes)', c.state, c.largest_batch_bytes / 1e6, 'MB');
    row('CLI sync: largest durability lag', c.state, c.peak_unwritten_items, 'items');
  }
  if (r.cli.length >= 2) {
    const [a, b] = [r.cli[0], r.cli[r.cli.length - 1]];
    const growth = b.max_rss_bytes / a.max_rss_bytes;
    row(`CLI peak RSS growth: ${a.items} → ${b.items} items`, `${a.state} → ${b.state}`, growth, '×', growth, { op: '<=', value: 1.3 }, { ratio_of: 'peak RSS / peak RSS' });
  }
  // The product path: the CLI end to end against the wasm engine alone, and at 100 ms.
  if (r.product) {
    const p = r.product;
    const at = (latency) => p.runs.find((x) => x.store === 'leveldb' && x.latency_ms === latency);
    const zero = at(0);
    if (p.engine) row('product: wasm engine alone, memory store, 0 ms', p.state, p.engine.items_per_sec, 'items/s');
    if (zero) {
      const ratio = p.engine ? zero.items_per_sec / p.engine.items_per_sec : null;
      row('product: CLI sync → LevelDB, 4 CLI peers, 0 ms', p.state, zero.items_per_sec, 'items/s', ratio, { op: '>=', value: 0.5 }, { ratio_of: 'CLI / wasm engine alone, same state' });
    }
    for (const slow of p.runs.filter((x) => x.store === 'leveldb' && x.latency_ms > 0)) {
      row(`product: CLI sync → LevelDB, 4 CLI peers, ${slow.latency_ms} ms`, p.state, slow.items_per_sec, 'items/s', zero ? zero.ms / slow.ms : null, { op: '>=', value: 0.8 }, { ratio_of: `CLI at ${slow.latency_ms} ms / CLI at 0 ms, rate` });
    }
  }
  // The browser.
  for (const b of r.browser) {
    row('browser: raw IndexedDB puts, same batches', b.state, b.raw_items_per_sec, 'items/s');
    row('browser: engine → IndexedDB, 0 ms', b.state, b.sync_items_per_sec, 'items/s', b.raw_to_sync, { op: '>=', value: 0.8 }, { ratio_of: 'raw time / sync time' });
    if (b.largest_batch_items !== undefined) {
      row('browser: largest batch (ops)', b.state, b.largest_batch_items, 'ops');
      row('browser: largest batch (bytes)', b.state, b.largest_batch_bytes / 1e6, 'MB');
      row('browser: largest durability lag', b.state, b.peak_unwritten_items, 'items');
    }
  }
  // The browser, OPFS (web/bench/opfs-worker.mjs): against raw OPFS appends of the same batches,
  // and against the raw IndexedDB put rate of the same state measured in this run (the page's
  // row above; the Worker's own raw IndexedDB pass where the page has none).
  for (const o of r.browserOpfs ?? []) {
    const idb = r.browser.find((b) => b.state === o.state)?.raw_items_per_sec ?? o.raw_idb_items_per_sec ?? null;
    row('browser: raw OPFS appends, same batches (Worker)', o.state, o.raw_opfs_items_per_sec, 'items/s');
    if (o.raw_idb_items_per_sec !== null) row('browser: raw IndexedDB puts, same batches (Worker)', o.state, o.raw_idb_items_per_sec, 'items/s');
    row('browser: engine alone (memory store, Worker), 0 ms', o.state, o.engine_memory_items_per_sec, 'items/s');
    row('browser: engine → OPFS (Worker), 0 ms', o.state, o.sync_items_per_sec, 'items/s', o.sync_to_raw_opfs, { op: '>=', value: 0.3 }, { ratio_of: 'raw OPFS time / sync time' });
    row('browser: engine → OPFS vs raw IndexedDB puts', o.state, o.sync_items_per_sec, 'items/s', idb ? o.sync_items_per_sec / idb : null, { op: '>=', value: 5 }, { ratio_of: 'OPFS sync rate / raw IndexedDB put rate' });
    row('browser: main thread, longest task during the OPFS sync', o.state, o.main_thread_longest_task_ms, 'ms', o.main_thread_longest_task_ms, { op: '<=', value: 50 }, { ratio_of: 'ms' });
  }
  // Latency- and bandwidth-bound, real time, engine defaults (issue 12).
  for (const w of r.wasm.filter((w) => w.latency)) {
    for (const l of w.latency) {
      const what = `${l.latency_ms} ms RTT${l.kbps ? `, ${l.kbps} KB/s per peer` : ''}, ${l.in_flight ? `${l.in_flight} in flight/peer` : 'defaults'}, wasm in Node`;
      if (l.kbps) {
        row(`${what} (link bound ${(l.link_bound_ms / 1000).toFixed(2)} s)`, w.state, l.items_per_sec, 'items/s', l.link_bound_to_ms, { op: '>=', value: 0.9 }, { ratio_of: 'link bound (state bytes / (4 peers × rate)) / sync time' });
      } else if (w.items >= RATE_TARGET_ITEMS) {
        row(what, w.state, l.items_per_sec, 'items/s', l.to_zero_latency, { op: '>=', value: 0.8 }, { ratio_of: 'vs the 0 ms wasm engine, same state' });
      } else {
        row(what, w.state, l.items_per_sec, 'items/s', l.to_zero_latency, null, { ratio_of: 'vs the 0 ms wasm engine, same state' });
        const bounds = `depth ${w.levels} × ${l.latency_ms} ms = ${(l.depth_bound_ms / 1000).toFixed(2)} s, 0 ms ${(l.zero_latency_ms / 1000).toFixed(2)} s`;
        row(`${what}: sync time (bounds: ${bounds})`, w.state, l.ms / 1000, 's', l.to_bound, { op: '<=', value: 1.3 }, { ratio_of: 'sync time / the larger bound' });
      }
    }
  }
  // Round trip × peers × bandwidth, simulator (virtual time: the network's bound, CPU free).
  for (const s of r.sim?.summary ?? []) {
    const link = s.bandwidth === 'unlimited' ? '' : `, ${s.bandwidth} per peer`;
    row(`${s.rtt_ms} ms RTT, ${s.peers} peer(s)${link}, defaults, simulator (${s.mean_virtual_s.toFixed(2)} virtual s)`, `sim ${plan.simAccounts} accounts`, s.mean_items_per_virtual_sec, 'items/virtual s', s.mean_virtual_s / s.mean_depth_bound_s, null, {
      ratio_of: 'virtual s / depth bound (levels × RTT)',
    });
  }
  // Memory.
  const heap = plan.memorySizes.map((s) => native.get(`synthetic-${s}`)).filter(Boolean);
  for (const n of heap) row('peak memory: native engine heap', n.state, n.peak_engine_heap_bytes / 2 ** 20, 'MiB');
  if (heap.length >= 2) {
    const [a, b] = heap.slice(-2);
    row(`memory growth, native: ${a.state} → ${b.state}`, `${a.items} → ${b.items} items`, b.peak_engine_heap_bytes / a.peak_engine_heap_bytes, '×', b.peak_engine_heap_bytes / a.peak_engine_heap_bytes, { op: '<=', value: 1.5 }, { ratio_of: 'peak / peak' });
  }
  const wmem = plan.memorySizes.map((s) => wasm.get(`synthetic-${s}`)).filter((w) => w?.wasm_memory_peak_bytes);
  for (const w of wmem) row('peak memory: wasm engine linear memory', w.state, w.wasm_memory_peak_bytes / 2 ** 20, 'MiB');
  if (wmem.length >= 2) {
    const [a, b] = wmem.slice(-2);
    row(`memory growth, wasm: ${a.state} → ${b.state}`, `${a.items} → ${b.items} items`, b.wasm_memory_peak_bytes / a.wasm_memory_peak_bytes, '×', b.wasm_memory_peak_bytes / a.wasm_memory_peak_bytes, { op: '<=', value: 1.5 }, { ratio_of: 'peak / peak' });
  }
  return rows;
}

function formatFigure(value, unit) {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  if (unit === 'items/s' || unit === 'items/virtual s' || unit === 'items/CPU s') return Math.round(value).toLocaleString('en-US');
  if (unit === '×' || unit === 's') return value.toFixed(2);
  if (unit === 'ops' || unit === 'items') return Math.round(value).toLocaleString('en-US');
  return value.toFixed(1);
}

function renderTable(rows, asMarkdown) {
  const header = ['measurement', 'state', 'figure', 'unit', 'ratio', 'target', 'met?'];
  const body = rows.map((r) => [
    r.measurement,
    r.state,
    formatFigure(r.figure, r.unit),
    r.unit,
    r.ratio === null || r.ratio === undefined ? '' : Number.isFinite(r.ratio) ? r.ratio.toFixed(3) : '—',
    r.target ?? '',
    r.met === null ? '' : r.met ? 'yes' : 'no',
  ]);
  if (asMarkdown) {
    const line = (cells) => `| ${cells.join(' | ')} |`;
    return `${[line(header), line(header.map((_, i) => (i === 2 || i === 4 ? '---:' : '---'))), ...body.map(line)].join('\n')}\n`;
  }
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const right = new Set([2, 4]);
  const fmt = (cells) => cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return `${[fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(fmt)].join('\n')}\n`;
}
