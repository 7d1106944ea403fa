// The package's Node.js API (web/lib/node.mjs, what `import 'statesync'` gives Node.js):
// options refused by name, a store that keeps failing, abort and resume, unreachable peers,
// another root in the store, JS stores and memory. The CLI tests cover the same through the
// command; the packed-package tests (tests/package) cover it as installed.

import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { syncState, verifyState, readProgress, init, StateSource, StateSyncError } from '../../web/lib/node.mjs';
import { startPeerServer } from '../../web/cli/peer-server.mjs';
import { tempDir, closedPort, GENESIS, GENESIS_ROOT, GENESIS_NODES, GENESIS_ACCOUNTS } from './helpers.mjs';

await init();
const genesis = StateSource.fromGenesis(fs.readFileSync(GENESIS, 'utf8'));

/** A local peer serving `source`, closed when the test ends. */
async function peer(t, source = genesis, faults = {}) {
  const server = await startPeerServer({ source, port: 0, faults });
  t.after(() => server.close());
  return server.url;
}

/** A JavaScript store over Maps (the JsStore interface: puts, deletes, prefix scan), with a switch to fail writes. */
function mapStore() {
  const hex = (k) => Buffer.from(k).toString('hex');
  const data = new Map();
  const meta = new Map();
  return {
    data,
    failWith: null,
    has: async (keys) => keys.map((k) => data.has(hex(k))),
    get: async (keys) => keys.map((k) => data.get(hex(k))),
    async write(puts, deletes, progressKey, progress) {
      if (this.failWith) throw this.failWith();
      for (const [k, v] of puts) data.set(hex(k), Uint8Array.from(v));
      for (const k of deletes) data.delete(hex(k));
      meta.set(hex(progressKey), Uint8Array.from(progress));
    },
    async scan(prefix) {
      const p = hex(prefix);
      return [...data].filter(([k]) => k.startsWith(p)).map(([k, v]) => [Uint8Array.from(Buffer.from(k, 'hex')), v]);
    },
    readProgress: async (progressKey) => meta.get(hex(progressKey)),
  };
}

