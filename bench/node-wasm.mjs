// The WebAssembly engine in Node.js on one state; prints one JSON line on stdout.
//
//   node bench/node-wasm.mjs --state synthetic:100000 [--repeat 3] [--min-total-ms 1000] [--peers 4]
//        [--latency-ms 100,300 [--kbps 1000] [--in-flight N,...] [--max-items N]] [--no-memory]
//
// - limit: `StateSource.benchLimit()`, keccak-256 and node decoding of every item timed inside
//   wasm (best of --repeat, and of at least a second of runs for small states);
// - engine: a StateSync with the memory store, synced from --peers in-process peers answering
//   on the next event-loop turn, serving time subtracted (best of --repeat, and of at least a
//   second of runs);
// - memory: a StateSync in a fresh wasm instance (its own linear memory), over a store that
//   discards writes and finds nothing (as bench-native): the instance's memory size at the end
//   is its peak, since linear memory never shrinks; the largest of --repeat such passes;
// - latency (with --latency-ms): one sync per round trip listed, each answer arriving that many
//   ms after its request, wall time as is, the engine's defaults (it sizes its requests from
//   each peer's bandwidth-delay product). Beside each: the ratio to zero latency, and the two
//   bounds no sync can beat: the depth bound (the state's fetch levels × the round trip) and
//   the zero-latency time;
// - bandwidth (with --kbps, at the first --latency-ms): each peer also sends its answers no
//   faster than that many KB/s, one after another; beside it the link bound (the state's bytes
//   / (peers × rate)) and the ratio to it;
// - --in-flight N,... (optional) repeats the latency rows with `maxInFlight` set to each N (the
//   default is the engine's cap); --max-items sets the items per request of these runs.
//
// The state being served lives in its own wasm instance, apart from the engine's.

import { loadWasm, buildSource, parseStateSpec, syncInProcess, bestOf, discardStore, parseArgs, log } from './lib.mjs';

const args = parseArgs(process.argv.slice(2));
const spec = args.state ?? 'genesis';
const repeat = Number(args.repeat ?? 3);
const peers = Number(args.peers ?? 4);
const minTotalMs = Number(args['min-total-ms'] ?? 1000);
const numbers = (arg) =>
  String(arg ?? '')
    .split(',')
    .map(Number)
    .filter((n) => n > 0);
const latencies = numbers(args['latency-ms']);
const kbps = Number(args.kbps ?? 0);
const maxItems = args['max-items'] ? Number(args['max-items']) : undefined;
// undefined: the engine's default.
const inFlight = args['in-flight'] ? numbers(args['in-flight']) : [undefined];
const state = parseStateSpec(spec);

