#!/usr/bin/env bash
# Spate's Kubernetes end-to-end scenarios on a kind cluster (issue 7), for anyone with Docker:
# build the image, create the cluster, load the image, install the chart and MinIO, then run
# the scenarios, each failing loudly, and print the time of each and in all.
#
#   bash e2e/kind/run.sh                 every scenario, on a new cluster, deleted afterwards
#   bash e2e/kind/run.sh 2 6             setup, then scenarios 2 and 6 only
#   KEEP_CLUSTER=1 bash e2e/kind/run.sh  keep the cluster (and reuse it on the next run)
#   SKIP_BUILD=1 bash e2e/kind/run.sh    reuse an image already built as $IMAGE
#
# Scenarios:
#   1 install      helm install: CRD established, operator Ready, metrics served
#   2 run          an example StreamJob: JobMaster pod, worker pods from the JobMaster, phase
#                  Running, checkpoints in S3, output equal to a reference run
#   3 failover     kill a worker process, then delete a worker pod: the job fails over, the
#                  failover shows in status and events, the output is still the reference's
#   4 jobmaster    delete the JobMaster pod: a new one adopts the same worker pods
#   5 scale        kubectl scale sj --replicas=3: restarted from state at parallelism 3
#   6 suspend      suspend: no pods, a savepoint recorded; resume: continues from it
#   7 bad-input    bad manifests refused with field paths; bad SQL: Failed, no crash loop
#   8 delete       deleting StreamJobs removes every pod, ConfigMap, Service and RBAC object
#
# Needs docker, kind, kubectl, helm and jq. It cannot run where no Docker engine runs (our CI
# machines run the same scenarios from e2e/ on a control plane built from Go modules instead).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/e2e/kind"
CLUSTER="${CLUSTER:-spate-e2e}"
IMAGE="${IMAGE:-spate:e2e}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-}" # empty: kind's default node image
RELEASE=spate
OPERATOR=spate-operator # the chart names the operator's objects <release>-operator for release "spate"
OPERATOR_NS=spate-system
JOBS_NS="jobs"
MC_IMAGE="${MC_IMAGE:-quay.io/minio/mc:RELEASE.2025-04-16T18-13-26Z}"
# The bounded test job: Nexmark events in all, and events per second per source subtask.
EVENTS="${EVENTS:-1000000}"
RATE="${RATE:-10000}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/spate-kind.XXXXXX")"

# shellcheck source=e2e/kind/lib.sh
source "$HERE/lib.sh"

need docker kind kubectl helm jq
docker info >/dev/null 2>&1 || {
    echo "FAIL: no Docker engine answers (docker info); kind needs one" >&2
    exit 1
}

