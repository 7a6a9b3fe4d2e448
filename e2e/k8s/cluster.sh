#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1, without Docker and without a kubelet.
#
#   bash e2e/k8s/cluster.sh up DIR     generate certificates and keys, start etcd,
#                                      kube-apiserver, kube-controller-manager and kube-scheduler
#                                      with all state and logs under DIR, and wait until the API
#                                      is ready and the default ServiceAccount exists; then print
#                                      `export` lines (as `env` does):
#                                        eval "$(bash e2e/k8s/cluster.sh up "$dir")"
#   bash e2e/k8s/cluster.sh env DIR    print the `export` lines of a running cluster
#   bash e2e/k8s/cluster.sh down DIR   stop every process of the cluster in DIR (state stays in
#                                      DIR for inspection; remove DIR yourself)
#
# The binaries come from e2e/k8s/tools.sh (built on first use). Every port is a free random one
# unless set, so two clusters do not collide: SPATE_K8S_ETCD_PORT, SPATE_K8S_ETCD_PEER_PORT,
# SPATE_K8S_APISERVER_PORT, SPATE_K8S_CONTROLLER_MANAGER_PORT, SPATE_K8S_SCHEDULER_PORT.
# Other settings: SPATE_K8S_NODE_NAME (the node identity whose kubeconfig is made, default
# spate-node), SPATE_K8S_CONTROLLERS (kube-controller-manager --controllers),
# SPATE_K8S_STARTUP_SECONDS (default 180), SPATE_K8S_APISERVER_ARGS (extra flags, split on
# spaces).
#
# Security is real: TLS everywhere but etcd (plain HTTP on 127.0.0.1), client certificates,
# authorization Node,RBAC with the NodeRestriction admission plugin, ServiceAccount tokens signed
# with DIR/pki/sa.key. There is no kubelet: a node agent registers a Node and runs the pods bound to
# it, using DIR/node.kubeconfig (user system:node:$SPATE_K8S_NODE_NAME) or DIR/admin.kubeconfig.
set -Eeuo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
TOOLS="${SPATE_TOOLS:-/var/tmp/spate-tools}"
BIN="$TOOLS/bin"
STARTUP_SECONDS="${SPATE_K8S_STARTUP_SECONDS:-180}"
NODE_NAME="${SPATE_K8S_NODE_NAME:-spate-node}"
SERVICE_CIDR="10.0.0.0/24"
SERVICE_IP="10.0.0.1"
# What Spate's e2e needs: ServiceAccounts and their tokens, owner-reference garbage collection,
# Deployments and Jobs, namespace deletion, the kube-root-ca.crt ConfigMap that projected
# ServiceAccount volumes read, Service endpoints, the aggregated admin/edit/view ClusterRoles, and
# the node lifecycle (it lifts the not-ready taint that new Nodes get once the node reports Ready,
# and evicts pods from a node that stops reporting). Not: CSR signing, volumes, cloud, node IPAM,
# cron jobs, quotas, autoscaling, ...
CONTROLLERS="${SPATE_K8S_CONTROLLERS:-serviceaccount-controller,serviceaccount-token-controller,garbage-collector-controller,deployment-controller,replicaset-controller,statefulset-controller,job-controller,ttl-after-finished-controller,namespace-controller,root-ca-certificate-publisher-controller,endpointslice-controller,clusterrole-aggregation-controller,node-lifecycle-controller,taint-eviction-controller,pod-garbage-collector-controller}"
PROCESSES=(etcd kube-apiserver kube-controller-manager kube-scheduler)

die() {
    echo "error: $*" >&2
    exit 1
}

log() {
    echo "cluster: $*" >&2
}

# shellcheck source=e2e/lib/free_port.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/free_port.sh"

# --- certificates ----------------------------------------------------------------------------

