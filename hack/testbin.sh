#!/usr/bin/env bash
# Builds the real test-bed binaries from Go modules and caches them outside the
# work tree, keyed by version:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
#   kubelet, kube-proxy, kwok (and kwok's stage manifests), containerd (with
#   its runc shim and ctr; runc itself is Debian's), the LTS containerd (the
#   same three, in the bin folder's containerd-MAJOR.MINOR), promtool.
# A component whose binaries are already in the cache is not rebuilt.
#
# Usage: hack/testbin.sh            build what is missing, print the bin folder
#        hack/testbin.sh --dir      print the bin folder only (no build)
#        hack/testbin.sh --oldest   also build the oldest Kubernetes the chart
#                                   claims (KUBE_OLDEST_VERSION: kube-apiserver,
#                                   kube-controller-manager, kube-scheduler) and
#                                   print a bin folder with those in place of
#                                   the current ones (the rest is shared)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/versions.sh
source "${ROOT}/hack/versions.sh"

CACHE_ROOT="${KUBE_FLEDGED_CACHE:-${XDG_CACHE_HOME:-${HOME}/.cache}/kube-fledged}"
BIN_DIR="${CACHE_ROOT}/testbin/kube-${KUBE_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}"

OLDEST_BIN_DIR="${CACHE_ROOT}/testbin/kube-${KUBE_OLDEST_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}"
KUBE_OLDEST_CMDS=(kube-apiserver kube-controller-manager kube-scheduler)

if [[ "${1:-}" == "--dir" ]]; then
  echo "${BIN_DIR}"
  exit 0
fi
OLDEST=0
[[ "${1:-}" == "--oldest" ]] && OLDEST=1

log() { echo "testbin: $*" >&2; }

# mmss SECONDS: "4m05s".
mmss() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# step WHAT ESTIMATE FUNCTION: runs FUNCTION (one component's download and
# build) with its output in a log, says every minute that it is still at it,
# and when it ends how long it took. If it fails, it prints the end of that
# output and exits 1, so a broken build is never silent.
step() {
  local what="$1" estimate="$2" fn="$3" start=${SECONDS} rc=0
  local out="${CACHE_ROOT}/build/${fn}.log"
  mkdir -p "${CACHE_ROOT}/build"
  if [[ -z "${announced:-}" ]]; then
    announced=1
    log "building the test-bed binaries into ${CACHE_ROOT}/testbin, once: about 20 min on 2 cores when"
    log "nothing is cached (Go modules are downloaded too); progress every minute, later runs reuse them"
  fi
  log "${what}: building (cold: ${estimate} on 2 cores)"
  "${fn}" >"${out}" 2>&1 &
  local pid=$!
  # shellcheck disable=SC2064 # expand now: the trap stops this build
  trap "kill ${pid} 2>/dev/null" EXIT
  local next=$((SECONDS + 60))
  while kill -0 "${pid}" 2>/dev/null; do
    if ((SECONDS >= next)); then
      log "${what}: still building, $(mmss $((SECONDS - start))) so far (cold: ${estimate})"
      next=$((SECONDS + 60))
    fi
    sleep 1
  done
  wait "${pid}" || rc=$?
  trap - EXIT
  if ((rc != 0)); then
    log "${what}: FAILED after $(mmss $((SECONDS - start))) (exit ${rc}); the end of its output (${out}):"
    tail -n 40 "${out}" >&2
    exit 1
  fi
  log "${what}: built in $(mmss $((SECONDS - start)))"
}

export CGO_ENABLED=0
export GOFLAGS="-trimpath -buildvcs=false -mod=mod"

KUBE_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)

# tidy DIR: downloads the modules DIR/go.mod needs.
tidy() {
  (cd "$1" && go mod tidy) || { echo "go mod tidy failed in $1"; return 1; }
}

# module_build NAME MODULE VERSION LDFLAGS PACKAGE...: builds the packages of
# MODULE at VERSION, from a go.mod of their own that lists them as tools, into
# testbin/NAME-VERSION.tmp (GO_BUILD_TAGS: build tags), which the caller
# completes and moves in place.
module_build() {
  local name="$1" module="$2" version="$3" ldflags="$4"; shift 4
  local out="${CACHE_ROOT}/testbin/${name}-${version}" mod="${CACHE_ROOT}/build/${name}-${version}"
  mkdir -p "${mod}" "${out}.tmp"
  {
    printf 'module kubefledged.io/testbin/%s\n\ngo 1.26\n\nrequire %s %s\n\ntool (\n' "${name}" "${module}" "${version}"
    printf '\t%s\n' "$@"
    printf ')\n'
  } > "${mod}/go.mod"
  tidy "${mod}" || return 1
  (cd "${mod}" && go build -tags "${GO_BUILD_TAGS:-}" -ldflags "${ldflags}" -o "${out}.tmp/" "$@") || return 1
}

