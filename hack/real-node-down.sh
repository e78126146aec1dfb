#!/usr/bin/env bash
# Stops the real node of hack/real-node-up.sh and undoes its host changes:
# kube-proxy and its iptables rules, the kubelet, then every pod sandbox
# (through CRI, which releases their network namespaces and addresses),
# containerd and its shims, the registries, all by PID; then the mounts under
# the node's folders, the bridge, the node's address on lo, the kubelet's
# cgroups, the sysctls it changed, and the fixed paths the kubelet and CNI
# wrote to. Safe to run when nothing, or only part, is running.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/local-env.sh
source "${ROOT}/hack/local-env.sh"
PIDS="${LOCAL_DIR}/pids"
N="${LOCAL_NODE_DIR}"
RUN="${LOCAL_NODE_RUN}"
SOCK="${RUN}/containerd.sock"
CHANGES="${N}/host-changes"
SCRIPT=real-node-down
# shellcheck source=hack/lib-proc.sh
source "${ROOT}/hack/lib-proc.sh"

stop_pid kube-proxy
stop_pid kubelet
if [[ -S "${SOCK}" && -x "${N}/bin/real-node" ]] && is_running containerd; then
  "${N}/bin/real-node" reset --socket "${SOCK}" >&2 || echo "real-node-down: could not remove every pod sandbox" >&2
fi
stop_pid containerd
# The shims outlive containerd: they are found by the socket they serve.
for pid in $(pgrep -f "containerd-shim.* -address ${SOCK}( |$)" 2>/dev/null); do
  kill -KILL "${pid}" 2>/dev/null
done
stop_pid registry
stop_pid auth-registry

# Mounts under the node's folders (the kubelet's root dir, pod volumes,
# sandbox files), deepest first.
for dir in "${N}" "${RUN}"; do
  [[ -n "${dir}" && -d "${dir}" ]] || continue
  awk -v d="${dir}" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount "${m}" 2>/dev/null || umount -l "${m}" 2>/dev/null || echo "real-node-down: could not unmount ${m}" >&2
  done
done

if ip link show "${LOCAL_CNI_BRIDGE}" >/dev/null 2>&1; then
  ip link delete "${LOCAL_CNI_BRIDGE}" 2>/dev/null || echo "real-node-down: could not delete bridge ${LOCAL_CNI_BRIDGE}" >&2
fi
rm -f /var/lib/cni/results/kube-fledged-local-* 2>/dev/null
if [[ -d /var/log/containers ]]; then
  find /var/log/containers -maxdepth 1 -type l -lname "${N}/*" -delete 2>/dev/null
fi

if [[ -f "${CHANGES}" ]]; then
  while read -r kind a b; do
    case "${kind}" in
    kube-proxy)
      # Its iptables rules.
      bin="$(bash "${ROOT}/hack/testbin.sh" --dir)"
      "${bin}/kube-proxy" --cleanup >/dev/null 2>&1 || echo "real-node-down: kube-proxy --cleanup failed" >&2
      ;;
    sysctl) sysctl -q -w "${a}=${b}" >/dev/null 2>&1 || echo "real-node-down: could not restore ${a}=${b}" >&2 ;;
    address) ip addr del "${a}" dev lo 2>/dev/null ;;
    link) ip link delete "${a}" 2>/dev/null ;;
    netns) ip netns delete "${a}" 2>/dev/null || echo "real-node-down: could not delete the network namespace ${a}" >&2 ;;
    cgroup)
      for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
        [[ -d "${h}${a#/}" ]] || continue
        find "${h}${a#/}" -depth -type d -exec rmdir {} \; 2>/dev/null
      done
      ;;
    esac
  done <"${CHANGES}"
  # Folders that did not exist before the node, last, as they may nest.
  grep '^created ' "${CHANGES}" | sort -r -k2 | while read -r _ d; do rm -rf "${d}"; done
  grep '^created-empty ' "${CHANGES}" | while read -r _ d; do rmdir "${d}" 2>/dev/null; done
fi
rm -rf "${RUN}" "${N}" "${LOCAL_NODE_ENV}"
echo "real-node-down: the real node is stopped" >&2
