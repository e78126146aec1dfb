#!/usr/bin/env bash
# The end-to-end suite: builds fledged, starts the local cluster (20 kwok
# nodes, 5 of them tier=backend), and runs test/e2e against it with the
# controller as a separate process, in two phases:
#   1. the kwok tests;
#   2. the real-node tests (TestRealNode*), after hack/real-node-up.sh adds a
#      kubelet over containerd and kube-proxy; among them the controller
#      running as pods there, installed with helm and with make deploy.
#      Where the machine cannot run a node, they are skipped with the
#      script's reason (REAL_NODE=0 skips the phase);
#   3. on a fresh cluster of the oldest Kubernetes the chart claims
#      (KUBE_OLDEST_VERSION in hack/versions.sh, hack/testbin.sh --oldest),
#      the subset that says the project works there: deploy/ applies and its
#      RBAC is enough, a cache over kwok nodes to Succeeded and an update,
#      the startup taint and its ValidatingAdmissionPolicy, a policy that
#      refuses Jobs; and the API tests (the CRD's schema and CEL rules refuse
#      what they should, the sample applies, the status subresource, the
#      printer columns) against its kube-apiserver. OLDEST=0 skips it, as
#      does a -run of your own.
# The cluster, and the real node, are stopped by PID afterwards
# (KEEP_CLUSTER=1 leaves them up).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
# shellcheck source=hack/local-env.sh
source "${ROOT}/hack/local-env.sh"
# shellcheck source=hack/versions.sh
source "${ROOT}/hack/versions.sh"

make build
KUBE_FLEDGED_TESTBIN="$(bash hack/testbin.sh)"
export KUBE_FLEDGED_TESTBIN
# With the real node, the API server gets an address of its own, which pods
# reach through the `kubernetes` Service and kube-proxy (hack/local-env.sh):
# the tests that run the controller as pods need it.
if [[ "${REAL_NODE:-1}" != "0" && "$(id -u)" == "0" && -z "${LOCAL_APISERVER_IP}" ]]; then
  export LOCAL_APISERVER_IP=198.18.0.1
fi
# The third phase runs unless OLDEST=0 or a -run of your own says otherwise.
run_oldest=1
if [[ "${OLDEST:-1}" == "0" || " $* " == *" -run "* || " $* " == *" -run="* ]]; then
  run_oldest=0
fi
# Its control plane, when not cached, builds in the background at the lowest
# priority while the first two phases run: they mostly wait on the cluster,
# and the build takes the CPU they leave (about 8 minutes of it cold).
oldest_build="" oldest_log="${ROOT}/_output/testbin-oldest.log"
if ((run_oldest)); then
  mkdir -p "${ROOT}/_output"
  setsid nice -n 19 ionice -c 3 bash hack/testbin.sh --oldest >"${oldest_log}" 2>&1 &
  oldest_build=$!
fi
cleanup() {
  if [[ -n "${oldest_build}" ]] && kill -0 "${oldest_build}" 2>/dev/null; then
    kill -- -"${oldest_build}" 2>/dev/null || true
  fi
  if [[ "${KEEP_CLUSTER:-0}" != "1" ]]; then
    bash hack/local-down.sh
  fi
}
trap cleanup EXIT
# A fresh cluster, so the suite starts from a known state.
bash hack/local-down.sh
NODES=20 BACKEND_NODES=5 bash hack/local-up.sh >/dev/null
export KUBECONFIG="${LOCAL_KUBECONFIG}"
go test -tags e2e -count=1 -timeout 30m -skip '^TestRealNode' ${E2E_FLAGS:-} ./test/e2e/ "$@"

real_node_phase() {
  local start=${SECONDS} rc=0
  bash hack/real-node-up.sh || rc=$?
  if ((rc != 0 && rc != 2)); then
    echo "e2e: the real node did not come up" >&2
    exit 1
  fi
  echo "e2e: real node up in $((SECONDS - start))s" >&2
  export KUBE_FLEDGED_REAL_NODE_ENV="${LOCAL_NODE_ENV}" KUBE_FLEDGED_REAL_NODE_SKIP="${LOCAL_NODE_SKIP}"
  # helm, for the tests that install the chart.
  KUBE_FLEDGED_HELM="$(bash hack/helm.sh)"
  export KUBE_FLEDGED_HELM
  go test -tags e2e -count=1 -timeout 35m -run '^TestRealNode' ${E2E_FLAGS:-} ./test/e2e/ "$@"
}

# The subset run on the oldest Kubernetes the chart claims.
OLDEST_E2E='^(TestDeployRBACIsEnoughAndNoMore|TestSampleOverTwentyNodes|TestPurgeAnnotation|TestUpdateRunsOnlyNewWork|TestStartupTaintPolicy|TestStartupTaintHoldsPodsUntilWarm|TestPolicyRefusesOneNode)$'
OLDEST_API='^(TestSampleAppliesUnchanged|TestValidationRefusesBadManifests|TestSpecAndStatusDoNotClobber|TestPrinterColumns)$'
oldest_phase() {
  local start=${SECONDS} bin rc=0
  wait "${oldest_build}" || rc=$?
  oldest_build=""
  if ((rc != 0)); then
    echo "e2e: building Kubernetes ${KUBE_OLDEST_VERSION}'s control plane failed (exit ${rc}); the end of ${oldest_log}:" >&2
    tail -n 30 "${oldest_log}" >&2
    exit 1
  fi
  bin="$(bash hack/testbin.sh --oldest)"
  bash hack/local-down.sh
  LOCAL_TESTBIN="${bin}" NODES=20 BACKEND_NODES=5 bash hack/local-up.sh >/dev/null
  local served
  served="$("${bin}/kubectl" --kubeconfig "${LOCAL_KUBECONFIG}" get --raw /version | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')"
  if [[ "${served}" != "${KUBE_OLDEST_VERSION}" ]]; then
    echo "e2e: the API server says ${served:-nothing}, not ${KUBE_OLDEST_VERSION}" >&2
    exit 1
  fi
  echo "e2e: a cluster of Kubernetes ${served} up in $((SECONDS - start))s" >&2
  KUBE_FLEDGED_TESTBIN="${bin}" go test -tags e2e -count=1 -timeout 15m -run "${OLDEST_E2E}" ${E2E_FLAGS:-} ./test/e2e/ "$@"
  KUBE_FLEDGED_TESTBIN="${bin}" go test -count=1 -timeout 10m -run "${OLDEST_API}" ${E2E_FLAGS:-} ./test/integration/ "$@"
}

if [[ "${REAL_NODE:-1}" == "0" ]]; then
  echo "e2e: REAL_NODE=0: the real-node tests are not run" >&2
else
  real_node_phase "$@"
fi
if ((run_oldest)); then
  oldest_phase "$@"
else
  echo "e2e: the phase on Kubernetes ${KUBE_OLDEST_VERSION} is not run (OLDEST=0, or a -run of your own)" >&2
fi
