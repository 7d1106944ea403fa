// syncState / verifyState / readProgress on the calling thread of a browser: what the Worker
// runs, and what `worker: false` (or a JavaScript `store`) runs on the page's own thread.

import { asStateSyncError } from './errors.mjs';
import { runSync, runVerify } from './orchestrate.mjs';
import { loadWasm } from './wasm-browser.mjs';

/** The engine's store options for checked options: IndexedDB, a JS store or memory. */
function storeOptionsOf(o) {
  if (o.storage === 'store') return { store: o.store };
  if (o.storage === 'memory') return { memory: true };
  return { database: o.database };
}

/** Runs `kind` ('sync', 'verify' or 'read') with options checked by checkOptions. */
export async function callHere(kind, o) {
  const wasm = await loadWasm();
  const storeOptions = storeOptionsOf(o);
  switch (kind) {
    case 'sync':
      return runSync(wasm, o, { storeOptions, WebSocket: o.WebSocket ?? globalThis.WebSocket });
    case 'verify':
      return runVerify(wasm, o, { storeOptions });
    default:
      return wasm.readProgress(storeOptions).catch((err) => {
        throw asStateSyncError(err, 'STORE_ERROR');
      });
  }
}
