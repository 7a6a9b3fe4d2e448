#!/usr/bin/env bash
# Apache Kafka, a single KRaft broker (broker and controller in one process), for the Kafka
# connector's tests.
#
#   bash e2e/kafka.sh install   resolve the pinned broker from Maven Central (e2e/kafka/pom.xml)
#                               into $SPATE_TOOLS/kafka-<version>/libs unless it is there
#                               (needs Java 17 and Maven; a download the first time)
#   bash e2e/kafka.sh start     install, format a fresh log directory, start the broker on free
#                               127.0.0.1 ports, wait until it has started, and print `export`
#                               lines:
#                                 eval "$(bash e2e/kafka.sh start)"
#   bash e2e/kafka.sh stop      stop the broker `start` printed (reads SPATE_KAFKA_PID and
#                               SPATE_KAFKA_DIR from the environment)
#
# SPATE_TOOLS defaults to /var/tmp/spate-tools.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$HERE/kafka/pom.xml"
VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")"
TOOLS="${SPATE_TOOLS:-/var/tmp/spate-tools}"
LIBS="$TOOLS/kafka-$VERSION/libs"
STARTUP_SECONDS=120

die() {
    echo "error: $*" >&2
    exit 1
}

install_kafka() {
    if [ -f "$LIBS/.complete" ]; then
        return
    fi
    command -v java >/dev/null 2>&1 || die "java not found; Kafka $VERSION needs Java 17 or newer"
    command -v mvn >/dev/null 2>&1 || die "mvn not found; install Maven to resolve Kafka from Maven Central"
    echo "resolving Apache Kafka $VERSION from Maven Central into $LIBS" >&2
    rm -rf "$LIBS"
    mkdir -p "$LIBS"
    mvn -q -B -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$LIBS" >&2 || die "resolving Kafka $VERSION failed"
    # Written last: an interrupted install is redone, not half used.
    touch "$LIBS/.complete"
}

# shellcheck source=e2e/lib/free_port.sh
source "$HERE/lib/free_port.sh"

run_class() {
    java -Xms256m -Xmx512m -XX:+UseSerialGC -cp "$LIBS/*" "$@"
}

start_kafka() {
    install_kafka
    local dir port controller_port pid cluster
    dir="$(mktemp -d "${TMPDIR:-/tmp}/spate-kafka.XXXXXX")"
    port="$(free_port)"
    controller_port="$(free_port)"
    while [ "$controller_port" = "$port" ]; do
        controller_port="$(free_port)"
    done
    # One node that is broker and controller; every internal topic with one replica, and no
    # topic made by reading or writing it, so a test's missing topic is an error, as a user's
    # would be on a cluster configured so.
    cat >"$dir/server.properties" <<PROPERTIES
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/logs
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
PROPERTIES
    cluster="$(run_class kafka.tools.StorageTool random-uuid)"
    run_class kafka.tools.StorageTool format -t "$cluster" -c "$dir/server.properties" \
        >"$dir/format.log" 2>&1 || {
        cat "$dir/format.log" >&2
        die "formatting the Kafka log directory failed (log above)"
    }
    nohup java -Xms256m -Xmx512m -XX:+UseSerialGC -Dlog4j2.level=INFO \
        -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 </dev/null &
    pid=$!
    local deadline=$((SECONDS + STARTUP_SECONDS))
    until grep -q "Kafka Server started" "$dir/kafka.log" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 50 "$dir/kafka.log" >&2
            die "Kafka exited while starting (log above)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            kill "$pid" 2>/dev/null || true
            tail -n 50 "$dir/kafka.log" >&2
            die "Kafka had not started after ${STARTUP_SECONDS}s (log above)"
        fi
        sleep 0.2
    done
    printf 'export SPATE_KAFKA_PID=%s\n' "$pid"
    printf 'export SPATE_KAFKA_DIR=%s\n' "$dir"
    printf 'export SPATE_KAFKA_BOOTSTRAP=127.0.0.1:%s\n' "$port"
}

stop_kafka() {
    [ -n "${SPATE_KAFKA_PID:-}" ] || die "SPATE_KAFKA_PID is not set (eval the output of start)"
    kill "$SPATE_KAFKA_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$SPATE_KAFKA_PID" 2>/dev/null || break
        sleep 0.2
    done
    kill -KILL "$SPATE_KAFKA_PID" 2>/dev/null || true
    if [ -n "${SPATE_KAFKA_DIR:-}" ] && [ -f "$SPATE_KAFKA_DIR/server.properties" ]; then
        rm -rf "$SPATE_KAFKA_DIR"
    fi
}

case "${1:-}" in
    install) install_kafka ;;
    start) start_kafka ;;
    stop) stop_kafka ;;
    *) die "usage: $0 install|start|stop" ;;
esac
