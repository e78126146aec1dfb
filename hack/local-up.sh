#!/usr/bin/env bash
# Starts a local Kubernetes cluster on loopback: real etcd, kube-apiserver,
# kube-controller-manager and kube-scheduler (from hack/testbin.sh), with kwok
# simulating NODES nodes and their pods. State, logs and PIDs live under
# LOCAL_DIR (default _output/local); ports are in hack/local-env.sh.
#
#   NODES=20 BACKEND_NODES=5 hack/local-up.sh
#
# KWOK_NODE_LEASE_SECONDS (default 40, a kubelet's) is how long a kwok node's
# lease lasts; kwok renews it every quarter of that. make bench sets 240: on
# two cores, 5,000 nodes renewing every 10 s are more writes than the API
# server serves, and nodes flap NotReady.
#
# REAL_NODE=1 also adds one real node: a kubelet over containerd, pulling
# from local registries (hack/real-node-up.sh).
#
# A second run reports the running cluster instead of starting another.
# hack/local-down.sh stops every process by PID.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/local-env.sh
source "${ROOT}/hack/local-env.sh"

NODES="${NODES:-5}"
BACKEND_NODES="${BACKEND_NODES:-$(((NODES + 3) / 4))}"
KWOK_NODE_LEASE_SECONDS="${KWOK_NODE_LEASE_SECONDS:-40}"
# The node lifecycle controller's grace period (50 s by default) outlasts a
# lease that is longer than a kubelet's.
node_monitor=()
if ((KWOK_NODE_LEASE_SECONDS > 40)); then
  node_monitor=(--node-monitor-grace-period="$((KWOK_NODE_LEASE_SECONDS * 5 / 4))s")
fi
bash "${ROOT}/hack/deps.sh" cluster >/dev/null || exit 1
# LOCAL_TESTBIN: another bin folder, such as hack/testbin.sh --oldest's.
BIN="${LOCAL_TESTBIN:-$(bash "${ROOT}/hack/testbin.sh")}"
PIDS="${LOCAL_DIR}/pids"
LOGS="${LOCAL_DIR}/logs"
PKI="${LOCAL_DIR}/pki"
# With the real node, the API server gets an address pods can reach.
if [[ "${REAL_NODE:-0}" == "1" && -z "${LOCAL_APISERVER_IP}" && "$(id -u)" == "0" ]]; then
  LOCAL_APISERVER_IP=198.18.0.1
fi
APISERVER_IP="${LOCAL_APISERVER_IP:-127.0.0.1}"
APISERVER="https://${APISERVER_IP}:${LOCAL_APISERVER_PORT}"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

SCRIPT=local-up
DOWN="${ROOT}/hack/local-down.sh"
# shellcheck source=hack/lib-proc.sh
source "${ROOT}/hack/lib-proc.sh"
kubectl() { "${BIN}/kubectl" --kubeconfig "${LOCAL_KUBECONFIG}" "$@"; }

