#!/usr/bin/env bash
# The end-to-end suite: builds fledged, starts the local cluster (20 kwok
# nodes, 5 of them tier=backend), runs test/e2e against it with the
# controller as a separate process, and stops the cluster by PID afterwards
# (KEEP_CLUSTER=1 leaves it up).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
# shellcheck source=hack/local-env.sh
source "${ROOT}/hack/local-env.sh"

make build
export KUBE_FLEDGED_TESTBIN="$(bash hack/testbin.sh)"
# A fresh cluster, so the suite starts from a known state.
bash hack/local-down.sh
if [[ "${KEEP_CLUSTER:-0}" != "1" ]]; then
  trap 'bash hack/local-down.sh' EXIT
fi
NODES=20 BACKEND_NODES=5 bash hack/local-up.sh >/dev/null
export KUBECONFIG="${LOCAL_KUBECONFIG}"
go test -tags e2e -count=1 -timeout 30m ${E2E_FLAGS:-} ./test/e2e/ "$@"
