#!/usr/bin/env bash
# Apache Kafka for the Kafka connector's tests: the pinned broker's jars (e2e/kafka/pom.xml),
# resolved from Maven Central into $SPATE_TOOLS/kafka-<version>/libs unless they are there. Needs
# Java 17 and Maven; a download the first time. The tests start a single KRaft node from them
# (spate-testkit's `kafka` module), on free 127.0.0.1 ports with a fresh log directory.
#
#   bash e2e/kafka.sh install
#
# SPATE_TOOLS defaults to /var/tmp/spate-tools.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$HERE/kafka/pom.xml"
VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")"
TOOLS="${SPATE_TOOLS:-/var/tmp/spate-tools}"
LIBS="$TOOLS/kafka-$VERSION/libs"

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

case "${1:-}" in
    install) install_kafka ;;
    *) die "usage: $0 install" ;;
esac
