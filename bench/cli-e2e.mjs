// The product path end to end, as a user runs it: `statesync serve --synthetic A:S` × --peers
// (child processes) and a sync over loopback WebSockets in another child process; prints one
// JSON line on stdout, progress and a breakdown on stderr.
//
//   node bench/cli-e2e.mjs [--synthetic 300000:5] [--peers 4] [--stores leveldb,memory,discard]
//                          [--latency 0,100] [--repeat 1] [--cpu-prof] [--no-engine]
//
// - leveldb: the CLI itself, `statesync sync --peer … --root … --db DIR --json` into a fresh
//   directory;
// - memory / discard: the same sync (the package's syncState, which the CLI runs) into a JS
//   store that keeps everything in a Map, or one that drops every write (bench/lib.mjs). The
//   differences separate LevelDB's cost (leveldb − memory) from the rest, and discard − the
//   engine alone is what the transport and the JS store handoff add;
// - engine: the WebAssembly engine alone on the same state, in this process, memory store, from
//   in-process peers with their serving time excluded (as bench/node-wasm.mjs);
// - --latency: each latency is a set of peers started with `serve --latency MS`;
// - --cpu-prof: the syncing process runs under `node --cpu-prof`; each profile is summarised
//   by bench/cpu-profile.mjs (shares by category) into the JSON and on stderr.
// A run's time is the sync's own (syncState's elapsedMs: from opening the store to the root
// complete), not the process's start-up; best of --repeat. CPU seconds of the syncing process
// (its own process.cpuUsage(): every thread, LevelDB's included) and of the peers (from
// /proc, Linux only) are reported beside it. Prints figures; asserts nothing.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { REPO, loadWasm, syncInProcess, bestOf, parseArgs, log, CLI, serveSynthetic, runCommand } from './lib.mjs';
import { summarise, formatSummary } from './cpu-profile.mjs';

const args = parseArgs(process.argv.slice(2));
const synthetic = String(args.synthetic ?? '300000:5');
const [accounts, seed] = synthetic.split(':').map(Number);
const peerCount = Number(args.peers ?? 4);
const stores = String(args.stores ?? 'leveldb,memory,discard').split(',');
const latencies = String(args.latency ?? '0').split(',').map(Number);
const repeat = Number(args.repeat ?? 1);
const cpuProf = Boolean(args['cpu-prof']);
for (const s of stores) if (!['leveldb', 'memory', 'discard'].includes(s)) throw new Error(`unknown store "${s}" (leveldb, memory, discard)`);

const result = { state: `synthetic ${synthetic}`, accounts, seed, peers: peerCount, repeat, runs: [], engine: null, ratios: {} };

for (const latencyMs of latencies) {
  const peers = await Promise.all(Array.from({ length: peerCount }, () => serveSynthetic(synthetic, latencyMs)));
  try {
    for (const store of stores) {
      const runs = [];
      for (let i = 0; i < Math.max(1, repeat); i++) runs.push(await syncOnce({ store, peers, latencyMs }));
      const best = runs.reduce((a, b) => (b.ms < a.ms ? b : a));
      const entry = { store, latency_ms: latencyMs, ...best, runs_ms: runs.map((r) => r.ms) };
      result.runs.push(entry);
      log(`${result.state}, ${store}, ${latencyMs} ms: ${(best.ms / 1000).toFixed(2)} s, ${Math.round(best.items_per_sec)} items/s; sync process ${best.sync_cpu_s.toFixed(2)} CPU-s, peers ${best.peers_cpu_s?.toFixed(2) ?? '?'} CPU-s`);
      if (best.profile) log(`profile of the syncing process (${store}, ${latencyMs} ms):\n${formatSummary(best.profile)}`);
    }
  } finally {
    for (const p of peers) p.child.kill('SIGINT');
  }
}

if (!args['no-engine']) {
  // The engine alone on the same state: serving and syncing instances apart, as node-wasm.mjs.
  const served = await loadWasm();
  const source = served.wasm.StateSource.synthetic(accounts, seed);
  const items = source.nodeCount + source.codeCount;
  const { wasm } = await loadWasm();
  const best = await bestOf(Math.max(1, repeat), () => syncInProcess({ wasm, source, peers: peerCount, options: { memory: true } }), { minTotalMs: 0 });
  result.engine = { ms: best.ms, items, processed: best.progress.processed, items_per_sec: best.progress.processed / (best.ms / 1000), serving_ms_excluded: best.servingMs };
  log(`${result.state}, the wasm engine alone (memory store, in-process peers): ${(best.ms / 1000).toFixed(2)} s, ${Math.round(result.engine.items_per_sec)} items/s`);
}

