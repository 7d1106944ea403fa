// The one place Node.js finds the WebAssembly build: web/pkg (wasm-bindgen's `web` target,
// ES modules), instantiated from the .wasm file beside it. Browsers and bundlers use
// wasm-browser.mjs, over the same files.

import { readFile } from 'node:fs/promises';

import { StateSyncError } from './errors.mjs';

const MODULE = new URL('../pkg/statesync_wasm.js', import.meta.url);
const BINARY = new URL('../pkg/statesync_wasm_bg.wasm', import.meta.url);

let loading;

/**
 * The initialised wasm package (StateSync, StateSource, verifyStore, …). Loaded once; rejects
 * with NOT_BUILT when web/pkg is missing (a checkout where `npm run build` has not run).
 */
export function loadWasm() {
  loading ??= (async () => {
    let wasm;
    let bytes;
    try {
      [wasm, bytes] = await Promise.all([import(MODULE.href), readFile(BINARY)]);
    } catch (err) {
      throw new StateSyncError('NOT_BUILT', `the WebAssembly build is missing (${err.code ?? err.message}): run 'npm run build' (scripts/build-wasm.sh)`, {}, { cause: err });
    }
    await wasm.default({ module_or_path: bytes });
    return wasm;
  })();
  return loading;
}

/**
 * A separate instance of the wasm package, with its own linear memory (benchmarks: a peer's
 * serving state apart from the engine's memory). Resolves with the package and its exports.
 */
export async function loadWasmInstance(tag) {
  const url = new URL(MODULE.href);
  url.searchParams.set('instance', String(tag));
  const [wasm, bytes] = await Promise.all([import(url.href), readFile(BINARY)]);
  const exports = await wasm.default({ module_or_path: bytes });
  return { wasm, memory: exports.memory };
}
