#!/usr/bin/env bash
# Starts the real node's kubelet, or starts it again, with the configuration
# hack/real-node-up.sh wrote (LOCAL_NODE_DIR/kubelet.base.yaml), each line
# given for a top-level key replacing the base's, then waits for its node to
# be registered and Ready:
#
#   hack/real-node-kubelet.sh start                  (hack/real-node-up.sh)
#   hack/real-node-kubelet.sh restart ['key: value'...]
#
# A restart stops the running kubelet by PID first; its log is kept beside
# the new one. A kubelet whose Node was deleted registers it again, with a
# new UID, its labels and its startup taint. The e2e tests restart it with
# other settings (imagePullCredentialsVerificationPolicy, say), and without
# them to put it back.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/local-env.sh
source "${ROOT}/hack/local-env.sh"
PIDS="${LOCAL_DIR}/pids"
LOGS="${LOCAL_DIR}/logs"
N="${LOCAL_NODE_DIR}"
SCRIPT=real-node-kubelet
DOWN="${ROOT}/hack/real-node-down.sh"
# shellcheck source=hack/lib-proc.sh
source "${ROOT}/hack/lib-proc.sh"

BIN="$(bash "${ROOT}/hack/testbin.sh" --dir)"
kubectl() { "${BIN}/kubectl" --kubeconfig "${LOCAL_KUBECONFIG}" "$@"; }

mode="${1:-}"
shift || true
case "${mode}" in
  start) ;;
  restart)
    stop_pid kubelet 20 || log "no kubelet was running"
    for i in $(seq 1 100); do
      [[ -e "${LOGS}/kubelet-${i}.log" ]] && continue
      mv "${LOGS}/kubelet.log" "${LOGS}/kubelet-${i}.log" 2>/dev/null || true
      break
    done
    ;;
  *)
    echo "usage: $0 start | restart ['key: value'...]" >&2
    exit 2
    ;;
esac
[[ -f "${N}/kubelet.base.yaml" ]] || { log "no ${N}/kubelet.base.yaml: bring the node up with hack/real-node-up.sh"; exit 1; }
# A line given replaces the base's line of the same key (top-level keys
# only), and the indented lines under it.
{
  keys=()
  for line in "$@"; do keys+=("${line%%:*}"); done
  skip=0
  while IFS= read -r line; do
    if ((skip)) && [[ "${line}" == [[:space:]]* ]]; then continue; fi
    skip=0
    for k in "${keys[@]}"; do [[ "${line}" == "${k}:"* ]] && skip=1; done
    ((skip)) || echo "${line}"
  done <"${N}/kubelet.base.yaml"
  for line in "$@"; do echo "${line}"; done
} >"${N}/kubelet.yaml"

before="$(kubectl get node "${LOCAL_NODE_NAME}" -o jsonpath='{.metadata.uid}' 2>/dev/null || true)"
start kubelet "${BIN}/kubelet" --config="${N}/kubelet.yaml" --kubeconfig="${N}/kubelet.kubeconfig" \
  --root-dir="${N}/kubelet" --cert-dir="${N}/pki/serving" --hostname-override="${LOCAL_NODE_NAME}" \
  --node-ip="${LOCAL_NODE_IP}" --node-labels="type=real,kubefledged.io/real-node=true" \
  --register-with-taints="${LOCAL_NODE_STARTUP_TAINT}=:NoSchedule" -v=1
healthy() { curl -sf "http://127.0.0.1:${LOCAL_KUBELET_HEALTHZ_PORT}/healthz"; }
wait_until kubelet 60 "the kubelet to be healthy" healthy
wait_until kubelet 60 "node ${LOCAL_NODE_NAME} to register" kubectl get node "${LOCAL_NODE_NAME}"
wait_until kubelet 60 "node ${LOCAL_NODE_NAME} to be Ready" \
  kubectl wait --for=condition=Ready "node/${LOCAL_NODE_NAME}" --timeout=5s
after="$(kubectl get node "${LOCAL_NODE_NAME}" -o jsonpath='{.metadata.uid}')"
if [[ -n "${before}" && "${before}" != "${after}" ]]; then
  log "node ${LOCAL_NODE_NAME} registered again: UID ${before} -> ${after}"
fi
log "kubelet of ${LOCAL_NODE_NAME} running${*:+ with: $*}"
