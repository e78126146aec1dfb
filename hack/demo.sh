#!/usr/bin/env bash
# make demo: kube-fledged's main job on this machine, in one command.
# Builds what is missing, starts the local cluster with a handful of kwok
# nodes, installs the CRD, runs the controller, applies the sample ImageCache
# and shows `kubectl get ic -o wide` until it has Succeeded. The cluster and
# the controller stay up; `make cluster-down` stops them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
# shellcheck source=hack/local-env.sh
source "${ROOT}/hack/local-env.sh"

say() { echo; echo "==> $*"; }

say "building fledged"
make --no-print-directory build
say "the test-bed binaries (built once, about 20 min on 2 cores; progress below)"
BIN="$(bash hack/testbin.sh)"
kubectl() { "${BIN}/kubectl" --kubeconfig "${LOCAL_KUBECONFIG}" "$@"; }

say "starting the local cluster"
NODES="${NODES:-6}" BACKEND_NODES="${BACKEND_NODES:-2}" bash hack/local-up.sh >/dev/null
kubectl get nodes -L tier

say "installing the CRD"
kubectl apply --server-side -f deploy/crd/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/imagecaches.kubefledged.io crd/imagecacheslices.kubefledged.io >/dev/null
# The controller's namespace, and the account its delete Jobs run as there.
kubectl apply -f deploy/namespace.yaml -f deploy/image-delete.yaml >/dev/null

SCRIPT=demo PIDS="${LOCAL_DIR}/pids" LOGS="${LOCAL_DIR}/logs" DOWN="${ROOT}/hack/local-down.sh"
# shellcheck source=hack/lib-proc.sh
source "${ROOT}/hack/lib-proc.sh"
if is_running fledged; then
  say "the controller is already running (pid $(cat "${PIDS}/fledged.pid"))"
else
  say "starting the controller (log: ${LOGS}/fledged.log)"
  start fledged _output/bin/fledged --kubeconfig "${LOCAL_KUBECONFIG}" --image-pull-deadline-duration=30s
fi

say "applying deploy/sample-imagecache.yaml"
kubectl apply -f deploy/sample-imagecache.yaml

say "kubectl get ic -n kube-fledged -o wide, until Succeeded"
last=""
deadline=$((SECONDS + 180))
while :; do
  status="$(kubectl get ic imagecache1 -n kube-fledged -o jsonpath='{.status.status}')"
  out="$(kubectl get ic imagecache1 -n kube-fledged -o wide)"
  if [[ "${out}" != "${last}" ]]; then
    if [[ -z "${last}" ]]; then echo "${out}"; else echo "${out}" | tail -n +2; fi
    last="${out}"
  fi
  [[ "${status}" == "Succeeded" || "${status}" == "Failed" ]] && break
  if ((SECONDS > deadline)); then
    echo "the sample did not finish in 3 minutes; controller log:" >&2
    tail -n 30 "${LOGS}/fledged.log" >&2
    exit 1
  fi
  sleep 0.5
done

cat <<MSG

==> done: the sample ImageCache is ${status}.
The cluster and the controller are still running. Try:

  source ${LOCAL_ENV#"${ROOT}/"}     # KUBECONFIG, and the cluster's kubectl on PATH
  kubectl get ic -A -o wide
  kubectl get ic imagecache1 -n kube-fledged -o yaml
  kubectl annotate ic imagecache1 -n kube-fledged kubefledged.io/refresh-imagecache=   # pull again

Controller log: ${LOGS#"${ROOT}/"}/fledged.log
Stop everything: make cluster-down
MSG
