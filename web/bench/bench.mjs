// The browser benchmark page (driven by bench/browser.mjs): the WebAssembly engine syncing a
// state into IndexedDB from in-page peers, against raw IndexedDB puts of the same nodes in the
// same batches.
//
// 1. sync: a StateSync with the IndexedDB store (a fresh database), four in-page peers that
//    answer from a StateSource on the next task (a MessageChannel message, no timer clamping);
//    the time spent answering (serving, which on a network runs elsewhere) is subtracted.
//    Every put and delete the store makes is recorded, grouped by its readwrite transaction
//    (one per commit batch: main keyspace puts, staging puts and deletes, progress record).
// 2. raw: a fresh database with the same object stores, and the recorded writes replayed with
//    no engine at all, one readwrite transaction per recorded batch, each awaited before the
//    next (the engine's store also runs one operation at a time).
// Both times include opening their database. ratio = raw / sync: 1 means the sync costs
// nothing beyond the writes it must make.

import { loadWasm } from '/lib/wasm-browser.mjs';
import { buildSource, request, syncFromPeers, transactionDone } from './common.mjs';

// The wasm package, once `ready` resolved.
let StateSource;
let StateSync;

// The write recorder: on while the sync runs, recording puts and deletes made in the named
// database (and counting the store's lookups, `count` requests in readonly transactions).
const originalPut = IDBObjectStore.prototype.put;
const originalDelete = IDBObjectStore.prototype.delete;
const originalCount = IDBObjectStore.prototype.count;
let recorder = null;
IDBObjectStore.prototype.count = function count(query) {
  if (recorder && this.transaction.db.name === recorder.database) {
    recorder.lookups++;
    recorder.lookupTransactions.add(this.transaction);
  }
  return originalCount.call(this, query);
};
/** Records one write of `store` in the batch of its transaction. */
function record(store, key, value) {
  if (!recorder || store.transaction.db.name !== recorder.database) return;
  let batch = recorder.byTransaction.get(store.transaction);
  if (!batch) {
    batch = [];
    recorder.byTransaction.set(store.transaction, batch);
    recorder.batches.push(batch);
  }
  batch.push([store.name, key, value]);
}
IDBObjectStore.prototype.put = function put(value, key) {
  record(this, key, value);
  return originalPut.call(this, value, key);
};
IDBObjectStore.prototype.delete = function del(key) {
  record(this, key, undefined); // a delete
  return originalDelete.call(this, key);
};

async function deleteDatabase(name) {
  const req = indexedDB.deleteDatabase(name);
  await request(req);
}

async function syncPass(source, database, { peers, batchBytes }) {
  await deleteDatabase(database);
  recorder = { database, batches: [], byTransaction: new Map(), lookups: 0, lookupTransactions: new Set() };
  const sync = new StateSync({ root: source.root, database, batchBytes, progressIntervalMs: 3_600_000 });
  // free() closes its connection, so the database can be deleted.
  const { progress, servingMs, wallMs } = await syncFromPeers(sync, source, peers).finally(() => sync.free());
  const { batches, lookups } = recorder;
  const lookupTransactions = recorder.lookupTransactions.size;
  recorder = null;
  return {
    ms: wallMs - servingMs,
    wallMs,
    servingMs,
    processed: progress.processed,
    committedBytes: progress.committedBytes,
    largestBatchItems: progress.largestBatchItems,
    largestBatchBytes: progress.largestBatchBytes,
    peakUnwrittenItems: progress.peakUnwrittenItems,
    batches,
    lookups,
    lookupTransactions,
  };
}

