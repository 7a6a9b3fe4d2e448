# shellcheck shell=bash
# Helpers of e2e/kind/run.sh (sourced, not run). Everything talks to the kind cluster's context.

die() {
    echo "FAIL: $*" >&2
    diagnostics >&2 || true
    exit 1
}

log() { printf '%s  %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

k() { kubectl --context "kind-$CLUSTER" "$@"; }
kj() { k -n "$JOBS_NS" "$@"; }

need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || {
            echo "FAIL: $tool not found; these scripts need docker, kind, kubectl, helm and jq" >&2
            exit 1
        }
    done
}

# wait_until SECONDS WHAT CMD...: run CMD every 2 s until it succeeds; fail naming WHAT.
wait_until() {
    local timeout=$1 what=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || die "timed out after ${timeout}s waiting for: $what"
        sleep 2
    done
}

phase() { kj get sj "$1" -o jsonpath='{.status.phase}' 2>/dev/null; }
phase_is() { [ "$(phase "$1")" = "$2" ]; }
status_field() { kj get sj "$1" -o jsonpath="{.status.$2}" 2>/dev/null; }

# Worker pods of a job: all of them, or those in a given phase.
worker_pods() { # job [phase]
    local selector="spate.dev/job=$1,spate.dev/component=worker"
    if [ -n "${2:-}" ]; then
        kj get pods -l "$selector" --field-selector "status.phase=$2" -o name
    else
        kj get pods -l "$selector" -o name
    fi
}
count_lines() { grep -c . || true; }
running_workers() { worker_pods "$1" Running | count_lines; }
workers_are() { [ "$(running_workers "$1")" -eq "$2" ]; }
jobmaster_pod() { kj get pods -l "spate.dev/job=$1,spate.dev/component=jobmaster" -o name | head -1; }
jobmaster_ready() {
    kj get pods -l "spate.dev/job=$1,spate.dev/component=jobmaster" \
        -o jsonpath='{.items[*].status.conditions[?(@.type=="Ready")].status}' | grep -x True >/dev/null
}
no_pods() { [ -z "$(kj get pods -l "spate.dev/job=$1" -o name)" ]; }

# ceil(parallelism / slots): the worker pods a job needs.
workers_for() { echo $((($1 + $2 - 1) / $2)); }

# --- the bounded test job ---------------------------------------------------------------------
# examples/k8s/hop-count.yaml, made bounded and renamed: the same SQL with `events` added to the
# Nexmark source (so it ends and its output can be compared) and a per-subtask rate that keeps
# it running long enough to be disturbed; checkpoints every 2 s into its own directory.
make_job() { # name events rate -> manifest on stdout
    local name=$1 events=$2 rate=$3
    sed -e "s/^  name: hop-count\$/  name: $name/" \
        -e "s|image: spate:0.1.0|image: $IMAGE|" \
        -e "s|storage: s3://spate-checkpoints/hop-count|storage: s3://spate-checkpoints/$name|" \
        -e "s/interval: 10s/interval: 2s/" \
        -e "s/'rate' = '10000'/'events' = '$events', 'rate' = '$rate'/" \
        "$ROOT/examples/k8s/hop-count.yaml"
}

# The job's SQL as the kind job runs it, without the rate limit, for a reference run.
reference_sql() { # events
    make_job reference "$1" 1 | awk '/^    sql: \|/ { on = 1; next } on { sub(/^      /, ""); print }' |
        sed -e "s/, 'rate' = '1'//"
}

# The distinct rows of print-sink output ("+I[...]"), sorted; the "N> " subtask prefixes differ
# with parallelism and are dropped.
rows() { grep -oE '\+I\[.*\]' | LC_ALL=C sort -u; }

# The reference output of the bounded job: `spate run` (an embedded cluster in one container) of
# the same SQL in the same image, at parallelism 1. Computed once per run.
reference_rows() { # events -> file
    local file="$WORK/reference-$1.rows"
    if [ ! -s "$file" ]; then
        reference_sql "$1" >"$WORK/reference.sql"
        log "reference output: spate run -p 1 of the same SQL in $IMAGE"
        # The SQL goes in on stdin: the image's user (uid 10001) cannot read a private temp dir.
        docker run --rm -i "$IMAGE" sh -c 'cat >/tmp/job.sql && exec spate run -p 1 /tmp/job.sql' \
            <"$WORK/reference.sql" >"$WORK/reference-$1.out" 2>&1 ||
            die "the reference run failed: $(tail -5 "$WORK/reference-$1.out")"
        rows <"$WORK/reference-$1.out" >"$file"
        [ -s "$file" ] || die "the reference run printed no rows"
    fi
    echo "$file"
}

