#!/usr/bin/env bash
# Adds one real node to the local cluster of hack/local-up.sh: a kubelet
# (from hack/testbin.sh) over containerd with a bridge CNI, kube-proxy when
# the API server has an address pods can reach, pulling from two
# registries on loopback: a plain one (LOCAL_REGISTRY_PORT) holding the
# project's image and the sandbox ("pause") image, and one behind basic auth
# (LOCAL_AUTH_REGISTRY_PORT), for pull secrets; and the address of a third
# (LOCAL_TEST_REGISTRY_PORT), which the tests start and stop themselves.
#
#   hack/real-node-up.sh          (or: REAL_NODE=1 make cluster-up)
#
# Every process is recorded in LOCAL_DIR/pids and stopped by PID by
# hack/real-node-down.sh (hack/local-down.sh calls it), which also undoes the
# host changes made here: sysctls the kubelet and the bridge set, the node's
# address on lo, the bridge, mounts, cgroups and the few fixed paths the
# kubelet and CNI write to.
#
# When the machine cannot run a kubelet (no root, no cgroups, no packages), it
# says why in one line, writes the reason to LOCAL_NODE_SKIP and exits 2; the
# real-node tests are then skipped with that reason.
#
# For a test node only: the kubelet's API allows anonymous access, and is
# therefore bound to the node's address on lo, reachable from this machine
# alone. Never run a kubelet configured like this on a network.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/local-env.sh
source "${ROOT}/hack/local-env.sh"

PIDS="${LOCAL_DIR}/pids"
LOGS="${LOCAL_DIR}/logs"
PKI="${LOCAL_DIR}/pki"
N="${LOCAL_NODE_DIR}"
RUN="${LOCAL_NODE_RUN}"
SOCK="${RUN}/containerd.sock"
REGISTRY="127.0.0.1:${LOCAL_REGISTRY_PORT}"
AUTH_REGISTRY="127.0.0.1:${LOCAL_AUTH_REGISTRY_PORT}"
TEST_REGISTRY="127.0.0.1:${LOCAL_TEST_REGISTRY_PORT}"
LINK_REGISTRY="${LOCAL_LINK_REMOTE_IP}:${LOCAL_TEST_REGISTRY_PORT}"
# Test credentials of the auth registry: two users, so that two pull secrets
# can hold different credentials; the bcrypt hashes below are of these
# passwords.
AUTH_USER="fledged-e2e"
AUTH_PASSWORD="fledged-e2e-password"
AUTH_USER2="fledged-e2e-other"
AUTH_PASSWORD2="fledged-e2e-other-password"
AUTH_HTPASSWD='fledged-e2e:$2a$10$tVR2ham5qZCzuHyxzwbL/urFPkwMGC8joZsWdX356cS1RplNcMAAy
fledged-e2e-other:$2a$10$BoFCUnOUu8pSmcI/85ZTD.rd8Wqpv9RvQ4xHVc6yID4QWdE/l3WiW'
# The project's three images (hack/image-local): the controller, for the
# in-cluster tests; the helper the pull Jobs install; the CRI remover the
# delete Jobs run.
CONTROLLER_IMAGE="${REGISTRY}/kube-fledged:local"
HELPER_IMAGE="${REGISTRY}/kube-fledged-helper:local"
CRI_IMAGE="${REGISTRY}/kube-fledged-cri:local"
PAUSE_IMAGE="${REGISTRY}/pause:local"
CGROUP_ROOT="/kube-fledged-node"
CNI_NETWORK="kube-fledged-local"

SCRIPT=real-node-up
DOWN="${ROOT}/hack/real-node-down.sh"
# shellcheck source=hack/lib-proc.sh
source "${ROOT}/hack/lib-proc.sh"

skip() {
  mkdir -p "${LOCAL_DIR}"
  echo "$*" >"${LOCAL_NODE_SKIP}"
  log "no real node: $*"
  exit 2
}

