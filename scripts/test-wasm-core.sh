#!/usr/bin/env bash
# Runs statesync-core's unit tests compiled to wasm32-unknown-unknown, in Node.js, through
# wasm-bindgen-test-runner (configured as the wasm32 runner in .cargo/config.toml), and checks
# that wasm ran every unit test that native runs: a test missing the wasm_bindgen_test import
# is silently skipped on wasm, so the counts must match.
#
# Needs the wasm32 target, wasm-bindgen-test-runner and Node.js (scripts/setup.sh installs
# them). Exits non-zero if a test fails or the counts differ. Extra arguments (such as
# --release) go to both cargo commands.
set -euo pipefail

cd "$(dirname "$0")/.."

for tool in wasm-bindgen-test-runner node; do
    if ! command -v "$tool" >/dev/null; then
        echo "test-wasm-core: $tool not found; run scripts/setup.sh" >&2
        exit 1
    fi
done

# Native unit tests of core with default features (so not those behind `json`), listed
# without running them.
native=$(cargo test -q -p statesync-core --lib "$@" -- --list --format terse 2>/dev/null |
    grep -c ': test$' || true)
if [ "$native" -eq 0 ]; then
    echo "test-wasm-core: could not list core's native unit tests" >&2
    exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Integration tests under core/tests that read files compile to nothing on wasm32.
status=0
cargo test -p statesync-core --target wasm32-unknown-unknown "$@" 2>&1 | tee "$log" ||
    status=$?
if [ "$status" -ne 0 ]; then
    echo "test-wasm-core: wasm tests failed (exit $status)" >&2
    exit "$status"
fi

# The unit tests' result is the first one after cargo starts the lib's test binary.
wasm=$(awk '/Running unittests src\/lib\.rs/ { lib = 1 }
    lib && /test result:/ {
        for (i = 1; i <= NF; i++) if ($i ~ /^(passed|ignored);?$/) n += $(i - 1)
        print n + 0; exit
    }' "$log")
echo "test-wasm-core: ${wasm:-0} unit tests ran on wasm32, $native natively"
if [ "${wasm:-0}" -ne "$native" ]; then
    echo "test-wasm-core: wasm ran ${wasm:-0} unit tests, native has $native" >&2
    exit 1
fi
