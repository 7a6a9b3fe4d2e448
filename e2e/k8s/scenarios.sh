#!/usr/bin/env bash
# Spate's Kubernetes end-to-end scenarios (issue 7) on a real control plane without Docker:
# etcd, kube-apiserver, kube-controller-manager and kube-scheduler (e2e/k8s/cluster.sh), the
# process node agent (e2e/node-agent) in place of a kubelet, MinIO for s3:// checkpoints, and the
# Helm chart. Every scenario fails loudly with the logs that explain it; the time of each and in
# all is printed at the end. See e2e/k8s/README.md.
#
#   bash e2e/k8s/scenarios.sh              setup, scenarios 1 to 8 (2 to 7 side by side), teardown
#   bash e2e/k8s/scenarios.sh 2 3          setup (with the install of scenario 1), scenarios 2 and 3
#   SPATE_K8S_KEEP=1 bash e2e/k8s/scenarios.sh ...   keep the work directory (a failed run keeps it anyway)
#
# Scenarios:
#   1 install    helm install: CRD Established, operator Ready, its Lease held, /metrics served
#   2 run        a StreamJob: JobMaster pod, worker pods made by the JobMaster (owner, labels),
#                phase Running, checkpoints in status and in MinIO, output = the reference
#   3 failover   kill -9 of a worker process, then deletion of a worker pod: failoverCount and
#                an event tell of each, the other worker pod stays, output = the reference
#   4 jobmaster  deletion of the JobMaster pod: a new one re-adopts the same worker pods (same
#                uids) without a task restart, output = the reference
#   5 scale      kubectl scale sj --replicas=3: rescaled from state under a new job id, output =
#                the reference
#   6 suspend    spec.state suspended: no pods, status.lastSavepoint in MinIO; resumed from it,
#                output = the reference
#   7 bad-input  bad manifests refused naming the field; SQL that does not plan: phase Failed,
#                the error in Degraded, no crash loop
#   8 delete     deleting the StreamJobs removes every pod (and process), ConfigMap, Service,
#                ServiceAccount, Role, RoleBinding and Deployment of theirs
#
# Settings: CI=true (a missing tool fails instead of skipping), SPATE_K8S_KEEP=1,
# SPATE_E2E_DIR (the work directory; default a new /tmp/spate-k8s-e2e.XXXXXX),
# SPATE_E2E_EVENTS (400000), SPATE_E2E_RATE (2500 events/s per source subtask),
# SPATE_E2E_PARALLEL (3: how many of scenarios 2 to 7 run at once; 1 runs them one by one),
# SPATE_E2E_FAIL_FAST=1 (stop at the first failed scenario, leaving its job running until teardown),
# SPATE_E2E_HELM_ARGS (more helm install flags, split on spaces),
# SPATE_BIN, SPATE_OPERATOR_BIN, SPATE_NODE_AGENT (prebuilt binaries; default: those of the test
# build, debug, in CARGO_TARGET_DIR or target/; SPATE_E2E_PROFILE=release builds --release).
set -Eeuo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=e2e/k8s/scenarios/lib.sh
source "$ROOT/e2e/k8s/scenarios/lib.sh"
# shellcheck source=e2e/lib/binaries.sh
source "$ROOT/e2e/lib/binaries.sh"

RELEASE=spate
OPERATOR=spate-operator # the chart's object names for the release "spate"
OPERATOR_NS=spate-system
JOBS_NS="jobs"
IMAGE=spate:e2e # mapped to the local binaries by the node agent (--image)
BUCKET=spate
MINIO_USER=spate-test
MINIO_PASSWORD=spate-test-secret
SLOTS=1 # slots per worker pod: a job of parallelism 2 has two worker pods
CHECKPOINT_INTERVAL=2s
EVENTS="${SPATE_E2E_EVENTS:-400000}"
RATE="${SPATE_E2E_RATE:-2500}"
BAD_SQL_WATCH_SECONDS="${SPATE_E2E_BAD_SQL_WATCH_SECONDS:-30}"
NAMES=([1]=install [2]=run [3]=failover [4]=jobmaster [5]=scale [6]=suspend [7]=bad-input [8]=delete)

# --- which scenarios ------------------------------------------------------------------------------
selected=()
for arg in "$@"; do
    found=""
    for n in "${!NAMES[@]}"; do
        if [ "$arg" = "$n" ] || [ "$arg" = "${NAMES[$n]}" ]; then found=$n; fi
    done
    [ -n "$found" ] || { echo "usage: $0 [SCENARIO...] (1-8 or ${NAMES[*]})" >&2; exit 2; }
    selected+=("$found")
