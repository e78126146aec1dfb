#!/usr/bin/env bash
# The end-to-end suite: builds fledged, starts the local cluster (20 kwok
# nodes, 5 of them tier=backend), and runs test/e2e against it with the
# controller as a separate process, in two phases:
#   1. the kwok tests;
#   2. the real-node tests (TestRealNode*), after hack/real-node-up.sh adds a
#      kubelet over containerd; where the machine cannot run one, they are
#      skipped with the script's reason (REAL_NODE=0 skips the phase).
# The cluster, and the real node, are stopped by PID afterwards
# (KEEP_CLUSTER=1 leaves them up).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
# shellcheck source=hack/local-env.sh
source "${ROOT}/hack/local-env.sh"

make build
KUBE_FLEDGED_TESTBIN="$(bash hack/testbin.sh)"
export KUBE_FLEDGED_TESTBIN
# A fresh cluster, so the suite starts from a known state.
bash hack/local-down.sh
if [[ "${KEEP_CLUSTER:-0}" != "1" ]]; then
  trap 'bash hack/local-down.sh' EXIT
fi
NODES=20 BACKEND_NODES=5 bash hack/local-up.sh >/dev/null
export KUBECONFIG="${LOCAL_KUBECONFIG}"
go test -tags e2e -count=1 -timeout 30m -skip '^TestRealNode' ${E2E_FLAGS:-} ./test/e2e/ "$@"

if [[ "${REAL_NODE:-1}" == "0" ]]; then
  echo "e2e: REAL_NODE=0: the real-node tests are not run" >&2
  exit 0
fi
start=${SECONDS}
rc=0
bash hack/real-node-up.sh || rc=$?
if ((rc != 0 && rc != 2)); then
  echo "e2e: the real node did not come up" >&2
  exit 1
fi
echo "e2e: real node up in $((SECONDS - start))s" >&2
export KUBE_FLEDGED_REAL_NODE_ENV="${LOCAL_NODE_ENV}" KUBE_FLEDGED_REAL_NODE_SKIP="${LOCAL_NODE_SKIP}"
go test -tags e2e -count=1 -timeout 20m -run '^TestRealNode' ${E2E_FLAGS:-} ./test/e2e/ "$@"