# cert NAME SUBJECT [SAN]: a key and a certificate signed by the cluster CA (or by $CA)
cert() {
    local name=$1 subject=$2 san=${3:-} ca=${CA:-ca} ext
    ext="$PKI/$name.ext"
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        if [ -n "$san" ]; then
            echo "extendedKeyUsage=serverAuth,clientAuth"
            echo "subjectAltName=$san"
        else
            echo "extendedKeyUsage=clientAuth"
        fi
    } >"$ext"
    openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -subj "$subject" \
        -out "$PKI/$name.csr" 2>/dev/null
    openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" \
        -CAcreateserial -days 3650 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
    rm -f "$PKI/$name.csr" "$ext"
}

make_pki() {
    mkdir -p "$PKI"
    chmod 700 "$PKI"
    openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -days 3650 -sha256 \
        -subj "/CN=spate-e2e-ca" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
        -out "$PKI/ca.crt" 2>/dev/null
    cert apiserver "/CN=kube-apiserver" \
        "IP:127.0.0.1,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    cert admin "/O=system:masters/CN=spate-admin"
    cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
    cert controller-manager "/CN=system:kube-controller-manager"
    cert scheduler "/CN=system:kube-scheduler"
    cert node "/O=system:nodes/CN=system:node:$NODE_NAME"
    # The front proxy (aggregated APIs, and what the controller-manager and scheduler look up for
    # request-header authentication) has its own CA, as kubeadm sets it up.
    openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI/front-proxy-ca.key" -days 3650 \
        -sha256 -subj "/CN=spate-e2e-front-proxy-ca" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
        -out "$PKI/front-proxy-ca.crt" 2>/dev/null
    CA=front-proxy-ca cert front-proxy-client "/CN=front-proxy-client"
    # The ServiceAccount token signing pair.
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
}

# kubeconfig FILE USER CERT-NAME: a kubeconfig with embedded credentials
kubeconfig() {
    local file=$1 user=$2 name=$3
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: spate-e2e
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$name.crt")
    client-key-data: $(base64 -w0 "$PKI/$name.key")
contexts:
- name: spate-e2e
  context:
    cluster: spate-e2e
    user: $user
    namespace: default
current-context: spate-e2e
EOF
    chmod 600 "$file"
}

# --- processes -------------------------------------------------------------------------------

# start NAME ARGS...: run a control plane binary in the background, logging to DIR/logs/NAME.log
start() {
    local name=$1
    shift
    # setsid: its own session, so a Ctrl-C meant for the caller does not reach it; `down` stops it.
    setsid "$BIN/$name" "$@" >"$DIR/logs/$name.log" 2>&1 </dev/null &
    echo $! >"$DIR/pids/$name.pid"
}

# alive PID: the process exists and is not a zombie waiting to be reaped
alive() {
    kill -0 "$1" 2>/dev/null && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null
}

running() {
    local pidfile="$DIR/pids/$1.pid"
    [ -f "$pidfile" ] && alive "$(cat "$pidfile")"
}

# stop NAME...: SIGTERM, and SIGKILL whatever still runs after 10 seconds
stop() {
    local name pid pids=()
    for name in "$@"; do
        if running "$name"; then
            pid="$(cat "$DIR/pids/$name.pid")"
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
        rm -f "$DIR/pids/$name.pid"
    done
    for _ in $(seq 1 100); do
        local alive=0
        for pid in ${pids[@]+"${pids[@]}"}; do
            if alive "$pid"; then alive=1; fi
        done
        [ "$alive" = 1 ] || return 0
        sleep 0.1
    done
    for pid in ${pids[@]+"${pids[@]}"}; do
        kill -KILL "$pid" 2>/dev/null || true
    done
}

# etcd last: an API server that loses etcd first takes long to shut down
stop_all() {
    stop kube-scheduler kube-controller-manager kube-apiserver
    stop etcd
}

# healthy NAME PORT PATH: the endpoint answers 200 (with the admin client certificate)
healthy() {
    curl -sf -o /dev/null --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" \
        --key "$PKI/admin.key" "https://127.0.0.1:$2$3" 2>/dev/null ||
        curl -skf -o /dev/null --max-time 2 "https://127.0.0.1:$2$3" 2>/dev/null
}

