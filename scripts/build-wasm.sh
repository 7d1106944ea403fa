#!/usr/bin/env bash
# Builds the WebAssembly package into web/pkg: wasm-bindgen's `web` target (ES modules), the one
# build that browsers, bundlers and Node.js all load (web/lib/wasm-browser.mjs and
# web/lib/wasm-node.mjs are its only importers). Skips work when nothing changed. Also the
# package's `prepack`, so `npm pack` always holds a current module.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

# Cargo writes where CARGO_TARGET_DIR says, when set (a shared target directory).
profile_dir="${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/release"
wasm="$profile_dir/statesync_wasm.wasm"
out=web/pkg
stamp="$out/.built-from"

cargo build --quiet --release --locked --target wasm32-unknown-unknown -p statesync-wasm
sum=$(sha256sum "$wasm" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] && [ -f "$out/statesync_wasm_bg.wasm" ]; then
  exit 0
fi

rm -rf "$out"
wasm-bindgen --target web --out-dir "$out" "$wasm"

# Debian's wasm-opt is too old for this module; the npm package's is current.
opt=node_modules/.bin/wasm-opt
file="$out/statesync_wasm_bg.wasm"
if [ -x "$opt" ]; then
  "$opt" -O3 --enable-reference-types --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-multivalue -o "$file.opt" "$file"
  mv "$file.opt" "$file"
else
  echo "build-wasm: $opt not found (run npm install); the module is not optimised" >&2
fi
echo "$sum" > "$stamp"
raw=$(stat -c %s "$file")
gz=$(gzip -9 -c "$file" | wc -c)
echo "build-wasm: statesync_wasm_bg.wasm $raw bytes, $gz gzipped"
