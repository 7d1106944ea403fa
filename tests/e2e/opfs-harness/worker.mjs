// The OPFS store test harness's Worker (tests/e2e/opfs.test.mjs): syncs a state from in-worker
// peers (a StateSource answering on the next task) into the package's OPFS store through the
// low-level StateSync, and checks a reopened store. A test can make it stop dead in the middle
// of a batch's write (between the frame and its commit marker) and terminate it there.

import { loadWasm } from '/lib/wasm-browser.mjs';
import { openOpfsStore } from '/lib/opfs-store.mjs';
import { storeSource } from '/lib/serve.mjs';
import { nextTask } from '/bench/common.mjs';

// Loaded before the first call runs (not by a top-level await: messages that arrive while a
// module worker is still evaluating would find no handler).
let wasm;
const event = (e) => self.postMessage({ type: 'event', event: e });
let running = null; // the StateSync of the `sync` call in progress
let release = null; // lets a sync held before a batch (`holdAtBatch`) go on

function buildSource({ state, genesisJson }) {
  if (state === 'genesis') return wasm.StateSource.fromGenesis(genesisJson);
  const [, accounts, seed] = /^synthetic:(\d+):(\d+)$/.exec(state);
  return wasm.StateSource.synthetic(Number(accounts), Number(seed));
}

const isMainKey = (key) => key.length === 32 || (key.length === 33 && key[0] === 0x63);
const COMMIT_MAGIC = [0x53, 0x53, 0x43, 0x31]; // "SSC1", the last 4 bytes of a frame's trailer

/**
 * Syncs `state` into the OPFS store `name`. `tearAtBatch` (or `tearAfterKeys`: the first batch
 * after that many main-keyspace keys were acknowledged): when that batch's commit marker is
 * about to be written, tell the page (with every key of the batches acknowledged so far) and
 * spin until terminated. `holdAtBatch`: before that batch is written, tell the page and wait
 * for `release`. A store failure pauses the engine (a `paused` event) until `resume`.
 */
async function sync({ name, state, genesisJson, memoryBytes, batchBytes, batchItems, tearAtBatch, tearAfterKeys, holdAtBatch, frames = 0 }) {
  const source = buildSource({ state, genesisJson });
  const store = await openOpfsStore(name, memoryBytes ? { memoryBytes } : {});
  const acked = { keys: [], batches: 0, progress: null };
  let current = [];
  if (tearAtBatch || tearAfterKeys) {
    const write = FileSystemSyncAccessHandle.prototype.write;
    FileSystemSyncAccessHandle.prototype.write = function (buffer, options) {
      const bytes = new Uint8Array(buffer.buffer ?? buffer, buffer.byteOffset ?? 0, buffer.byteLength);
      const marker = bytes.length === 16 && COMMIT_MAGIC.every((b, i) => bytes[12 + i] === b);
      if (marker && (acked.batches + 1 === tearAtBatch || (tearAfterKeys && acked.keys.length >= tearAfterKeys))) {
        self.postMessage({ type: 'event', event: { type: 'tearing', batch: acked.batches + 1, acked, torn: current } });
        for (;;); // the page terminates this worker here: the frame is written, its marker not
      }
      return write.call(this, buffer, options);
    };
  }
  // Records what each acknowledged batch stored.
  const recording = {
    has: (keys) => store.has(keys),
    get: (keys) => store.get(keys),
    scan: (prefix) => store.scan(prefix),
    readProgress: (key) => store.readProgress(key),
    async write(puts, deletes, progressKey, progress) {
      if (acked.batches + 1 === holdAtBatch) {
        holdAtBatch = 0;
        await new Promise((resolve) => {
          release = resolve;
          event({ type: 'holding', batch: acked.batches + 1 });
        });
      }
      current = puts.map(([key]) => key).filter(isMainKey);
      await store.write(puts, deletes, progressKey, progress);
      for (const key of current) acked.keys.push(key);
      acked.batches++;
      acked.progress = progress;
    },
  };
  const requests = [];
  const options = { root: source.root, store: recording, progressIntervalMs: 3_600_000, onEvent: (e) => e.type !== 'progress' && event(e) };
  if (batchBytes) options.batchBytes = batchBytes;
  if (batchItems) options.batchItems = batchItems;
  const syncer = new wasm.StateSync(options);
  running = syncer;
  for (let id = 1; id <= 4; id++) {
    syncer.addPeer(id, (frame) => {
      if (requests.length < frames) requests.push(frame.slice());
      const answer = source.answer(frame);
      if (answer) nextTask(() => syncer.receive(id, answer));
    });
  }
  const started = performance.now();
  const done = syncer.start();
  const status = source.statusFrame(1);
  for (let id = 1; id <= 4; id++) syncer.receive(id, status);
  try {
    const progress = await done;
    if (progress.phase !== 'done') return { phase: progress.phase, processed: progress.processed, committed: progress.committed, batches: acked.batches };
    const result = { phase: progress.phase, processed: progress.processed, restored: progress.restored, committed: progress.committed, ms: performance.now() - started, batches: acked.batches, stats: { ...store.stats, runs: store.runs.map((r) => ({ level: r.level, count: r.count })), logEnd: store.logEnd } };
    const report = await wasm.verifyStore({ store, root: source.root });
    result.verified = report;
    // Serving from the OPFS store answers as the source itself does.
    const served = storeSource(store, source.root, wasm);
    result.served = 0;
    for (const frame of requests) {
      const mine = await served.answer(frame);
      const theirs = source.answer(frame);
      if (mine && theirs && mine.length === theirs.length && mine.every((b, i) => b === theirs[i])) result.served++;
    }
    result.requests = requests.length;
    return result;
  } finally {
    running = null;
    syncer.free();
    await store.close();
    source.free();
  }
}

