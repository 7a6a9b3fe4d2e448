#!/usr/bin/env bash
# The StreamJob CRD against a real kube-apiserver: bring a cluster up (e2e/k8s/cluster.sh),
# server-side dry-run and then apply crds/, wait for Established, check that a valid StreamJob
# (examples/k8s/) is admitted and that invalid ones are refused with the offending field's path,
# that every example manifest and the rendered Helm chart are accepted, and tear the cluster down.
#
#   bash e2e/k8s/smoke.sh              in a fresh temporary directory, removed afterwards
#   SPATE_K8S_KEEP=1 bash e2e/k8s/smoke.sh   keep the directory (state and logs) for inspection
set -euo pipefail
cd "$(dirname "$0")/../.."

die() {
    echo "smoke: FAIL: $*" >&2
    exit 1
}

dir="$(mktemp -d "${TMPDIR:-/tmp}/spate-k8s-smoke.XXXXXX")"
cleanup() {
    bash e2e/k8s/cluster.sh down "$dir" >/dev/null 2>&1 || true
    if [ -z "${SPATE_K8S_KEEP:-}" ]; then rm -rf "$dir"; else echo "smoke: kept $dir" >&2; fi
}
trap cleanup EXIT

eval "$(bash e2e/k8s/cluster.sh up "$dir")"
kubectl() { "$SPATE_KUBECTL" --kubeconfig "$KUBECONFIG" "$@"; }

echo "smoke: server-side dry run of crds/" >&2
kubectl apply --server-side --dry-run=server -f crds/
echo "smoke: applying crds/" >&2
kubectl apply --server-side -f crds/
kubectl wait --for condition=Established --timeout=60s crd/streamjobs.spate.dev

echo "smoke: a valid StreamJob (examples/k8s/hop-count.yaml) is admitted" >&2
kubectl apply --server-side --dry-run=server -f examples/k8s/hop-count.yaml
kubectl apply --server-side -f examples/k8s/hop-count.yaml
# the defaults of the schema are filled in by the API server
[ "$(kubectl get streamjob hop-count -o jsonpath='{.spec.state}')" = running ] ||
    die "spec.state was not defaulted to running"
kubectl delete streamjob hop-count --wait=true >/dev/null

# refused NAME FIELD SPEC: a StreamJob with this spec (JSON members) is refused by the API server's
# validation of the CRD schema, and the error names FIELD
refused() {
    local name=$1 field=$2 spec=$3 out
    if out="$(printf '{"apiVersion":"spate.dev/v1alpha1","kind":"StreamJob","metadata":{"name":"%s"},"spec":{%s}}' \
        "$name" "$spec" | kubectl apply --server-side --dry-run=server -f - 2>&1)"; then
        die "$name was admitted: $out"
    fi
    grep -qF "$field" <<<"$out" || die "$name was refused without naming $field: $out"
    echo "smoke: $name refused: $out" >&2
}
job='"image":"spate:latest","job":{"sql":"SELECT 1"}'
refused negative-parallelism spec.parallelism "$job,\"parallelism\":-1"
refused unknown-upgrade-mode spec.upgradeMode "$job,\"parallelism\":1,\"upgradeMode\":\"sometimes\""
refused too-many-slots spec.worker.slots "$job,\"parallelism\":1,\"worker\":{\"slots\":1000}"
refused max-below-parallelism spec.maxParallelism "$job,\"parallelism\":8,\"maxParallelism\":4"
refused missing-image spec.image '"job":{"sql":"SELECT 1"},"parallelism":1'
refused sql-and-configmap spec.job \
    "\"image\":\"x\",\"parallelism\":1,\"job\":{\"sql\":\"SELECT 1\",\"configMapRef\":{\"name\":\"q\",\"key\":\"q.sql\"}}"

echo "smoke: every example manifest is admitted (server-side dry run)" >&2
for example in examples/k8s/*.yaml; do
    # A dry run creates no namespace, so the ones the examples name exist first.
    for ns in $(sed -n 's/^  namespace: *//p' "$example" | sort -u); do
        kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns" >/dev/null
    done
    kubectl apply --server-side --dry-run=server -f "$example" >/dev/null ||
        die "$example was refused"
done

echo "smoke: the Helm chart, rendered, is accepted by the API server" >&2
SPATE_CHART_KUBECONFIG="$KUBECONFIG" bash e2e/chart.sh >&2

echo "smoke: ok" >&2
