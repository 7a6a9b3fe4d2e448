#!/usr/bin/env bash
# Static checks of the Helm chart charts/spate, with the helm that e2e/k8s/tools.sh builds from
# its Go module:
#
#   1. charts/spate/crds/streamjob.yaml is byte-identical to crds/streamjob.yaml (the generated
#      CRD; operator/tests/crd.rs fails when crds/ drifts from the Rust types, and this check
#      extends that guard to the chart's copy);
#   2. `helm lint --strict` with the default values and with each variant below;
#   3. `helm template` of each variant, and what each must render (RBAC shape, operator flags);
#   4. values the schema or the templates must refuse are refused;
#   5. only with SPATE_CHART_KUBECONFIG set: a real API server accepts every rendered variant
#      (server-side apply, dry run; the namespaces spate-system and jobs are created for it).
#
#   bash e2e/chart.sh            HELM=/path/to/helm bash e2e/chart.sh
#   SPATE_CHART_KUBECONFIG=/path/to/kubeconfig [SPATE_KUBECTL=/path/to/kubectl] bash e2e/chart.sh
#
# Any failure exits non-zero with the reason. A missing helm is a failure, never a skip: build it
# with `bash e2e/k8s/tools.sh install helm`.
set -euo pipefail
cd "$(dirname "$0")/.."

CHART="${SPATE_CHART:-charts/spate}"
RELEASE=demo
NAMESPACE=spate-system
TOOLS="${SPATE_TOOLS:-/var/tmp/spate-tools}"

die() {
    echo "FAIL: $*" >&2
    exit 1
}

HELM="${HELM:-}"
if [ -z "$HELM" ]; then
    if [ -x "$TOOLS/bin/helm" ]; then
        HELM="$TOOLS/bin/helm"
    elif command -v helm >/dev/null 2>&1; then
        HELM="$(command -v helm)"
    else
        die "helm not found (looked at \$HELM, $TOOLS/bin/helm and PATH); build it with: bash e2e/k8s/tools.sh install helm"
    fi
fi
echo "helm: $HELM ($("$HELM" version --short 2>/dev/null || echo unknown version))"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# --- 1. the chart's CRD is the generated one --------------------------------------------------
echo "==> charts/spate/crds/streamjob.yaml is crds/streamjob.yaml"
if ! cmp -s crds/streamjob.yaml "$CHART/crds/streamjob.yaml"; then
    diff -u crds/streamjob.yaml "$CHART/crds/streamjob.yaml" | head -40 >&2 || true
    die "the chart's CRD differs from crds/streamjob.yaml; copy it: cp crds/streamjob.yaml $CHART/crds/"
fi
[ "$(ls "$CHART/crds")" = "streamjob.yaml" ] || die "$CHART/crds holds more than streamjob.yaml: $(ls "$CHART/crds" | tr '\n' ' ')"

# --- variants ---------------------------------------------------------------------------------
# name|helm flags
VARIANTS=(
    "default|"
    "one-namespace|--set watchNamespaces={jobs}"
    "no-leader-election|--set leaderElection.enabled=false"
    "two-replicas|--set replicas=2"
    "service-monitor|--set metrics.serviceMonitor.enabled=true --set metrics.serviceMonitor.labels.release=prom"
    "existing-account|--set serviceAccount.create=false --set serviceAccount.name=ops --set rbac.create=false"
    "image|--set image.repository=registry.example/spate --set image.tag=dev --set image.pullPolicy=Always"
)

render() { # variant flags... -> $WORK/<variant>.yaml
    local name=$1
    shift
    # shellcheck disable=SC2068
    "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" $@ >"$WORK/$name.yaml" \
        || die "helm template ($name) failed"
}

# The document of the rendered output whose kind and name are given (documents split on ---).
doc() { # variant kind name
    awk -v kind="$2" -v name="$3" '
        function flush() { if (buf ~ ("\nkind: " kind "\n") && buf ~ ("\n  name: " name "\n")) printf "%s", buf; buf = "\n" }
        BEGIN { buf = "\n" }
        /^---/ { flush(); next }
        { buf = buf $0 "\n" }
        END { flush() }
    ' "$WORK/$1.yaml"
}