const served = await loadWasm();
let t0 = performance.now();
const source = buildSource(served.wasm, spec);
const items = source.nodeCount + source.codeCount;
log(`${state.name}: ${items} items (${source.nodeCount} nodes, ${source.codeCount} codes), ${(source.bytes / 1e6).toFixed(1)} MB, built in wasm in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

const result = {
  state: state.name,
  items,
  nodes: source.nodeCount,
  codes: source.codeCount,
  bytes: source.bytes,
  peers,
  repeat,
};

// The limit.
const limit = await bestOf(repeat, () => ({ ms: source.benchLimit() }), { minTotalMs });
const limitMs = limit.ms;
result.limit_ms = limitMs;
result.limit_runs = limit.runs;
result.limit_items_per_sec = items / (limitMs / 1000);
log(`${state.name}: wasm limit ${Math.round(result.limit_items_per_sec)} items/s`);

// The engine, memory store, zero latency.
const engineInstance = await loadWasm();
const engine = await bestOf(repeat, () => syncInProcess({ wasm: engineInstance.wasm, source, peers, options: { memory: true } }), { minTotalMs });
// A few items of a generated state can be shared or unreachable: `processed` is checked loosely,
// and rates use the source's item count, as bench-native does.
const checkProcessed = (p) => {
  if (p.processed < items * 0.99) throw new Error(`the sync processed ${p.processed} of ${items} items`);
};
checkProcessed(engine.progress);
result.processed = engine.progress.processed;
result.engine_ms = engine.ms;
result.engine_runs = engine.runs;
result.engine_serving_ms = engine.servingMs;
result.engine_items_per_sec = items / (engine.ms / 1000);
result.engine_to_limit = limitMs / engine.ms;
log(`${state.name}: wasm engine ${Math.round(result.engine_items_per_sec)} items/s (serving ${Math.round(engine.servingMs)} ms of ${Math.round(engine.wallMs)} ms excluded)`);

// Peak memory of the engine alone: a fresh instance per pass, a store that keeps nothing. The
// frontier the engine holds depends on how answers and store results interleave, so the
// figure is the largest of --repeat passes.
if (!args['no-memory']) {
  const passes = [];
  for (let i = 0; i < Math.max(1, repeat); i++) {
    const fresh = await loadWasm();
    const initial = fresh.memory.buffer.byteLength;
    // Progress events every 50 ms report the scheduler's live entries (these passes are not timed).
    let liveEntries = 0;
    const onEvent = (e) => {
      if (e.type === 'progress') liveEntries = Math.max(liveEntries, e.liveEntries);
    };
    const pass = await syncInProcess({ wasm: fresh.wasm, source, peers, options: { store: discardStore(), progressIntervalMs: 50, onEvent } });
    passes.push({ initial, peak: fresh.memory.buffer.byteLength, liveEntries, ms: pass.ms });
  }
  const worst = passes.reduce((a, b) => (b.peak > a.peak ? b : a));
  result.wasm_memory_initial_bytes = worst.initial;
  result.wasm_memory_peak_bytes = worst.peak;
  result.wasm_memory_engine_bytes = worst.peak - worst.initial;
  result.wasm_memory_peaks_bytes = passes.map((p) => p.peak);
  result.max_live_entries = Math.max(...passes.map((p) => p.liveEntries));
  result.max_live_entries_per_pass = passes.map((p) => p.liveEntries);
  log(`${state.name}: engine wasm memory ${passes.map((p) => (p.peak / 2 ** 20).toFixed(1)).join(', ')} MiB over ${passes.length} pass(es) (initial ${(worst.initial / 2 ** 20).toFixed(1)} MiB), at most ${result.max_live_entries} live scheduler entries`);
}

// Latency- and bandwidth-bound: the same sync through slow links, engine defaults unless
// --in-flight overrides them.
if (latencies.length) {
  t0 = performance.now();
  const levels = source.fetchLevels();
  result.levels = levels;
  log(`${state.name}: ${levels} fetch levels (${Math.round(performance.now() - t0)} ms to count)`);
  result.latency_max_items = maxItems ?? null;
  result.latency = [];
  const runs = latencies.map((latencyMs) => ({ latencyMs, kbps: 0 }));
  if (kbps > 0) runs.push({ latencyMs: latencies[0], kbps });
  for (const { latencyMs, kbps } of runs) {
    for (const n of inFlight) {
      const options = { memory: true, ...(n ? { maxInFlight: n } : {}), ...(maxItems ? { maxItemsPerRequest: maxItems } : {}) };
      const r = await syncInProcess({ wasm: engineInstance.wasm, source, peers, latencyMs, kbps, options });
      checkProcessed(r.progress);
      const rate = items / (r.ms / 1000);
      const depthBoundMs = levels * latencyMs;
      // What the links can carry: every byte of the state over the peers' links side by side.
      const linkBoundMs = kbps > 0 ? source.bytes / (peers * kbps) : null;
      const row = {
        latency_ms: latencyMs,
        kbps: kbps || null,
        in_flight: n ?? null,
        ms: r.ms,
        items_per_sec: rate,
        to_zero_latency: rate / result.engine_items_per_sec,
        depth_bound_ms: depthBoundMs,
        zero_latency_ms: result.engine_ms,
        // Over the larger of the two bounds: 1 is as fast as a sync can be.
        to_bound: r.ms / Math.max(depthBoundMs, result.engine_ms),
        link_bound_ms: linkBoundMs,
        link_bound_to_ms: linkBoundMs ? linkBoundMs / r.ms : null,
      };
      result.latency.push(row);
      const what = `${latencyMs} ms RTT${kbps ? `, ${kbps} KB/s per peer` : ''}${n ? `, ${n} in flight per peer` : ''}`;
      const bounds = kbps
        ? `link bound ${(linkBoundMs / 1000).toFixed(2)} s, ${row.link_bound_to_ms.toFixed(3)} of it`
        : `depth bound ${levels} × ${latencyMs} ms = ${(depthBoundMs / 1000).toFixed(2)} s, zero latency ${(result.engine_ms / 1000).toFixed(2)} s, ${row.to_bound.toFixed(2)}× the larger`;
      log(`${state.name}: ${what}: ${Math.round(rate)} items/s in ${(r.ms / 1000).toFixed(2)} s (${row.to_zero_latency.toFixed(3)} of zero latency; ${bounds})`);
    }
  }
}

result.rss_max_bytes = process.resourceUsage().maxRSS * 1024;
process.stdout.write(`${JSON.stringify(result)}\n`);
