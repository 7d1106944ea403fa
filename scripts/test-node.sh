#!/usr/bin/env bash
# The Node.js tool's tests (tests/node/*.test.mjs, node:test): the CLI as child processes
# against local peers and LevelDB. Builds the wasm package first (a no-op when current).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules/classic-level ] || [ ! -d node_modules/ws ]; then
    echo "test-node: npm packages missing; installing (npm ci)" >&2
    npm ci --no-audit --no-fund
fi
bash scripts/build-wasm.sh
node --test tests/node/