# --- can this machine run a kubelet? ---
rm -f "${LOCAL_NODE_SKIP}"
[[ "$(id -u)" == "0" ]] || skip "a kubelet needs root (running as uid $(id -u))"
[[ -d /sys/fs/cgroup/memory || -f /sys/fs/cgroup/cgroup.controllers ]] || skip "no cgroup filesystem at /sys/fs/cgroup"
rc=0
reason="$(bash "${ROOT}/hack/deps.sh" node)" || rc=$?
case ${rc} in
  0) ;;
  2) skip "${reason}" ;;
  *) log "FAILED: installing the real node's packages"; exit 1 ;;
esac

BIN="$(bash "${ROOT}/hack/testbin.sh")"
kubectl() { "${BIN}/kubectl" --kubeconfig "${LOCAL_KUBECONFIG}" "$@"; }
[[ -f "${PKI}/ca.key" ]] && kubectl get --raw=/readyz >/dev/null 2>&1 ||
  { log "the local cluster is not running: start it first (hack/local-up.sh)"; exit 1; }
if is_running kubelet; then
  log "the real node ${LOCAL_NODE_NAME} is already running"
  exit 0
fi
# Leftovers of an earlier node are cleaned up first.
bash "${ROOT}/hack/real-node-down.sh" >/dev/null 2>&1 || true
mkdir -p "${PIDS}" "${LOGS}" "${N}" "${RUN}"

# --- what is changed on the host, so that down can undo it ---
: >"${N}/host-changes"
for key in vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys \
  kernel.keys.root_maxbytes net.ipv4.ip_forward; do
  if v="$(sysctl -n "${key}" 2>/dev/null)"; then echo "sysctl ${key} ${v}" >>"${N}/host-changes"; fi
done
for d in /var/lib/kubelet /var/lib/cni /var/log/containers /var/log/pods; do
  [[ -e "${d}" ]] || echo "created ${d}" >>"${N}/host-changes"
done
# containerd keeps the pods' network namespaces here.
[[ -e /run/netns ]] || echo "created-empty /run/netns" >>"${N}/host-changes"

# --- the helpers: the sandbox image's binary, and the CRI reset tool ---
log "building the node's helpers"
mkdir -p "${N}/bin"
(cd "${ROOT}" && CGO_ENABLED=0 go build -o "${N}/bin/pause" ./hack/real-node/pause &&
  go build -o "${N}/bin/real-node" ./hack/real-node) || fail none "building hack/real-node"

# --- registries ---
mkdir -p "${N}/registry" "${N}/auth-registry"
echo "${AUTH_HTPASSWD}" >"${N}/auth-registry/htpasswd"
registry_config() {
  local dir="$1" addr="$2" auth="$3"
  cat <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: ${dir}/data
  delete:
    enabled: true
http:
  addr: ${addr}
${auth}
YAML
}
registry_config "${N}/registry" "${REGISTRY}" "" >"${N}/registry/config.yml"
registry_config "${N}/auth-registry" "${AUTH_REGISTRY}" "auth:
  htpasswd:
    realm: kube-fledged-local
    path: ${N}/auth-registry/htpasswd" >"${N}/auth-registry/config.yml"