has() { # variant kind name pattern -> the document contains the (grep -E) pattern
    doc "$1" "$2" "$3" | grep -Eq -- "$4" || die "$1: $2 $3 lacks /$4/"
}

lacks_kind() { # variant kind
    ! grep -Eq "^kind: $2\$" "$WORK/$1.yaml" || die "$1: renders a $2 it should not"
}

for variant in "${VARIANTS[@]}"; do
    name="${variant%%|*}"
    flags="${variant#*|}"
    echo "==> helm lint --strict ($name)"
    # shellcheck disable=SC2086
    "$HELM" lint --strict "$CHART" --namespace "$NAMESPACE" $flags >"$WORK/lint-$name.txt" 2>&1 || {
        cat "$WORK/lint-$name.txt" >&2
        die "helm lint ($name)"
    }
    echo "==> helm template ($name)"
    # shellcheck disable=SC2086
    render "$name" $flags
done

OP="$RELEASE-spate-operator"

# --- 3. what each variant renders ------------------------------------------------------------
echo "==> rendered objects"
# Default: every namespace, leader election, metrics Service, no ServiceMonitor.
has default ClusterRole "$OP" 'streamjobs/finalizers'
has default ClusterRoleBinding "$OP" "name: $OP"
lacks_kind default ServiceMonitor
has default Deployment "$OP" '- --leader-election'
has default Deployment "$OP" "- --lease-name"
has default Deployment "$OP" "- \"$OP\""
has default Deployment "$OP" "- --lease-namespace"
has default Deployment "$OP" "- \"$NAMESPACE\""
has default Deployment "$OP" '- "0.0.0.0:8080"'
has default Deployment "$OP" 'fieldPath: metadata.name'
has default Deployment "$OP" 'fieldPath: metadata.namespace'
has default Deployment "$OP" 'path: /healthz'
has default Deployment "$OP" 'image: "spate:0.1.0"'
has default Deployment "$OP" 'serviceAccountName: '"$OP"
has default ServiceAccount "$OP" "namespace: $NAMESPACE"
has default Service "$OP-metrics" 'port: 8080'
has default Role "$OP-leader-election" 'coordination.k8s.io'
has default Role "$OP-leader-election" "resourceNames: \\[\"$OP\"\\]"
if doc default Deployment "$OP" | grep -q -- '--namespace'; then
    die "default: the operator is given --namespace although it watches every namespace"
fi

# Escalation prevention: the operator must hold everything the Role it makes for each JobMaster
# grants (operator/src/resources.rs, role()), or the API server refuses to create that Role.
rules="$(doc default ClusterRole "$OP")"
for rule in \
    'resources: \["pods"\]|"create".*"patch".*"delete"' \
    'resources: \["pods"\]|"get", "list", "watch"' \
    'resources: \["serviceaccounts", "configmaps", "services"\]|"get", "list", "watch", "create", "patch", "update", "delete"' \
    'resources: \["deployments"\]|"get", "list", "watch", "create", "patch", "update", "delete"' \
    'resources: \["roles", "rolebindings"\]|"get", "list", "watch", "create", "patch", "update", "delete"'; do
    resource="${rule%%|*}"
    verbs="${rule#*|}"
    grep -A1 -E -- "$resource" <<<"$rules" | grep -Eq -- "verbs: \[.*$verbs" \
        || die "default: the ClusterRole's rule for /$resource/ lacks verbs /$verbs/"
done

# One namespace: --namespace, a Role and RoleBinding there, no cluster-wide RBAC.
has one-namespace Deployment "$OP" '- --namespace'
has one-namespace Deployment "$OP" '- "jobs"'
has one-namespace Role "$OP" 'namespace: jobs'
has one-namespace RoleBinding "$OP" "namespace: $NAMESPACE"
lacks_kind one-namespace ClusterRole
lacks_kind one-namespace ClusterRoleBinding

# Without leader election: no lease flags or Role, and Recreate so two never overlap.
if grep -q -- '--leader-election' "$WORK/no-leader-election.yaml"; then
    die "no-leader-election: --leader-election is still rendered"
