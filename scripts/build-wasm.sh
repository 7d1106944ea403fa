#!/usr/bin/env bash
# Builds the WebAssembly package twice over one compiled module: web/pkg/web (ES module for
# browsers) and web/pkg/node (CommonJS for Node.js). Skips work when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

profile_dir=target/wasm32-unknown-unknown/release
wasm="$profile_dir/statesync_wasm.wasm"
out=web/pkg
stamp="$out/.built-from"

cargo build --quiet --release --locked --target wasm32-unknown-unknown -p statesync-wasm
sum=$(sha256sum "$wasm" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] && [ -f "$out/web/statesync_wasm_bg.wasm" ] && [ -f "$out/node/statesync_wasm_bg.wasm" ]; then
  exit 0
fi

rm -rf "$out/web" "$out/node"
wasm-bindgen --target web --out-dir "$out/web" "$wasm"
wasm-bindgen --target nodejs --out-dir "$out/node" "$wasm"
# The root package is ESM; this output is CommonJS.
echo '{ "type": "commonjs" }' > "$out/node/package.json"

# Debian's wasm-opt is too old for this module; the npm package's is current.
opt=node_modules/.bin/wasm-opt
if [ -x "$opt" ]; then
  for target in web node; do
    file="$out/$target/statesync_wasm_bg.wasm"
    "$opt" -O3 --enable-reference-types --enable-bulk-memory --enable-nontrapping-float-to-int \
      --enable-sign-ext --enable-multivalue -o "$file.opt" "$file"
    mv "$file.opt" "$file"
  done
else
  echo "build-wasm: $opt not found (run npm install); the module is not optimised" >&2
fi
echo "$sum" > "$stamp"
raw=$(stat -c %s "$out/web/statesync_wasm_bg.wasm")
gz=$(gzip -9 -c "$out/web/statesync_wasm_bg.wasm" | wc -c)
echo "build-wasm: statesync_wasm_bg.wasm $raw bytes, $gz gzipped"
