# shellcheck shell=bash
# Helpers of e2e/k8s/scenarios.sh (sourced, not run): output, waiting, the test job and its
# reference, StreamJob and pod queries, the node agent's files, MinIO's data directory, and the
# diagnostics printed when a scenario fails. Globals come from scenarios.sh (WORK, LOGS, ...).

# --- output -----------------------------------------------------------------------------------

say() { printf '%s  %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# die MESSAGE: fail the current scenario (or the setup) loudly: the message, then what the
# cluster, the operator, the job's JobMaster and workers and the node agent have to say.
die() {
    printf '\n%s  FAIL%s: %s\n' "$(date +%H:%M:%S)" "${SCENARIO:+ [scenario $SCENARIO]}" "$*" >&2
    diagnostics "${CURRENT_JOB:-}" >&2 || true
    printf '%s  FAIL%s: %s\n' "$(date +%H:%M:%S)" "${SCENARIO:+ [scenario $SCENARIO]}" "$*" >&2
    exit 1
}

# An unexpected command failure inside a scenario (set -e): name the line and the command.
on_error() {
    local status=$? line=$1 command=$2
    trap - ERR
    die "line $line: \`$command\` failed with status $status"
}

# need TOOL...: with CI=true a missing tool is a failure; elsewhere the whole run is skipped.
need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 && continue
        if [ "${CI:-}" = true ]; then
            echo "FAIL: $tool not found (CI=true: a missing tool is a failure)" >&2
            exit 1
        fi
        echo "SKIP: $tool not found; the Kubernetes scenarios need it (with CI=true this fails)" >&2
        exit 0
    done
}

# --- waiting ----------------------------------------------------------------------------------

# wait_until SECONDS WHAT COMMAND...: run COMMAND every second until it succeeds; fail naming WHAT.
wait_until() {
    local timeout=$1 what=$2 started=$SECONDS
    shift 2
    until "$@" >/dev/null 2>&1; do
        [ $((SECONDS - started)) -lt "$timeout" ] || die "timed out after ${timeout}s waiting for: $what"
        sleep 1
    done
    say "$what ($((SECONDS - started))s)"
}

# --- kubectl ------------------------------------------------------------------------------------

k() { "$SPATE_KUBECTL" "$@"; }
kj() { "$SPATE_KUBECTL" -n "$JOBS_NS" "$@"; }
helm() { "$SPATE_HELM" "$@"; }
lines() { grep -c . || true; }

# StreamJob status
sj_field() { kj get sj "$1" -o jsonpath="{.status.$2}" 2>/dev/null || true; }
phase() { sj_field "$1" phase; }
condition() { # job type -> "status|reason|message"
    kj get sj "$1" -o jsonpath="{.status.conditions[?(@.type==\"$2\")].status}|{.status.conditions[?(@.type==\"$2\")].reason}|{.status.conditions[?(@.type==\"$2\")].message}" 2>/dev/null || true
}

# wait_phase JOB PHASE SECONDS: as wait_until, but a job that Failed (or Finished, when waiting
# for another phase) fails at once with the reason instead of waiting for the timeout.
wait_phase() {
    local job=$1 want=$2 timeout=$3 started=$SECONDS now
    while :; do
        now="$(phase "$job")"
        [ "$now" = "$want" ] && break
        case "$now" in
            Failed) die "$job: phase Failed while waiting for $want: $(sj_field "$job" error)" ;;
            Finished) [ "$want" = Running ] && die "$job: Finished while waiting for Running: the job ended too early (raise SPATE_E2E_EVENTS)" ;;
        esac
        [ $((SECONDS - started)) -lt "$timeout" ] ||
            die "timed out after ${timeout}s waiting for $job to be $want (phase: ${now:-none})"
        sleep 1
    done
    say "$job: phase $want ($((SECONDS - started))s)"
}

# still_running JOB WHAT: the job has not ended before a disturbance that must happen mid-run.
still_running() {
    local now
    now="$(phase "$1")"
    [ "$now" = Running ] || die "$1: phase $now before $2; the job must still run (raise SPATE_E2E_EVENTS or lower SPATE_E2E_RATE)"
}

