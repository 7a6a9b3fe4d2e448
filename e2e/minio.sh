#!/usr/bin/env bash
# MinIO, an S3-compatible server, for testing checkpoint storage on s3:// locally.
#
#   bash e2e/minio.sh install   build the pinned MinIO into $SPATE_TOOLS/bin unless it is there
#                               (needs Go; takes a few minutes the first time)
#   bash e2e/minio.sh start     install, start MinIO on a free 127.0.0.1 port with a fresh data
#                               directory, fixed test credentials and the bucket `spate`, wait
#                               until it is live, and print `export` lines:
#                                 eval "$(bash e2e/minio.sh start)"
#   bash e2e/minio.sh stop      stop the server `start` printed (reads SPATE_MINIO_PID and
#                               SPATE_MINIO_DIR from the environment)
#
# The Rust tests (runtime/checkpoint/tests/support/minio.rs) start their own server from the
# installed binary; `start` is for trying things by hand (spate run with an s3:// storage).
# SPATE_TOOLS defaults to /var/tmp/spate-tools; SPATE_MINIO overrides the binary's path.
set -euo pipefail

MINIO_MODULE="github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"
TOOLS="${SPATE_TOOLS:-/var/tmp/spate-tools}"
BINARY="${SPATE_MINIO:-$TOOLS/bin/minio}"
ACCESS_KEY="spate-test"
SECRET_KEY="spate-test-secret"
BUCKET="spate"
STARTUP_SECONDS=60

die() {
    echo "error: $*" >&2
    exit 1
}

install_minio() {
    if [ -x "$BINARY" ]; then
        return
    fi
    [ -z "${SPATE_MINIO:-}" ] || die "SPATE_MINIO=$SPATE_MINIO is not an executable"
    command -v go >/dev/null 2>&1 || die "go not found; install Go (https://go.dev/dl) to build MinIO"
    echo "building MinIO ($MINIO_MODULE) into $TOOLS/bin; this takes a few minutes" >&2
    mkdir -p "$TOOLS/bin"
    # No inlining, as for the Kubernetes tools (e2e/k8s/tools.sh): a fifth less compiler time, and
    # the tests' checkpoints are small.
    GOBIN="$(cd "$TOOLS/bin" && pwd)" go install -gcflags "all=-l" "$MINIO_MODULE" >&2
    [ -x "$BINARY" ] || die "go install finished but $BINARY is missing"
}

# shellcheck source=e2e/lib/free_port.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/free_port.sh"

# The HTTP status of the liveness probe, or nothing while MinIO does not answer.
health_status() {
    local port=$1 status
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 0
    printf 'GET /minio/health/live HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$port" >&3
    read -r -t 2 _ status _ <&3 || true
    exec 3>&-
    echo "${status:-}"
}

start_minio() {
    install_minio
    local dir port pid
    # MinIO refuses writes once its drive is 99% full; memory-backed /dev/shm avoids a nearly
    # full build disk.
    local root="${TMPDIR:-/tmp}"
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then
        root=/dev/shm
    fi
    dir="$(mktemp -d "$root/spate-minio.XXXXXX")"
    # A top-level directory of a fresh data directory is served as a bucket.
    mkdir -p "$dir/data/$BUCKET"
    port="$(free_port)"
    MINIO_ROOT_USER="$ACCESS_KEY" MINIO_ROOT_PASSWORD="$SECRET_KEY" \
        MINIO_BROWSER=off MINIO_UPDATE=off \
        nohup "$BINARY" server "$dir/data" --address "127.0.0.1:$port" --quiet \
        >"$dir/minio.log" 2>&1 </dev/null &
    pid=$!
    local deadline=$((SECONDS + STARTUP_SECONDS))
    until [ "$(health_status "$port" 2>/dev/null)" = "200" ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$dir/minio.log" >&2
            die "MinIO exited while starting (log above)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            kill "$pid" 2>/dev/null || true
            cat "$dir/minio.log" >&2
            die "MinIO was not live after ${STARTUP_SECONDS}s (log above)"
        fi
        sleep 0.2
    done
    printf 'export SPATE_MINIO_PID=%s\n' "$pid"
    printf 'export SPATE_MINIO_DIR=%s\n' "$dir"
    printf 'export SPATE_MINIO_ENDPOINT=http://127.0.0.1:%s\n' "$port"
    printf 'export SPATE_MINIO_BUCKET=%s\n' "$BUCKET"
    printf 'export AWS_ACCESS_KEY_ID=%s\n' "$ACCESS_KEY"
    printf 'export AWS_SECRET_ACCESS_KEY=%s\n' "$SECRET_KEY"
    printf 'export AWS_REGION=us-east-1\n'
    printf '# checkpoint storage: s3://%s/<prefix> with endpoint=http://127.0.0.1:%s allow_http=true\n' \
        "$BUCKET" "$port"
}

stop_minio() {
    [ -n "${SPATE_MINIO_PID:-}" ] || die "SPATE_MINIO_PID is not set (eval the output of start)"
    kill "$SPATE_MINIO_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$SPATE_MINIO_PID" 2>/dev/null || break
        sleep 0.2
    done
    kill -KILL "$SPATE_MINIO_PID" 2>/dev/null || true
    if [ -n "${SPATE_MINIO_DIR:-}" ] && [ -d "$SPATE_MINIO_DIR/data" ]; then
        rm -rf "$SPATE_MINIO_DIR"
    fi
}

case "${1:-}" in
    install) install_minio ;;
    start) start_minio ;;
    stop) stop_minio ;;
    *) die "usage: $0 install|start|stop" ;;
esac
