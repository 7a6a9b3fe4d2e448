#!/usr/bin/env bash
# The one command that runs every Spate test on a fresh machine, installing what the tests need.
#
# That is the Rust workspace (formatting, lints, unit tests, and the integration tests that start
# real JobMaster and worker processes) plus what the tests need: libclang and clang++ for building
# RocksDB, MinIO (an S3-compatible server, built from its Go module) for checkpoints on s3://,
# and a Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler), kubectl
# and helm built from their Go modules at the versions pinned in e2e/k8s/go/, and Apache Kafka's
# jars resolved from Maven Central (e2e/kafka/pom.xml; the Kafka tests start a KRaft broker from
# them, on Java 17). protoc comes from a vendored crate.
#
# Where the time goes on a fresh machine (docs/building.md): the Rust build (RocksDB's C++ most of
# all), then the Go tools. The Go tools build in the background, niced, while cargo compiles (on
# two cores cargo alone keeps them nine tenths busy, so the Go tools still lengthen the build by
# minutes, but less than after it); the tests and the Kubernetes checks run side by side after
# the build, as they mostly wait on rate-limited jobs. Every cargo step uses one feature
# set (the whole workspace, every feature), so no crate compiles twice and the e2e scripts reuse
# the test build's binaries; clippy lints during the test build rather than in a compilation
# of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found; install Rust (https://rustup.rs) first" >&2
    exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

started=$(date +%s)
step() { printf '\n==> %s (%ds)\n' "$1" "$(( $(date +%s) - started ))"; }
die() { echo "error: $*" >&2; exit 1; }

step "build dependencies: libclang and clang++ (RocksDB's bindings and C++)"
# shellcheck source=e2e/lib/build_deps.sh
source e2e/lib/build_deps.sh
install_build_deps

step "MinIO, then the Kubernetes control plane and helm: built from Go modules in the background"
go_logs="$(mktemp -d "${TMPDIR:-/tmp}/spate-go-tools.XXXXXX")"
# Each in its own process group (setsid), so that an early exit stops the `go` processes too;
# niced, so that cargo (the longer path) keeps its cores and Go takes what cargo leaves idle.
setsid nice -n 10 bash e2e/minio.sh install >"$go_logs/minio.log" 2>&1 &
minio_job=$!
setsid nice -n 10 bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 2; done
    exec bash e2e/k8s/tools.sh install' _ "$minio_job" >"$go_logs/tools.log" 2>&1 &
tools_job=$!
# Apache Kafka's jars: a download, beside everything else.
setsid nice -n 10 bash e2e/kafka.sh install >"$go_logs/kafka.log" 2>&1 &
kafka_job=$!
# The chart and API-server checks need the Go tools only, not the Rust build: they run as soon
# as the tools are built, beside cargo, their output kept until the build is done.
setsid nice -n 10 bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 2; done
    bash e2e/k8s/tools.sh install >/dev/null && bash e2e/chart.sh && bash e2e/k8s/smoke.sh' \
    _ "$tools_job" >"$go_logs/kubernetes-checks.log" 2>&1 &
checks_job=$!
trap 'kill -- "-$minio_job" "-$tools_job" "-$kafka_job" "-$checks_job" 2>/dev/null || true' EXIT
# wait_go JOB NAME LOG: the background build's result, with its log when it failed.
wait_go() {
    local begun
    begun=$(date +%s)
    if ! wait "$1"; then
        tail -n 40 "$3" >&2
        die "installing $2 failed (log: $3)"
    fi
    echo "$2 ready (waited $(( $(date +%s) - begun ))s)"
}

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings and the test build, in one compilation (the whole workspace, every feature)"
# `cargo clippy` would compile every dependency once more, in check mode, before the test build
# compiles them for real; RocksDB's C++ and DataFusion dominate a cold build on two cores. So
# clippy's driver compiles the workspace's own crates in the test build instead, linting each
# exactly as `cargo clippy --all-targets -- -D warnings` does (that is what cargo clippy runs,
# with these two variables), and dependencies compile once. Every cargo command below (and the
# e2e scripts' builds) sees the same variables, so none compiles anything again.
RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)" ||
    die "clippy-driver not found; install clippy (rustup component add clippy)"
export RUSTC_WORKSPACE_WRAPPER
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
cargo test --workspace --all-targets --all-features --locked --no-run
# The binaries the e2e scripts run (e2e/lib/binaries.sh): `cargo test` links a package's plain
# binaries only when it has integration tests, and the node agent has none. Built here, before
# the tests start, they cost seconds; left to the scripts, a minute fighting the tests for the
# cores and the build lock.
cargo build --workspace --all-features --bins --tests --locked

