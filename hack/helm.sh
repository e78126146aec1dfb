#!/usr/bin/env bash
# Builds helm from its Go module (helm.sh/helm/v3, HELM_VERSION in
# hack/versions.sh) into the cache beside the test-bed binaries, once, and
# prints its path. `make verify` lints and renders the chart with it; the e2e
# suite installs the chart with it.
#
# Usage: hack/helm.sh            build it if missing, print the binary's path
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/versions.sh
source "${ROOT}/hack/versions.sh"

CACHE_ROOT="${KUBE_FLEDGED_CACHE:-${XDG_CACHE_HOME:-${HOME}/.cache}/kube-fledged}"
OUT="${CACHE_ROOT}/tools/helm-${HELM_VERSION}"
if [[ -x "${OUT}/helm" ]]; then
  echo "${OUT}/helm"
  exit 0
fi

log() { echo "helm: $*" >&2; }
MOD="${CACHE_ROOT}/build/helm-${HELM_VERSION}"
LOG="${CACHE_ROOT}/build/helm-${HELM_VERSION}.log"
mkdir -p "${MOD}" "${OUT}.tmp"
log "building helm ${HELM_VERSION} from its Go module into ${OUT}, once (cold: ~2-4 min on 2 cores)"
start=${SECONDS}
printf 'module kubefledged.io/testbin/helm\n\ngo 1.26\n\nrequire helm.sh/helm/v3 %s\n\ntool helm.sh/helm/v3/cmd/helm\n' \
  "${HELM_VERSION}" >"${MOD}/go.mod"
if ! (cd "${MOD}" && export CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false -mod=mod" &&
  go mod tidy && go build -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" \
    -o "${OUT}.tmp/helm" helm.sh/helm/v3/cmd/helm) >"${LOG}" 2>&1; then
  log "FAILED after $((SECONDS - start))s; the end of its output (${LOG}):"
  tail -n 30 "${LOG}" >&2
  exit 1
fi
rm -rf "${OUT}" && mv "${OUT}.tmp" "${OUT}"
log "built in $((SECONDS - start))s"
echo "${OUT}/helm"
