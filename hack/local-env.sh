# shellcheck shell=bash
# Settings of the local cluster, shared by hack/local-up.sh, hack/local-down.sh
# and the e2e suite. Every value can be overridden from the environment.
LOCAL_DIR="${LOCAL_DIR:-${ROOT}/_output/local}"
LOCAL_ETCD_PORT="${LOCAL_ETCD_PORT:-16379}"
LOCAL_ETCD_PEER_PORT="${LOCAL_ETCD_PEER_PORT:-16380}"
LOCAL_APISERVER_PORT="${LOCAL_APISERVER_PORT:-16443}"
LOCAL_KCM_PORT="${LOCAL_KCM_PORT:-16257}"
LOCAL_SCHEDULER_PORT="${LOCAL_SCHEDULER_PORT:-16259}"
LOCAL_KWOK_PORT="${LOCAL_KWOK_PORT:-16247}"
# The API server's address. Empty: 127.0.0.1, which pods cannot reach. Set
# (root only; make e2e sets it with the real node): an address of its own,
# added to lo, which the API server advertises as the endpoint of the
# `kubernetes` Service, so that pods on the real node reach it through
# kube-proxy, as in a real cluster. 198.18.0.0/15 is for benchmarks (RFC
# 2544), routed nowhere; hack/local-up.sh refuses an address the machine
# already has or routes through.
LOCAL_APISERVER_IP="${LOCAL_APISERVER_IP:-}"
LOCAL_KUBECONFIG="${LOCAL_DIR}/kubeconfig"
# `source` it to use the cluster from a shell: KUBECONFIG, and the test bed's
# kubectl (a link in LOCAL_DIR/bin) first on PATH.
LOCAL_ENV="${LOCAL_DIR}/env"

# The real node (hack/real-node-up.sh): a kubelet over containerd, and two
# registries on loopback (one plain, one behind basic auth).
LOCAL_NODE_NAME="${LOCAL_NODE_NAME:-kf-real-node}"
LOCAL_NODE_DIR="${LOCAL_DIR}/node"
# containerd's socket and state: a short path, as unix sockets allow ~108 bytes.
LOCAL_NODE_RUN="${LOCAL_NODE_RUN:-/run/kube-fledged-node-${LOCAL_APISERVER_PORT}}"
LOCAL_NODE_IP="${LOCAL_NODE_IP:-192.0.2.2}"
# The node registers with this startup taint, as a node of an autoscaler
# would; the controller removes it once the node is warm when run with
# --node-startup-taint (the pull Jobs tolerate it).
LOCAL_NODE_STARTUP_TAINT="${LOCAL_NODE_STARTUP_TAINT:-kubefledged.io/warming}"
LOCAL_KUBELET_PORT="${LOCAL_KUBELET_PORT:-16250}"
LOCAL_KUBELET_HEALTHZ_PORT="${LOCAL_KUBELET_HEALTHZ_PORT:-16248}"
LOCAL_KUBE_PROXY_METRICS_PORT="${LOCAL_KUBE_PROXY_METRICS_PORT:-16249}"
LOCAL_KUBE_PROXY_HEALTHZ_PORT="${LOCAL_KUBE_PROXY_HEALTHZ_PORT:-16256}"
LOCAL_REGISTRY_PORT="${LOCAL_REGISTRY_PORT:-16500}"
LOCAL_AUTH_REGISTRY_PORT="${LOCAL_AUTH_REGISTRY_PORT:-16501}"
# A registry address the real node can pull from that the tests start and
# stop themselves (a registry that goes away and comes back).
LOCAL_TEST_REGISTRY_PORT="${LOCAL_TEST_REGISTRY_PORT:-16502}"
# A link the tests shape with tc: a veth pair into a network namespace of
# its own, where the tests start a registry on LOCAL_LINK_REMOTE_IP (port
# LOCAL_TEST_REGISTRY_PORT); the node reaches it through LOCAL_LINK_HOST_IP.
LOCAL_LINK_NETNS="${LOCAL_LINK_NETNS:-kube-fledged-link-${LOCAL_APISERVER_PORT}}"
LOCAL_LINK_HOST_DEV="${LOCAL_LINK_HOST_DEV:-kffl0}"
LOCAL_LINK_REMOTE_DEV="${LOCAL_LINK_REMOTE_DEV:-kffl1}"
LOCAL_LINK_HOST_IP="${LOCAL_LINK_HOST_IP:-198.51.100.1}"
LOCAL_LINK_REMOTE_IP="${LOCAL_LINK_REMOTE_IP:-198.51.100.2}"
LOCAL_CNI_BRIDGE="${LOCAL_CNI_BRIDGE:-kff0}"
LOCAL_POD_SUBNET="${LOCAL_POD_SUBNET:-10.87.0.0/24}"
# What the tests read: the node's name, registries, credentials and socket.
LOCAL_NODE_ENV="${LOCAL_DIR}/real-node.env"
# Why there is no real node, when the machine cannot run one.
LOCAL_NODE_SKIP="${LOCAL_DIR}/real-node.skip"
