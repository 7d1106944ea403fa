// The OPFS benchmark (a dedicated Worker of web/bench/, driven by bench/browser.mjs
// --storage opfs): the engine syncing a state into the OPFS store, against the same batches
// written with no engine, as raw OPFS appends and as raw IndexedDB puts, all in this Worker.
//
// 1. sync: a fresh OPFS store (web/lib/opfs-store.mjs), a StateSync over it and four
//    in-worker peers answering from a StateSource on the next task (a MessageChannel
//    message); the time spent answering is subtracted (on a network it runs elsewhere). Every
//    batch the engine writes (puts, deletes, progress record) is recorded, copied into one
//    buffer per batch (a few hundred objects, not millions: the garbage collector would
//    otherwise slow the sync it measures).
// 2. raw OPFS: a fresh file, and per recorded batch its buffer (keys and values) appended
//    through a FileSystemSyncAccessHandle, then flush() (what the store must at least do).
// 3. raw IndexedDB: a fresh database with the IndexedDB store's object stores, one readwrite
//    transaction per recorded batch (nodes and code by hash, staging puts and deletes, the
//    progress record), each awaited before the next.
// 4. the engine alone: the same sync into the engine's memory store (no JS store at all), the
//    ceiling any store reaches in this Worker.
// Times include opening the store, file or database. The sync and raw OPFS run `repeat` times
// (best of); raw IndexedDB once, and only when asked (`rawIndexedDb`: the slowest piece, minutes
// for the 1M state; `npm run bench` compares with the page's raw IndexedDB row instead).

import { loadWasm } from '/lib/wasm-browser.mjs';
import { deleteOpfsStore, openOpfsStore } from '/lib/opfs-store.mjs';
import { buildSource, request, syncFromPeers, transactionDone } from './common.mjs';

/**
 * One batch as one buffer: every put's key and value, every delete's key, the progress key and
 * value, in that order; `lengths` holds each put's key and value lengths, then each delete's.
 */
function recordBatch(puts, deletes, progressKey, progress) {
  let size = progressKey.length + progress.length;
  for (const [key, value] of puts) size += key.length + value.length;
  for (const key of deletes) size += key.length;
  const bytes = new Uint8Array(size);
  const lengths = new Uint32Array(puts.length * 2 + deletes.length);
  let o = 0;
  let i = 0;
  for (const [key, value] of puts) {
    bytes.set(key, o);
    bytes.set(value, o + key.length);
    o += key.length + value.length;
    lengths[i++] = key.length;
    lengths[i++] = value.length;
  }
  for (const key of deletes) {
    bytes.set(key, o);
    o += key.length;
    lengths[i++] = key.length;
  }
  bytes.set(progressKey, o);
  bytes.set(progress, o + progressKey.length);
  return { bytes, lengths, puts: puts.length, deletes: deletes.length, progressAt: o + progressKey.length };
}

/** Syncs `source` into `store` (a JS store, or null: the engine's memory store) from in-Worker peers. */
async function runEngine(wasm, source, store, { peers, batchBytes }) {
  const sync = new wasm.StateSync({ root: source.root, ...(store ? { store } : { memory: true }), batchBytes, progressIntervalMs: 3_600_000 });
  return syncFromPeers(sync, source, peers).finally(() => sync.free());
}

async function syncPass(wasm, source, name, options) {
  await deleteOpfsStore(name);
  const batches = [];
  const started = performance.now();
  const store = await openOpfsStore(name);
  const recording = {
    has: (keys) => store.has(keys),
    get: (keys) => store.get(keys),
    scan: (prefix) => store.scan(prefix),
    readProgress: (key) => store.readProgress(key),
    write(puts, deletes, progressKey, progress) {
      batches.push(recordBatch(puts, deletes, progressKey, progress));
      return store.write(puts, deletes, progressKey, progress);
    },
  };
  const { progress, servingMs } = await runEngine(wasm, source, recording, options);
  const wallMs = performance.now() - started;
  const stats = { ...store.stats, runs: store.runs.length, log_bytes: store.logEnd, cache_hits: store.cache.hits, cache_misses: store.cache.misses };
  await store.close();
  await deleteOpfsStore(name);
  return { ms: wallMs - servingMs, wallMs, servingMs, processed: progress.processed, committedBytes: progress.committedBytes, batches, stats };
}

async function memoryPass(wasm, source, options) {
  const started = performance.now();
  const { servingMs } = await runEngine(wasm, source, null, options);
  return { ms: performance.now() - started - servingMs };
}

