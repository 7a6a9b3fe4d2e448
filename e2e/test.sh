#!/usr/bin/env bash
# The one command that runs every Spate test on a fresh machine, installing what the tests need.
#
# That is the Rust workspace (formatting, lints, unit tests, and the integration tests that start
# real JobMaster and worker processes) plus what the tests need: libclang for building RocksDB,
# MinIO (an S3-compatible server, built from its Go module) for checkpoints on s3://, and a
# Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler), kubectl and
# helm built from their Go modules at the versions pinned in e2e/k8s/go/. protoc comes from a
# vendored crate.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found; install Rust (https://rustup.rs) first" >&2
    exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

started=$(date +%s)
step() { printf '\n==> %s (%ds)\n' "$1" "$(( $(date +%s) - started ))"; }

step "build dependencies: libclang (RocksDB's bindings)"
if ! ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 && ! ldconfig -p 2>/dev/null | grep -q libclang; then
    sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
    sudo_if_needed apt-get update -qq
    DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq libclang-dev >/dev/null
fi

step "MinIO for the s3:// checkpoint tests"
bash e2e/minio.sh install

step "Kubernetes control plane and helm, built once from their Go modules"
bash e2e/k8s/tools.sh install

step "Helm chart: lint, render, refused values, CRD copy"
bash e2e/chart.sh

step "CRD, examples and chart on a real kube-apiserver (server-side dry run, schema validation)"
bash e2e/k8s/smoke.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (unit and real-process integration tests)"
cargo test --workspace --locked

step "the operator's optional OpenTelemetry exporter (feature otel): tests and lints"
cargo test -p spate-operator --features otel --locked
cargo clippy -p spate-operator --features otel --all-targets --locked -- -D warnings

step "node agent on the real control plane: pods run as processes, as their service accounts"
bash e2e/node-agent/smoke.sh

step "E2E on the real control plane: helm install, run, failover, JobMaster loss, scale, suspend/resume, bad input, delete"
bash e2e/k8s/scenarios.sh

step "done"
