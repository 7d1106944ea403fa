#!/usr/bin/env bash
# The main job: sync the mainnet genesis state and verify its root.
# Until the Node.js tool lands (issue 5) this is the native engine against an in-process source.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --release -p statesync-tests --bin native-sync -- "$@"