# wait_for WHAT COMMAND...: retry until COMMAND succeeds, failing when a process died or time ran out
wait_for() {
    local what=$1 name
    shift
    until "$@" >/dev/null 2>&1; do
        for name in "${PROCESSES[@]}"; do
            if [ -f "$DIR/pids/$name.pid" ] && ! running "$name"; then
                tail -n 30 "$DIR/logs/$name.log" >&2 || true
                stop_all
                die "$name exited while waiting for $what (log above, full log in $DIR/logs/$name.log)"
            fi
        done
        if [ "$SECONDS" -ge "$DEADLINE" ]; then
            stop_all
            die "timed out after ${STARTUP_SECONDS}s waiting for $what (logs in $DIR/logs)"
        fi
        sleep 0.3
    done
    log "$what after $((SECONDS - STARTED))s"
}

print_env() {
    [ -f "$DIR/cluster.env" ] || die "no cluster in $DIR (run: $0 up $DIR)"
    cat "$DIR/cluster.env"
}

up() {
    mkdir -p "$DIR"
    DIR="$(cd "$DIR" && pwd)"
    PKI="$DIR/pki"
    for name in "${PROCESSES[@]}"; do
        if running "$name"; then die "a cluster is already running in $DIR (run: $0 down $DIR)"; fi
    done
    bash "$HERE/tools.sh" install etcd kube-apiserver kube-controller-manager kube-scheduler kubectl
    STARTED=$SECONDS
    DEADLINE=$((SECONDS + STARTUP_SECONDS))
    rm -rf "$DIR/etcd" "$DIR/logs" "$DIR/pids" "$DIR/cluster.env"
    mkdir -p "$DIR/logs" "$DIR/pids" "$DIR/kube-controller-manager"
    [ -f "$PKI/front-proxy-client.key" ] || make_pki

    ETCD_PORT="${SPATE_K8S_ETCD_PORT:-$(free_port)}"
    ETCD_PEER_PORT="${SPATE_K8S_ETCD_PEER_PORT:-$(free_port)}"
    APISERVER_PORT="${SPATE_K8S_APISERVER_PORT:-$(free_port)}"
    CM_PORT="${SPATE_K8S_CONTROLLER_MANAGER_PORT:-$(free_port)}"
    SCHEDULER_PORT="${SPATE_K8S_SCHEDULER_PORT:-$(free_port)}"
    kubeconfig "$DIR/admin.kubeconfig" spate-admin admin
    kubeconfig "$DIR/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
    kubeconfig "$DIR/scheduler.kubeconfig" system:kube-scheduler scheduler
    kubeconfig "$DIR/node.kubeconfig" "system:node:$NODE_NAME" node
    # stop what was started if anything below fails or the caller gives up
    trap 'stop_all' ERR
    trap 'stop_all; exit 130' INT TERM

    # --unsafe-no-fsync: test data only, and it spares a slow disk (envtest does the same).
    start etcd --name spate-e2e --data-dir "$DIR/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "spate-e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
        --unsafe-no-fsync --log-level warn
    wait_for "etcd" curl -sf --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"

    # --endpoint-reconciler-type none: the Endpoints of the `kubernetes` Service would be
    # 127.0.0.1, which their validation refuses (loopback); a pod's process reaches the API server
    # through KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, which the node agent sets.
    # shellcheck disable=SC2086 # extra flags are split on spaces on purpose
    start kube-apiserver \
        --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
        --cert-dir "$DIR/pki" \
        --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
        --client-ca-file "$PKI/ca.crt" \
        --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
        --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$PKI/sa.pub" \
        --service-account-signing-key-file "$PKI/sa.key" \
        --service-cluster-ip-range "$SERVICE_CIDR" \
        --endpoint-reconciler-type none \
        --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" \
        --requestheader-allowed-names front-proxy-client \
        --requestheader-username-headers X-Remote-User \
        --requestheader-group-headers X-Remote-Group \
        --requestheader-extra-headers-prefix X-Remote-Extra- \
        --proxy-client-cert-file "$PKI/front-proxy-client.crt" \
        --proxy-client-key-file "$PKI/front-proxy-client.key" \
        --authorization-mode Node,RBAC \
        --enable-admission-plugins NodeRestriction \
        --allow-privileged=true \
        --profiling=false \
        ${SPATE_K8S_APISERVER_ARGS:-}
    wait_for "kube-apiserver /readyz" curl -sf --max-time 2 --cacert "$PKI/ca.crt" \
        --cert "$PKI/admin.crt" --key "$PKI/admin.key" "https://127.0.0.1:$APISERVER_PORT/readyz"

    start kube-controller-manager \
        --kubeconfig "$DIR/controller-manager.kubeconfig" \
        --authentication-kubeconfig "$DIR/controller-manager.kubeconfig" \
        --authorization-kubeconfig "$DIR/controller-manager.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port "$CM_PORT" \
        --cert-dir "$DIR/kube-controller-manager" \
        --leader-elect=false \
        --controllers "$CONTROLLERS" \
        --use-service-account-credentials=true \
        --service-account-private-key-file "$PKI/sa.key" \
        --root-ca-file "$PKI/ca.crt" \
        --profiling=false
    start kube-scheduler \
        --kubeconfig "$DIR/scheduler.kubeconfig" \
        --authentication-kubeconfig "$DIR/scheduler.kubeconfig" \
        --authorization-kubeconfig "$DIR/scheduler.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" \
        --leader-elect=false \
        --profiling=false
    wait_for "kube-controller-manager /healthz" healthy kube-controller-manager "$CM_PORT" /healthz
    wait_for "kube-scheduler /healthz" healthy kube-scheduler "$SCHEDULER_PORT" /healthz
    local kubectl=("$BIN/kubectl" --kubeconfig "$DIR/admin.kubeconfig")
    wait_for "the default ServiceAccount" "${kubectl[@]}" get serviceaccount default -n default
    wait_for "the kube-root-ca.crt ConfigMap" "${kubectl[@]}" get configmap kube-root-ca.crt -n default
    trap - ERR INT TERM

    cat >"$DIR/cluster.env" <<EOF
export KUBECONFIG=$DIR/admin.kubeconfig
export SPATE_K8S_DIR=$DIR
export SPATE_K8S_APISERVER=https://127.0.0.1:$APISERVER_PORT
export SPATE_K8S_APISERVER_PORT=$APISERVER_PORT
export SPATE_K8S_CA=$PKI/ca.crt
export SPATE_K8S_ADMIN_KUBECONFIG=$DIR/admin.kubeconfig
export SPATE_K8S_NODE_KUBECONFIG=$DIR/node.kubeconfig
export SPATE_K8S_NODE_NAME=$NODE_NAME
export SPATE_K8S_ETCD=http://127.0.0.1:$ETCD_PORT
export SPATE_K8S_CONTROLLER_MANAGER_PORT=$CM_PORT
export SPATE_K8S_SCHEDULER_PORT=$SCHEDULER_PORT
export SPATE_KUBECTL=$BIN/kubectl
export SPATE_HELM=$BIN/helm
EOF
    log "ready in $((SECONDS - STARTED))s: https://127.0.0.1:$APISERVER_PORT (state and logs in $DIR)"
    print_env
}

down() {
    [ -d "$DIR" ] || die "no directory $DIR"
    DIR="$(cd "$DIR" && pwd)"
    stop_all
    rm -f "$DIR/cluster.env"
}

[ $# -eq 2 ] || die "usage: $0 up|down|env DIR"
DIR="$2"
case "$1" in
    up) up ;;
    down) down ;;
    env) print_env ;;
    *) die "usage: $0 up|down|env DIR" ;;
esac
