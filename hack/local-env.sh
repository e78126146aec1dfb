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
LOCAL_KUBECONFIG="${LOCAL_DIR}/kubeconfig"
