// syncState / verifyState / readProgress on the calling thread of a browser: what the Worker
// runs, and what `worker: false` (or a JavaScript `store`) runs on the page's own thread.
// A browser `database` lives in the Origin Private File System (opfs-store.mjs; sync access
// handles exist only in dedicated Workers) or in IndexedDB (the engine's own store).

import { StateSyncError, asStateSyncError } from './errors.mjs';
import { runSync, runVerify } from './orchestrate.mjs';
import { openOpfsStore, opfsProgressReader, opfsStoreExists, opfsSupported } from './opfs-store.mjs';
import { loadWasm } from './wasm-browser.mjs';

/** The OPFS store's error codes (opfs/errors.mjs) as the package's. */
const OPFS_CODES = { QuotaExceededError: 'STORE_QUOTA', CLOSED: 'STORE_CLOSED', BLOCKED: 'STORE_BLOCKED' };

const opfsError = (err) => asStateSyncError(Object.assign(err, { code: OPFS_CODES[err?.code] ?? 'STORE_ERROR' }));

/** Whether the IndexedDB database `name` holds a sync (listed, with a progress record). */
async function indexedDbHoldsSync(wasm, name) {
  if (typeof indexedDB === 'undefined' || typeof indexedDB.databases !== 'function') return false;
  const listed = await indexedDB.databases().catch(() => []);
  if (!listed.some((d) => d.name === name)) return false;
  return (await wasm.readProgress({ database: name }).catch(() => null)) !== null;
}

/**
 * How the database `o.database` is kept: `o.storage` when given; otherwise where a sync of
 * it already is (so an IndexedDB sync of an earlier version resumes there), else OPFS where
 * this context has it, else IndexedDB.
 * @returns {Promise<'opfs' | 'indexeddb'>}
 */
export async function chooseStorage(wasm, o) {
  if (o.storage === 'opfs' && !opfsSupported()) {
    throw new StateSyncError('BAD_OPTION', 'options.storage "opfs" needs a dedicated Worker of a browser with OPFS sync access handles; this call runs where there are none (worker: false, a WebSocket option, or an older browser)', {
      option: 'storage',
      expected: '"indexeddb" here, or run in the Worker',
    });
  }
  if (o.storage) return o.storage;
  if (!opfsSupported()) return 'indexeddb';
  if (await opfsStoreExists(o.database).catch(() => false)) return 'opfs';
  if (await indexedDbHoldsSync(wasm, o.database)) return 'indexeddb';
  return 'opfs';
}

/**
 * Opens what `kind` needs of the store the checked options name. `close()` lets go of what
 * was opened. Reading progress from OPFS takes no lock (another tab may be syncing it); a
 * verify of an OPFS store that does not exist walks an empty store.
 */
async function openStorage(wasm, kind, o) {
  const none = async () => {};
  if (o.place === 'store') return { storeOptions: { store: o.store }, storage: 'store', close: none };
  if (o.place === 'memory') return { storeOptions: { memory: true }, storage: 'memory', close: none };
  const storage = await chooseStorage(wasm, o);
  if (storage === 'indexeddb') return { storeOptions: { database: o.database }, storage, close: none };
  if (kind === 'read') return { storeOptions: { store: opfsProgressReader(o.database) }, storage, close: none };
  let store;
  try {
    store = await openOpfsStore(o.database, { memoryBytes: o.opfsMemoryBytes, create: kind === 'sync' });
  } catch (err) {
    throw opfsError(err);
  }
  if (!store) return { storeOptions: { memory: true }, storage, close: none };
  return { storeOptions: { store }, storage, store, close: () => store.close().catch(() => {}) };
}

/** Runs `kind` ('sync', 'verify' or 'read') with options checked by checkOptions. */
export async function callHere(kind, o) {
  const wasm = await loadWasm();
  const opened = await openStorage(wasm, kind, o);
  try {
    switch (kind) {
      case 'sync':
        return await runSync(wasm, o, { storeOptions: opened.storeOptions, storage: opened.storage, WebSocket: o.WebSocket ?? globalThis.WebSocket });
      case 'verify':
        return await runVerify(wasm, o, { storeOptions: opened.storeOptions });
      default:
        return await wasm.readProgress(opened.storeOptions).catch((err) => {
          throw asStateSyncError(err, 'STORE_ERROR');
        });
    }
  } finally {
    // Closed before the result is posted: another tab may open the store the moment it hears.
    await opened.close();
  }
}