# Follow the logs of every worker pod of a job as they appear, into $WORK/logs/<job>/, until
# stop_logs. Worker pods that are deleted take their logs with them, so they are followed while
# they live; a pod seen only after it ended is read once.
follow_logs() { # job
    local job=$1 dir="$WORK/logs/$1"
    mkdir -p "$dir"
    (
        while :; do
            for pod in $(worker_pods "$job" 2>/dev/null); do
                pod=${pod#pod/}
                [ -e "$dir/$pod.log" ] && continue
                case "$(kj get pod "$pod" -o jsonpath='{.status.phase}' 2>/dev/null)" in
                    Running | Succeeded | Failed)
                        kj logs -f "$pod" -c worker >"$dir/$pod.log" 2>"$dir/$pod.err" &
                        ;;
                esac
            done
            sleep 1
        done
    ) &
    echo $! >"$dir/.follower"
}

stop_logs() { # job
    local dir="$WORK/logs/$1"
    [ -f "$dir/.follower" ] || return 0
    kill "$(cat "$dir/.follower")" 2>/dev/null || true
    rm -f "$dir/.follower"
    sleep 2 # the `kubectl logs -f` of ended pods return by themselves
}

# The job's output equals the reference: the same distinct rows. The print sink is not
# transactional: after a failover the rows since the last checkpoint are printed again, identical.
# A record lost or counted twice changes a window's count, which shows as a missing row and an
# extra one.
check_output() { # job events
    local job=$1 reference got
    reference="$(reference_rows "$2")"
    stop_logs "$job"
    got="$WORK/$job.rows"
    cat "$WORK/logs/$job"/*.log 2>/dev/null | rows >"$got"
    if ! cmp -s "$reference" "$got"; then
        echo "rows missing from $job's output (first 5):" >&2
        LC_ALL=C comm -23 "$reference" "$got" | head -5 >&2
        echo "rows in $job's output that the reference lacks (first 5):" >&2
        LC_ALL=C comm -13 "$reference" "$got" | head -5 >&2
        die "$job: output differs from the reference ($(wc -l <"$got") distinct rows, expected $(wc -l <"$reference"))"
    fi
    log "$job: output is the reference's $(wc -l <"$got") rows"
}

# Objects in the checkpoint bucket under a prefix, listed by mc in a one-off pod.
s3_ls() { # prefix
    k -n minio run "mc-$RANDOM" --rm -i --quiet --restart=Never --image="$MC_IMAGE" \
        --env=MC_HOST_m="http://spate:spate-example-secret@minio.minio.svc.cluster.local:9000" \
        --command -- mc ls --recursive "m/spate-checkpoints/$1" 2>/dev/null
}

# Kill a pod's main process from the node (a container's PID 1 cannot be SIGKILLed from inside).
kill_container() { # pod container
    local id node pid
    id="$(kj get pod "$1" -o jsonpath="{.status.containerStatuses[?(@.name==\"$2\")].containerID}")"
    id=${id#containerd://}
    node="$(kj get pod "$1" -o jsonpath='{.spec.nodeName}')"
    [ -n "$id" ] && [ -n "$node" ] || die "no running container $2 in pod $1"
    pid="$(docker exec "$node" crictl inspect --output go-template --template '{{.info.pid}}' "$id")"
    log "kill -9 $pid ($1/$2 on $node)"
    docker exec "$node" kill -9 "$pid"
}

diagnostics() {
    [ -n "${CLUSTER:-}" ] || return 0
    echo "---- StreamJobs" && kj get sj -o wide 2>&1 | head -20
    echo "---- status" && kj get sj -o jsonpath='{range .items[*]}{.metadata.name}{": "}{.status}{"\n"}{end}' 2>&1 | head -20
    echo "---- pods" && kj get pods -o wide 2>&1 | head -30
    echo "---- events" && kj get events --sort-by=.lastTimestamp 2>&1 | tail -20
    echo "---- operator log" && k -n "$OPERATOR_NS" logs deploy/"$OPERATOR" --tail=40 2>&1
}