log "starting registries on ${REGISTRY} and ${AUTH_REGISTRY} (basic auth)"
start registry /usr/bin/docker-registry serve "${N}/registry/config.yml"
start auth-registry /usr/bin/docker-registry serve "${N}/auth-registry/config.yml"
wait_until registry 30 "the registry" curl -sf "http://${REGISTRY}/v2/"
answers_401() { [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://${AUTH_REGISTRY}/v2/")" == "401" ]]; }
wait_until auth-registry 30 "the auth registry" answers_401

log "pushing ${PAUSE_IMAGE}, ${CONTROLLER_IMAGE}, ${HELPER_IMAGE} and ${CRI_IMAGE}"
"${N}/bin/real-node" push --image "${PAUSE_IMAGE}" --file /pause --bin "${N}/bin/pause" || fail registry "pushing the pause image"
(cd "${ROOT}" && go run ./hack/image-local --image "${CONTROLLER_IMAGE}" --helper-image "${HELPER_IMAGE}" --cri-image "${CRI_IMAGE}" \
  --platforms "linux/$(go env GOARCH)" >/dev/null) || fail registry "pushing the project's images"

# --- CNI: a bridge of its own, with host-local addresses kept in our folder ---
mkdir -p "${N}/cni/net.d" "${N}/cni/ipam"
cat >"${N}/cni/net.d/10-${CNI_NETWORK}.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "${CNI_NETWORK}",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "${LOCAL_CNI_BRIDGE}",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "${N}/cni/ipam",
        "ranges": [[{"subnet": "${LOCAL_POD_SUBNET}"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
JSON

# --- containerd ---
for r in "${REGISTRY}" "${AUTH_REGISTRY}" "${TEST_REGISTRY}" "${LINK_REGISTRY}"; do
  mkdir -p "${N}/containerd/certs.d/${r}"
  cat >"${N}/containerd/certs.d/${r}/hosts.toml" <<TOML
server = "http://${r}"

[host."http://${r}"]
  capabilities = ["pull", "resolve"]
TOML
done
# containerd 2 (hack/testbin.sh builds it), in its configuration's version 3
# format; the CRI pulls through the transfer service, which unpacks with
# the native snapshotter too.
cat >"${N}/containerd/config.toml" <<TOML
version = 3
root = "${N}/containerd/root"
state = "${RUN}/state"
[grpc]
  address = "${SOCK}"
[ttrpc]
  address = "${SOCK}.ttrpc"
[debug]
  address = "${RUN}/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "${N}/containerd/opt"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "native"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "${PAUSE_IMAGE}"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "${N}/containerd/certs.d"
[plugins."io.containerd.cri.v1.runtime"]
  # Containers in this kind of sandbox may not raise their OOM score adjustment.
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "${N}/cni/net.d"
[plugins."io.containerd.transfer.v1.local"]
  [[plugins."io.containerd.transfer.v1.local".unpack_config]]
    platform = "linux/$(go env GOARCH)"
    snapshotter = "native"
TOML
log "starting containerd $("${BIN}/containerd" --version | awk '{print $3}') on ${SOCK}"
# Its own runc shim first: Debian's containerd, if installed, has another.
start containerd env PATH="${BIN}:${PATH}" "${BIN}/containerd" --config "${N}/containerd/config.toml"
wait_until containerd 30 "containerd's socket" test -S "${SOCK}"

# --- the kubelet: its identity, address and configuration ---
log "issuing the kubelet's client certificate (system:node:${LOCAL_NODE_NAME})"
mkdir -p "${N}/pki"
openssl req -newkey rsa:2048 -nodes -subj "/O=system:nodes/CN=system:node:${LOCAL_NODE_NAME}" \
  -keyout "${N}/pki/kubelet.key" -out "${N}/pki/kubelet.csr" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' >"${N}/pki/kubelet.ext"
openssl x509 -req -in "${N}/pki/kubelet.csr" -CA "${PKI}/ca.crt" -CAkey "${PKI}/ca.key" -CAcreateserial -days 30 \
  -extfile "${N}/pki/kubelet.ext" -out "${N}/pki/kubelet.crt" 2>/dev/null
KC="${N}/kubelet.kubeconfig"
# The API server's address, as the cluster's own kubeconfig has it.
SERVER="$(kubectl config view -o jsonpath='{.clusters[0].cluster.server}')"
# node_kubeconfig FILE USER CERT KEY: a kubeconfig with a client certificate.
node_kubeconfig() {
  "${BIN}/kubectl" --kubeconfig "$1" config set-cluster local --server "${SERVER}" \
    --certificate-authority "${PKI}/ca.crt" --embed-certs >/dev/null
  "${BIN}/kubectl" --kubeconfig "$1" config set-credentials "$2" --client-certificate "$3" \
    --client-key "$4" --embed-certs >/dev/null
  "${BIN}/kubectl" --kubeconfig "$1" config set-context local --cluster local --user "$2" >/dev/null
  "${BIN}/kubectl" --kubeconfig "$1" config use-context local >/dev/null
}
node_kubeconfig "${KC}" kubelet "${N}/pki/kubelet.crt" "${N}/pki/kubelet.key"

# The node's address lives on lo, so that the API server (which prefers
# InternalIP) reaches the kubelet for logs, and nothing else can.
if ! ip -4 addr show dev lo | grep -q " ${LOCAL_NODE_IP}/"; then
  ip addr add "${LOCAL_NODE_IP}/32" dev lo || fail none "adding ${LOCAL_NODE_IP} to lo"
  echo "address ${LOCAL_NODE_IP}/32" >>"${N}/host-changes"
fi
# The shaped link: a veth pair into a network namespace of its own, with an
# address at each end; the tests run a registry in the namespace and shape
# its side with tc (tbf), so that pulls from it cross a link of a known
# bandwidth. Unshaped until a test shapes it.
ip netns delete "${LOCAL_LINK_NETNS}" 2>/dev/null || true # a run that crashed left it
{
  ip netns add "${LOCAL_LINK_NETNS}" || fail none "adding the network namespace ${LOCAL_LINK_NETNS}"
  echo "netns ${LOCAL_LINK_NETNS}" >>"${N}/host-changes"
  ip link add "${LOCAL_LINK_HOST_DEV}" type veth peer name "${LOCAL_LINK_REMOTE_DEV}" netns "${LOCAL_LINK_NETNS}" ||
    fail none "adding the veth pair ${LOCAL_LINK_HOST_DEV}"
  echo "link ${LOCAL_LINK_HOST_DEV}" >>"${N}/host-changes"
  ip addr add "${LOCAL_LINK_HOST_IP}/30" dev "${LOCAL_LINK_HOST_DEV}"
  ip link set "${LOCAL_LINK_HOST_DEV}" up
  ip netns exec "${LOCAL_LINK_NETNS}" ip addr add "${LOCAL_LINK_REMOTE_IP}/30" dev "${LOCAL_LINK_REMOTE_DEV}"
  ip netns exec "${LOCAL_LINK_NETNS}" ip link set "${LOCAL_LINK_REMOTE_DEV}" up
  ip netns exec "${LOCAL_LINK_NETNS}" ip link set lo up
}
# The kubelet's pods live in a cgroup of their own, in every v1 hierarchy.
if [[ ! -f /sys/fs/cgroup/cgroup.controllers ]]; then
  for h in /sys/fs/cgroup/*/; do
    [[ -L "${h%/}" ]] && continue
    mkdir -p "${h}${CGROUP_ROOT#/}" 2>/dev/null || true
  done
else
  mkdir -p "/sys/fs/cgroup${CGROUP_ROOT}"
fi
echo "cgroup ${CGROUP_ROOT}" >>"${N}/host-changes"

mkdir -p "${N}/kubelet" "${N}/pod-logs" "${N}/volume-plugins"
# The node lists every image it has (nodeStatusMaxImages: -1; the tests run
# the controller with --node-status-max-images=-1 to match): the tests push
# more images than a kubelet lists by default, and only a node that lists
# them all lets a Pulling event prove an image was absent.
cat >"${N}/kubelet.base.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${LOCAL_NODE_IP}
port: ${LOCAL_KUBELET_PORT}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${LOCAL_KUBELET_HEALTHZ_PORT}
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
containerRuntimeEndpoint: unix://${SOCK}
imageServiceEndpoint: unix://${SOCK}
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: true
cgroupRoot: ${CGROUP_ROOT}
enforceNodeAllocatable: [pods]
failSwapOn: false
protectKernelDefaults: false
makeIPTablesUtilChains: false
staticPodPath: ""
podLogsDir: ${N}/pod-logs
volumePluginDir: ${N}/volume-plugins
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 50Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
nodeStatusUpdateFrequency: 10s
nodeStatusMaxImages: -1
serializeImagePulls: true
YAML
log "starting the kubelet as node ${LOCAL_NODE_NAME} (${LOCAL_NODE_IP})"
bash "${ROOT}/hack/real-node-kubelet.sh" start || fail kubelet "starting the kubelet"

# --- kube-proxy: Services for the node's pods, the API server's among them ---
# Only when the API server has an address pods can reach (LOCAL_APISERVER_IP;
# on 127.0.0.1 it cannot be a Service's endpoint): then pods find it the way
# they do in a real cluster, at the `kubernetes` Service's cluster IP.
IN_CLUSTER=0
if [[ "${SERVER}" != "https://127.0.0.1:"* ]]; then
  log "starting kube-proxy (iptables) for ${LOCAL_NODE_NAME}"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=system:kube-proxy" \
    -keyout "${N}/pki/kube-proxy.key" -out "${N}/pki/kube-proxy.csr" 2>/dev/null
  openssl x509 -req -in "${N}/pki/kube-proxy.csr" -CA "${PKI}/ca.crt" -CAkey "${PKI}/ca.key" -CAcreateserial -days 30 \
    -extfile "${N}/pki/kubelet.ext" -out "${N}/pki/kube-proxy.crt" 2>/dev/null
  node_kubeconfig "${N}/kube-proxy.kubeconfig" kube-proxy "${N}/pki/kube-proxy.crt" "${N}/pki/kube-proxy.key"
  # No conntrack sysctls, no localhost node ports (route_localnet), node
  # ports on the node's address only: kube-proxy changes the host no more
  # than its rules, which hack/real-node-down.sh removes (kube-proxy --cleanup).
  cat >"${N}/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: ${N}/kube-proxy.kubeconfig
hostnameOverride: ${LOCAL_NODE_NAME}
mode: iptables
clusterCIDR: ${LOCAL_POD_SUBNET}
bindAddress: ${LOCAL_NODE_IP}
healthzBindAddress: 127.0.0.1:${LOCAL_KUBE_PROXY_HEALTHZ_PORT}
metricsBindAddress: 127.0.0.1:${LOCAL_KUBE_PROXY_METRICS_PORT}
nodePortAddresses: ["${LOCAL_NODE_IP}/32"]
iptables:
  localhostNodePorts: false
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
YAML
  echo "kube-proxy" >>"${N}/host-changes"
  start kube-proxy "${BIN}/kube-proxy" --config="${N}/kube-proxy.yaml" -v=1
  wait_until kube-proxy 60 "kube-proxy to sync its rules" curl -sf "http://127.0.0.1:${LOCAL_KUBE_PROXY_HEALTHZ_PORT}/healthz"
  IN_CLUSTER=1
else
  log "no kube-proxy: the API server is on 127.0.0.1, which pods cannot reach (set LOCAL_APISERVER_IP)"
fi

cat >"${LOCAL_NODE_ENV}" <<ENV
REAL_NODE_NAME=${LOCAL_NODE_NAME}
REAL_NODE_REGISTRY=${REGISTRY}
REAL_NODE_AUTH_REGISTRY=${AUTH_REGISTRY}
REAL_NODE_TEST_REGISTRY=${TEST_REGISTRY}
REAL_NODE_LINK_REGISTRY=${LINK_REGISTRY}
REAL_NODE_LINK_NETNS=${LOCAL_LINK_NETNS}
REAL_NODE_LINK_DEV=${LOCAL_LINK_REMOTE_DEV}
REAL_NODE_AUTH_USER=${AUTH_USER}
REAL_NODE_AUTH_PASSWORD=${AUTH_PASSWORD}
REAL_NODE_AUTH_USER2=${AUTH_USER2}
REAL_NODE_AUTH_PASSWORD2=${AUTH_PASSWORD2}
REAL_NODE_KUBELET_SCRIPT=${ROOT}/hack/real-node-kubelet.sh
REAL_NODE_CRI_SOCKET=${SOCK}
REAL_NODE_HELPER_IMAGE=${HELPER_IMAGE}
REAL_NODE_CRI_IMAGE=${CRI_IMAGE}
REAL_NODE_CONTROLLER_IMAGE=${CONTROLLER_IMAGE}
REAL_NODE_IN_CLUSTER=${IN_CLUSTER}
REAL_NODE_CONTAINERD_ROOT=${N}/containerd/root
REAL_NODE_PAUSE_IMAGE=${PAUSE_IMAGE}
ENV
log "node ${LOCAL_NODE_NAME} is Ready; registries ${REGISTRY} and ${AUTH_REGISTRY} (user ${AUTH_USER}); CRI socket ${SOCK}"
log "run the controller with --helper-image=${HELPER_IMAGE} --cri-image=${CRI_IMAGE} --cri-socket-path=${SOCK}"
