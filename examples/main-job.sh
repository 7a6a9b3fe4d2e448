#!/usr/bin/env bash
# The README's main job: Nexmark's bids counted per auction in 10-second windows sliding every 2
# seconds (examples/q5_hop_count.sql, 10 million events) at parallelism 2 on an embedded cluster,
# with a checkpoint every second. Installs what the build needs first (libclang and clang++, for
# RocksDB's bindings and C++), then builds `spate` in release mode and runs it. More `spate run` flags may follow:
#
#   bash examples/main-job.sh [--state-backend rocksdb] ...
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=e2e/lib/build_deps.sh
source e2e/lib/build_deps.sh
install_build_deps
exec cargo run --release --locked --bin spate -- \
    run -p 2 --checkpoint-interval-ms 1000 "$@" examples/q5_hop_count.sql