done
[ ${#selected[@]} -gt 0 ] || selected=(1 2 3 4 5 6 7 8)

need cargo curl openssl setsid flock awk find xargs
started_all=$SECONDS

# --- work directory and teardown ------------------------------------------------------------------
if [ -n "${SPATE_E2E_DIR:-}" ]; then
    mkdir -p "$SPATE_E2E_DIR"
    WORK="$(cd "$SPATE_E2E_DIR" && pwd)"
else
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/spate-k8s-e2e.XXXXXX")"
fi
LOGS="$WORK/logs"
OUT="$WORK/out"
NODE_ROOT="$WORK/node"
CLUSTER_DIR="$WORK/cluster"
MINIO_DATA="$WORK/minio/data"
mkdir -p "$LOGS" "$OUT" "$WORK/manifests" "$WORK/results"
say "work directory $WORK (logs in $LOGS)"

CLUSTER_UP=""
NODE_AGENT_PID=""
MINIO_PID=""
COLLECTOR_PID=""
FAILED=0
times=()
declare -A RUNNING=() # pid of a running scenario's subshell -> the scenario's number
declare -A BEGUN=()   # scenario number -> SECONDS when it started

# stop_process PID NAME SECONDS: SIGTERM, then SIGKILL after SECONDS
stop_process() {
    local pid=$1 name=$2 grace=$3 i
    [ -n "$pid" ] && alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 5; i++)); do
        alive "$pid" || return 0
        sleep 0.2
    done
    say "teardown: $name ($pid) still runs after ${grace}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# Processes this run leaves behind: any whose working directory is a pod's (the node agent runs
# each container in its pod's directory) or whose command line names the work directory (the
# control plane, MinIO, the node agent).
leftovers() {
    local proc pid cwd
    for proc in /proc/[0-9]*; do
        pid="${proc#/proc/}"
        [ "$pid" = "$$" ] || [ "$pid" = "$BASHPID" ] && continue
        cwd="$(readlink "$proc/cwd" 2>/dev/null)" || continue
        case "$cwd" in "$NODE_ROOT"/*) alive "$pid" && echo "$pid" ;; esac
    done
    pgrep -f -- "$WORK" || true
}

teardown() {
    local status=$? started=$SECONDS left pid
    set +e
    trap - ERR INT TERM
    SCENARIO=""
    say "teardown"
    for pid in "${!RUNNING[@]}"; do kill "$pid" 2>/dev/null; done
    if [ -n "$COLLECTOR_PID" ]; then
        kill "$COLLECTOR_PID" 2>/dev/null
        wait "$COLLECTOR_PID" 2>/dev/null
        collect_logs_once 2>/dev/null
    fi
    if [ -n "$CLUSTER_UP" ] && helm status "$RELEASE" -n "$OPERATOR_NS" >/dev/null 2>&1; then
        helm uninstall "$RELEASE" -n "$OPERATOR_NS" --wait --timeout 60s >"$LOGS/helm-uninstall.log" 2>&1 ||
            say "teardown: helm uninstall failed (log: $LOGS/helm-uninstall.log)"
    fi
    # SIGTERM: the agent stops every pod's processes (10 s grace) and exits.
    stop_process "$NODE_AGENT_PID" spate-node-agent 30
    if [ -n "$CLUSTER_UP" ]; then
        bash e2e/k8s/cluster.sh down "$CLUSTER_DIR" >"$LOGS/cluster-down.log" 2>&1 ||
            say "teardown: cluster.sh down failed (log: $LOGS/cluster-down.log)"
    fi
    stop_process "$MINIO_PID" minio 10
    left="$(leftovers | sort -un)"
    if [ -n "$left" ]; then
        echo "FAIL: processes left behind after teardown:" >&2
        for pid in $left; do
            echo "  $pid $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | head -c 300)" >&2
            kill -KILL "$pid" 2>/dev/null
        done
        FAILED=1
    fi
    times+=("teardown $((SECONDS - started))s")
    [ "$status" -eq 0 ] || FAILED=1
    echo >&2
    printf 'timings (total %ds):\n' "$((SECONDS - started_all))" >&2
    printf '  %s\n' "${times[@]}" >&2
    if [ "$FAILED" = 0 ] && [ -z "${SPATE_K8S_KEEP:-}" ]; then
        rm -rf "$WORK"
    else
        echo "kept $WORK (logs: $LOGS; pods' logs: $LOGS/pods/<namespace>/<pod>/<container>.log)" >&2
    fi
    if [ "$FAILED" = 0 ]; then
        echo "e2e k8s: all selected scenarios passed (${selected[*]})" >&2
        exit 0
    fi
    echo "e2e k8s: FAILED" >&2
    exit 1
}
trap teardown EXIT
trap 'exit 130' INT TERM

# step NAME COMMAND...: a timed setup step
step() {
    local name=$1 started=$SECONDS
    shift
    say "setup: $name"
    "$@"
    times+=("setup: $name $((SECONDS - started))s")
}

# --- setup ------------------------------------------------------------------------------------

build_binaries() {
    test_binaries "${SPATE_E2E_PROFILE:-debug}"
}

install_tools() {
    # Go builds what is missing (the first time only); without Go that is a missing tool.
    if bash e2e/k8s/tools.sh list | grep -qv 'up to date$' || [ ! -x "${SPATE_MINIO:-${SPATE_TOOLS:-/var/tmp/spate-tools}/bin/minio}" ]; then
        command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ] || need go
        PATH="$PATH:/usr/local/go/bin"
    fi
    bash e2e/k8s/tools.sh install >&2 || die "building the Kubernetes tools failed"
    bash e2e/minio.sh install >&2 || die "building MinIO failed"
    MINIO_BIN="${SPATE_MINIO:-${SPATE_TOOLS:-/var/tmp/spate-tools}/bin/minio}"
}

cluster_up() {
    local env
    env="$(bash e2e/k8s/cluster.sh up "$CLUSTER_DIR" 2>"$LOGS/cluster-up.log")" || {
        cat "$LOGS/cluster-up.log" >&2
        die "the control plane did not come up (logs: $CLUSTER_DIR/logs)"
    }
    CLUSTER_UP=1
    eval "$env"
    ln -sfn "$CLUSTER_DIR/logs" "$LOGS/control-plane"
}

# shellcheck source=e2e/lib/free_port.sh
source "$ROOT/e2e/lib/free_port.sh"

# MinIO as a plain local process (pods are local processes too, so they reach it at
# 127.0.0.1:PORT), the bucket made as a directory of its fresh data directory.
start_minio() {
    local port started=$SECONDS
    mkdir -p "$MINIO_DATA/$BUCKET"
    port="$(free_port)"
    MINIO_ROOT_USER="$MINIO_USER" MINIO_ROOT_PASSWORD="$MINIO_PASSWORD" MINIO_BROWSER=off MINIO_UPDATE=off \
        setsid "$MINIO_BIN" server "$MINIO_DATA" --address "127.0.0.1:$port" --quiet \
        >"$LOGS/minio.log" 2>&1 </dev/null &
    MINIO_PID=$!
    MINIO_ENDPOINT="http://127.0.0.1:$port"
    until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$MINIO_ENDPOINT/minio/health/live" 2>/dev/null)" = 200 ]; do
        alive "$MINIO_PID" || die "MinIO exited while starting: $(tail -n 20 "$LOGS/minio.log")"
        [ $((SECONDS - started)) -lt 60 ] || die "MinIO was not live after 60s: $(tail -n 20 "$LOGS/minio.log")"
        sleep 0.3
    done
    say "MinIO at $MINIO_ENDPOINT, bucket $BUCKET, data in $MINIO_DATA"
}

# The node agent as the Node's own identity; the image spate:e2e runs the spate binary, and the
# operator container's command spate-operator the operator binary.
start_node_agent() {
    setsid "$SPATE_NODE_AGENT" --kubeconfig "$SPATE_K8S_NODE_KUBECONFIG" --node-name "$SPATE_K8S_NODE_NAME" \
        --root "$NODE_ROOT" --image "spate=$SPATE_BIN" --image "spate-operator=$SPATE_OPERATOR_BIN" \
        >"$LOGS/node-agent.log" 2>&1 </dev/null &
    NODE_AGENT_PID=$!
    local started=$SECONDS
    until k get node "$SPATE_K8S_NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True; do
        alive "$NODE_AGENT_PID" || die "the node agent exited: $(tail -n 20 "$LOGS/node-agent.log")"
        [ $((SECONDS - started)) -lt 60 ] || die "node $SPATE_K8S_NODE_NAME not Ready after 60s"
        sleep 0.5
    done
    start_log_collector
    say "node $SPATE_K8S_NODE_NAME Ready (agent pid $NODE_AGENT_PID, pods in $NODE_ROOT/pods)"
}

jobs_namespace() {
    k create namespace "$JOBS_NS" >/dev/null
    # The checkpoint credentials, as environment variables of every JobMaster and worker
    # (object_store's AmazonS3Builder::from_env).
    kj create secret generic spate-s3 \
        --from-literal=AWS_ACCESS_KEY_ID="$MINIO_USER" \
        --from-literal=AWS_SECRET_ACCESS_KEY="$MINIO_PASSWORD" \
        --from-literal=AWS_ENDPOINT="$MINIO_ENDPOINT" \
        --from-literal=AWS_ALLOW_HTTP=true \
        --from-literal=AWS_REGION=us-east-1 >/dev/null
}

# --- 1. helm install ----------------------------------------------------------------------------
scenario_1() {
    local pod ip pid metrics
    say "helm install $RELEASE charts/spate (image $IMAGE, leader election on)"
    # shellcheck disable=SC2086 # extra flags are split on spaces on purpose
    helm install "$RELEASE" charts/spate --namespace "$OPERATOR_NS" --create-namespace \
        --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" \
        --set leaderElection.enabled=true ${SPATE_E2E_HELM_ARGS:-} --wait --timeout 180s >"$LOGS/helm-install.log" 2>&1 ||
        die "helm install failed: $(tail -n 20 "$LOGS/helm-install.log")"
    k wait --for condition=Established --timeout 60s crd/streamjobs.spate.dev >/dev/null ||
        die "the CRD streamjobs.spate.dev is not Established"
    k -n "$OPERATOR_NS" rollout status "deployment/$OPERATOR" --timeout 120s >/dev/null ||
        die "the operator Deployment did not roll out"
    [ "$(k -n "$OPERATOR_NS" get deployment "$OPERATOR" -o jsonpath='{.status.readyReplicas}')" = 1 ] ||
        die "the operator is not Ready"
    pod="$(k -n "$OPERATOR_NS" get pods -l app.kubernetes.io/name=spate-operator -o jsonpath='{.items[0].metadata.name}')"
    ip="$(k -n "$OPERATOR_NS" get pod "$pod" -o jsonpath='{.status.podIP}')"
    [ "$(k -n "$OPERATOR_NS" get pod "$pod" -o jsonpath='{.status.containerStatuses[0].restartCount}')" = 0 ] ||
        die "the operator pod $pod restarted"
    # The node agent ran the operator binary for the image's command.
    pid="$(container_pid "$pod" operator "$OPERATOR_NS")" || die "no pid file for $pod/operator"
    [ "$(readlink -f "/proc/$pid/exe")" = "$SPATE_OPERATOR_BIN" ] ||
        die "the operator pod runs $(readlink -f "/proc/$pid/exe"), not $SPATE_OPERATOR_BIN"
    wait_until 60 "the operator's Lease held by $pod" lease_held_by "$pod"
    # /healthz and /metrics at the pod's address (no kube-proxy: the pod's IP is a local address).
    curl -sf --max-time 5 "http://$ip:8080/healthz" >/dev/null || die "the operator's /healthz at $ip:8080 does not answer 200"
    metrics="$(curl -sf --max-time 5 "http://$ip:8080/metrics")" || die "the operator's /metrics at $ip:8080 does not answer 200"
    grep -q '^spate_operator_' <<<"$metrics" ||
        die "the operator's /metrics at $ip:8080 has no spate_operator_ metric: $(head -c 400 <<<"$metrics")"
    say "operator $pod Ready at $ip, Lease held, metrics served"
}

# --- 2. a StreamJob runs ------------------------------------------------------------------------
scenario_2() {
    local job=run jm pod owner labels job_id location count
    start_job "$job"
    jm="$(ready_jobmaster "$job")"
    [ -n "$jm" ] || die "$job: no Ready JobMaster pod"
    [ "$(kj get pod "$jm" -o jsonpath='{.metadata.ownerReferences[0].kind}')" = ReplicaSet ] ||
        die "$job: the JobMaster pod $jm is not the Deployment's (ReplicaSet) pod"
    [ "$(readlink -f "/proc/$(container_pid "$jm" spate)/exe")" = "$SPATE_BIN" ] ||
        die "$job: the JobMaster pod does not run $SPATE_BIN"
    job_id="$(sj_field "$job" jobId)"
    [ -n "$job_id" ] || die "$job: no status.jobId"
    # Worker pods: made by the JobMaster, owned (not controlled) by its Deployment, labelled.
    for pod in $(job_pods "$job" worker); do
        owner="$(kj get pod "$pod" -o jsonpath='{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}/{.metadata.ownerReferences[0].controller}')"
        case "$owner" in
            "Deployment/$job-jobmaster/" | "Deployment/$job-jobmaster/false") ;;
            *) die "$job: worker pod $pod has owner $owner, expected a non-controller reference to Deployment/$job-jobmaster" ;;
        esac
        labels="$(kj get pod "$pod" -o jsonpath='{.metadata.labels.spate\.dev/component} {.metadata.labels.spate\.dev/job} {.metadata.labels.app\.kubernetes\.io/name} {.metadata.labels.spate\.dev/job-id}')"
        [[ "$labels" == "worker $job spate "?* ]] || die "$job: worker pod $pod has labels '$labels'"
        [ "$(kj get pod "$pod" -o jsonpath='{.spec.restartPolicy}')" = Never ] || die "$job: worker pod $pod restartPolicy is not Never"
        grep -q -- "--jobmaster" <<<"$(kj get pod "$pod" -o jsonpath='{.spec.containers[0].args}')" ||
            die "$job: worker pod $pod does not run spate worker --jobmaster ..."
    done
    say "$job: JobMaster $jm, worker pods $(job_pods "$job" worker | tr '\n' ' ')owned by Deployment/$job-jobmaster"
    [ "$(sj_field "$job" replicas)" = 2 ] || die "$job: status.replicas is '$(sj_field "$job" replicas)', not 2"
    [ "$(sj_field "$job" parallelism)" = 2 ] || die "$job: status.parallelism is '$(sj_field "$job" parallelism)', not 2"
    [ -n "$(sj_field "$job" labelSelector)" ] || die "$job: no status.labelSelector"
    wait_until 60 "$job: status.workers.ready 2" sj_field_is "$job" workers.ready 2
    wait_until 90 "$job: status.lastCheckpoint" checkpointed "$job"
    location="$(sj_field "$job" lastCheckpoint.location)"
    [[ "$location" == "s3://$BUCKET/$job/"* ]] || die "$job: lastCheckpoint.location '$location' is not under s3://$BUCKET/$job/"
    count="$(bucket_metadata "$job" | lines)"
    [ "$count" -gt 0 ] || die "$job: no checkpoint _metadata in MinIO under $BUCKET/$job/ (data dir $MINIO_DATA)"
    say "$job: checkpoint $(sj_field "$job" lastCheckpoint.id) at $location; $count _metadata object(s) in MinIO"
    finish_job "$job"
}

# --- 3. worker failures -------------------------------------------------------------------------
scenario_3() {
    local job=crash before after victim survivor pid events uids checkpoint
    start_job "$job"
    wait_until 90 "$job: a checkpoint" checkpointed "$job"

    # kill -9 of a worker process
    still_running "$job" "the worker kill"
    before="$(sj_field "$job" failoverCount)"
    before=${before:-0}
    victim="$(job_pods "$job" worker Running | head -1)"
    survivor="$(job_pods "$job" worker Running | sed -n 2p)"
    uids="$(kj get pod "$survivor" -o jsonpath='{.metadata.uid}')"
    pid="$(container_pid "$victim" worker)" || die "$job: no pid file for $victim/worker"
    say "$job: kill -9 $pid (the process of pod $victim)"
    kill -9 "$pid"
    wait_until 120 "$job: status.failoverCount above $before" sj_field_above "$job" failoverCount "$before"
    wait_until 120 "$job: $victim Failed or gone" pod_failed_or_gone "$victim"
    wait_phase "$job" Running 120
    wait_until 120 "$job: 2 worker pods Running again" workers_are "$job" 2
    checkpoint="$(sj_field "$job" lastCheckpoint.id)"
    [ "$(kj get pod "$survivor" -o jsonpath='{.metadata.uid}' 2>/dev/null)" = "$uids" ] ||
        die "$job: the surviving worker pod $survivor was replaced too (its slot should be reused)"
    wait_until 90 "$job: a checkpoint after the failover" sj_field_above "$job" lastCheckpoint.id "$checkpoint"

    # deletion of a worker pod
    still_running "$job" "the worker pod's deletion"
    after="$(sj_field "$job" failoverCount)"
    victim="$(job_pods "$job" worker Running | tail -1)"
    say "$job: kubectl delete pod $victim"
    kj delete pod "$victim" --wait=false >/dev/null
    wait_until 120 "$job: status.failoverCount above $after" sj_field_above "$job" failoverCount "$after"
    wait_phase "$job" Running 120
    wait_until 120 "$job: 2 worker pods Running again" workers_are "$job" 2

    # the failovers as events (of the StreamJob or of its pods), by their reason and message
    events="$(kj get events -o go-template='{{range .items}}{{.involvedObject.kind}}/{{.involvedObject.name}} {{.type}} {{.reason}}: {{.message}}{{"\n"}}{{end}}' |
        grep -E "^(StreamJob/$job|Pod/$job-)" || true)"
    cut -d' ' -f2- <<<"$events" | grep -Eiq 'fail|restart|recover|lost' ||
        die "$job: no event tells of the failovers (status.failoverCount is $(sj_field "$job" failoverCount)); events of the job and its pods:
$events"
    say "$job: events: $(grep -Ei ' [^ ]*(fail|restart|recover|lost)' <<<"$events" | head -3 | tr '\n' ';')"
    finish_job "$job"
}

# --- 4. the JobMaster pod is deleted ------------------------------------------------------------
scenario_4() {
    local job=jobmaster old new workers_before workers_after failovers job_id started
    start_job "$job"
    wait_until 90 "$job: a checkpoint" checkpointed "$job"
    still_running "$job" "the JobMaster's deletion"
    old="$(ready_jobmaster "$job")"
    workers_before="$(worker_uids "$job")"
    failovers="$(sj_field "$job" failoverCount)"
    job_id="$(sj_field "$job" jobId)"
    say "$job: kubectl delete pod $old (workers: $(tr '\n' ' ' <<<"$workers_before"))"
    kj delete pod "$old" --wait=false >/dev/null
    started=$SECONDS
    wait_until 180 "$job: a new JobMaster pod Ready" new_jobmaster_ready "$job" "$old"
    new="$(ready_jobmaster "$job")"
    wait_phase "$job" Running 120
    # The new JobMaster reports the same run (job id), with the tasks adopted.
    wait_until 60 "$job: status from the new JobMaster (condition Ready True)" condition_is "$job" Ready True
    # Give the new JobMaster's resource manager time to (wrongly) make pods before comparing.
    sleep 10
    workers_after="$(worker_uids "$job")"
    [ "$workers_before" = "$workers_after" ] ||
        die "$job: the worker pods changed across the JobMaster's replacement (they should be re-adopted): before $(tr '\n' ' ' <<<"$workers_before"), after $(tr '\n' ' ' <<<"$workers_after")"
    [ "$(sj_field "$job" jobId)" = "$job_id" ] || die "$job: the job id changed from $job_id to $(sj_field "$job" jobId)"
    [ "$(sj_field "$job" failoverCount)" = "$failovers" ] ||
        die "$job: status.failoverCount went from '$failovers' to '$(sj_field "$job" failoverCount)' across the JobMaster's replacement: tasks were restarted instead of adopted"
    say "$job: $new adopted the same worker pods in $((SECONDS - started))s, no task restarted"
    finish_job "$job"
}

# --- 5. scale -----------------------------------------------------------------------------------
scenario_5() {
    local job=scale job_id new_id pod
    start_job "$job"
    wait_until 90 "$job: a checkpoint" checkpointed "$job"
    still_running "$job" "the rescale"
    job_id="$(sj_field "$job" jobId)"
    say "$job: kubectl scale sj/$job --replicas=3"
    kj scale "sj/$job" --replicas=3 >/dev/null
    [ "$(kj get sj "$job" -o jsonpath='{.spec.parallelism}')" = 3 ] || die "$job: spec.parallelism did not become 3"
    wait_until 300 "$job: Running at parallelism 3 (status.parallelism and replicas)" rescaled_to "$job" 3
    new_id="$(sj_field "$job" jobId)"
    if [ -z "$new_id" ] || [ "$new_id" = "$job_id" ]; then
        die "$job: rescaled under the same job id '$new_id' (a redeploy from state must get a new one)"
    fi
    wait_until 120 "$job: $(workers_for 3) worker pods Running" workers_are "$job" "$(workers_for 3)"
    for pod in $(job_pods "$job" worker); do
        [ "$(kj get pod "$pod" -o jsonpath='{.metadata.labels.spate\.dev/job-id}')" != "$job_id" ] ||
            die "$job: worker pod $pod of the old run ($job_id) is still there"
    done
    grep -q -- '"--from"' <<<"$(jobmaster_args "$job")" ||
        die "$job: the rescaled JobMaster is not started --from a savepoint or checkpoint: $(jobmaster_args "$job")"
    say "$job: rescaled to 3 under job id $new_id, from $(sj_field "$job" deployed.restoredFrom)"
    finish_job "$job"
}

# --- 6. suspend and resume ----------------------------------------------------------------------
scenario_6() {
    local job=suspend savepoint job_id processes before_rows after_rows
    start_job "$job"
    wait_until 90 "$job: a checkpoint" checkpointed "$job"
    wait_until 60 "$job: committed output before suspending" has_committed_files "$OUT/$job"
    still_running "$job" "the suspension"
    job_id="$(sj_field "$job" jobId)"
    processes="$(job_processes "$job")"
    say "$job: suspending"
    kj patch sj "$job" --type merge -p '{"spec":{"state":"suspended"}}' >/dev/null
    wait_phase "$job" Suspended 180
    wait_until 120 "$job: no pods while suspended" no_pods "$job"
    wait_until 30 "$job: the pods' processes gone" processes_gone "$processes"
    [ "$(kj get deployment "$job-jobmaster" -o jsonpath='{.spec.replicas}')" = 0 ] ||
        die "$job: the JobMaster Deployment is not at 0 replicas while suspended"
    savepoint="$(sj_field "$job" lastSavepoint.location)"
    [ -n "$savepoint" ] || die "$job: Suspended without status.lastSavepoint"
    [[ "$savepoint" == "s3://$BUCKET/"* ]] || die "$job: the savepoint $savepoint is not in s3://$BUCKET"
    [ -n "$(bucket_metadata "${savepoint#s3://"$BUCKET"/}")" ] ||
        die "$job: the savepoint $savepoint has no _metadata in MinIO ($MINIO_DATA/$BUCKET/${savepoint#s3://"$BUCKET"/})"
    before_rows="$(committed_rows "$OUT/$job" | lines)"
    say "$job: suspended with savepoint $savepoint ($before_rows rows committed)"
    sleep 5
    after_rows="$(committed_rows "$OUT/$job" | lines)"
    [ "$before_rows" = "$after_rows" ] || die "$job: output still grows while suspended ($before_rows -> $after_rows rows)"

    say "$job: resuming"
    kj patch sj "$job" --type merge -p '{"spec":{"state":"running"}}' >/dev/null
    wait_phase "$job" Running 180
    grep -qF -- "$savepoint" <<<"$(jobmaster_args "$job")" ||
        die "$job: the resumed JobMaster is not started from $savepoint: $(jobmaster_args "$job")"
    [ "$(sj_field "$job" jobId)" != "$job_id" ] || die "$job: resumed under the same job id $job_id"
    say "$job: resumed from $savepoint under job id $(sj_field "$job" jobId)"
    finish_job "$job"
}

# --- 7. bad input -------------------------------------------------------------------------------
# refused WHAT EXPECTED(grep -E) SPEC(JSON members): a server-side dry run is refused naming it
refused() {
    local what=$1 expect=$2 spec=$3 out
    if out="$(printf '{"apiVersion":"spate.dev/v1alpha1","kind":"StreamJob","metadata":{"name":"bad","namespace":"%s"},"spec":{%s}}' \
        "$JOBS_NS" "$spec" | k apply --dry-run=server -f - 2>&1)"; then
        die "a manifest with $what was accepted: $out"
    fi
    grep -Eq -- "$expect" <<<"$out" || die "a manifest with $what was refused, but the message lacks /$expect/: $out"
    say "refused $what: $(grep -oE -- "$expect" <<<"$out" | head -1)"
}

scenario_7() {
    local job=bad-sql base degraded error jm_uids restarts workers_seen i line
    CURRENT_JOB=$job
    base="\"image\":\"$IMAGE\",\"job\":{\"sql\":\"SELECT 1\"}"
    refused "a negative parallelism" 'spec\.parallelism' "$base,\"parallelism\":-1"
    refused "an unknown upgradeMode" 'spec\.upgradeMode.*(Unsupported value|supported values)' "$base,\"parallelism\":1,\"upgradeMode\":\"fast\""
    refused "1000 slots per worker" 'spec\.worker\.slots' "$base,\"parallelism\":1,\"worker\":{\"slots\":1000}"
    refused "maxParallelism below parallelism" 'spec\.maxParallelism.*maxParallelism must be at least parallelism' "$base,\"parallelism\":8,\"maxParallelism\":4"
    refused "a savepoint upgrade without checkpointing" 'spec\.upgradeMode.*need checkpointing' "$base,\"parallelism\":1,\"upgradeMode\":\"savepoint\""
    refused "a malformed checkpoint interval" 'spec\.checkpointing\.interval' \
        "$base,\"parallelism\":1,\"checkpointing\":{\"interval\":\"2 seconds\",\"storage\":\"s3://$BUCKET/x\"}"
    refused "no image" 'spec\.image' '"job":{"sql":"SELECT 1"},"parallelism":1'
    refused "both sql and configMapRef" 'spec\.job.*either as sql or as configMapRef' \
        "\"image\":\"$IMAGE\",\"parallelism\":1,\"job\":{\"sql\":\"SELECT 1\",\"configMapRef\":{\"name\":\"q\",\"key\":\"q.sql\"}}"

    # SQL that does not plan: Failed, the error in Degraded, and no crash loop.
    cat >"$WORK/manifests/$job.yaml" <<EOF
apiVersion: spate.dev/v1alpha1
kind: StreamJob
metadata:
  name: $job
  namespace: $JOBS_NS
spec:
  image: $IMAGE
  imagePullPolicy: IfNotPresent
  parallelism: 1
  worker:
    slots: 1
  job:
    sql: |
      CREATE TABLE out (a BIGINT) WITH ('connector' = 'blackhole');
      INSERT INTO out SELECT no_such_column FROM no_such_table;
EOF
    kj apply -f "$WORK/manifests/$job.yaml" >/dev/null
    wait_phase "$job" Failed 180
    degraded="$(condition "$job" Degraded)"
    [ "${degraded%%|*}" = True ] || die "$job: condition Degraded is not True: $degraded"
    grep -qi 'no_such' <<<"$degraded" || die "$job: the Degraded condition does not carry the SQL error: $degraded"
    error="$(sj_field "$job" error)"
    grep -qi 'no_such' <<<"$error" || die "$job: status.error does not carry the SQL error: '$error'"
    say "$job: Failed; Degraded: ${degraded#*|}"
    # Watch: the JobMaster must not restart (nor be replaced again and again), no workers start.
    jm_uids=""
    workers_seen=""
    for ((i = 0; i < BAD_SQL_WATCH_SECONDS; i += 2)); do
        while read -r line; do
            [ -n "$line" ] || continue
            restarts="${line##* }"
            [ "${restarts:-0}" = 0 ] || die "$job: the JobMaster pod restarted ($line): a crash loop"
            grep -qxF "${line%% *}" <<<"$jm_uids" || jm_uids+="${line%% *}"$'\n'
        done < <(kj get pods -l "spate.dev/job=$job,spate.dev/component=jobmaster" \
            -o jsonpath='{range .items[*]}{.metadata.uid} {.status.containerStatuses[0].restartCount}{"\n"}{end}')
        workers_seen+="$(job_pods "$job" worker)"
        [ "$(phase "$job")" = Failed ] || die "$job: phase left Failed: $(phase "$job")"
        sleep 2
    done
    [ "$(lines <<<"$jm_uids")" -le 1 ] || die "$job: $(lines <<<"$jm_uids") JobMaster pods in ${BAD_SQL_WATCH_SECONDS}s: a crash loop"
    [ -z "$workers_seen" ] || die "$job: worker pods were made for SQL that does not plan: $workers_seen"
    say "$job: still Failed after ${BAD_SQL_WATCH_SECONDS}s, JobMaster pods seen: $(lines <<<"$jm_uids"), no restart, no workers"
}

# --- 8. delete ----------------------------------------------------------------------------------
scenario_8() {
    local job=doomed name processes left kinds
    start_job "$job"
    kinds=pods,configmaps,services,serviceaccounts,roles.rbac.authorization.k8s.io,rolebindings.rbac.authorization.k8s.io,deployments.apps,replicasets.apps
    for name in $(kj get sj -o jsonpath='{.items[*].metadata.name}'); do
        CURRENT_JOB=$name
        processes="$(job_processes "$name")"
        say "kubectl delete sj/$name"
        kj delete sj "$name" --timeout=180s >/dev/null || die "$name: kubectl delete did not complete in 180s (finalizer?)"
        wait_until 120 "$name: no $kinds labelled spate.dev/job=$name" none_labelled "$kinds" "$name"
        left=""
        for obj in "deployment/$name-jobmaster" "service/$name-jobmaster" "serviceaccount/$name-jobmaster" \
            "role/$name-jobmaster" "rolebinding/$name-jobmaster" "configmap/$name-job"; do
            if kj get "$obj" >/dev/null 2>&1; then left+=" $obj"; fi
        done
        [ -z "$left" ] || die "$name: left after deletion:$left"
        [ -z "$(kj get pods -o name | grep -E "^pod/$name-" || true)" ] || die "$name: pods left: $(kj get pods -o name | grep -E "^pod/$name-")"
        wait_until 30 "$name: every process of its pods gone" processes_gone "$processes"
    done
    CURRENT_JOB=""
    left="$(kj get sj,pods,configmaps,services,roles,rolebindings,deployments -l app.kubernetes.io/managed-by=spate-operator -o name)"
    [ -z "$left" ] || die "objects of deleted StreamJobs remain: $left"
    [ -z "$(kj get pods -o name)" ] || die "pods remain in $JOBS_NS: $(kj get pods -o name | tr '\n' ' ')"
}

# --- main ---------------------------------------------------------------------------------------
step "build spate, spate-operator, spate-node-agent" build_binaries
step "Kubernetes tools and MinIO" install_tools
step "control plane" cluster_up
step "MinIO" start_minio
step "node agent" start_node_agent
step "namespace $JOBS_NS and the S3 credentials Secret" jobs_namespace
step "reference output" make_reference

# Scenarios 2 to 7 each run a job of their own name and look only at its objects, so they run
# side by side, up to SPATE_E2E_PARALLEL at once (they mostly wait on rate-limited jobs);
# scenario 1 installs the operator every other one needs, and scenario 8 deletes every job, so
# each of those runs alone.
PARALLEL="${SPATE_E2E_PARALLEL:-3}"
[[ "$PARALLEL" =~ ^[1-9][0-9]*$ ]] || die "SPATE_E2E_PARALLEL must be a positive number, not '$PARALLEL'"

# start_scenario N: in a background subshell, so that a failure ends the scenario and not the
# suite; its output goes to its log, printed whole when it ends (side by side, they would mix).
start_scenario() {
    local n=$1
    say "=== scenario $n: ${NAMES[$n]} started"
    (
        set -eE
        trap 'on_error $LINENO "$BASH_COMMAND"' ERR
        SCENARIO="$n ${NAMES[$n]}"
        CURRENT_JOB=""
        "scenario_$n"
    ) >"$LOGS/scenario-$n.log" 2>&1 &
    RUNNING[$!]=$n
    BEGUN[$n]=$SECONDS
}

# The job a scenario runs, deleted when the scenario fails to free the machine for the others.
scenario_job() {
    case "$1" in
        2) echo run ;; 3) echo crash ;; 4) echo jobmaster ;; 5) echo scale ;; 6) echo suspend ;; 7) echo bad-sql ;;
    esac
}

# await_scenario: wait for any running scenario to end, print its log and record its result;
# returns its status.
await_scenario() {
    local pid status=0 n job
    wait -n -p pid "${!RUNNING[@]}" || status=$?
    n=${RUNNING[$pid]}
    unset "RUNNING[$pid]"
    cat "$LOGS/scenario-$n.log" >&2
    if [ "$status" = 0 ]; then
        say "=== scenario $n: ${NAMES[$n]} passed in $((SECONDS - BEGUN[$n]))s"
        times+=("$n ${NAMES[$n]}: passed in $((SECONDS - BEGUN[$n]))s")
        return 0
    fi
    say "=== scenario $n: ${NAMES[$n]} FAILED in $((SECONDS - BEGUN[$n]))s (log: $LOGS/scenario-$n.log)"
    times+=("$n ${NAMES[$n]}: FAILED in $((SECONDS - BEGUN[$n]))s")
    FAILED=1
    [ "$n" != 1 ] || { say "the operator is not installed: no other scenario can run"; exit 1; }
    if [ -n "${SPATE_E2E_FAIL_FAST:-}" ]; then exit 1; fi
    job="$(scenario_job "$n")"
    if [ -n "$job" ]; then kj delete sj "$job" --wait=false >/dev/null 2>&1 || true; fi
    return "$status"
}

run_alone() {
    start_scenario "$1"
    await_scenario || true
}

run_alone 1 # selected or not: the others need the operator
for n in "${selected[@]}"; do
    case "$n" in
        1 | 8) ;;
        *)
            while [ "${#RUNNING[@]}" -ge "$PARALLEL" ]; do await_scenario || true; done
            start_scenario "$n"
            ;;
    esac
done
while [ "${#RUNNING[@]}" -gt 0 ]; do await_scenario || true; done
if [[ " ${selected[*]} " == *" 8 "* ]]; then run_alone 8; fi
[ "$FAILED" = 0 ] || exit 1
