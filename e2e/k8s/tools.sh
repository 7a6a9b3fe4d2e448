#!/usr/bin/env bash
# The binaries of a real Kubernetes control plane (and helm), built from pinned Go modules.
#
#   bash e2e/k8s/tools.sh install [NAME...]   build what is missing or out of date into
#                                              $SPATE_TOOLS/bin (all tools, or only NAMEs)
#   bash e2e/k8s/tools.sh path NAME            print a tool's path (does not build)
#   bash e2e/k8s/tools.sh list                 the tools and whether each is up to date
#
# Tools, built in this order: helm, etcd, kube-apiserver, kubectl, kube-controller-manager,
# kube-scheduler. The versions are pinned by the Go modules in e2e/k8s/go/ (one module each for
# helm, etcd and Kubernetes, because their dependency graphs disagree). A stamp next to each
# binary records what it was built from (go.mod, go.sum, flags, Go version); an unchanged stamp
# means no rebuild, so a second `install` takes well under a second.
#
# Pinned: Kubernetes v1.36.3 (staging modules v0.36.3), etcd v3.6.16, helm v3.22.0. Needs Go 1.26
# (go or /usr/local/go/bin/go). Built without inlining (GCFLAGS below). The first build of
# everything, with inlining, took 15 minutes on 2 busy cores
# (helm 2.7, etcd 0.9, kube-apiserver 7.2, kubectl 1.0, kube-controller-manager 3.0,
# kube-scheduler 0.2) and adds about 3.6 GB to the Go build cache and 1.5 GB of downloaded
# modules; the binaries take 360 MB. SPATE_TOOLS defaults to /var/tmp/spate-tools, shared with
# e2e/minio.sh.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
MODULES="$HERE/go"
TOOLS="${SPATE_TOOLS:-/var/tmp/spate-tools}"
BIN="$TOOLS/bin"
STAMPS="$TOOLS/stamps"

# The version of MODULE required by the go.mod in DIR (the pins live there, nowhere else).
module_version() {
    awk -v m="$2" '$1 == "require" { $1 = ""; $0 = $0 } $1 == m { print $2; exit }' "$1/go.mod"
}

ALL_TOOLS=(helm etcd kube-apiserver kubectl kube-controller-manager kube-scheduler)

# No inlining: it cut the Go compiler's CPU time by a fifth (etcd: 100 s to 79 s), and these
# binaries only serve a test control plane, where they idle most of the time.
GCFLAGS="all=-l"

die() {
    echo "error: $*" >&2
    exit 1
}

find_go() {
    if command -v go >/dev/null 2>&1; then
        command -v go
    elif [ -x /usr/local/go/bin/go ]; then
        echo /usr/local/go/bin/go
    else
        die "go not found; install Go 1.26 or newer (https://go.dev/dl) to build the Kubernetes tools"
    fi
}

# module directory, package, ldflags, tags of a tool
tool_spec() {
    local kube_version helm_version helm_k8s_minor kube_ldflags="-s -w" key val
    kube_version="$(module_version "$MODULES/kubernetes" k8s.io/kubernetes)"
    helm_version="$(module_version "$MODULES/helm" helm.sh/helm/v3)"
    # helm's default .Capabilities.KubeVersion and its lint rules follow the client-go it uses.
    helm_k8s_minor="$(module_version "$MODULES/helm" k8s.io/client-go | cut -d. -f2)"
    if [ -z "$kube_version" ] || [ -z "$helm_version" ] || [ -z "$helm_k8s_minor" ]; then
        die "cannot read the pinned versions from $MODULES/*/go.mod"
    fi
    for kv in "gitVersion=$kube_version" "gitMajor=1" "gitMinor=$(echo "$kube_version" | cut -d. -f2)" \
        "gitTreeState=clean" "buildDate=1970-01-01T00:00:00Z"; do
        key="${kv%%=*}"
        val="${kv#*=}"
        kube_ldflags+=" -X k8s.io/client-go/pkg/version.$key=$val"
        kube_ldflags+=" -X k8s.io/component-base/version.$key=$val"
    done
    case "$1" in
        helm)
            SPEC_DIR="$MODULES/helm"
            SPEC_PKG="helm.sh/helm/v3/cmd/helm"
            SPEC_TAGS=""
            SPEC_LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
            SPEC_LDFLAGS+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
            SPEC_LDFLAGS+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1"
            SPEC_LDFLAGS+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$helm_k8s_minor"
            SPEC_LDFLAGS+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1"
            SPEC_LDFLAGS+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$helm_k8s_minor"
            ;;
        etcd)
            SPEC_DIR="$MODULES/etcd"
            SPEC_PKG="go.etcd.io/etcd/server/v3"
            SPEC_TAGS=""
            SPEC_LDFLAGS="-s -w"
            ;;
        kube-apiserver | kube-controller-manager | kube-scheduler | kubectl)
            SPEC_DIR="$MODULES/kubernetes"
            SPEC_PKG="k8s.io/kubernetes/cmd/$1"
            # as hack/lib/golang.sh builds them (minus selinux, which needs cgo)
            SPEC_TAGS="notest,grpcnotrace"
            SPEC_LDFLAGS="$kube_ldflags"
            ;;
        *) die "unknown tool '$1' (one of: ${ALL_TOOLS[*]})" ;;
    esac
}

