// `statesync` in Node.js (the exports map's `node` condition): syncState / verifyState /
// readProgress over LevelDB (`db`: a directory), a JavaScript store or memory, peers over `ws`
// (or a WebSocket constructor given as an option). Same names and options as the browser
// build, minus `database` and `worker`. The low-level engine is here too: `await init()`,
// then `new StateSync(…)`.
//
//   import { syncState, verifyState } from 'statesync';
//   const summary = await syncState({ root, peers: ['ws://127.0.0.1:30401'], db: './state' });
//   const report = await verifyState({ db: './state' });

import { WebSocket as NodeWebSocket } from 'ws';

import { StateSyncError, asStateSyncError } from './errors.mjs';
import { NODE, SYNC_OPTIONS, VERIFY_OPTIONS, READ_OPTIONS, checkOptions } from './options.mjs';
import { checkEngineOptions, runSync, runVerify } from './orchestrate.mjs';
import { loadWasm } from './wasm-node.mjs';

export { StateSyncError } from './errors.mjs';
export { SYNC_DEFAULTS } from './orchestrate.mjs';

/**
 * Opens the store `o.storage` names: a LevelDB directory (created when `create`), a JS store,
 * or memory. `close()` closes what this call opened.
 */
async function openStore(o, { create }) {
  if (o.storage === 'store') return { storeOptions: { store: o.store }, close: async () => {} };
  if (o.storage === 'memory') return { storeOptions: { memory: true }, close: async () => {} };
  let level;
  try {
    level = await import('./leveldb-store.mjs');
  } catch (err) {
    throw new StateSyncError('MISSING_DEPENDENCY', `LevelDB (the optional dependency classic-level) is not installed (${err.code ?? err.message}): npm install classic-level, or pass store`, {}, { cause: err });
  }
  let store;
  try {
    store = await level.openLevelStore(o.db, { createIfMissing: create });
  } catch (err) {
    throw asStateSyncError(err, 'OPEN_FAILED');
  }
  return { storeOptions: { store }, store, close: () => store.close().catch(() => {}) };
}

/**
 * Downloads every trie node and code under `root` from `peers`, verifies each against its
 * hash and stores it; resolves when the whole state is stored. See index.d.ts.
 */
export async function syncState(options) {
  const o = checkOptions(options, SYNC_OPTIONS, NODE);
  const wasm = await loadWasm();
  checkEngineOptions(wasm, o);
  const opened = await openStore(o, { create: true });
  try {
    return await runSync(wasm, o, { storeOptions: opened.storeOptions, WebSocket: o.WebSocket ?? globalThis.WebSocket ?? NodeWebSocket });
  } finally {
    await opened.close();
  }
}

/** Runs `fn(wasm, opened)` over the existing store the options name, then closes it. */
async function withExistingStore(o, fn) {
  const wasm = await loadWasm();
  const opened = await openStore(o, { create: false });
  try {
    return await fn(wasm, opened);
  } finally {
    await opened.close();
  }
}

/** Walks the stored state from its root and counts it; rejects with INCOMPLETE at a gap. */
export async function verifyState(options) {
  const o = checkOptions(options, VERIFY_OPTIONS, NODE);
  return withExistingStore(o, (wasm, opened) => runVerify(wasm, o, opened));
}

/** The stored sync's progress record (root, committed items and bytes, complete), or null. */
export async function readProgress(options) {
  const o = checkOptions(options, READ_OPTIONS, NODE);
  return withExistingStore(o, (wasm, opened) =>
    wasm.readProgress(opened.storeOptions).catch((err) => {
      throw asStateSyncError(err, 'STORE_ERROR');
    }),
  );
}

/** Loads the WebAssembly module; needed before using the low-level classes below. */
export const init = loadWasm;

// The low-level engine, for hosts with their own transport or store (after `await init()`).
export { StateSync, StateSource, verifyStore, answerFrom, encodeStatus, requestedKeys, version } from '../pkg/statesync_wasm.js';
