#!/usr/bin/env bash
# The fault-injection soak (issue 14): the whole job matrix of runtime/cli/tests/chaos for 10
# minutes, a fault every 20 s (kill -9 of workers and JobMasters, storage errors, slow storage,
# MinIO outages up to 60 s, full and slow local disks), every round's committed output checked
# against its reference.
# Prints the schedule, each fault as it lands, and a table of rounds, restarts, rows, lost and
# duplicated; the latest result is recorded in docs/chaos.md.
#
#   bash e2e/chaos-soak.sh                  a new seed
#   SPATE_CHAOS_SEED=1234 bash e2e/chaos-soak.sh      replay a schedule
#   SPATE_CHAOS_SECONDS=1200 bash e2e/chaos-soak.sh   longer
#
# It builds what the test command builds (the same flags, so after `bash e2e/test.sh` nothing
# compiles) and installs MinIO when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=e2e/lib/build_deps.sh
source e2e/lib/build_deps.sh
install_build_deps
bash e2e/minio.sh install
exec cargo test --workspace --all-features --locked --test chaos -- --ignored --exact soak --nocapture
