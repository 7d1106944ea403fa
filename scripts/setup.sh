#!/usr/bin/env bash
# Installs what building and testing this repository needs beyond Rust and Node.js 20, on a
# Debian machine, as root: the wasm32 target, wasm-bindgen-cli at the exact version Cargo.toml
# pins, wasm-pack, Debian's Chromium and ChromeDriver (browser tests), and the npm packages.
#
# Idempotent: whatever is already there is skipped, and a run with nothing to do prints
# nothing. Fuzzing tools are not installed here; see core/fuzz/README.md.
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

say() { printf 'setup: %s\n' "$*"; }
fail() {
    printf 'setup: %s\n' "$*" >&2
    exit 1
}

command -v rustup >/dev/null || fail "rustup not found; install Rust with rustup first"
command -v cargo >/dev/null || fail "cargo not found; install Rust with rustup first"

# `cargo install --locked` takes the versions in the crate's own lock file; when that does not
# resolve against this registry, fall back to a fresh resolution.
cargo_install() {
    local crate=$1
    shift
    if ! cargo install --locked "$crate" "$@"; then
        say "cargo install --locked $crate failed; retrying without --locked"
        cargo install "$crate" "$@"
    fi
}

# 1. The wasm32 target.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "adding the rust target wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
fi

# 2. wasm-bindgen-cli: its version must equal the wasm-bindgen crate's, which Cargo.toml pins
# as `wasm-bindgen = "=X.Y.Z"`.
bindgen_version=$(sed -n 's/^wasm-bindgen[[:space:]]*=[[:space:]]*"=\([0-9][0-9.]*\)".*/\1/p' Cargo.toml |
    head -n 1)
[ -n "$bindgen_version" ] ||
    fail "no exact wasm-bindgen pin (wasm-bindgen = \"=X.Y.Z\") found in Cargo.toml"
installed_bindgen=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$installed_bindgen" != "$bindgen_version" ] || ! command -v wasm-bindgen-test-runner >/dev/null; then
    say "installing wasm-bindgen-cli $bindgen_version (found: ${installed_bindgen:-none})"
    cargo_install wasm-bindgen-cli --version "$bindgen_version"
    installed_bindgen=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
    [ "$installed_bindgen" = "$bindgen_version" ] ||
        fail "wasm-bindgen is ${installed_bindgen:-missing} after installing $bindgen_version"
fi

# 3. wasm-pack.
if ! command -v wasm-pack >/dev/null; then
    say "installing wasm-pack"
    cargo_install wasm-pack
fi

# 4. Chromium and ChromeDriver from Debian, for the headless browser tests.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    if [ "$(id -u)" -eq 0 ]; then
        as_root=()
    elif command -v sudo >/dev/null; then
        as_root=(sudo)
    else
        fail "chromium and chromium-driver are missing and this is not root: apt-get install chromium chromium-driver"
    fi
    say "installing chromium and chromium-driver with apt-get"
    "${as_root[@]}" apt-get update -q
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q chromium chromium-driver
fi

# 5. npm packages, when package.json has any and node_modules is missing or older than the
# lock file (npm keeps its own copy of the lock in node_modules/.package-lock.json).
if [ -f package.json ]; then
    command -v npm >/dev/null || fail "npm not found; install Node.js 20"
    has_deps=$(node -e '
        const p = require("./package.json");
        const all = { ...p.dependencies, ...p.devDependencies, ...p.optionalDependencies };
        console.log(Object.keys(all).length > 0 ? "yes" : "no");')
    installed_lock=node_modules/.package-lock.json
    if [ "$has_deps" = yes ]; then
        if [ -f package-lock.json ]; then
            if [ ! -f "$installed_lock" ] || [ package-lock.json -nt "$installed_lock" ]; then
                say "installing npm packages (npm ci)"
                npm ci --no-audit --no-fund
            fi
        elif [ ! -f "$installed_lock" ] || [ package.json -nt "$installed_lock" ]; then
            say "installing npm packages (npm install)"
            npm install --no-audit --no-fund
            # npm install may write package-lock.json after its own copy; keep them in order.
            touch "$installed_lock"
        fi
    fi
fi