# What a binary is built from; a different stamp means a rebuild.
stamp_of() {
    tool_spec "$1"
    {
        echo "tool=$1 pkg=$SPEC_PKG tags=$SPEC_TAGS ldflags=$SPEC_LDFLAGS gcflags=$GCFLAGS"
        "$GO" version
        cat "$SPEC_DIR/go.mod" "$SPEC_DIR/go.sum"
        find "$SPEC_DIR" -maxdepth 1 -name '*.go' -print0 | sort -z | xargs -0 -r cat
    } | sha256sum | cut -d' ' -f1
}

up_to_date() {
    [ -x "$BIN/$1" ] && [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$(stamp_of "$1")" ]
}

build_tool() {
    local name=$1 stamp started tmp
    stamp="$(stamp_of "$name")"
    if [ -x "$BIN/$name" ] && [ -f "$STAMPS/$name" ] && [ "$(cat "$STAMPS/$name")" = "$stamp" ]; then
        return
    fi
    tool_spec "$name"
    echo "building $name ($SPEC_PKG, module $SPEC_DIR) into $BIN" >&2
    started=$SECONDS
    tmp="$BIN/.$name.tmp.$$"
    # -mod=readonly: go.mod and go.sum are the pins; a build never rewrites them.
    (cd "$SPEC_DIR" && CGO_ENABLED=0 "$GO" build -mod=readonly -trimpath -buildvcs=false \
        ${SPEC_TAGS:+-tags "$SPEC_TAGS"} -gcflags "$GCFLAGS" -ldflags "$SPEC_LDFLAGS" -o "$tmp" "$SPEC_PKG") >&2 || {
        rm -f "$tmp"
        die "building $name failed"
    }
    mv -f "$tmp" "$BIN/$name"
    echo "$stamp" >"$STAMPS/$name"
    echo "built $name in $((SECONDS - started))s ($(du -h "$BIN/$name" | cut -f1))" >&2
}

install_tools() {
    local names=("$@") name started=$SECONDS
    [ ${#names[@]} -gt 0 ] || names=("${ALL_TOOLS[@]}")
    for name in "${names[@]}"; do
        tool_spec "$name" # validates the name before anything is built
    done
    mkdir -p "$BIN" "$STAMPS"
    # One installer at a time: two concurrent runs would build the same binaries twice.
    exec 9>"$TOOLS/.k8s-tools.lock"
    if ! flock -n 9; then
        echo "waiting for another tools.sh install to finish" >&2
        flock 9
    fi
    for name in "${names[@]}"; do
        build_tool "$name"
    done
    exec 9>&-
    if [ $((SECONDS - started)) -gt 1 ]; then
        echo "tools ready in $BIN ($((SECONDS - started))s)" >&2
    fi
}

GO="$(find_go)"
case "${1:-}" in
    install)
        shift
        install_tools "$@"
        ;;
    path)
        [ -n "${2:-}" ] || die "usage: $0 path NAME"
        tool_spec "$2"
        echo "$BIN/$2"
        ;;
    list)
        for name in "${ALL_TOOLS[@]}"; do
            if up_to_date "$name"; then
                echo "$name $BIN/$name up to date"
            elif [ -x "$BIN/$name" ]; then
                echo "$name $BIN/$name out of date"
            else
                echo "$name $BIN/$name missing"
            fi
        done
        ;;
    *) die "usage: $0 install [NAME...] | path NAME | list" ;;
esac