async function rawOpfsPass(name, batches) {
  const root = await navigator.storage.getDirectory();
  await root.removeEntry(name).catch(() => {});
  const started = performance.now();
  const file = await root.getFileHandle(name, { create: true });
  const handle = await file.createSyncAccessHandle();
  let at = 0;
  for (const { bytes } of batches) {
    at += handle.write(bytes, { at });
    handle.flush();
  }
  const ms = performance.now() - started;
  handle.close();
  await root.removeEntry(name);
  return { ms, bytes: at };
}

async function rawIndexedDbPass(name, batches) {
  await request(indexedDB.deleteDatabase(name));
  const started = performance.now();
  const open = indexedDB.open(name, 1);
  const stores = ['nodes', 'code', 'staging', 'meta'];
  open.onupgradeneeded = () => {
    for (const store of stores) open.result.createObjectStore(store);
  };
  const db = await request(open);
  const prefix = 'statesync-staged-'.length;
  for (const { bytes, lengths, puts, deletes, progressAt } of batches) {
    const tx = db.transaction(stores, 'readwrite');
    const [nodes, code, staging, meta] = stores.map((s) => tx.objectStore(s));
    let o = 0;
    for (let i = 0; i < puts; i++) {
      // Copies, as the engine hands them over: a view would have IndexedDB clone the whole batch.
      const key = bytes.slice(o, o + lengths[2 * i]);
      const value = bytes.slice(o + key.length, o + key.length + lengths[2 * i + 1]);
      o += key.length + value.length;
      if (key.length === 32) nodes.put(value, key);
      else if (key.length === 33) code.put(value, key.subarray(1));
      else staging.put(value, key.subarray(prefix));
    }
    for (let i = 0; i < deletes; i++) {
      const length = lengths[2 * puts + i];
      staging.delete(bytes.slice(o + prefix, o + length));
      o += length;
    }
    meta.put(bytes.slice(progressAt), 'progress');
    await transactionDone(tx);
  }
  const ms = performance.now() - started;
  db.close();
  await request(indexedDB.deleteDatabase(name));
  return { ms };
}

async function run({ state, genesisJson, repeat = 3, peers = 4, batchBytes = 1 << 20, rawIndexedDb = true }) {
  const wasm = await loadWasm();
  const { source, name } = buildSource(wasm, state, genesisJson);
  const items = source.nodeCount + source.codeCount;
  const bytes = source.bytes;
  let sync;
  let raw;
  for (let i = 0; i < Math.max(1, repeat); i++) {
    const s = await syncPass(wasm, source, `bench-opfs-${i}`, { peers, batchBytes });
    const r = await rawOpfsPass(`bench-raw-opfs-${i}`, s.batches);
    if (!sync || s.ms < sync.ms) sync = s;
    else s.batches.length = 0;
    if (!raw || r.ms < raw.ms) raw = r;
  }
  const memory = await memoryPass(wasm, source, { peers, batchBytes });
  const idb = rawIndexedDb ? await rawIndexedDbPass('bench-raw-idb', sync.batches) : null;
  const ops = sync.batches.map((b) => b.puts + b.deletes);
  source.free();
  return {
    state: name,
    storage: 'opfs',
    items,
    bytes,
    peers,
    repeat,
    batch_bytes: batchBytes,
    processed: sync.processed,
    committed_bytes: sync.committedBytes,
    batches: ops.length,
    ops: ops.reduce((a, b) => a + b, 0),
    largest_batch_ops: Math.max(...ops),
    store: sync.stats,
    sync_ms: sync.ms,
    sync_wall_ms: sync.wallMs,
    sync_serving_ms: sync.servingMs,
    raw_opfs_ms: raw.ms,
    raw_opfs_bytes: raw.bytes,
    raw_idb_ms: idb?.ms ?? null,
    engine_memory_ms: memory.ms,
    sync_items_per_sec: items / (sync.ms / 1000),
    raw_opfs_items_per_sec: items / (raw.ms / 1000),
    raw_idb_items_per_sec: idb ? items / (idb.ms / 1000) : null,
    engine_memory_items_per_sec: items / (memory.ms / 1000),
    sync_to_raw_opfs: raw.ms / sync.ms,
    sync_to_raw_idb: idb ? idb.ms / sync.ms : null,
    sync_to_engine_memory: memory.ms / sync.ms,
    user_agent: navigator.userAgent,
  };
}

self.onmessage = async ({ data }) => {
  try {
    self.postMessage({ type: 'result', result: await run(data) });
  } catch (err) {
    self.postMessage({ type: 'error', message: `${err?.name}: ${err?.message}`, code: err?.code });
  }
};
