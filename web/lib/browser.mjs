// `statesync` in browsers (the exports map's `browser` condition): syncState / verifyState /
// readProgress into IndexedDB (`database`, default "statesync"), run in a dedicated Worker by
// default so the page's thread stays free; one tab writes a database at a time
// (writer-lock.mjs). Same names and options as the Node.js build, with `database` and
// `worker` instead of `db`. The low-level engine is here too: `await init()`, then
// `new StateSync(…)` on this thread.
//
//   import { syncState, verifyState } from 'statesync';
//   const summary = await syncState({ root, peers: ['wss://…'], database: 'wallet-state', onProgress });
//   const report = await verifyState({ database: 'wallet-state' });

import { StateSyncError, errorFromData } from './errors.mjs';
import { BROWSER, SYNC_OPTIONS, VERIFY_OPTIONS, READ_OPTIONS, checkOptions } from './options.mjs';
import { dispatch } from './orchestrate.mjs';
import { callHere } from './in-thread.mjs';
import { oneWriter } from './writer-lock.mjs';
import { loadWasm } from './wasm-browser.mjs';

export { StateSyncError } from './errors.mjs';
export { SYNC_DEFAULTS } from './orchestrate.mjs';

/**
 * Whether a call runs in a Worker: by default, unless `worker: false`, there is no Worker
 * (an old browser, a test runner), or the options hold something a Worker cannot receive
 * (a JavaScript store, a WebSocket constructor).
 */
function useWorker(o) {
  return o.worker !== false && typeof Worker !== 'undefined' && o.storage !== 'store' && o.WebSocket === undefined;
}

/** Runs `kind` in a fresh dedicated Worker; its events reach the options' listeners here. */
function inWorker(kind, o) {
  return new Promise((resolve, reject) => {
    let worker;
    try {
      // The literal form bundlers recognise: they emit worker.mjs and its imports as a chunk.
      worker = new Worker(new URL('./worker.mjs', import.meta.url), { type: 'module' });
    } catch (err) {
      reject(new StateSyncError('WORKER_FAILED', `cannot start the sync worker: ${err.message}`, {}, { cause: err }));
      return;
    }
    const onAbort = () => worker.postMessage({ type: 'abort' });
    const done = (settle, value) => {
      o.signal?.removeEventListener('abort', onAbort);
      worker.terminate();
      settle(value);
    };
    worker.onmessage = ({ data }) => {
      if (data.type === 'event') dispatch(o, data.event);
      else if (data.type === 'result') done(resolve, data.result);
      else if (data.type === 'error') done(reject, errorFromData(data.error));
    };
    worker.onerror = (event) => {
      event.preventDefault();
      done(reject, new StateSyncError('WORKER_FAILED', `the sync worker failed: ${event.message || 'its module could not be loaded'}`));
    };
    const { onEvent: _e, onProgress: _p, signal, ...options } = o;
    worker.postMessage({ type: 'call', kind, options });
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}

const call = (kind, o) => (useWorker(o) ? inWorker(kind, o) : callHere(kind, o));

/**
 * Downloads every trie node and code under `root` from `peers`, verifies each against its
 * hash and stores it; resolves when the whole state is stored. See index.d.ts.
 */
export async function syncState(options) {
  const o = checkOptions(options, SYNC_OPTIONS, BROWSER);
  return oneWriter(o, (checked) => call('sync', checked));
}

/** Walks the stored state from its root and counts it; rejects with INCOMPLETE at a gap. */
export async function verifyState(options = {}) {
  return call('verify', checkOptions(options, VERIFY_OPTIONS, BROWSER));
}

/** The stored sync's progress record (root, committed items and bytes, complete), or null. */
export async function readProgress(options = {}) {
  return call('read', checkOptions(options, READ_OPTIONS, BROWSER));
}

/** Loads the WebAssembly module on this thread; needed before the low-level classes below. */
export const init = loadWasm;

// The low-level engine, for hosts with their own transport or store (after `await init()`).
export { StateSync, StateSource, verifyStore, answerFrom, encodeStatus, requestedKeys, version } from '../pkg/statesync_wasm.js';
