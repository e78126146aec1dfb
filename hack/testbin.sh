#!/usr/bin/env bash
# Builds the real test-bed binaries from Go modules and caches them outside the
# work tree, keyed by version:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
#   kubelet, kwok (and kwok's stage manifests).
# A component whose binaries are already in the cache is not rebuilt.
#
# Usage: hack/testbin.sh            build what is missing, print the bin folder
#        hack/testbin.sh --dir      print the bin folder only (no build)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/versions.sh
source "${ROOT}/hack/versions.sh"

CACHE_ROOT="${KUBE_FLEDGED_CACHE:-${XDG_CACHE_HOME:-${HOME}/.cache}/kube-fledged}"
BIN_DIR="${CACHE_ROOT}/testbin/kube-${KUBE_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}"

if [[ "${1:-}" == "--dir" ]]; then
  echo "${BIN_DIR}"
  exit 0
fi

log() { echo "testbin: $*" >&2; }

export CGO_ENABLED=0
export GOFLAGS="-trimpath -buildvcs=false -mod=mod"

KUBE_STAGING=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
  cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api cri-client
  cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator
  kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission
  sample-apiserver streaming)
KUBE_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet)

# build_module DIR MODULE_PATH: writes nothing itself; the caller has written DIR/go.mod.
tidy() {
  (cd "$1" && go mod tidy >/dev/null) || { log "go mod tidy failed in $1"; exit 1; }
}

build_kubernetes() {
  local out="${CACHE_ROOT}/testbin/kubernetes-${KUBE_VERSION}"
  local missing=0
  for c in "${KUBE_CMDS[@]}"; do [[ -x "${out}/${c}" ]] || missing=1; done
  if [[ ${missing} == 0 ]]; then log "kubernetes ${KUBE_VERSION}: cached"; return; fi
  log "kubernetes ${KUBE_VERSION}: building ${KUBE_CMDS[*]} (cold: ~15-20 min on 2 cores)"
  local mod="${CACHE_ROOT}/build/kubernetes-${KUBE_VERSION}"
  mkdir -p "${mod}" "${out}.tmp"
  {
    echo "module kubefledged.io/testbin/kubernetes"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes ${KUBE_VERSION}"
    echo
    echo "tool ("
    for c in "${KUBE_CMDS[@]}"; do echo "	k8s.io/kubernetes/cmd/${c}"; done
    echo ")"
    echo
    echo "replace ("
    for s in "${KUBE_STAGING[@]}"; do echo "	k8s.io/${s} => k8s.io/${s} ${KUBE_STAGING_VERSION}"; done
    echo ")"
  } > "${mod}/go.mod"
  tidy "${mod}"
  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  local date; date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  local ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${p}.gitVersion=${KUBE_VERSION} -X ${p}.gitMajor=1 -X ${p}.gitMinor=${minor}"
    ldflags+=" -X ${p}.gitTreeState=clean -X ${p}.gitCommit=${KUBE_VERSION} -X ${p}.buildDate=${date}"
  done
  local pkgs=()
  for c in "${KUBE_CMDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/${c}"); done
  (cd "${mod}" && go build -ldflags "${ldflags}" -o "${out}.tmp/" "${pkgs[@]}")
  rm -rf "${out}" && mv "${out}.tmp" "${out}"
}

build_etcd() {
  local out="${CACHE_ROOT}/testbin/etcd-${ETCD_VERSION}"
  if [[ -x "${out}/etcd" ]]; then log "etcd ${ETCD_VERSION}: cached"; return; fi
  log "etcd ${ETCD_VERSION}: building"
  local mod="${CACHE_ROOT}/build/etcd-${ETCD_VERSION}"
  mkdir -p "${mod}" "${out}.tmp"
  printf 'module kubefledged.io/testbin/etcd\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 %s\n\ntool go.etcd.io/etcd/server/v3\n' \
    "${ETCD_VERSION}" > "${mod}/go.mod"
  tidy "${mod}"
  (cd "${mod}" && go build -ldflags "-s -w" -o "${out}.tmp/etcd" go.etcd.io/etcd/server/v3)
  rm -rf "${out}" && mv "${out}.tmp" "${out}"
}

build_kwok() {
  local out="${CACHE_ROOT}/testbin/kwok-${KWOK_VERSION}"
  if [[ -x "${out}/kwok" && -d "${out}/stage" ]]; then log "kwok ${KWOK_VERSION}: cached"; return; fi
  log "kwok ${KWOK_VERSION}: building"
  local mod="${CACHE_ROOT}/build/kwok-${KWOK_VERSION}"
  mkdir -p "${mod}" "${out}.tmp"
  printf 'module kubefledged.io/testbin/kwok\n\ngo 1.26\n\nrequire sigs.k8s.io/kwok %s\n\ntool sigs.k8s.io/kwok/cmd/kwok\n' \
    "${KWOK_VERSION}" > "${mod}/go.mod"
  tidy "${mod}"
  (cd "${mod}" && go build -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION}" \
    -o "${out}.tmp/kwok" sigs.k8s.io/kwok/cmd/kwok)
  # kwok's standalone binary has no built-in stages: keep the module's own ones.
  local src; src="$(cd "${mod}" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
  cp -r "${src}/kustomize/stage" "${out}.tmp/stage"
  chmod -R u+w "${out}.tmp/stage"
  rm -rf "${out}" && mv "${out}.tmp" "${out}"
}

build_etcd
build_kwok
build_kubernetes

mkdir -p "${BIN_DIR}"
for c in "${KUBE_CMDS[@]}"; do ln -sf "${CACHE_ROOT}/testbin/kubernetes-${KUBE_VERSION}/${c}" "${BIN_DIR}/${c}"; done
ln -sf "${CACHE_ROOT}/testbin/etcd-${ETCD_VERSION}/etcd" "${BIN_DIR}/etcd"
ln -sf "${CACHE_ROOT}/testbin/kwok-${KWOK_VERSION}/kwok" "${BIN_DIR}/kwok"
ln -sfn "${CACHE_ROOT}/testbin/kwok-${KWOK_VERSION}/stage" "${BIN_DIR}/kwok-stage"
log "binaries in ${BIN_DIR}"
echo "${BIN_DIR}"