# --- already up? ---
running=0
for c in "${COMPONENTS[@]}"; do is_running "${c}" && running=$((running + 1)); done
if ((running == ${#COMPONENTS[@]})) && kubectl get --raw=/readyz >/dev/null 2>&1; then
  log "the local cluster is already running ($(kubectl get nodes --no-headers 2>/dev/null | wc -l) nodes)"
  if [[ "${REAL_NODE:-0}" == "1" ]]; then
    bash "${ROOT}/hack/real-node-up.sh" || [[ $? == 2 ]] || exit 1
  fi
  cat "${LOCAL_ENV}"
  exit 0
fi
if ((running > 0)); then
  log "a local cluster is partly running (${running} of ${#COMPONENTS[@]} components); stopping it first"
  LOCAL_DIR="${LOCAL_DIR}" bash "${ROOT}/hack/local-down.sh" >&2
fi

rm -rf "${LOCAL_DIR}"
mkdir -p "${PIDS}" "${LOGS}" "${PKI}"

# The API server's own address on lo, removed by hack/local-down.sh.
ENDPOINTS=none
if [[ -n "${LOCAL_APISERVER_IP}" ]]; then
  [[ "$(id -u)" == "0" ]] || { log "LOCAL_APISERVER_IP=${LOCAL_APISERVER_IP} needs root, to add the address to lo"; exit 1; }
  bash "${ROOT}/hack/deps.sh" address >/dev/null || exit 1
  # Never an address in use: one of the machine's, or its gateway's.
  if ip -4 addr show | grep -v " lo$" | grep -q "inet ${LOCAL_APISERVER_IP}/" ||
    ip -4 route show | grep -q "via ${LOCAL_APISERVER_IP} "; then
    log "LOCAL_APISERVER_IP=${LOCAL_APISERVER_IP} is in use on this machine (an address or a gateway): choose another"
    exit 1
  fi
  if ! ip -4 addr show dev lo | grep -q " ${LOCAL_APISERVER_IP}/"; then
    ip addr add "${LOCAL_APISERVER_IP}/32" dev lo || { log "FAILED: adding ${LOCAL_APISERVER_IP} to lo"; exit 1; }
    echo "${LOCAL_APISERVER_IP}/32" >"${LOCAL_DIR}/apiserver-address"
  fi
  # The API server keeps the `kubernetes` Service's endpoint: this address.
  ENDPOINTS=lease
fi

# --- certificates, tokens, kubeconfigs ---
log "making certificates"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=kube-fledged-local-ca" \
  -keyout "${PKI}/ca.key" -out "${PKI}/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
  -keyout "${PKI}/apiserver.key" -out "${PKI}/apiserver.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1,IP:10.0.0.1,IP:%s\nextendedKeyUsage=serverAuth\n' \
  "${APISERVER_IP}" >"${PKI}/apiserver.ext"
openssl x509 -req -in "${PKI}/apiserver.csr" -CA "${PKI}/ca.crt" -CAkey "${PKI}/ca.key" -CAcreateserial -days 30 \
  -extfile "${PKI}/apiserver.ext" -out "${PKI}/apiserver.crt" 2>/dev/null
openssl genrsa -out "${PKI}/sa.key" 2048 2>/dev/null
openssl rsa -in "${PKI}/sa.key" -pubout -out "${PKI}/sa.pub" 2>/dev/null

token() { openssl rand -hex 16; }
ADMIN_TOKEN="$(token)"; KCM_TOKEN="$(token)"; SCHED_TOKEN="$(token)"; KWOK_TOKEN="$(token)"
cat >"${PKI}/tokens.csv" <<CSV
${ADMIN_TOKEN},admin,admin,system:masters
${KCM_TOKEN},system:kube-controller-manager,system:kube-controller-manager
${SCHED_TOKEN},system:kube-scheduler,system:kube-scheduler
${KWOK_TOKEN},kwok,kwok,system:masters
CSV
chmod 600 "${PKI}/tokens.csv"

write_kubeconfig() {
  local file="$1" user="$2" tok="$3"
  "${BIN}/kubectl" --kubeconfig "${file}" config set-cluster local --server "${APISERVER}" \
    --certificate-authority "${PKI}/ca.crt" --embed-certs >/dev/null
  "${BIN}/kubectl" --kubeconfig "${file}" config set-credentials "${user}" --token "${tok}" >/dev/null
  "${BIN}/kubectl" --kubeconfig "${file}" config set-context local --cluster local --user "${user}" >/dev/null
  "${BIN}/kubectl" --kubeconfig "${file}" config use-context local >/dev/null
}
write_kubeconfig "${LOCAL_KUBECONFIG}" admin "${ADMIN_TOKEN}"
write_kubeconfig "${LOCAL_DIR}/kcm.kubeconfig" system:kube-controller-manager "${KCM_TOKEN}"
write_kubeconfig "${LOCAL_DIR}/scheduler.kubeconfig" system:kube-scheduler "${SCHED_TOKEN}"
write_kubeconfig "${LOCAL_DIR}/kwok.kubeconfig" kwok "${KWOK_TOKEN}"

# --- etcd and kube-apiserver ---
log "starting etcd on 127.0.0.1:${LOCAL_ETCD_PORT}"
ETCD_URL="http://127.0.0.1:${LOCAL_ETCD_PORT}"
ETCD_PEER="http://127.0.0.1:${LOCAL_ETCD_PEER_PORT}"
start etcd "${BIN}/etcd" --name=local --data-dir="${LOCAL_DIR}/etcd" \
  --listen-client-urls="${ETCD_URL}" --advertise-client-urls="${ETCD_URL}" \
  --listen-peer-urls="${ETCD_PEER}" --initial-advertise-peer-urls="${ETCD_PEER}" \
  --initial-cluster="local=${ETCD_PEER}" --unsafe-no-fsync --quota-backend-bytes=4294967296 --log-level=warn
wait_until etcd 30 "etcd health" curl -sf "${ETCD_URL}/health"

log "starting kube-apiserver on ${APISERVER}"
start kube-apiserver "${BIN}/kube-apiserver" \
  --etcd-servers="${ETCD_URL}" --bind-address="${APISERVER_IP}" ${LOCAL_APISERVER_IP:+--advertise-address="${LOCAL_APISERVER_IP}"} \
  --secure-port="${LOCAL_APISERVER_PORT}" --tls-cert-file="${PKI}/apiserver.crt" --tls-private-key-file="${PKI}/apiserver.key" \
  --client-ca-file="${PKI}/ca.crt" --token-auth-file="${PKI}/tokens.csv" \
  --service-account-issuer=https://kubernetes.default.svc \
  --service-account-key-file="${PKI}/sa.pub" --service-account-signing-key-file="${PKI}/sa.key" \
  --service-cluster-ip-range=10.0.0.0/24 --authorization-mode=Node,RBAC --endpoint-reconciler-type="${ENDPOINTS}" \
  --allow-privileged=true --kubelet-preferred-address-types=InternalIP --profiling=false \
  --max-requests-inflight=1600 --max-mutating-requests-inflight=800 \
  --cert-dir="${LOCAL_DIR}/apiserver-certs"
wait_until kube-apiserver 60 "kube-apiserver /readyz" kubectl get --raw=/readyz

# --- controller-manager, scheduler ---
log "starting kube-controller-manager"
start kube-controller-manager "${BIN}/kube-controller-manager" \
  --kubeconfig="${LOCAL_DIR}/kcm.kubeconfig" \
  --authentication-kubeconfig="${LOCAL_DIR}/kcm.kubeconfig" --authorization-kubeconfig="${LOCAL_DIR}/kcm.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="${LOCAL_KCM_PORT}" \
  --controllers='*' --leader-elect=false --use-service-account-credentials=true \
  --service-account-private-key-file="${PKI}/sa.key" --root-ca-file="${PKI}/ca.crt" \
  --kube-api-qps=500 --kube-api-burst=1000 --concurrent-job-syncs=50 --concurrent-gc-syncs=50 "${node_monitor[@]}"
cat >"${LOCAL_DIR}/scheduler.yaml" <<YAML
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: ${LOCAL_DIR}/scheduler.kubeconfig
  qps: 500
  burst: 1000
leaderElection:
  leaderElect: false
YAML
log "starting kube-scheduler"
start kube-scheduler "${BIN}/kube-scheduler" --config="${LOCAL_DIR}/scheduler.yaml" \
  --authentication-kubeconfig="${LOCAL_DIR}/scheduler.kubeconfig" --authorization-kubeconfig="${LOCAL_DIR}/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="${LOCAL_SCHEDULER_PORT}"
wait_until kube-controller-manager 60 "kube-controller-manager /healthz" curl -ksf "https://127.0.0.1:${LOCAL_KCM_PORT}/healthz"
wait_until kube-scheduler 60 "kube-scheduler /healthz" curl -ksf "https://127.0.0.1:${LOCAL_SCHEDULER_PORT}/healthz"
wait_until kube-controller-manager 60 "the default ServiceAccount" kubectl get serviceaccount default -n default

# --- kwok, with the stages from kwok's own module ---
STAGES="${BIN}/kwok-stage"
{
  cat "${STAGES}/node/fast/node-initialize.yaml"
  echo "---"
  cat "${STAGES}/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml"
  echo "---"
  # kwok's pod-ready, told to leave the failing and hanging pods to our
  # stages, and to wait as long as a pod's annotation
  # e2e.kubefledged.io/start-delay says (a duration, such as 186s) before
  # its containers run: the time a real node took to start such a pod
  # (TestRealNodePodStartDeploymentOnKwok). With no annotation, no wait.
  awk '/^  next:/ && !delayed {
      print "  delay:"
      print "    durationFrom:"
      print "      expressionFrom: '"'"'.metadata.annotations[\"e2e.kubefledged.io/start-delay\"]'"'"'"
      delayed=1}
    {print}
    /matchExpressions:/ && !done {
      for (i = 1; i <= 2; i++) {
        print "    - key: '"'"'.spec.containers.[] | select(.image | startswith(\"" (i == 1 ? "fail" : "hang") ".invalid/\")) | .image'"'"'"
        print "      operator: '"'"'DoesNotExist'"'"'"
      }
      done=1}' \
    "${STAGES}/pod/fast/pod-ready.yaml"
  echo "---"
  cat "${STAGES}/pod/fast/pod-complete.yaml"
  echo "---"
  cat "${STAGES}/pod/fast/pod-delete.yaml"
  echo "---"
  cat "${ROOT}/hack/kwok/pod-image-pull-failed.yaml"
  echo "---"
  cat "${ROOT}/hack/kwok/pod-image-pull-hanging.yaml"
} >"${LOCAL_DIR}/kwok-stages.yaml"
log "starting kwok"
start kwok "${BIN}/kwok" --kubeconfig="${LOCAL_DIR}/kwok.kubeconfig" --config="${LOCAL_DIR}/kwok-stages.yaml" \
  --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --node-lease-duration-seconds="${KWOK_NODE_LEASE_SECONDS}" --cidr=10.244.0.0/16 --node-ip=10.244.0.1 \
  --server-address="127.0.0.1:${LOCAL_KWOK_PORT}"
wait_until kwok 30 "kwok's health endpoint" curl -sf "http://127.0.0.1:${LOCAL_KWOK_PORT}/healthz"

# --- nodes ---
if ((NODES > 0)); then
  log "adding ${NODES} kwok nodes (${BACKEND_NODES} labelled tier=backend)"
  bash "${ROOT}/hack/local-nodes.sh" "${NODES}" "${BACKEND_NODES}" | kubectl apply -f - >/dev/null
  wait_until kwok 120 "${NODES} nodes Ready" kubectl wait --for=condition=Ready node -l type=kwok --timeout=5s
fi

if [[ "${REAL_NODE:-0}" == "1" ]]; then
  bash "${ROOT}/hack/real-node-up.sh" || [[ $? == 2 ]] || fail kube-apiserver "the real node did not come up"
fi

# --- what a shell needs to use it: `source _output/local/env` ---
mkdir -p "${LOCAL_DIR}/bin"
ln -sfn "${BIN}/kubectl" "${LOCAL_DIR}/bin/kubectl"
printf 'export KUBECONFIG=%s\nexport PATH=%s:"${PATH}"\n' "${LOCAL_KUBECONFIG}" "${LOCAL_DIR}/bin" >"${LOCAL_ENV}"

log "the local cluster is up: $(kubectl get nodes --no-headers | wc -l) nodes; logs in ${LOGS}"
log "use it from a shell with: source ${LOCAL_ENV#"${PWD}/"}   (KUBECONFIG, and its kubectl on PATH)"
log "stop it with: hack/local-down.sh (or make cluster-down)"
cat "${LOCAL_ENV}"
