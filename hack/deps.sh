#!/usr/bin/env bash
# The one list of the host packages the project's tests and scripts need, and
# their installer. `make test`, `make e2e`, `make demo`, `make cluster-up` and
# hack/real-node-up.sh call it with what they are about to use:
#
#   hack/deps.sh test      the CRI and image tests (test/cri, test/image)
#   hack/deps.sh cluster   the local cluster (hack/local-up.sh)
#   hack/deps.sh node      the real node (hack/real-node-up.sh)
#   hack/deps.sh address   the API server's own address (hack/local-up.sh
#                          with LOCAL_APISERVER_IP)
#
# A package whose file is present is left alone. What is missing is installed
# from Debian's apt (`apt-get install -y`, no questions) when running as root.
# Exit status:
#   0  everything is present (or has just been installed);
#   1  apt-get failed: its output is printed;
#   2  something is missing and cannot be installed here (not root, or no
#      apt-get): one line on stderr says what, and the same line is printed on
#      stdout for the caller to pass on.
set -euo pipefail

# PACKAGE  FILE (a path, or a command on PATH)  WHAT NEEDS IT
PACKAGES="
test     docker-registry             /usr/bin/docker-registry  a registry the image and CRI tests push to
test     containerd                  /usr/bin/containerd       containerd 1.x, the CRI tests' second runtime (hack/testbin.sh builds containerd 2)
test     runc                        runc                      containerd's runtime
cluster  openssl                     openssl                   the local cluster's certificates
cluster  curl                        curl                      the local cluster's health checks
address  iproute2                    ip                        the API server's own address (LOCAL_APISERVER_IP)
node     runc                        runc                      the runtime under the real node's containerd 2 (hack/testbin.sh)
node     docker-registry             /usr/bin/docker-registry  the real node's registries
node     containernetworking-plugins /usr/lib/cni/bridge       the real node's pod network
node     iproute2                    ip                        the real node's address and bridge
node     iptables                    iptables                  kube-proxy, for the Services pods reach
node     procps                      pgrep                     the real node's teardown
node     openssl                     openssl                   the kubelet's certificate
node     curl                        curl                      the real node's health checks
"

log() { echo "deps: $*" >&2; }

present() { if [[ "$1" == /* ]]; then [[ -e "$1" ]]; else command -v "$1" >/dev/null; fi; }

(($# > 0)) || { log "usage: hack/deps.sh test|cluster|node|address ..."; exit 1; }
missing=()
while read -r group pkg file _; do
  [[ -n "${group}" ]] || continue
  for want in "$@"; do
    if [[ "${want}" == "${group}" ]] && ! present "${file}" && [[ " ${missing[*]} " != *" ${pkg} "* ]]; then
      missing+=("${pkg}")
    fi
  done
done <<<"${PACKAGES}"
for want in "$@"; do
  grep -qE "^${want} " <<<"${PACKAGES}" || { log "unknown group ${want}: test, cluster, node or address"; exit 1; }
done
((${#missing[@]} > 0)) || exit 0

cannot() {
  log "$*"
  echo "$*"
  exit 2
}
[[ "$(id -u)" == "0" ]] || cannot "missing Debian packages ${missing[*]}, which only root can install (running as uid $(id -u)): run as root, or: sudo apt-get install -y ${missing[*]}"
command -v apt-get >/dev/null || cannot "missing packages ${missing[*]}, and there is no apt-get to install them"

log "installing ${missing[*]} with apt-get (for: $*)"
export DEBIAN_FRONTEND=noninteractive
out="$(mktemp)"
trap 'rm -f "${out}"' EXIT
# Try with the package lists already here first; on a fresh machine there are
# none, so update them and try again.
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"${out}" 2>&1; then
  log "updating apt's package lists"
  if ! { apt-get update -q >>"${out}" 2>&1 && apt-get install -y -q --no-install-recommends "${missing[@]}" >>"${out}" 2>&1; }; then
    log "FAILED: apt-get install -y ${missing[*]}; its output:"
    tail -n 30 "${out}" >&2
    exit 1
  fi
fi
for pkg in "${missing[@]}"; do
  file="$(awk -v p="${pkg}" '$2 == p { print $3; exit }' <<<"${PACKAGES}")"
  present "${file}" || { log "FAILED: ${pkg} installed, but ${file} is still missing"; exit 1; }
done
log "installed ${missing[*]}"
