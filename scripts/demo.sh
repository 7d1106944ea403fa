#!/usr/bin/env bash
# The main job (`npm run demo`): three local peers serve the mainnet genesis state, the Node.js
# tool syncs it into ./statesync-data with a progress bar, verifies the root, and serves the
# browser page so the same sync can be watched there. Arguments go to `statesync demo`
# (e.g. `npm run demo -- --fresh`, `--exit`; see `node web/cli/cli.mjs demo --help`).
#
# Sets up what is missing first, idempotently and quietly when nothing is: the npm packages,
# the wasm32 target and wasm-bindgen-cli (through scripts/setup.sh), the wasm package.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

say() { printf 'demo: %s\n' "$*" >&2; }

command -v node >/dev/null || { say "node not found; install Node.js 20 or newer"; exit 1; }
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || { say "Node.js $(node --version) is too old; 20 or newer is needed"; exit 1; }

# npm packages: missing, or older than the lock file (npm keeps its copy in node_modules).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "installing npm packages (npm ci)"
    npm ci --no-audit --no-fund
fi

# The Rust side: the wasm32 target and the wasm-bindgen-cli version Cargo.toml pins.
pin=$(sed -n 's/^wasm-bindgen[[:space:]]*=[[:space:]]*"=\([0-9][0-9.]*\)".*/\1/p' Cargo.toml | head -n 1)
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown || [ "$have" != "$pin" ]; then
    say "installing the wasm toolchain (scripts/setup.sh)"
    bash scripts/setup.sh
fi

# The wasm package (skips work when the module is unchanged).
if [ ! -f web/pkg/statesync_wasm_bg.wasm ]; then
    say "building the WebAssembly package (first run: a minute or two)"
fi
bash scripts/build-wasm.sh

exec node web/cli/cli.mjs demo "$@"