cleanup() {
    local pid
    for pid in "$WORK"/logs/*/.follower; do
        if [ -f "$pid" ]; then kill "$(cat "$pid")" 2>/dev/null || true; fi
    done
    if [ -z "${KEEP_CLUSTER:-}" ]; then
        kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
        rm -rf "$WORK"
    else
        echo "kept: cluster $CLUSTER (kubectl --context kind-$CLUSTER), work directory $WORK" >&2
    fi
}
trap cleanup EXIT

# --- setup ------------------------------------------------------------------------------------
setup() {
    if [ -z "${SKIP_BUILD:-}" ]; then
        log "docker build -t $IMAGE"
        DOCKER_BUILDKIT=1 docker build -t "$IMAGE" "$ROOT"
    fi
    if ! kind get clusters 2>/dev/null | grep -x "$CLUSTER" >/dev/null; then
        log "kind create cluster $CLUSTER"
        kind create cluster --name "$CLUSTER" --wait 180s ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
    fi
    log "kind load docker-image $IMAGE"
    kind load docker-image "$IMAGE" --name "$CLUSTER"

    log "MinIO and the checkpoint bucket"
    k apply -f "$ROOT/examples/k8s/minio.yaml" >/dev/null
    k -n minio rollout status deployment/minio --timeout=300s
    k -n minio wait --for=condition=complete job/create-bucket --timeout=300s
    k create namespace "$JOBS_NS" --dry-run=client -o yaml | k apply -f - >/dev/null
    kj apply -f "$ROOT/examples/k8s/s3-credentials.yaml" >/dev/null
}

# --- 1. helm install --------------------------------------------------------------------------
scenario_1() {
    log "helm install $RELEASE charts/spate"
    helm --kube-context "kind-$CLUSTER" upgrade --install "$RELEASE" "$ROOT/charts/spate" \
        --namespace "$OPERATOR_NS" --create-namespace \
        --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" \
        --set image.pullPolicy=IfNotPresent --wait --timeout 5m
    k wait --for=condition=Established crd/streamjobs.spate.dev --timeout=60s
    k -n "$OPERATOR_NS" rollout status deployment/"$OPERATOR" --timeout=180s
    [ "$(k -n "$OPERATOR_NS" get deployment "$OPERATOR" -o jsonpath='{.status.readyReplicas}')" -ge 1 ] ||
        die "the operator is not Ready"
    # /metrics through the API server's service proxy.
    local metrics
    metrics="$(k get --raw "/api/v1/namespaces/$OPERATOR_NS/services/http:$OPERATOR-metrics:8080/proxy/metrics")"
    grep -q '^spate_operator_reconciliations_total' <<<"$metrics" ||
        die "the operator's /metrics lacks spate_operator_reconciliations_total: $(head -c 400 <<<"$metrics")"
    # The leader holds its Lease.
    wait_until 60 "the operator's Lease to have a holder" \
        sh -c "kubectl --context kind-$CLUSTER -n $OPERATOR_NS get lease $OPERATOR -o jsonpath='{.spec.holderIdentity}' | grep -q ."
}

# Start the bounded job NAME at parallelism 2 and wait until it runs with its workers.
start_job() { # name
    local name=$1
    make_job "$name" "$EVENTS" "$RATE" >"$WORK/$name.yaml"
    follow_logs "$name"
    kj apply -f "$WORK/$name.yaml" >/dev/null
    wait_until 180 "$name: phase Running" phase_is "$name" Running
    wait_until 120 "$name: $(workers_for 2 2) running worker pod(s)" workers_are "$name" "$(workers_for 2 2)"
}

finish_job() { # name
    wait_until 900 "$1: phase Finished" phase_is "$1" Finished
    check_output "$1" "$EVENTS"
}

# --- 2. an example StreamJob ------------------------------------------------------------------
scenario_2() {
    local job=run name
    start_job "$job"
    jobmaster_ready "$job" || die "$job: the JobMaster pod is not Ready"
    # Worker pods are the JobMaster's: created by it, owned by the JobMaster Deployment.
    for name in $(worker_pods "$job"); do
        [ "$(kj get "$name" -o jsonpath='{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}')" \
            = "Deployment/$job-jobmaster" ] || die "$job: $name is not owned by Deployment $job-jobmaster"
        kj get "$name" -o jsonpath='{.metadata.labels.spate\.dev/job-id}' | grep -c . >/dev/null ||
            die "$job: $name has no spate.dev/job-id label"
    done
    [ "$(status_field "$job" replicas)" = 2 ] || die "$job: status.replicas is not 2"
    [ -n "$(status_field "$job" labelSelector)" ] || die "$job: no status.labelSelector"
    wait_until 120 "$job: a completed checkpoint in status" \
        sh -c "kubectl --context kind-$CLUSTER -n $JOBS_NS get sj $job -o jsonpath='{.status.lastCheckpoint.location}' | grep -q ."
    local job_id
    job_id="$(status_field "$job" jobId)"
    s3_ls "$job/$job_id/" | grep -c '_metadata' >/dev/null || die "$job: no checkpoint _metadata in s3://spate-checkpoints/$job/$job_id/"
    log "$job: checkpoints in S3 under $job/$job_id/"
    finish_job "$job"
}

# --- 3. worker failures -----------------------------------------------------------------------
scenario_3() {
    local job=failover before pod
    start_job "$job"
    wait_until 60 "$job: a checkpoint" sh -c \
        "kubectl --context kind-$CLUSTER -n $JOBS_NS get sj $job -o jsonpath='{.status.lastCheckpoint.id}' | grep -q ."
    before="$(status_field "$job" failoverCount)"
    before=${before:-0}

    pod="$(worker_pods "$job" Running | head -1)"
    kill_container "${pod#pod/}" worker
    wait_until 120 "$job: the failover counted in status.failoverCount" \
        sh -c "[ \"\$(kubectl --context kind-$CLUSTER -n $JOBS_NS get sj $job -o jsonpath='{.status.failoverCount}')\" -gt $before ]"
    wait_until 120 "$job: Running again with $(workers_for 2 2) workers" \
        sh -c "[ \"\$(kubectl --context kind-$CLUSTER -n $JOBS_NS get sj $job -o jsonpath='{.status.phase}')\" = Running ] &&
               [ \"\$(kubectl --context kind-$CLUSTER -n $JOBS_NS get pods -l spate.dev/job=$job,spate.dev/component=worker --field-selector status.phase=Running -o name | grep -c .)\" -eq $(workers_for 2 2) ]"

    before="$(status_field "$job" failoverCount)"
    pod="$(worker_pods "$job" Running | head -1)"
    log "kubectl delete $pod"
    kj delete "$pod" --wait=false >/dev/null
    wait_until 120 "$job: the deleted pod's failover counted" \
        sh -c "[ \"\$(kubectl --context kind-$CLUSTER -n $JOBS_NS get sj $job -o jsonpath='{.status.failoverCount}')\" -gt $before ]"

    kj get events --field-selector "involvedObject.kind=StreamJob,involvedObject.name=$job" -o json |
        jq -e '[.items[] | select((.reason + " " + .message) | test("fail|restart"; "i"))] | length > 0' >/dev/null ||
        die "$job: no event tells of the failover"
    finish_job "$job"
}

# --- 4. the JobMaster pod is deleted ----------------------------------------------------------
scenario_4() {
    local job=jobmaster old_jm new_jm workers_before workers_after
    start_job "$job"
    old_jm="$(jobmaster_pod "$job")"
    workers_before="$(kj get pods -l "spate.dev/job=$job,spate.dev/component=worker" \
        -o jsonpath='{range .items[*]}{.metadata.uid}{"\n"}{end}' | sort)"
    log "kubectl delete $old_jm"
    kj delete "$old_jm" --wait=false >/dev/null
    wait_until 180 "$job: a new JobMaster pod, Ready" \
        sh -c "p=\$(kubectl --context kind-$CLUSTER -n $JOBS_NS get pods -l spate.dev/job=$job,spate.dev/component=jobmaster -o name | head -1);
               [ -n \"\$p\" ] && [ \"\$p\" != '$old_jm' ] &&
               kubectl --context kind-$CLUSTER -n $JOBS_NS get \$p -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
    new_jm="$(jobmaster_pod "$job")"
    wait_until 120 "$job: Running under $new_jm" phase_is "$job" Running
    workers_after="$(kj get pods -l "spate.dev/job=$job,spate.dev/component=worker" \
        -o jsonpath='{range .items[*]}{.metadata.uid}{"\n"}{end}' | sort)"
    [ "$workers_before" = "$workers_after" ] ||
        die "$job: the worker pods changed across the JobMaster's replacement (they should be re-adopted)"
    log "$job: $new_jm adopted the same $(echo "$workers_after" | count_lines) worker pod(s)"
    finish_job "$job"
}

# --- 5. scale ---------------------------------------------------------------------------------
scenario_5() {
    local job=scale job_id
    start_job "$job"
    wait_until 60 "$job: a checkpoint" sh -c \
        "kubectl --context kind-$CLUSTER -n $JOBS_NS get sj $job -o jsonpath='{.status.lastCheckpoint.id}' | grep -q ."
    job_id="$(status_field "$job" jobId)"
    log "kubectl scale sj/$job --replicas=3"
    kj scale "sj/$job" --replicas=3
    wait_until 240 "$job: Running at parallelism 3" \
        sh -c "[ \"\$(kubectl --context kind-$CLUSTER -n $JOBS_NS get sj $job -o jsonpath='{.status.phase}/{.status.parallelism}/{.status.replicas}')\" = Running/3/3 ]"
    wait_until 120 "$job: $(workers_for 3 2) worker pods" workers_are "$job" "$(workers_for 3 2)"
    [ "$(status_field "$job" jobId)" != "$job_id" ] || die "$job: redeployed from state under the same job id"
    kj get deployment "$job-jobmaster" -o json |
        jq -e '.spec.template.spec.containers[] | select(.name == "spate") | .args | index("--from") != null' >/dev/null ||
        die "$job: the rescaled JobMaster is not started --from the savepoint or checkpoint"
    finish_job "$job"
}

# --- 6. suspend and resume --------------------------------------------------------------------
scenario_6() {
    local job=gift-room savepoint last_before first_after
    sed "s|image: spate:0.1.0|image: $IMAGE|" "$ROOT/examples/k8s/suspended.yaml" >"$WORK/suspended.yaml"
    kj apply -f "$WORK/suspended.yaml" >/dev/null
    wait_until 60 "$job: phase Suspended" phase_is "$job" Suspended
    no_pods "$job" || die "$job: created suspended but has pods"
    [ "$(kj get deployment "$job-jobmaster" -o jsonpath='{.spec.replicas}')" = 0 ] || die "$job: JobMaster Deployment not at 0"

    follow_logs "$job"
    kj patch sj "$job" --type merge -p '{"spec":{"state":"running"}}' >/dev/null
    wait_until 180 "$job: Running" phase_is "$job" Running
    # A 1-minute window of the generated stream fires every 1.5 s of wall clock (1000 rows/s
    # per subtask, 2 subtasks, a row per 20 ms of event time): wait for output, then a little.
    wait_until 120 "$job: output" sh -c "cat '$WORK/logs/$job'/*.log 2>/dev/null | grep -q '+I\\['"
    sleep 10

    kj patch sj "$job" --type merge -p '{"spec":{"state":"suspended"}}' >/dev/null
    wait_until 180 "$job: Suspended with a savepoint" \
        sh -c "[ \"\$(kubectl --context kind-$CLUSTER -n $JOBS_NS get sj $job -o jsonpath='{.status.phase}')\" = Suspended ] &&
               kubectl --context kind-$CLUSTER -n $JOBS_NS get sj $job -o jsonpath='{.status.lastSavepoint.location}' | grep -q ."
    wait_until 120 "$job: no pods while suspended" no_pods "$job"
    savepoint="$(status_field "$job" lastSavepoint.location)"
    s3_ls "${savepoint#s3://spate-checkpoints/}" | grep -c _metadata >/dev/null || die "$job: the savepoint $savepoint has no _metadata in S3"
    stop_logs "$job"
    last_before="$(cat "$WORK/logs/$job"/*.log | grep -oE '\+I\[.*\]' | awk -F', ' '{ print $4 }' | sort | tail -1)"
    log "$job: suspended with savepoint $savepoint; the last window printed starts $last_before"

    mkdir -p "$WORK/logs/$job.resumed"
    mv "$WORK/logs/$job"/*.log "$WORK/logs/$job.resumed/" 2>/dev/null || true
    rm -f "$WORK/logs/$job"/*.err
    follow_logs "$job"
    kj patch sj "$job" --type merge -p '{"spec":{"state":"running"}}' >/dev/null
    wait_until 180 "$job: Running again" phase_is "$job" Running
    kj get deployment "$job-jobmaster" -o json |
        jq -e --arg sp "$savepoint" '.spec.template.spec.containers[] | select(.name == "spate") | .args | index($sp) != null' \
            >/dev/null || die "$job: the resumed JobMaster is not started from $savepoint"
    wait_until 120 "$job: output after resuming" sh -c "cat '$WORK/logs/$job'/*.log 2>/dev/null | grep -q '+I\\['"
    stop_logs "$job"
    # Continued, not started over: the first window after resuming is not the stream's first.
    first_after="$(cat "$WORK/logs/$job"/*.log | grep -oE '\+I\[.*\]' | awk -F', ' '{ print $4 }' | sort | head -1)"
    # (Rows printed between the savepoint and the stop may be printed again after resuming, so
    # the first window after resuming can be a little earlier than the last one before.)
    [ -n "$first_after" ] && [ "$first_after" != "2023-11-14T22:13:00.000" ] ||
        die "$job: after resuming the output starts again from the first window ($first_after)"
    log "$job: resumed from the savepoint; the first window after resuming starts $first_after"
}

# --- 7. bad input -----------------------------------------------------------------------------
refused() { # description, expected text (grep -E), manifest on stdin
    local what=$1 expect=$2 out
    if out="$(kj apply --dry-run=server -f - 2>&1)"; then
        die "accepted a manifest with $what"
    fi
    grep -Eq -- "$expect" <<<"$out" || die "refused $what, but the message lacks /$expect/: $out"
    log "refused $what: $(grep -oE -- "$expect" <<<"$out" | head -1)"
}

scenario_7() {
    local base job=bad-sql
    base="$(make_job bad "$EVENTS" "$RATE")"
    refused "a negative parallelism" 'spec.parallelism' <<<"${base/parallelism: 2/parallelism: -1}"
    refused "an unknown upgradeMode" 'spec.upgradeMode.*(Unsupported value|supported values)' \
        <<<"${base/upgradeMode: savepoint/upgradeMode: fast}"
    refused "no job" 'spec.job' <<<"$(sed '/^  job:$/,$d' <<<"$base")"
    refused "sql and configMapRef both" 'either as sql or as configMapRef' \
        <<<"$(sed 's/^  job:$/  job:\n    configMapRef: {name: x, key: y}/' <<<"$base")"
    refused "maxParallelism below parallelism" 'spec.maxParallelism.*maxParallelism must be at least parallelism' \
        <<<"${base/maxParallelism: 128/maxParallelism: 1}"
    refused "a savepoint upgrade without checkpointing" 'spec.upgradeMode.*need checkpointing' \
        <<<"$(sed '/^  checkpointing:$/,/^    retained: 3$/d' <<<"$base")"
    refused "a malformed interval" 'spec.checkpointing.interval' <<<"${base/interval: 2s/interval: 2 seconds}"

    # SQL that does not plan: Failed, the error in a Degraded condition, and no crash loop.
    cat >"$WORK/$job.yaml" <<EOF
apiVersion: spate.dev/v1alpha1
kind: StreamJob
metadata:
  name: $job
spec:
  image: $IMAGE
  imagePullPolicy: IfNotPresent
  parallelism: 1
  job:
    sql: |
      CREATE TABLE out (a BIGINT) WITH ('connector' = 'blackhole');
      INSERT INTO out SELECT no_such_column FROM no_such_table;
EOF
    kj apply -f "$WORK/$job.yaml" >/dev/null
    wait_until 180 "$job: phase Failed" phase_is "$job" Failed
    local degraded
    degraded="$(kj get sj "$job" -o jsonpath='{.status.conditions[?(@.type=="Degraded")].status}|{.status.conditions[?(@.type=="Degraded")].message}')"
    [ "${degraded%%|*}" = True ] || die "$job: Degraded is not True ($degraded)"
    grep -Eqi 'no_such' <<<"$degraded" || die "$job: the Degraded message does not carry the SQL error: $degraded"
    log "$job: Failed: ${degraded#*|}"
    sleep 30
    local restarts
    restarts="$(kj get pods -l "spate.dev/job=$job,spate.dev/component=jobmaster" \
        -o jsonpath='{range .items[*]}{.status.containerStatuses[*].restartCount}{"\n"}{end}' | sort -n | tail -1)"
    [ "${restarts:-0}" -eq 0 ] || die "$job: the JobMaster restarted $restarts times (a crash loop)"
    [ -z "$(worker_pods "$job")" ] || die "$job: worker pods were started for a job that does not plan"
    phase_is "$job" Failed || die "$job: no longer Failed after 30 s: $(phase "$job")"
}

# --- 8. delete --------------------------------------------------------------------------------
scenario_8() {
    local job=doomed kind left
    start_job "$job"
    for job in $(kj get sj -o jsonpath='{.items[*].metadata.name}'); do
        log "kubectl delete sj/$job"
        kj delete sj "$job" --timeout=180s >/dev/null
        for kind in pods configmaps services serviceaccounts roles.rbac.authorization.k8s.io \
            rolebindings.rbac.authorization.k8s.io deployments.apps; do
            wait_until 120 "$job: no $kind left" \
                sh -c "[ -z \"\$(kubectl --context kind-$CLUSTER -n $JOBS_NS get $kind -l spate.dev/job=$job -o name)\" ]"
        done
    done
    left="$(kj get pods,configmaps,services,serviceaccounts,roles,rolebindings,deployments \
        -l app.kubernetes.io/managed-by=spate-operator -o name)"
    [ -z "$left" ] || die "objects of deleted StreamJobs remain: $left"
    [ -z "$(kj get pods -l app.kubernetes.io/name=spate -o name)" ] || die "Spate pods remain after deleting every StreamJob"
}

# --- main -------------------------------------------------------------------------------------
NAMES=([1]=install [2]=run [3]=failover [4]=jobmaster [5]=scale [6]=suspend [7]=bad-input [8]=delete)
selected=("$@")
[ ${#selected[@]} -gt 0 ] || selected=(1 2 3 4 5 6 7 8)

started=$SECONDS
times=()
t=$SECONDS
setup
times+=("setup $((SECONDS - t))s")
for n in "${selected[@]}"; do
    [ -n "${NAMES[$n]:-}" ] || die "no scenario $n (1 to 8)"
    # Scenario 1 installs the operator; the others need it.
    if [ "$n" != 1 ] && ! helm --kube-context "kind-$CLUSTER" status "$RELEASE" -n "$OPERATOR_NS" >/dev/null 2>&1; then
        scenario_1
    fi
    log "=== scenario $n: ${NAMES[$n]}"
    t=$SECONDS
    "scenario_$n"
    times+=("$n ${NAMES[$n]} $((SECONDS - t))s")
    log "=== scenario $n passed in $((SECONDS - t))s"
done
printf '\nall passed in %ds:\n' "$((SECONDS - started))"
printf '  %s\n' "${times[@]}"
