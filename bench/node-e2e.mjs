// The Node.js tool's path end to end on one state; prints one JSON line on stdout.
//
//   node bench/node-e2e.mjs --state genesis|synthetic:N [--repeat 3] [--min-total-ms 1000] [--peers 4]
//
// The same modules `statesync sync` uses: peers over loopback WebSockets (web/cli/peer-server.mjs
// answering from a wasm StateSource, web/lib/transport.mjs with `ws`), the WebAssembly StateSync
// with its defaults (1 MiB batches, up to 16 requests in flight per peer), and the LevelDB store
// (web/lib/leveldb-store.mjs) in a fresh temporary directory per run. The peers run in a worker
// thread, as they would in another process: the timed thread does only the syncing side. Time
// runs from start() until the root is complete (every batch written); best of --repeat, and of
// at least a second of runs for small states.

import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WebSocket } from 'ws';

import { loadWasm, buildSource, parseStateSpec, parseArgs, bestOf, log } from './lib.mjs';
import { startPeerServer } from '../web/cli/peer-server.mjs';
import { connectPeers } from '../web/lib/transport.mjs';
import { openLevelStore } from '../web/lib/leveldb-store.mjs';

if (!isMainThread) {
  // The peers: one state, `peers` WebSocket servers on loopback.
  const { wasm } = await loadWasm();
  const source = buildSource(wasm, workerData.spec);
  const servers = [];
  for (let i = 0; i < workerData.peers; i++) servers.push(await startPeerServer({ source, port: 0 }));
  parentPort.postMessage({ urls: servers.map((s) => s.url), root: source.root, items: source.nodeCount + source.codeCount, bytes: source.bytes });
  parentPort.on('message', async (m) => {
    if (m === 'close') {
      await Promise.all(servers.map((s) => s.close()));
      parentPort.postMessage('closed');
    }
  });
} else {
  const args = parseArgs(process.argv.slice(2));
  const spec = args.state ?? 'genesis';
  const repeat = Number(args.repeat ?? 3);
  const peers = Number(args.peers ?? 4);
  const minTotalMs = Number(args['min-total-ms'] ?? 1000);
  const state = parseStateSpec(spec);

  const worker = new Worker(new URL(import.meta.url), { workerData: { spec, peers } });
  const info = await new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  const { wasm } = await loadWasm();
  log(`${state.name}: ${info.items} items, ${(info.bytes / 1e6).toFixed(1)} MB served by ${peers} WebSocket peers in a worker`);

  const runs = [];
  const best = await bestOf(repeat, async () => {
    const r = await once();
    runs.push(r);
    return r;
  }, { minTotalMs });
  worker.postMessage('close');
  await new Promise((resolve) => worker.once('message', resolve));
  await worker.terminate();

  const result = {
    state: state.name,
    items: info.items,
    bytes: info.bytes,
    peers,
    repeat,
    ms: best.ms,
    processed: best.processed,
    committed_bytes: best.committedBytes,
    batches: best.batches,
    largest_batch_items: best.largestBatchItems,
    largest_batch_bytes: best.largestBatchBytes,
    peak_unwritten_items: best.peakUnwrittenItems,
    items_per_sec: best.processed / (best.ms / 1000),
    mb_per_sec: best.committedBytes / 1e6 / (best.ms / 1000),
    runs_ms: runs.map((r) => r.ms),
  };
  log(`${state.name}: ${Math.round(result.items_per_sec)} items/s, ${result.mb_per_sec.toFixed(1)} MB/s over WebSockets into LevelDB (${best.batches} batches)`);
  process.stdout.write(`${JSON.stringify(result)}\n`);

  async function once() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'statesync-bench-e2e-'));
    const store = await openLevelStore(dir);
    let transport;
    try {
      const sync = new wasm.StateSync({ root: info.root, store, progressIntervalMs: 3_600_000 });
      const started = performance.now();
      const done = sync.start();
      transport = connectPeers({ urls: info.urls, sync, WebSocket, reconnect: false });
      const progress = await done;
      const ms = performance.now() - started;
      // Not freed here: the sockets' close events still reach it (removePeer); the GC frees it.
      if (progress?.phase !== 'done') throw new Error(`sync ended in phase ${progress?.phase}`);
      return {
        ms,
        processed: progress.processed,
        committedBytes: progress.committedBytes,
        batches: store.writes,
        largestBatchItems: progress.largestBatchItems,
        largestBatchBytes: progress.largestBatchBytes,
        peakUnwrittenItems: progress.peakUnwrittenItems,
      };
    } finally {
      transport?.close();
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}
