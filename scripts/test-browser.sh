#!/usr/bin/env bash
# The browser-side tests: builds the wasm package, runs the bindings' tests in headless
# Chromium (IndexedDB store) and in Node.js, then the page's end-to-end test in headless
# Chromium. Every step runs even when an earlier one failed; the exit status is non-zero if
# any failed. Needs what scripts/setup.sh installs (wasm-pack, wasm-bindgen-cli, Chromium,
# ChromeDriver, npm packages).
#
#   bash scripts/test-browser.sh
#
# CHROMEDRIVER and CHROMIUM override /usr/bin/chromedriver and /usr/bin/chromium.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

chromedriver=${CHROMEDRIVER:-/usr/bin/chromedriver}
# wasm-bindgen-test-runner gives the whole browser run 20 s and ChromeDriver 5 s to start: a
# busy machine must not fail the suite, so these only stop a hung run.
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-900}
export WASM_BINDGEN_TEST_DRIVER_TIMEOUT=${WASM_BINDGEN_TEST_DRIVER_TIMEOUT:-120}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=()

# step NAME SUMMARY-PATTERN COMMAND...: runs COMMAND with its output in a log, prints the
# log's summary lines and the time taken, and the whole log when the command failed.
step() {
    local name=$1 pattern=$2
    shift 2
    local log="$logs/$name.log" began=$SECONDS
    printf '\n== %s\n' "$name"
    if "$@" >"$log" 2>&1; then
        grep -E "$pattern" "$log" || true
        printf -- '-- %s: ok (%ds)\n' "$name" $((SECONDS - began))
    else
        cat "$log"
        printf -- '-- %s: FAILED (%ds)\n' "$name" $((SECONDS - began))
        failed+=("$name")
    fi
}

step "build the wasm package" '^build-wasm' bash scripts/build-wasm.sh
if [ ! -f web/pkg/statesync_wasm_bg.wasm ]; then
    echo "test-browser: no wasm package; stopping" >&2
    exit 1
fi
module=web/pkg/statesync_wasm_bg.wasm
printf 'test-browser: %s is %d bytes, %d gzipped\n' "$module" "$(stat -c %s "$module")" \
    "$(gzip -9 -c "$module" | wc -c)"

# --release reuses the dependencies the package build just compiled: the test profile
# (opt-level 3 with debug info for every dependency) costs about five more minutes on a cold
# cache on two cores. The tests run the same without it.
# wasm-bindgen-test-runner reads wasm/webdriver.json (Chromium's path and flags).
step "wasm-pack test --headless --chrome wasm" '^test result: .* [1-9][0-9]* passed|^test [a-z0-9_]+ \.\.\. ' \
    wasm-pack test --release --headless --chrome --chromedriver "$chromedriver" wasm
step "wasm-pack test --node wasm" '^test result: .* [1-9][0-9]* passed|^test [a-z0-9_]+ \.\.\. ' \
    wasm-pack test --release --node wasm
step "end-to-end in headless Chromium" '^# (tests|pass|fail|cancelled|skipped|duration_ms) |^# [a-z]+ peer:|^# reloaded|^# first tab|^# main thread|^(not )?ok ' \
    node --test tests/e2e/browser.test.mjs

echo
if [ ${#failed[@]} -gt 0 ]; then
    printf 'test-browser: FAILED: %s\n' "${failed[*]}"
    exit 1
fi
echo "test-browser: all passed (${SECONDS}s)"