const find = (store, latency) => result.runs.find((r) => r.store === store && r.latency_ms === latency);
const zero = find('leveldb', 0);
if (zero && result.engine) result.ratios.cli_to_engine = { value: zero.items_per_sec / result.engine.items_per_sec, target: 0.5, of: 'CLI into LevelDB at 0 ms / wasm engine alone, items/s' };
const slow = latencies.filter((l) => l > 0).map((l) => find('leveldb', l)).find(Boolean);
if (zero && slow) result.ratios.latency_to_zero = { value: zero.ms / slow.ms, target: 0.8, latency_ms: slow.latency_ms, of: `CLI into LevelDB, ${slow.latency_ms} ms / 0 ms, rate` };
for (const latency of latencies) {
  const at = (s) => find(s, latency)?.ms ?? null;
  const [lvl, mem, dis] = [at('leveldb'), at('memory'), at('discard')];
  const breakdown = { latency_ms: latency, total_ms: lvl ?? mem ?? dis };
  if (lvl !== null && mem !== null) breakdown.leveldb_ms = lvl - mem;
  if (mem !== null && dis !== null) breakdown.keeping_in_memory_ms = mem - dis;
  if (dis !== null && result.engine && latency === 0) {
    breakdown.transport_and_handoff_ms = dis - result.engine.ms;
    breakdown.engine_ms = result.engine.ms;
  }
  (result.breakdown ??= []).push(breakdown);
}
for (const [name, r] of Object.entries(result.ratios)) log(`${name}: ${r.value.toFixed(3)} (target ≥ ${r.target}; ${r.of})`);
process.stdout.write(`${JSON.stringify(result)}\n`);

/** One sync into a fresh store, in a child process. */
async function syncOnce({ store, peers, latencyMs }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'statesync-bench-cli-e2e-'));
  const peerUrls = peers.map((p) => p.url);
  const root = peers[0].root;
  // The child prints its own CPU time and the sync's summary (elapsedMs) as one JSON line.
  const wrapper = store === 'leveldb'
    ? `
      const { main } = await import(${JSON.stringify(CLI)});
      const code = await main(process.argv.slice(1));
      process.stderr.write('cpu ' + JSON.stringify(process.cpuUsage()) + '\\n');
      process.exit(code);`
    : `
      const { syncState } = await import(${JSON.stringify(path.join(REPO, 'web', 'lib', 'node.mjs'))});
      const lib = await import(${JSON.stringify(path.join(REPO, 'bench', 'lib.mjs'))});
      const [root, peers] = [process.argv[1], process.argv[2].split(',')];
      const { progress, ...summary } = await syncState({ root, peers, store: lib.${store}Store(), progressIntervalMs: 500 });
      process.stdout.write(JSON.stringify({ type: 'summary', ...summary }) + '\\n');
      process.stderr.write('cpu ' + JSON.stringify(process.cpuUsage()) + '\\n');
      process.exit(0);`;
  const argv = store === 'leveldb' ? ['sync', ...peerUrls.flatMap((u) => ['--peer', u]), '--root', root, '--db', path.join(dir, 'db'), '--json'] : [root, peerUrls.join(',')];
  const profDir = path.join(dir, 'prof');
  const nodeFlags = cpuProf ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [];
  const peersBefore = peers.map((p) => cpuSeconds(p.child.pid));
  try {
    const started = performance.now();
    const { code, stdout, stderr } = await runCommand(process.execPath, [...nodeFlags, '--input-type=module', '-e', wrapper, '--', ...argv]);
    const wallMs = performance.now() - started;
    if (code !== 0) throw new Error(`sync (${store}) exited ${code}: ${stderr.slice(-2000)}`);
    const peersAfter = peers.map((p) => cpuSeconds(p.child.pid));
    const summary = stdout.trim().split('\n').map((l) => JSON.parse(l)).find((e) => e.type === 'summary');
    const cpu = JSON.parse(/cpu (\{.*\})/.exec(stderr)[1]);
    const peersCpu = peersBefore.every((v) => v !== null) ? peersAfter.reduce((a, v, i) => a + v - peersBefore[i], 0) : null;
    let profile = null;
    if (cpuProf) {
      const file = fs.readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
      profile = summarise(JSON.parse(fs.readFileSync(path.join(profDir, file), 'utf8')), { top: 12 });
    }
    return {
      ms: summary.elapsedMs,
      process_wall_ms: wallMs,
      items: summary.processed,
      bytes: summary.committedBytes,
      items_per_sec: summary.processed / (summary.elapsedMs / 1000),
      sync_cpu_s: (cpu.user + cpu.system) / 1e6,
      peers_cpu_s: peersCpu,
      profile,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A process's user + system CPU seconds so far, from /proc (null elsewhere). */
function cpuSeconds(pid) {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    // utime and stime are fields 14 and 15 of stat(5); here counted from field 3 (state).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}

