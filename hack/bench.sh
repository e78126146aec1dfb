#!/usr/bin/env bash
# make bench: the nodes x images grid on a fresh local cluster (kwok nodes),
# the controller as a process, results under _output/bench. The cluster is
# stopped by PID afterwards. Pass flags through, such as -scenarios=100x10 or
# -memory-nodes=1000,3000,5000 (see test/bench).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
# shellcheck source=hack/local-env.sh
source "${ROOT}/hack/local-env.sh"
make build
bash hack/local-down.sh
trap 'bash hack/local-down.sh' EXIT
# Leases of 4 minutes, renewed every minute: on two cores the 5,000 nodes of
# the memory scenario renewing every 10 s, as kubelets do, would take the API
# server's CPU (see hack/local-up.sh).
NODES=0 KWOK_NODE_LEASE_SECONDS="${KWOK_NODE_LEASE_SECONDS:-240}" bash hack/local-up.sh >/dev/null
export KUBECONFIG="${LOCAL_KUBECONFIG}"
KUBECTL="$(bash hack/testbin.sh 2>/dev/null)/kubectl"
"${KUBECTL}" apply --server-side -f deploy/crd >/dev/null
"${KUBECTL}" wait --for=condition=Established --timeout=60s crd/imagecaches.kubefledged.io crd/imagecacheslices.kubefledged.io >/dev/null
# BENCH_BASELINE=<commit> also measures the controller built from that commit
# (git archive, into _output/bench/baseline-<commit>) in the memory scenario,
# in the same run, for a before-and-after comparison.
baseline=()
if [[ -n "${BENCH_BASELINE:-}" ]]; then
  commit="$(git rev-parse --short "${BENCH_BASELINE}^{commit}")"
  dir="${ROOT}/_output/bench/baseline-${commit}"
  if [[ ! -x "${dir}/fledged" ]]; then
    rm -rf "${dir}/src"
    mkdir -p "${dir}/src"
    git archive "${commit}" | tar -x -C "${dir}/src"
    (cd "${dir}/src" && CGO_ENABLED=0 go build -trimpath -o "${dir}/fledged" ./cmd/fledged)
    rm -rf "${dir}/src"
  fi
  baseline=(-baseline-fledged "${dir}/fledged")
fi
go run ./test/bench -cluster-pids "${LOCAL_DIR}/pids" "${baseline[@]}" "$@"