# Pods of a job by component (jobmaster or worker), optionally in one phase: names, one a line.
job_pods() { # job component [phase]
    kj get pods -l "spate.dev/job=$1,spate.dev/component=$2" ${3:+--field-selector "status.phase=$3"} \
        -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' 2>/dev/null || true
}
# name=uid of every worker pod, sorted
worker_uids() {
    kj get pods -l "spate.dev/job=$1,spate.dev/component=worker" \
        -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.uid}{"\n"}{end}' | LC_ALL=C sort
}
running_workers() { job_pods "$1" worker Running | lines; }
workers_are() { [ "$(running_workers "$1")" -eq "$2" ]; }
# The JobMaster pod that is Ready (its readiness probe: the gRPC port answers).
ready_jobmaster() {
    { kj get pods -l "spate.dev/job=$1,spate.dev/component=jobmaster" \
        -o jsonpath='{range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null || true; } |
        awk '$2 == "True" && !found { print $1; found = 1 }'
}
no_pods() { [ -z "$(kj get pods -l "spate.dev/job=$1" -o name 2>/dev/null)" ]; }
# The worker pods a job needs: parallelism / slots, rounded up.
workers_for() { echo $((($1 + SLOTS - 1) / SLOTS)); }
# The JobMaster container's args in the job's Deployment (a JSON array).
jobmaster_args() {
    kj get deployment "$1-jobmaster" -o jsonpath='{.spec.template.spec.containers[?(@.name=="spate")].args}'
}
checkpointed() { [ -n "$(sj_field "$1" lastCheckpoint.id)" ]; }

# Conditions to wait for (wait_until runs them in this shell).
sj_field_is() { [ "$(sj_field "$1" "$2")" = "$3" ]; } # job field value
sj_field_above() { # job field number: the field is a number above it
    local value
    value="$(sj_field "$1" "$2")"
    [ -n "$value" ] && [ "$value" -gt "${3:-0}" ]
}
condition_is() { local c; c="$(condition "$1" "$2")"; [ "${c%%|*}" = "$3" ]; } # job type status
rescaled_to() { [ "$(kj get sj "$1" -o jsonpath='{.status.phase}/{.status.parallelism}/{.status.replicas}')" = "Running/$2/$2" ]; }
new_jobmaster_ready() { local p; p="$(ready_jobmaster "$1")"; [ -n "$p" ] && [ "$p" != "$2" ]; } # job old-pod
pod_failed_or_gone() {
    local p
    p="$(kj get pod "$1" -o jsonpath='{.status.phase}' 2>/dev/null)" || return 0
    [ "$p" = Failed ]
}
lease_held_by() { [ "$(k -n "$OPERATOR_NS" get lease "$OPERATOR" -o jsonpath='{.spec.holderIdentity}')" = "$1" ]; }
has_committed_files() { [ -n "$(find "$1" -type f ! -name '.*' ! -name '_*' 2>/dev/null)" ]; }
none_labelled() { [ -z "$(kj get "$1" -l "spate.dev/job=$2" -o name)" ]; } # kinds job

# --- the node agent's files --------------------------------------------------------------------

# The directory of a pod on the node (a link to ROOT/pods/<uid>, gone with the pod).
pod_dir() { echo "$NODE_ROOT/pods/${2:-$JOBS_NS}_$1"; }
# The pid of a pod's container process, from the node agent's pid file.
container_pid() { # pod container [namespace]
    local file
    file="$(pod_dir "$1" "${3:-}")/$2.pid"
    [ -s "$file" ] || return 1
    cat "$file"
}
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# Every process of the job's pods, as "pid namespace/pod/container" lines (for checking later
# that they are gone).
job_processes() {
    local pod file
    for pod in $(kj get pods -l "spate.dev/job=$1" -o jsonpath='{.items[*].metadata.name}' 2>/dev/null || true); do
        for file in "$(pod_dir "$pod")"/*.pid; do
            [ -s "$file" ] || continue
            echo "$(cat "$file") $JOBS_NS/$pod/$(basename "$file" .pid)"
        done
    done
}
# processes_gone LIST: none of the "pid ..." lines is a live process
processes_gone() {
    local pid rest
    while read -r pid rest; do
        [ -n "$pid" ] || continue
        if alive "$pid"; then return 1; fi
    done <<<"$1"
}

# Pod logs: the node agent removes a pod's directory (and its log) with the pod, so a collector
# hard-links every container log into LOGS/pods/<namespace>/<pod>/<container>.log as soon as it
# appears; the link keeps receiving what the process writes and outlives the pod.
collect_logs_once() {
    local link target uid base ns pod file dest
    for link in "$NODE_ROOT"/pods/*_*; do
        [ -L "$link" ] || continue
        target="$(readlink "$link")" || continue
        uid="${target##*/}"
        base="${link##*/}"
        ns="${base%%_*}"
        pod="${base#*_}"
        for file in "$NODE_ROOT/pods/$uid"/*.log; do
            [ -f "$file" ] || continue
            dest="$LOGS/pods/$ns/$pod/$(basename "$file")"
            if [ -e "$dest" ]; then
                [ "$dest" -ef "$file" ] && continue
                dest="${dest%.log}.${uid:0:8}.log"
                [ -e "$dest" ] && continue
            fi
            mkdir -p "$(dirname "$dest")"
            ln "$file" "$dest" 2>/dev/null || cp "$file" "$dest" 2>/dev/null || true
        done
    done
}

start_log_collector() {
    mkdir -p "$LOGS/pods"
    (
        set +e
        trap - ERR EXIT
        while :; do
            collect_logs_once
            sleep 1
        done
    ) >/dev/null 2>&1 &
    # shellcheck disable=SC2034 # stopped by scenarios.sh's teardown
    COLLECTOR_PID=$!
}

# The collected log files of a job's pods: component jobmaster or worker.
job_logs() { # job component
    local dir
    for dir in "$LOGS/pods/$JOBS_NS/$1-"*; do
        [ -d "$dir" ] || continue
        case "$2:${dir##*/}" in
            jobmaster:*-worker-*) ;;
            jobmaster:*) ls "$dir"/*.log 2>/dev/null ;;
            worker:*-worker-*) ls "$dir"/*.log 2>/dev/null ;;
        esac
    done
}

# --- MinIO (its data directory: an object a/b/c is the directory BUCKET/a/b/c/ with xl.meta) ---

# The _metadata objects under a prefix of the bucket, one a line.
bucket_metadata() { # prefix
    local dir="$MINIO_DATA/$BUCKET/$1"
    [ -d "$dir" ] || return 0
    find "$dir" -name _metadata -prune -print 2>/dev/null | sed "s|^$MINIO_DATA/$BUCKET/||" | LC_ALL=C sort
}

# --- the test job -------------------------------------------------------------------------------

# Nexmark bids (EVENTS events in all, 92% bids) counted and summed per auction in 10-second
# windows sliding every 2 seconds (q5's first half), into CSV files: a window operator with keyed
# state, a hash exchange, and the exactly-once (two-phase commit) file sink. RATE limits each
# source subtask to that many events per second, so the job runs long enough to be disturbed.
job_sql() { # output-directory [rate]
    local out=$1 rate=${2:-}
    cat <<EOF
CREATE TABLE bid (
    auction BIGINT, bidder BIGINT, price BIGINT, dateTime TIMESTAMP(3),
    WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'nexmark.table' = 'bid', 'events' = '$EVENTS'${rate:+, 'rate' = '$rate'});
CREATE TABLE hop_counts (auction BIGINT, starttime TIMESTAMP(3), endtime TIMESTAMP(3), bids BIGINT, volume BIGINT)
WITH ('connector' = 'filesystem', 'path' = '$out', 'format' = 'csv');
INSERT INTO hop_counts
SELECT auction, HOP_START(dateTime, INTERVAL '2' SECOND, INTERVAL '10' SECOND),
       HOP_END(dateTime, INTERVAL '2' SECOND, INTERVAL '10' SECOND), COUNT(*), SUM(price)
FROM bid GROUP BY auction, HOP(dateTime, INTERVAL '2' SECOND, INTERVAL '10' SECOND);
EOF
}

# The StreamJob of the test job: PARALLELISM subtasks, SLOTS slots per worker pod (so several
# worker pods), checkpoints every CHECKPOINT_INTERVAL to s3://BUCKET/<name> on MinIO with the
# credentials of the Secret spate-s3, savepoint upgrades, output into OUT/<name> on the host.
job_manifest() { # name [parallelism]
    local name=$1 parallelism=${2:-2}
    cat <<EOF
apiVersion: spate.dev/v1alpha1
kind: StreamJob
metadata:
  name: $name
  namespace: $JOBS_NS
spec:
  image: $IMAGE
  imagePullPolicy: IfNotPresent
  parallelism: $parallelism
  maxParallelism: 128
  worker:
    slots: $SLOTS
  checkpointing:
    interval: $CHECKPOINT_INTERVAL
    storage: s3://$BUCKET/$name
    credentialsSecret: spate-s3
    retained: 3
  restartStrategy:
    kind: exponential-backoff
    attempts: 10
    delay: 1s
  upgradeMode: savepoint
  job:
    sql: |
$(job_sql "$OUT/$name" "$RATE" | sed 's/^/      /')
EOF
}

# start_job NAME [PARALLELISM]: apply the test job, wait for phase Running with its worker pods.
start_job() {
    local name=$1 parallelism=${2:-2}
    CURRENT_JOB=$name
    job_manifest "$name" "$parallelism" >"$WORK/manifests/$name.yaml"
    kj apply -f "$WORK/manifests/$name.yaml" >/dev/null
    say "$name: applied (parallelism $parallelism, $EVENTS events at $RATE/s per source subtask)"
    wait_phase "$name" Running 240
    wait_until 120 "$name: $(workers_for "$parallelism") worker pod(s) Running" \
        workers_are "$name" "$(workers_for "$parallelism")"
}

# The rows a job committed: every visible file of its output directory (in-progress and hidden
# files are not output), sorted, duplicates kept.
committed_rows() { # directory
    [ -d "$1" ] || return 0
    find "$1" -type f ! -name '.*' ! -name '_*' -print0 | xargs -0 -r cat | LC_ALL=C sort
}

# The bids among events 0 .. EVENTS: event n is a bid when n mod 50 >= 4.
expected_bids() {
    awk -v e="$EVENTS" 'BEGIN { r = e % 50; print int(e / 50) * 46 + (r > 4 ? r - 4 : 0) }'
}

# The reference output: `spate run -p 1` of the same SQL without the rate limit, on the host, no
# failures, checked against arithmetic: every bid is in exactly 5 hopping windows, so the counts
# add up to 5 times the bids. Made once per run of the suite, in the setup (REFERENCE).
make_reference() {
    local dir="$WORK/reference" total bids
    REFERENCE="$dir/rows"
    mkdir -p "$dir"
    job_sql "$dir/out" >"$dir/job.sql"
    say "reference: spate run -p 1 of the job's SQL without its rate limit ($EVENTS events)"
    "$SPATE_BIN" run -p 1 --quiet --work-dir "$dir/work" "$dir/job.sql" >"$LOGS/reference.log" 2>&1 ||
        die "the reference run failed (log: $LOGS/reference.log): $(tail -n 20 "$LOGS/reference.log")"
    committed_rows "$dir/out" >"$REFERENCE"
    [ -s "$REFERENCE" ] || die "the reference run wrote no rows into $dir/out"
    total="$(awk -F, '{ s += $4 } END { printf "%d", s }' "$REFERENCE")"
    bids="$(expected_bids)"
    [ "$total" -eq $((5 * bids)) ] ||
        die "the reference's counts add up to $total, not 5 x $bids bids: the reference itself is wrong"
    say "reference: $(lines <"$REFERENCE") rows, counts adding up to 5 x $bids bids"
}

# check_output JOB: the job's committed rows are exactly the reference's (same multiset: a row
# lost, changed or committed twice fails).
check_output() {
    local job=$1 reference="$REFERENCE" got missing extra dup
    got="$WORK/results/$job.rows"
    committed_rows "$OUT/$job" >"$got"
    if ! cmp -s "$reference" "$got"; then
        missing="$(LC_ALL=C comm -23 "$reference" "$got" | lines)"
        extra="$(LC_ALL=C comm -13 "$reference" "$got" | lines)"
        dup="$(uniq -d "$got" | lines)"
        {
            echo "rows of the reference missing from $job's output: $missing (first 5):"
            LC_ALL=C comm -23 "$reference" "$got" | head -5
            echo "rows of $job's output the reference lacks: $extra (first 5), rows committed twice: $dup:"
            LC_ALL=C comm -13 "$reference" "$got" | head -5
            echo "committed files in $OUT/$job:"
            ls -la "$OUT/$job" 2>&1 | head -30
        } >&2
        die "$job: output differs from the reference ($(lines <"$got") rows, expected $(lines <"$reference"); saved in $got)"
    fi
    say "$job: output is exactly the reference's $(lines <"$got") rows"
}

# finish_job JOB: wait for phase Finished, check the output, and that the pods went away.
finish_job() {
    local job=$1 budget
    # the whole stream at the rate limit, three times over, plus restarts
    budget=$((EVENTS * 3 / (2 * RATE) + 240))
    wait_phase "$job" Finished "$budget"
    check_output "$job"
    wait_until 120 "$job: no pods once Finished" no_pods "$job"
}

# --- diagnostics --------------------------------------------------------------------------------

# tail_file FILE LINES: the last lines of a log without colours, a run of lines that differ only
# in their timestamp shown once with its count
tail_file() {
    [ -f "$1" ] || return 0
    echo "---- $1 (last $2 lines)"
    tail -n $(($2 * 20)) "$1" | sed -e 's/\x1b\[[0-9;]*m//g' |
        awk '{ key = $0; sub(/^[0-9T:.-]+Z? +/, "", key)
               if (key == last) { n++; next }
               if (n > 0) print "    (the line above " n " more times)"
               print; last = key; n = 0 }
             END { if (n > 0) print "    (the line above " n " more times)" }' |
        tail -n "$2" | cut -c1-400
}

diagnostics() { # [job]
    local job=${1:-} file
    [ -n "${KUBECONFIG:-}" ] && [ -n "${SPATE_KUBECTL:-}" ] || return 0
    echo "================ diagnostics${job:+ of $job} (logs: $LOGS)"
    if [ -n "$job" ]; then
        echo "---- StreamJob $job status"
        kj get sj "$job" -o yaml 2>&1 | sed -n '/^status:/,$p' | head -80
        echo "---- kubectl describe sj $job (events at the end)"
        kj describe sj "$job" 2>&1 | sed -n '/^Events:/,$p' | head -30
    fi
    echo "---- StreamJobs"
    kj get sj -o wide 2>&1 | head -20
    echo "---- pods"
    k get pods -A -o wide 2>&1 | head -40
    if [ -n "$job" ]; then
        echo "---- kubectl describe pods -l spate.dev/job=$job"
        kj describe pods -l "spate.dev/job=$job" 2>&1 |
            grep -E '^(Name:|Status:|IP:|Labels:|Controlled By:|  [a-z]+:$|    (State|Reason|Exit Code|Restart Count|Ready|Last State):|Events:|  (Normal|Warning))' | head -80
    fi
    echo "---- events (last 40)"
    k get events -A --sort-by=.lastTimestamp \
        -o custom-columns=TIME:.lastTimestamp,NS:.metadata.namespace,OBJECT:.involvedObject.name,TYPE:.type,REASON:.reason,MESSAGE:.message 2>&1 | tail -n 40
    collect_logs_once 2>/dev/null || true
    for file in "$LOGS/pods/$OPERATOR_NS"/*/*.log; do tail_file "$file" 60; done
    if [ -n "$job" ]; then
        for file in $(job_logs "$job" jobmaster); do tail_file "$file" 60; done
        for file in $(job_logs "$job" worker); do tail_file "$file" 25; done
    fi
    tail_file "$LOGS/node-agent.log" 30
    echo "================ end of diagnostics"
}