test('wrong options are refused with BAD_OPTION naming the option, before anything is opened', async (t) => {
  const db = path.join(tempDir(t), 'db');
  const base = { root: GENESIS_ROOT, peers: ['ws://127.0.0.1:1'], db };
  const cases = [
    [{ ...base, peer: 'ws://x' }, 'peer', /not an option/],
    [{ ...base, peers: 'ws://127.0.0.1:1' }, 'peers', /array of ws:\/\/ or wss:\/\/ URLs, got "ws:/],
    [{ ...base, peers: ['http://127.0.0.1:1'] }, 'peers', /got \["http:/],
    [{ ...base, peers: [] }, 'peers', /non-empty/],
    [{ ...base, database: 'x', db: undefined }, 'database', /no meaning in Node\.js/],
    [{ ...base, worker: false }, 'worker', /no meaning in Node\.js/],
    [{ ...base, memory: true }, 'memory', /cannot go with options\.db/],
    [{ root: GENESIS_ROOT, peers: base.peers }, 'db', /LevelDB directory/],
    [{ ...base, onProgress: 'yes' }, 'onProgress', /a function/],
    [{ ...base, signal: {} }, 'signal', /an AbortSignal/],
    [{ ...base, connectTimeoutMs: -1 }, 'connectTimeoutMs', /0 or more/],
    [{ ...base, storeRetries: 1.5 }, 'storeRetries', /integer from 0 to 100/],
    [{ ...base, store: { has() {} }, db: undefined }, 'store', /JsStore/],
    // The engine's own options, checked by the engine with the same error.
    [{ ...base, batchBytes: '1mb' }, 'batchBytes', /integer from 1 to/],
    [{ ...base, maxInFlight: 0 }, 'maxInFlight', /integer from 1 to 64, got 0/],
    [{ ...base, maxItemsPerRequest: 5000 }, 'maxItemsPerRequest', /integer from 1 to 1024, got 5000/],
    [{ ...base, switchRoot: 'yes' }, 'switchRoot', /a boolean/],
  ];
  for (const [options, option, message] of cases) {
    const err = await syncState(options).then(() => null, (e) => e);
    assert.ok(err instanceof StateSyncError, `${option}: ${err}`);
    assert.equal(err.code, 'BAD_OPTION', `${option}: ${err.message}`);
    assert.equal(err.option, option, err.message);
    assert.match(err.message, message);
    assert.equal(typeof err.expected, 'string');
  }
  const badRoot = await syncState({ ...base, root: '0x1234' }).catch((e) => e);
  assert.equal(badRoot.code, 'BAD_ROOT');
  assert.equal(await syncState(null).catch((e) => e.code), 'BAD_OPTION');
  assert.ok(!fs.existsSync(db), 'nothing was created');
});

test('syncs into a JavaScript store and memory; verifyState and readProgress read the store', async (t) => {
  const url = await peer(t);
  const store = mapStore();
  const events = [];
  const summary = await syncState({ root: GENESIS_ROOT, peers: [url], store, onEvent: (e) => events.push(e.type) });
  assert.equal(summary.committed, GENESIS_NODES);
  assert.equal(summary.resumed, false);
  assert.equal(summary.progress.phase, 'done');
  assert.deepEqual([events[0], events.at(-1)], ['start', 'finished']);
  assert.ok(events.includes('peer'));
  const report = await verifyState({ store });
  assert.equal(report.accounts, GENESIS_ACCOUNTS);
  assert.equal(report.root, GENESIS_ROOT);
  assert.equal((await readProgress({ store })).complete, true);
  const again = await syncState({ root: GENESIS_ROOT, peers: [url], store });
  assert.equal(again.processed, 0, 'a complete store fetches nothing');
  assert.equal((await syncState({ root: GENESIS_ROOT, peers: [url], memory: true })).committed, GENESIS_NODES);
});

test('a store call hands over its keys and values as views into one buffer; a store that copies them syncs a whole state', async (t) => {
  const url = await peer(t);
  const store = mapStore();
  const buffers = { get: [], write: [] };
  const { get, write } = store;
  // Every key and value of one call: how many distinct ArrayBuffers they live in.
  const distinct = (arrays) => new Set(arrays.map((a) => a.buffer)).size;
  store.get = function (keys) {
    if (keys.length) buffers.get.push(distinct(keys));
    return get.call(this, keys);
  };
  store.write = function (puts, deletes, progressKey, progress) {
    if (puts.length + deletes.length) buffers.write.push(distinct([...puts.flat(), ...deletes]));
    return write.call(this, puts, deletes, progressKey, progress);
  };
  // Small batches: many writes, some moving staged nodes (deletes) into the main keyspace.
  const summary = await syncState({ root: GENESIS_ROOT, peers: [url], store, batchBytes: 16 * 1024 });
  assert.equal(summary.committed, GENESIS_NODES);
  // verifyState reads the whole state back through get().
  assert.equal((await verifyState({ store })).accounts, GENESIS_ACCOUNTS);
  assert.ok(buffers.get.length > 0 && buffers.write.length > 1, `${buffers.get.length} gets, ${buffers.write.length} writes`);
  assert.deepEqual([...new Set(buffers.get)], [1], 'each get() call: one buffer');
  assert.deepEqual([...new Set(buffers.write)], [1], 'each write(): one buffer');
});

test('a store that keeps failing: retried, then STORE_QUOTA with what is stored; the next call resumes', async (t) => {
  const url = await peer(t);
  const store = mapStore();
  let writes = 0;
  const original = store.write;
  store.write = async function (...args) {
    writes++;
    // The first batch lands; then the disk is "full".
    if (writes > 1) throw Object.assign(new Error('no space left on device'), { code: 'QuotaExceededError' });
    return original.apply(this, args);
  };
  const paused = [];
  const err = await syncState({ root: GENESIS_ROOT, peers: [url], store, batchBytes: 16 * 1024, storeRetries: 1, onEvent: (e) => e.type === 'paused' && paused.push(e.reason) })
    .then(() => null, (e) => e);
  assert.equal(err?.code, 'STORE_QUOTA', err?.message);
  assert.deepEqual(paused, ['QuotaExceeded', 'QuotaExceeded'], 'one failure, one retry');
  // Stored = committed (whole subtries) + staged (verified items of unfinished subtries).
  const stored = err.committed + err.staged;
  assert.ok(stored > 0 && stored < GENESIS_NODES, `stored ${stored}`);
  assert.match(err.reason, /store writes keep failing \(QuotaExceeded/);

  store.write = original;
  const resumed = await syncState({ root: GENESIS_ROOT, peers: [url], store });
  assert.equal(resumed.resumed, true);
  assert.equal(resumed.committed, GENESIS_NODES);
  assert.ok(resumed.processed <= GENESIS_NODES - stored, `fetched ${resumed.processed} with ${stored} stored`);
});

test('abort flushes what is complete and rejects with ABORTED; the next call resumes from there', async (t) => {
  const url = await peer(t, genesis, { latencyMs: 20 });
  const db = path.join(tempDir(t), 'db');
  const controller = new AbortController();
  const err = await syncState({
    root: GENESIS_ROOT,
    peers: [url],
    db,
    batchBytes: 16 * 1024,
    maxItemsPerRequest: 64,
    signal: controller.signal,
    onProgress: (p) => p.committed > 0 && controller.abort(),
  }).then(() => null, (e) => e);
  assert.equal(err?.code, 'ABORTED', err?.message);
  assert.equal(err.name, 'AbortError');
  assert.ok(err.committed > 0, `committed ${err.committed}`);
  assert.equal((await readProgress({ db })).committedItems, err.committed);

  const resumed = await syncState({ root: GENESIS_ROOT, peers: [url], db });
  assert.equal(resumed.committed, GENESIS_NODES);
  assert.ok(resumed.processed <= GENESIS_NODES - err.committed);
  assert.equal((await verifyState({ db })).nodes, GENESIS_NODES);
  const already = new AbortController();
  already.abort();
  assert.equal(await syncState({ root: GENESIS_ROOT, peers: [url], db, signal: already.signal }).catch((e) => e.code), 'ABORTED');
});

test('an abort whose last flush fails still ends, with ABORTED and what the store held', async (t) => {
  const url = await peer(t, genesis, { latencyMs: 20 });
  const store = mapStore();
  const controller = new AbortController();
  let storedAtAbort = 0;
  const err = await syncState({
    root: GENESIS_ROOT,
    peers: [url],
    store,
    batchBytes: 16 * 1024,
    maxItemsPerRequest: 64,
    signal: controller.signal,
    onProgress: (p) => {
      if (p.committed > 0 && !controller.signal.aborted) {
        storedAtAbort = store.data.size;
        store.failWith = () => Object.assign(new Error('disk gone'), { code: 'EIO' });
        controller.abort();
      }
    },
  }).then(() => null, (e) => e);
  assert.equal(err?.code, 'ABORTED', err?.message);
  assert.equal(store.data.size, storedAtAbort, 'nothing landed after the failure');
  assert.equal(err.committed, (await readProgress({ store })).committedItems);
});

test('unreachable peers: UNREACHABLE after connectTimeoutMs, naming them', async (t) => {
  const port = await closedPort();
  const err = await syncState({ root: GENESIS_ROOT, peers: [`ws://127.0.0.1:${port}`], memory: true, connectTimeoutMs: 300 }).catch((e) => e);
  assert.equal(err.code, 'UNREACHABLE');
  assert.match(err.reason, new RegExp(`no peer reachable within 0\\.3 s: ws://127\\.0\\.0\\.1:${port}`));
  assert.equal(err.committed, 0);
});

test('a store synced towards another root: ROOT_MISMATCH with the stored root, then switchRoot', async (t) => {
  const other = StateSource.synthetic(300, 3);
  const [genesisUrl, otherUrl] = [await peer(t), await peer(t, other)];
  const store = mapStore();
  await syncState({ root: GENESIS_ROOT, peers: [genesisUrl], store });
  const err = await syncState({ root: other.root, peers: [otherUrl], store }).catch((e) => e);
  assert.equal(err.code, 'ROOT_MISMATCH');
  assert.equal(err.storedRoot, GENESIS_ROOT);
  assert.equal(err.storedComplete, true);
  const switched = await syncState({ root: other.root, peers: [otherUrl], store, switchRoot: true });
  assert.equal(switched.root, other.root);
  assert.equal((await verifyState({ store })).accounts, 300);
});

test('verifyState and readProgress of a missing database: NOT_FOUND; of an empty one: INCOMPLETE', async (t) => {
  const dir = tempDir(t);
  assert.equal(await verifyState({ db: path.join(dir, 'none') }).catch((e) => e.code), 'NOT_FOUND');
  assert.equal(await readProgress({ db: path.join(dir, 'none') }).catch((e) => e.code), 'NOT_FOUND');
  const store = mapStore();
  const err = await verifyState({ store }).catch((e) => e);
  assert.equal(err.code, 'INCOMPLETE');
  const gap = await verifyState({ store, root: GENESIS_ROOT }).catch((e) => e);
  assert.equal(gap.code, 'INCOMPLETE');
  assert.equal(gap.root, GENESIS_ROOT);
});
