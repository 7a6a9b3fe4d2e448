# test_binaries [release]: sets SPATE_BIN, SPATE_OPERATOR_BIN and SPATE_NODE_AGENT (those not set
# already) to the binaries of the test build (debug; `release` for an optimized build). They are built with exactly the flags of e2e/test.sh's
# `cargo test` (the whole workspace, every feature, dev-dependencies' features unified), so after
# that step this costs nothing; a narrower `cargo build -p ...` would resolve other features and
# compile DataFusion and kube a second time. Sourced by the e2e scripts, which define `die`.
test_binaries() {
    local target="${CARGO_TARGET_DIR:-target}" profile="${1:-debug}" flags=()
    [ "$profile" = release ] && flags=(--release)
    if [ -z "${SPATE_BIN:-}" ] || [ -z "${SPATE_OPERATOR_BIN:-}" ] || [ -z "${SPATE_NODE_AGENT:-}" ]; then
        cargo build ${flags[@]+"${flags[@]}"} --workspace --all-features --bins --tests --locked >&2 || die "cargo build failed"
    fi
    SPATE_BIN="$(readlink -f "${SPATE_BIN:-$target/$profile/spate}")"
    SPATE_OPERATOR_BIN="$(readlink -f "${SPATE_OPERATOR_BIN:-$target/$profile/spate-operator}")"
    SPATE_NODE_AGENT="$(readlink -f "${SPATE_NODE_AGENT:-$target/$profile/spate-node-agent}")"
    local bin
    for bin in "$SPATE_BIN" "$SPATE_OPERATOR_BIN" "$SPATE_NODE_AGENT"; do
        [ -x "$bin" ] || die "$bin is not an executable"
    done
}