# build_kubernetes VERSION STAGING_VERSION CMD...: the commands of
# k8s.io/kubernetes at VERSION, into testbin/kubernetes-VERSION.
build_kubernetes() {
  local version="$1" staging="$2"; shift 2
  local out="${CACHE_ROOT}/testbin/kubernetes-${version}"
  local missing=0
  for c in "$@"; do [[ -x "${out}/${c}" ]] || missing=1; done
  if [[ ${missing} == 0 ]]; then log "kubernetes ${version}: cached"; return; fi
  KUBE_BUILD=("${version}" "${staging}" "$@")
  step "kubernetes ${version} ($*)" "$([[ $# -gt 3 ]] && echo "~10-15 min" || echo "~8-10 min")" kubernetes_build
}

kubernetes_build() {
  local version="${KUBE_BUILD[0]}" staging="${KUBE_BUILD[1]}" cmds=("${KUBE_BUILD[@]:2}")
  local out="${CACHE_ROOT}/testbin/kubernetes-${version}"
  local mod="${CACHE_ROOT}/build/kubernetes-${version}"
  mkdir -p "${mod}" "${out}.tmp"
  # The staging modules k8s.io/kubernetes requires at v0.0.0 (its own
  # replace directives do not apply to a module that requires it).
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@${version}" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
  [[ -n "${gomod}" ]] || { echo "no go.mod for k8s.io/kubernetes@${version}"; return 1; }
  local staged=()
  mapfile -t staged < <(sed -n 's#^[[:space:]]*k8s.io/\([a-z0-9-]*\) v0\.0\.0$#\1#p' "${gomod}" | sort -u)
  ((${#staged[@]} > 0)) || { echo "k8s.io/kubernetes@${version} requires no staging module at v0.0.0"; return 1; }
  {
    echo "module kubefledged.io/testbin/kubernetes"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes ${version}"
    echo
    echo "tool ("
    for c in "${cmds[@]}"; do echo "	k8s.io/kubernetes/cmd/${c}"; done
    echo ")"
    echo
    echo "replace ("
    for s in "${staged[@]}"; do echo "	k8s.io/${s} => k8s.io/${s} ${staging}"; done
    echo ")"
  } > "${mod}/go.mod"
  tidy "${mod}" || return 1
  local minor="${version#v1.}"; minor="${minor%%.*}"
  local date; date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  local ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${p}.gitVersion=${version} -X ${p}.gitMajor=1 -X ${p}.gitMinor=${minor}"
    ldflags+=" -X ${p}.gitTreeState=clean -X ${p}.gitCommit=${version} -X ${p}.buildDate=${date}"
  done
  local pkgs=()
  for c in "${cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/${c}"); done
  (cd "${mod}" && go build -ldflags "${ldflags}" -o "${out}.tmp/" "${pkgs[@]}") || return 1
  rm -rf "${out}" && mv "${out}.tmp" "${out}"
}

build_etcd() {
  local out="${CACHE_ROOT}/testbin/etcd-${ETCD_VERSION}"
  if [[ -x "${out}/etcd" ]]; then log "etcd ${ETCD_VERSION}: cached"; return; fi
  step "etcd ${ETCD_VERSION}" "~2-3 min" etcd_build
}

etcd_build() {
  local out="${CACHE_ROOT}/testbin/etcd-${ETCD_VERSION}"
  module_build etcd go.etcd.io/etcd/server/v3 "${ETCD_VERSION}" "-s -w" go.etcd.io/etcd/server/v3 || return 1
  mv "${out}.tmp/server" "${out}.tmp/etcd" # go names it after the path before /v3
  rm -rf "${out}" && mv "${out}.tmp" "${out}"
}

build_kwok() {
  local out="${CACHE_ROOT}/testbin/kwok-${KWOK_VERSION}"
  if [[ -x "${out}/kwok" && -d "${out}/stage" ]]; then log "kwok ${KWOK_VERSION}: cached"; return; fi
  step "kwok ${KWOK_VERSION}" "~3-5 min" kwok_build
}

kwok_build() {
  local out="${CACHE_ROOT}/testbin/kwok-${KWOK_VERSION}"
  local mod="${CACHE_ROOT}/build/kwok-${KWOK_VERSION}"
  module_build kwok sigs.k8s.io/kwok "${KWOK_VERSION}" "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION}" \
    sigs.k8s.io/kwok/cmd/kwok || return 1
  # kwok's standalone binary has no built-in stages: keep the module's own ones.
  local src; src="$(cd "${mod}" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)" || return 1
  cp -r "${src}/kustomize/stage" "${out}.tmp/stage"
  chmod -R u+w "${out}.tmp/stage"
  rm -rf "${out}" && mv "${out}.tmp" "${out}"
}

# build_containerd VERSION: containerd at VERSION, with its runc shim and
# ctr, into testbin/containerd-VERSION.
build_containerd() {
  local out="${CACHE_ROOT}/testbin/containerd-$1"
  if [[ -x "${out}/containerd" && -x "${out}/containerd-shim-runc-v2" && -x "${out}/ctr" ]]; then
    log "containerd $1: cached"; return
  fi
  CONTAINERD_BUILD="$1"
  step "containerd $1" "~4-5 min" containerd_build
}

containerd_build() {
  local version="${CONTAINERD_BUILD}"
  local out="${CACHE_ROOT}/testbin/containerd-${version}"
  local pkg=github.com/containerd/containerd/v2
  # Static, without the snapshotters that need cgo (btrfs, devmapper, zfs);
  # the version as containerd's own release builds stamp it.
  GO_BUILD_TAGS="no_btrfs no_devmapper no_zfs" module_build containerd "${pkg}" "${version}" \
    "-s -w -X ${pkg}/version.Version=${version} -X ${pkg}/version.Package=${pkg}" \
    "${pkg}/cmd/containerd" "${pkg}/cmd/containerd-shim-runc-v2" "${pkg}/cmd/ctr" || return 1
  rm -rf "${out}" && mv "${out}.tmp" "${out}"
}

build_promtool() {
  local out="${CACHE_ROOT}/testbin/prometheus-${PROMETHEUS_VERSION}"
  if [[ -x "${out}/promtool" ]]; then log "promtool ${PROMETHEUS_VERSION}: cached"; return; fi
  step "promtool ${PROMETHEUS_VERSION}" "~2-3 min" promtool_build
}

# promtool without the service discovery plugins (remove_all_sd, Prometheus'
# own build tag): the rules' tests and checks need none of them, and the
# cloud SDKs they bring took half the cold build.
promtool_build() {
  local out="${CACHE_ROOT}/testbin/prometheus-${PROMETHEUS_VERSION}"
  GO_BUILD_TAGS=remove_all_sd module_build prometheus github.com/prometheus/prometheus "${PROMETHEUS_VERSION}" \
    "-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION}" \
    github.com/prometheus/prometheus/cmd/promtool || return 1
  rm -rf "${out}" && mv "${out}.tmp" "${out}"
}

started=${SECONDS}
build_etcd
build_kwok
build_kubernetes "${KUBE_VERSION}" "${KUBE_STAGING_VERSION}" "${KUBE_CMDS[@]}"
build_containerd "${CONTAINERD_VERSION}"
build_containerd "${CONTAINERD_LTS_VERSION}"
build_promtool

mkdir -p "${BIN_DIR}"
for c in "${KUBE_CMDS[@]}"; do ln -sf "${CACHE_ROOT}/testbin/kubernetes-${KUBE_VERSION}/${c}" "${BIN_DIR}/${c}"; done
ln -sf "${CACHE_ROOT}/testbin/etcd-${ETCD_VERSION}/etcd" "${BIN_DIR}/etcd"
ln -sf "${CACHE_ROOT}/testbin/kwok-${KWOK_VERSION}/kwok" "${BIN_DIR}/kwok"
ln -sfn "${CACHE_ROOT}/testbin/kwok-${KWOK_VERSION}/stage" "${BIN_DIR}/kwok-stage"
ln -sf "${CACHE_ROOT}/testbin/prometheus-${PROMETHEUS_VERSION}/promtool" "${BIN_DIR}/promtool"
for c in containerd containerd-shim-runc-v2 ctr; do
  ln -sf "${CACHE_ROOT}/testbin/containerd-${CONTAINERD_VERSION}/${c}" "${BIN_DIR}/${c}"
done
# The LTS containerd in a folder of its own, named by its minor version
# (containerd-2.3): its shim must keep the name containerd-shim-runc-v2, and
# the CRI tests name the build after the folder. A folder left by an older
# LTS is removed, so that the tests do not run a containerd no longer pinned.
LTS_MINOR="${CONTAINERD_LTS_VERSION#v}"; LTS_MINOR="${LTS_MINOR%.*}"
for d in "${BIN_DIR}"/containerd-*/; do
  [[ -d "${d}" && "${d}" != "${BIN_DIR}/containerd-${LTS_MINOR}/" ]] && rm -rf "${d}"
done
mkdir -p "${BIN_DIR}/containerd-${LTS_MINOR}"
for c in containerd containerd-shim-runc-v2 ctr; do
  ln -sf "${CACHE_ROOT}/testbin/containerd-${CONTAINERD_LTS_VERSION}/${c}" "${BIN_DIR}/containerd-${LTS_MINOR}/${c}"
done
if ((OLDEST)); then
  build_kubernetes "${KUBE_OLDEST_VERSION}" "${KUBE_OLDEST_STAGING_VERSION}" "${KUBE_OLDEST_CMDS[@]}"
  mkdir -p "${OLDEST_BIN_DIR}"
  for f in "${BIN_DIR}"/*; do ln -sfn "$(readlink -f "${f}")" "${OLDEST_BIN_DIR}/${f##*/}"; done
  for c in "${KUBE_OLDEST_CMDS[@]}"; do
    ln -sf "${CACHE_ROOT}/testbin/kubernetes-${KUBE_OLDEST_VERSION}/${c}" "${OLDEST_BIN_DIR}/${c}"
  done
fi
if ((SECONDS - started > 5)); then log "all built in $(mmss $((SECONDS - started))); later runs reuse them"; fi
if ((OLDEST)); then
  log "binaries in ${OLDEST_BIN_DIR} (Kubernetes ${KUBE_OLDEST_VERSION}'s control plane)"
  echo "${OLDEST_BIN_DIR}"
  exit 0
fi
log "binaries in ${BIN_DIR}"
echo "${BIN_DIR}"
