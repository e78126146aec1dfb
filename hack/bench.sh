#!/usr/bin/env bash
# make bench: the nodes x images grid on a fresh local cluster (kwok nodes),
# the controller as a process, results under _output/bench. The cluster is
# stopped by PID afterwards. Pass flags through, such as -scenarios=100x10.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
# shellcheck source=hack/local-env.sh
source "${ROOT}/hack/local-env.sh"
make build
bash hack/local-down.sh
trap 'bash hack/local-down.sh' EXIT
NODES=0 bash hack/local-up.sh >/dev/null
export KUBECONFIG="${LOCAL_KUBECONFIG}"
KUBECTL="$(bash hack/testbin.sh 2>/dev/null)/kubectl"
"${KUBECTL}" apply --server-side -f deploy/crd >/dev/null
"${KUBECTL}" wait --for=condition=Established --timeout=60s crd/imagecaches.kubefledged.io >/dev/null
go run ./test/bench "$@"
