#!/usr/bin/env bash
# The one command that runs every Spate test on a fresh machine, installing what the tests need.
#
# Today that is the Rust workspace: formatting, lints, unit tests, and the integration tests that
# start real JobMaster and worker processes. protoc comes from a vendored crate, so nothing else
# has to be installed yet; the Kubernetes e2e suite will hook in here.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found; install Rust (https://rustup.rs) first" >&2
    exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

started=$(date +%s)
step() { printf '\n==> %s (%ds)\n' "$1" "$(( $(date +%s) - started ))"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (unit and real-process integration tests)"
cargo test --workspace --locked

step "done"