async function rawPass(database, batches) {
  await deleteDatabase(database);
  const started = performance.now();
  const open = indexedDB.open(database, 1);
  // The object stores the sync wrote to (nodes, code, meta, and staging for unfinished subtries).
  const names = [...new Set(['nodes', 'code', 'meta', ...batches.flat().map(([store]) => store)])];
  open.onupgradeneeded = () => {
    for (const name of names) open.result.createObjectStore(name);
  };
  const db = await request(open);
  for (const batch of batches) {
    const tx = db.transaction(names, 'readwrite');
    const stores = Object.fromEntries(names.map((name) => [name, tx.objectStore(name)]));
    for (const [store, key, value] of batch) {
      if (value === undefined) stores[store].delete(key);
      else stores[store].put(value, key);
    }
    await transactionDone(tx);
  }
  const ms = performance.now() - started;
  db.close();
  return { ms };
}

/**
 * Runs both passes `repeat` times (alternating, fresh databases each time) and keeps the best
 * of each. `genesisJson` is the fixture's text when `state` is `genesis`.
 */
async function run({ state = 'genesis', genesisJson, repeat = 3, peers = 4, batchBytes = 1 << 20 } = {}) {
  await ready;
  const { source, name } = buildSource({ StateSource }, state, genesisJson);
  const items = source.nodeCount + source.codeCount;
  let sync;
  let raw;
  for (let i = 0; i < Math.max(1, repeat); i++) {
    const s = await syncPass(source, `bench-sync-${i}`, { peers, batchBytes });
    const r = await rawPass(`bench-raw-${i}`, s.batches);
    await deleteDatabase(`bench-sync-${i}`);
    await deleteDatabase(`bench-raw-${i}`);
    if (!sync || s.ms < sync.ms) sync = s;
    if (!raw || r.ms < raw.ms) raw = r;
  }
  const puts = sync.batches.map((b) => b.length);
  const result = {
    state: name,
    items,
    bytes: source.bytes,
    peers,
    repeat,
    batch_bytes: batchBytes,
    processed: sync.processed,
    committed_bytes: sync.committedBytes,
    batches: puts.length,
    puts_per_batch: puts,
    largest_batch_items: sync.largestBatchItems,
    largest_batch_bytes: sync.largestBatchBytes,
    peak_unwritten_items: sync.peakUnwrittenItems,
    lookups: sync.lookups,
    lookup_transactions: sync.lookupTransactions,
    sync_ms: sync.ms,
    sync_wall_ms: sync.wallMs,
    sync_serving_ms: sync.servingMs,
    raw_ms: raw.ms,
    sync_items_per_sec: items / (sync.ms / 1000),
    raw_items_per_sec: items / (raw.ms / 1000),
    raw_to_sync: raw.ms / sync.ms,
    user_agent: navigator.userAgent,
  };
  source.free();
  document.getElementById('out').textContent += `${JSON.stringify(result)}\n`;
  return result;
}

/**
 * The OPFS benchmark: web/bench/opfs-worker.mjs in a dedicated Worker (sync access handles
 * exist only there), while this page's thread watches for long tasks (over 50 ms).
 */
async function runOpfs(options) {
  const longTasks = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) longTasks.push(e.duration);
  });
  observer.observe({ type: 'longtask' });
  const worker = new Worker('/bench/opfs-worker.mjs', { type: 'module' });
  try {
    const result = await new Promise((resolve, reject) => {
      worker.onmessage = ({ data }) => (data.type === 'result' ? resolve(data.result) : reject(new Error(data.message)));
      worker.onerror = (event) => reject(new Error(`the OPFS bench worker failed: ${event.message}`));
      worker.postMessage(options);
    });
    result.main_thread_long_tasks = longTasks.length;
    result.main_thread_longest_task_ms = longTasks.reduce((m, d) => Math.max(m, d), 0);
    document.getElementById('out').textContent += `${JSON.stringify(result)}\n`;
    return result;
  } finally {
    observer.disconnect();
    worker.terminate();
  }
}

const ready = loadWasm().then((wasm) => {
  ({ StateSource, StateSync } = wasm);
});
window.bench = { ready: ready.then(() => true), run, runOpfs };
