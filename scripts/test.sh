#!/usr/bin/env bash
# Every test, after installing what is missing. CI runs exactly this (through `npm test`).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "setup"
bash scripts/setup.sh

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "native tests (core, simulator, scenarios)"
cargo test --workspace --locked

step "core unit tests on wasm32 (Node)"
bash scripts/test-wasm-core.sh

step "Node.js tool (CLI, LevelDB, peers over WebSockets)"
bash scripts/test-node.sh

step "browser: IndexedDB store in Chromium, bindings in Node, the page end to end"
bash scripts/test-browser.sh

step "the npm package: packed, installed outside the repository, used from Node.js, tsc, Vite and Chromium"
# The package's JavaScript and the example page, type-checked from their JSDoc (tsconfig.json;
# needs web/pkg's declarations, built by the steps above), then the packed package.
node_modules/.bin/tsc -p tsconfig.json
node --test tests/package/
