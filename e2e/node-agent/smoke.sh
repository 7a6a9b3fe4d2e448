#!/usr/bin/env bash
# The node agent against a real control plane (e2e/k8s/cluster.sh): the Node becomes Ready; a pod
# runs `spate --version` to Succeeded; a pod's env (downward API, ConfigMap), volumes (mount paths
# rewritten) and address are what the spec says; the pod's process talks to the API server as its
# own service account; `kill -9` of a process fails a restartPolicy Never pod and restarts an
# Always one; a deleted pod's process is stopped and the object and directory are gone; SIGTERM
# to the agent stops every pod's process.
#
#   bash e2e/node-agent/smoke.sh
#   SPATE_BIN=path/to/spate SPATE_NODE_AGENT=path/to/spate-node-agent bash e2e/node-agent/smoke.sh
#   SPATE_K8S_KEEP=1 ...   keep the cluster's directory (state, logs, pods' files) for inspection
set -euo pipefail
cd "$(dirname "$0")/../.."

die() {
    echo "node-agent smoke: FAIL: $*" >&2
    if [ -n "${dir:-}" ] && [ -f "$dir/logs/node-agent.log" ]; then
        tail -n 40 "$dir/logs/node-agent.log" >&2
    fi
    # What each pod's processes said (a container that exits at once says why here).
    for log in "${root:-/nonexistent}"/pods/*_*/main.log; do
        [ -f "$log" ] || continue
        echo "--- $(basename "$(dirname "$log")"): last lines of main.log" >&2
        tail -n 15 "$log" >&2
    done
    exit 1
}
say() { echo "node-agent smoke: $*" >&2; }
# alive PID: the process exists and is not a zombie (a killed orphan stays one until its new
# parent reaps it)
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# shellcheck source=e2e/lib/binaries.sh
source e2e/lib/binaries.sh
test_binaries

dir="$(mktemp -d "${TMPDIR:-/tmp}/spate-node-agent-smoke.XXXXXX")"
agent_pid=""
cleanup() {
    if [ -n "$agent_pid" ]; then kill -TERM "$agent_pid" 2>/dev/null || true; wait "$agent_pid" 2>/dev/null || true; fi
    bash e2e/k8s/cluster.sh down "$dir" >/dev/null 2>&1 || true
    if [ -z "${SPATE_K8S_KEEP:-}" ]; then rm -rf "$dir"; else say "kept $dir"; fi
}
trap cleanup EXIT

eval "$(bash e2e/k8s/cluster.sh up "$dir")"
kubectl() { "$SPATE_KUBECTL" --kubeconfig "$SPATE_K8S_ADMIN_KUBECONFIG" "$@"; }
root="$dir/node"
# Pod addresses of its own: the Kubernetes scenarios' agent (127.1.0.0/16) may run beside it.
pod_cidr=127.2.0.0/16

# The agent runs as the Node's own identity (Node authorizer and NodeRestriction apply). kubectl's
# directory is on its PATH so that a pod may run `kubectl` as a host command.
PATH="$(dirname "$SPATE_KUBECTL"):$PATH" "$SPATE_NODE_AGENT" \
    --kubeconfig "$SPATE_K8S_NODE_KUBECONFIG" --node-name "$SPATE_K8S_NODE_NAME" --root "$root" \
    --pod-cidr "$pod_cidr" --image "spate=$SPATE_BIN" --host-command sleep --host-command sh --host-command kubectl \
    >"$dir/logs/node-agent.log" 2>&1 &
agent_pid=$!
kubectl wait --for condition=Ready --timeout 60s "node/$SPATE_K8S_NODE_NAME" >/dev/null ||
    die "the node did not become Ready"
say "node Ready"

# phase POD: the pod's phase
phase() { kubectl get pod "$1" -o jsonpath='{.status.phase}' 2>/dev/null; }
# wait_until SECONDS WHAT COMMAND...: retry COMMAND until it succeeds
wait_until() {
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || die "timed out waiting for $what"
        sleep 0.3
    done
}
is_phase() { [ "$(phase "$1")" = "$2" ]; }

kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello, job.sql: "SELECT 1"}
---
apiVersion: v1
kind: Pod
metadata: {name: version}
spec:
  restartPolicy: Never
  containers: [{name: main, image: "example.org/spate:dev", args: ["--version"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: env, labels: {role: probe}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: [sh, -c]
    args: ["echo name=$(POD) ip=$POD_IP role=$ROLE greeting=$GREETING bind=0.0.0.0:6123; cat /etc/settings/job.sql; echo; sleep 3600"]
    env:
    - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: ROLE, valueFrom: {fieldRef: {fieldPath: "metadata.labels['role']"}}}
    - {name: GREETING, valueFrom: {configMapKeyRef: {name: settings, key: greeting}}}
    volumeMounts: [{name: settings, mountPath: /etc/settings}]
  volumes: [{name: settings, configMap: {name: settings}}]
---
apiVersion: v1
kind: Pod
metadata: {name: whoami}
spec:
  restartPolicy: Never
  containers:
  - {name: main, image: bitnami/kubectl, command: [kubectl, auth, whoami, -o, "jsonpath={.status.userInfo.username}"]}
---
apiVersion: v1
kind: Pod
metadata: {name: always}
spec:
  terminationGracePeriodSeconds: 5
  containers: [{name: main, image: busybox, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: unmapped}
spec:
  containers: [{name: main, image: nginx}]
EOF

wait_until 60 "pod version Succeeded" is_phase version Succeeded
grep -q "spate" "$root/pods/default_version/main.log" || die "no version in $(cat "$root/pods/default_version/main.log")"
say "version: Succeeded, log: $(tail -n 1 "$root/pods/default_version/main.log")"

wait_until 60 "pod env Running" is_phase env Running
ip="$(kubectl get pod env -o jsonpath='{.status.podIP}')"
[[ "$ip" == 127.2.* ]] || die "pod IP $ip is not in $pod_cidr"
log_has() { grep -q "$2" "$root/pods/default_$1/main.log"; }
wait_until 10 "the env pod's output" log_has env "SELECT 1"
expected="name=env ip=$ip role=probe greeting=hello bind=$ip:6123"
grep -qF "$expected" "$root/pods/default_env/main.log" ||
    die "env pod printed $(cat "$root/pods/default_env/main.log"), expected $expected"
say "env: Running at $ip; env, downward API, ConfigMap volume and wildcard rewrite as expected"

wait_until 60 "pod whoami Succeeded" is_phase whoami Succeeded
grep -q "system:serviceaccount:default:default" "$root/pods/default_whoami/main.log" ||
    die "whoami printed $(cat "$root/pods/default_whoami/main.log")"
say "whoami: the pod's process is system:serviceaccount:default:default"

ready() { [ "$(kubectl get pod "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]; }
wait_until 30 "pod env Ready" ready env
kill -9 "$(cat "$root/pods/default_env/main.pid")"
wait_until 30 "pod env Failed after kill -9" is_phase env Failed
code="$(kubectl get pod env -o jsonpath='{.status.containerStatuses[0].state.terminated.exitCode}')"
[ "$code" = 137 ] || die "exit code $code after kill -9, expected 137"
say "env: kill -9 → Failed, exit code 137"

wait_until 60 "pod always Running" is_phase always Running
kill -9 "$(cat "$root/pods/default_always/main.pid")"
restarted() {
    [ "$(kubectl get pod always -o jsonpath='{.status.containerStatuses[0].restartCount}')" = 1 ] &&
        [ -n "$(kubectl get pod always -o jsonpath='{.status.containerStatuses[0].state.running}')" ]
}
wait_until 30 "pod always restarted" restarted
last="$(kubectl get pod always -o jsonpath='{.status.containerStatuses[0].lastState.terminated.exitCode}')"
[ "$last" = 137 ] || die "lastState exit code $last, expected 137"
say "always: kill -9 → restarted (restartCount 1, lastState exit code 137)"

reason="$(kubectl get pod unmapped -o jsonpath='{.status.containerStatuses[0].state.waiting.message}')"
[[ "$reason" == *"image nginx has no local binary"* ]] || die "unmapped image: $reason"
say "unmapped: waiting with \"$reason\""

pid="$(cat "$root/pods/default_always/main.pid")"
uid="$(kubectl get pod always -o jsonpath='{.metadata.uid}')"
kubectl delete pod always --timeout 30s >/dev/null || die "pod always was not deleted"
! alive "$pid" || die "process $pid of a deleted pod still runs"
[ ! -e "$root/pods/$uid" ] || die "the deleted pod's directory is still there"
say "always: deleted; process gone, directory removed"

kubectl delete pod version env whoami unmapped --timeout 30s >/dev/null

# Two JobMasters binding 0.0.0.0:6123, each on its own address, ready by their tcpSocket probe.
for name in jm-a jm-b; do
    kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $name}
spec:
  containers:
  - name: main
    image: spate
    command: [spate]
    args: [jobmaster, --bind, "0.0.0.0:6123", --slot-timeout-s, "3600"]
    ports: [{name: rpc, containerPort: 6123}]
    readinessProbe: {tcpSocket: {port: rpc}, periodSeconds: 1}
EOF
done
wait_until 60 "pod jm-a Ready" ready jm-a
wait_until 60 "pod jm-b Ready" ready jm-b
ip_a="$(kubectl get pod jm-a -o jsonpath='{.status.podIP}')"
ip_b="$(kubectl get pod jm-b -o jsonpath='{.status.podIP}')"
[ "$ip_a" != "$ip_b" ] || die "two pods share the address $ip_a"
(exec 3<>"/dev/tcp/$ip_a/6123") 2>/dev/null || die "nothing listens on $ip_a:6123"
say "jm-a and jm-b: both Ready on port 6123, at $ip_a and $ip_b"

# The agent dies without stopping anything; its next run kills the orphans and restarts them.
old_pid="$(cat "$root/pods/default_jm-a/main.pid")"
kill -KILL "$agent_pid"
wait "$agent_pid" 2>/dev/null || true
alive "$old_pid" || die "process $old_pid died with the agent"
PATH="$(dirname "$SPATE_KUBECTL"):$PATH" "$SPATE_NODE_AGENT" \
    --kubeconfig "$SPATE_K8S_NODE_KUBECONFIG" --node-name "$SPATE_K8S_NODE_NAME" --root "$root" \
    --pod-cidr "$pod_cidr" --image "spate=$SPATE_BIN" --host-command sleep >>"$dir/logs/node-agent.log" 2>&1 &
agent_pid=$!
rerun() {
    [ "$(kubectl get pod jm-a -o jsonpath='{.status.containerStatuses[0].restartCount}')" = 1 ] && ready jm-a
}
wait_until 60 "pod jm-a restarted by the new agent" rerun
! alive "$old_pid" || die "the orphan $old_pid of the killed agent still runs"
[ "$(kubectl get pod jm-a -o jsonpath='{.status.podIP}')" = "$ip_a" ] || die "jm-a changed its address"
say "agent restart: orphan $old_pid killed, jm-a restarted at the same address and Ready"
kubectl delete pod jm-a jm-b --timeout 60s >/dev/null

kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: last}
spec:
  containers: [{name: main, image: busybox, command: [sleep, "3600"]}]
EOF
wait_until 60 "pod last Running" is_phase last Running
pid="$(cat "$root/pods/default_last/main.pid")"
kill -TERM "$agent_pid"
wait "$agent_pid" || die "the agent exited with $? on SIGTERM"
agent_pid=""
! alive "$pid" || die "process $pid survived the agent's SIGTERM"
say "agent SIGTERM: pods' processes stopped"
say "ok"