/** Reopens `name` and checks it against the keys a torn run acknowledged (and the torn batch's). */
async function reopen({ name, state, genesisJson, acked, torn, memoryBytes }) {
  const source = buildSource({ state, genesisJson });
  const store = await openOpfsStore(name, memoryBytes ? { memoryBytes } : {});
  try {
    const has = await store.has(acked.keys);
    const values = await store.get(acked.keys);
    let equal = 0;
    for (let i = 0; i < acked.keys.length; i++) {
      const expected = source.get(acked.keys[i]);
      if (values[i] && expected && values[i].length === expected.length && values[i].every((b, j) => b === expected[j])) equal++;
    }
    const tornHas = await store.has(torn);
    const progress = await store.readProgress(new TextEncoder().encode('statesync-progress'));
    const record = await wasm.readProgress({ store });
    return {
      ackedKeys: acked.keys.length,
      found: has.filter(Boolean).length,
      equalValues: equal,
      tornKeys: torn.length,
      tornFound: tornHas.filter(Boolean).length,
      progressIsLastAcked: Boolean(progress && acked.progress && progress.length === acked.progress.length && progress.every((b, i) => b === acked.progress[i])),
      record,
      stats: { ...store.stats, runs: store.runs.length, staged: store.staged.size },
    };
  } finally {
    await store.close();
    source.free();
  }
}

/**
 * The log of `name` as a reader sees it (a File snapshot, no lock): its size and whether it
 * ends with a whole frame's commit marker (or is empty).
 */
async function logTail({ name }) {
  const root = await navigator.storage.getDirectory();
  const dir = await (await root.getDirectoryHandle('statesync')).getDirectoryHandle(name);
  const file = await (await dir.getFileHandle('log')).getFile();
  const tail = new Uint8Array(await file.slice(Math.max(0, file.size - 4)).arrayBuffer());
  return { size: file.size, whole: file.size === 0 || COMMIT_MAGIC.every((b, i) => tail[i] === b) };
}

const commands = {
  sync,
  reopen,
  logTail,
  resume: async () => running?.resume(),
  cancel: async () => running?.cancel(),
  release: async () => release?.(),
};

self.onmessage = async ({ data }) => {
  try {
    wasm = await loadWasm();
    self.postMessage({ type: 'result', call: data.call, result: await commands[data.cmd](data.args ?? {}) });
  } catch (err) {
    self.postMessage({ type: 'error', call: data.call, error: { name: err?.name, code: err?.code, message: err?.message ?? String(err) } });
  }
};
