// The one place browsers (and bundlers) find the WebAssembly build: web/pkg, wasm-bindgen's
// `web` target. Its loader fetches `new URL('statesync_wasm_bg.wasm', import.meta.url)`, the
// pattern Vite, webpack and esbuild rewrite to the emitted asset.

import init, * as wasm from '../pkg/statesync_wasm.js';

let loading;

/** The initialised wasm package; the module is fetched and compiled once per thread. */
export function loadWasm() {
  loading ??= init().then(() => wasm);
  return loading;
}
