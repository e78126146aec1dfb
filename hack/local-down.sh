#!/usr/bin/env bash
# Stops the local cluster started by hack/local-up.sh: every process by its
# recorded PID (SIGTERM, then SIGKILL), then removes its state folder unless
# KEEP_STATE=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/local-env.sh
source "${ROOT}/hack/local-env.sh"
PIDS="${LOCAL_DIR}/pids"
SCRIPT=local-down
# shellcheck source=hack/lib-proc.sh
source "${ROOT}/hack/lib-proc.sh"

# The real node first, if there is one: its kubelet, containerd, registries
# and the host changes they made.
if [[ -d "${LOCAL_NODE_DIR}" || -f "${PIDS}/kubelet.pid" ]]; then
  bash "${ROOT}/hack/real-node-down.sh"
fi

stopped=0
# Reverse start order: the clients before the API server, etcd last.
for name in fledged kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
  if stop_pid "${name}" 5; then stopped=$((stopped + 1)); fi
done
echo "local-down: stopped ${stopped} processes" >&2
if [[ -f "${LOCAL_DIR}/apiserver-address" ]]; then
  ip addr del "$(cat "${LOCAL_DIR}/apiserver-address")" dev lo 2>/dev/null || true
  rm -f "${LOCAL_DIR}/apiserver-address"
fi
if [[ "${KEEP_STATE:-0}" != "1" && -d "${LOCAL_DIR}" ]]; then
  rm -rf "${LOCAL_DIR}"
fi