step "waiting for MinIO (the s3:// checkpoint tests start it) and Kafka (the Kafka tests start a broker)"
wait_go "$minio_job" MinIO "$go_logs/minio.log"
wait_go "$kafka_job" Kafka "$go_logs/kafka.log"

# The tests mostly wait on rate-limited jobs and so do the Kubernetes scenarios: they all run
# side by side, the tests' output kept until the scenarios are done. The tests in three lanes:
# the fault-injection suite (one test of a dozen jobs, the longest by far), the exactly-once
# binary (kill -9 and storage outages, the next longest) and all the others; each selects the
# same packages and features as the build, so nothing compiles again.
step "cargo test (unit, real-process integration and fault-injection tests), beside the Kubernetes checks below"
test_log="$go_logs/cargo-test.log"
chaos_log="$go_logs/cargo-test-chaos.log"
exactly_once_log="$go_logs/cargo-test-exactly-once.log"
chaos_test=a_seeded_schedule_of_faults_loses_and_duplicates_no_row
# The ordinary lane skips the exactly-once binary's tests by their exact names, listed from the
# binary itself, so that a test added there is never run twice nor left out.
skips=(--skip "$chaos_test")
while IFS= read -r name; do
    skips+=(--skip "$name")
done < <(cargo test --workspace --all-features --locked --test exactly_once -- --list --format terse 2>/dev/null \
    | sed -n 's/: test$//p')
[ "${#skips[@]}" -gt 2 ] || die "listing the exactly-once tests found none"
# A hang guard, not a time limit: the run takes minutes (docs/building.md); a test that hangs
# ends it within CI's budget, so that its output shows what hung.
test_timeout=1800
setsid timeout -k 30 "$test_timeout" cargo test --workspace --all-features --locked --test chaos \
    -- --exact "$chaos_test" >"$chaos_log" 2>&1 &
chaos_job=$!
setsid timeout -k 30 "$test_timeout" cargo test --workspace --all-features --locked --test exactly_once \
    >"$exactly_once_log" 2>&1 &
exactly_once_job=$!
setsid timeout -k 30 "$test_timeout" cargo test --workspace --all-features --locked \
    -- --exact "${skips[@]}" >"$test_log" 2>&1 &
test_job=$!
trap 'kill -- "-$minio_job" "-$tools_job" "-$kafka_job" "-$checks_job" "-$test_job" "-$chaos_job" "-$exactly_once_job" 2>/dev/null || true' EXIT

step "waiting for the Kubernetes tools"
wait_go "$tools_job" "the Kubernetes tools" "$go_logs/tools.log"

step "Helm chart (lint, render, refused values, CRD copy); CRD, examples and chart on a real kube-apiserver (server-side dry run, schema validation): run beside the build"
checks_rc=0
wait "$checks_job" || checks_rc=$?
cat "$go_logs/kubernetes-checks.log"
[ "$checks_rc" -eq 0 ] || die "the chart or API-server checks failed (their output is above)"

step "node agent on a real control plane (pods run as processes, as their service accounts), beside the scenarios below"
# Its own control plane, ports and pod addresses: it shares nothing with the scenarios.
smoke_log="$go_logs/node-agent-smoke.log"
setsid bash e2e/node-agent/smoke.sh >"$smoke_log" 2>&1 &
smoke_job=$!
trap 'kill -- "-$minio_job" "-$tools_job" "-$kafka_job" "-$checks_job" "-$test_job" "-$chaos_job" "-$exactly_once_job" "-$smoke_job" 2>/dev/null || true' EXIT

step "E2E on the real control plane: helm install, run, failover, JobMaster loss, scale, suspend/resume, bad input, delete"
scenarios_rc=0
bash e2e/k8s/scenarios.sh || scenarios_rc=$?

step "node agent smoke: its output"
smoke_rc=0
wait "$smoke_job" || smoke_rc=$?
cat "$smoke_log"
[ "$smoke_rc" -eq 0 ] || die "the node agent smoke failed (its output is above)"
[ "$scenarios_rc" -eq 0 ] || die "the Kubernetes scenarios failed (their output is further above)"

# wait_tests JOB LOG WHAT: a cargo test lane's output, and its failure named.
wait_tests() {
    local rc=0
    wait "$1" || rc=$?
    cat "$2"
    [ "$rc" -ne 124 ] || die "$3 did not end within ${test_timeout}s: a test hangs (its output is above)"
    [ "$rc" -eq 0 ] || die "$3 failed (its output is above)"
}
step "cargo test: its output"
wait_tests "$test_job" "$test_log" "cargo test"
step "cargo test of the exactly-once binary: its output"
wait_tests "$exactly_once_job" "$exactly_once_log" "the exactly-once tests"
step "cargo test of the fault-injection suite: its output"
wait_tests "$chaos_job" "$chaos_log" "the fault-injection suite"
rm -rf "$go_logs"

step "done"