fi
has no-leader-election Deployment "$OP" 'type: Recreate'
if doc no-leader-election Role "$OP-leader-election" | grep -q .; then
    die "no-leader-election: the leader-election Role is still rendered"
fi

has two-replicas Deployment "$OP" 'replicas: 2'
has service-monitor ServiceMonitor "$OP" 'release: prom'
has existing-account Deployment "$OP" 'serviceAccountName: ops'
lacks_kind existing-account ServiceAccount
lacks_kind existing-account ClusterRole
has image Deployment "$OP" 'image: "registry.example/spate:dev"'
has image Deployment "$OP" 'imagePullPolicy: Always'

# --- 4. refused values ------------------------------------------------------------------------
echo "==> values that must be refused"
refused() { # description, expected message (grep -E), helm flags...
    local what=$1 expect=$2
    shift 2
    if "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" "$@" >/dev/null 2>"$WORK/refused.txt"; then
        die "accepted $what ($*)"
    fi
    grep -Eq -- "$expect" "$WORK/refused.txt" || {
        cat "$WORK/refused.txt" >&2
        die "refused $what, but not with /$expect/"
    }
    echo "    refused $what: $(grep -m1 -oE -- "$expect.*" "$WORK/refused.txt" | cut -c1-120)"
}
refused "two watched namespaces" "at '/watchNamespaces': maxItems" --set 'watchNamespaces={a,b}'
refused "two watched namespaces (schema skipped)" "the operator watches one namespace or all" \
    --skip-schema-validation --set 'watchNamespaces={a,b}'
refused "two replicas without leader election" "at '/leaderElection/enabled'" \
    --set replicas=2 --set leaderElection.enabled=false
refused "two replicas without leader election (schema skipped)" "replicas > 1 needs leaderElection.enabled" \
    --skip-schema-validation --set replicas=2 --set leaderElection.enabled=false
refused "an unknown pull policy" "at '/image/pullPolicy'" --set image.pullPolicy=Sometimes
refused "an unknown value" "additional properties 'replica' not allowed" --set replica=2
refused "a metrics port out of range" "at '/metrics/port'" --set metrics.port=70000
refused "a ServiceMonitor without the Service" "needs metrics.service.enabled" \
    --set metrics.serviceMonitor.enabled=true --set metrics.service.enabled=false
refused "no account name with serviceAccount.create=false" "serviceAccount.name is required" \
    --set serviceAccount.create=false

# --- 5. a real API server accepts what the chart renders (optional) ---------------------------
if [ -n "${SPATE_CHART_KUBECONFIG:-}" ]; then
    KUBECTL="${SPATE_KUBECTL:-kubectl}"
    kc() { "$KUBECTL" --kubeconfig "$SPATE_CHART_KUBECONFIG" "$@"; }
    echo "==> server-side dry run of the rendered chart ($SPATE_CHART_KUBECONFIG)"
    for ns in "$NAMESPACE" jobs; do
        kc get namespace "$ns" >/dev/null 2>&1 || kc create namespace "$ns" >/dev/null
    done
    for variant in "${VARIANTS[@]}"; do
        name="${variant%%|*}"
        if [ "$name" = service-monitor ] && ! kc get crd servicemonitors.monitoring.coreos.com >/dev/null 2>&1; then
            echo "    $name: rendered without its ServiceMonitor (no Prometheus Operator CRD)"
            doc_filter='kind: ServiceMonitor'
        else
            doc_filter=''
        fi
        awk -v skip="$doc_filter" '
            function flush() { if (skip == "" || index(buf, "\n" skip "\n") == 0) printf "---%s", buf; buf = "\n" }
            BEGIN { buf = "\n" }
            /^---/ { flush(); next }
            { buf = buf $0 "\n" }
            END { flush() }
        ' "$WORK/$name.yaml" >"$WORK/$name.server.yaml"
        kc apply --server-side --dry-run=server --field-manager=e2e-chart -f "$WORK/$name.server.yaml" \
            >"$WORK/$name.server.txt" 2>&1 || {
            cat "$WORK/$name.server.txt" >&2
            die "the API server refused the chart rendered as $name"
        }
        echo "    $name: accepted ($(grep -c . "$WORK/$name.server.txt") objects)"
    done
fi

echo "chart checks passed"
