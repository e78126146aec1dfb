# shellcheck shell=bash
# The one place where the versions of the test-bed binaries are pinned.
# hack/testbin.sh builds them from these Go modules; nothing else names a version.
KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"          # kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet, kube-proxy
KUBE_STAGING_VERSION="${KUBE_STAGING_VERSION:-v0.37.2}" # k8s.io/* staging modules matching KUBE_VERSION
# The oldest Kubernetes the chart claims (kubeVersion in charts/kube-fledged/Chart.yaml): its kube-apiserver,
# kube-controller-manager and kube-scheduler, for make e2e's phase on the oldest version (hack/testbin.sh --oldest).
KUBE_OLDEST_VERSION="${KUBE_OLDEST_VERSION:-v1.30.14}"
KUBE_OLDEST_STAGING_VERSION="${KUBE_OLDEST_STAGING_VERSION:-v0.30.14}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"          # go.etcd.io/etcd/server/v3
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"           # sigs.k8s.io/kwok
CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.4.2}" # github.com/containerd/containerd/v2: containerd, its runc shim and ctr, for the real node and the CRI tests
CONTAINERD_LTS_VERSION="${CONTAINERD_LTS_VERSION:-v2.3.7}" # the same module's long-term-support line: the CRI tests run against it too
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v0.316.0}" # github.com/prometheus/prometheus: promtool, for the alert rules' tests and the metrics' lint
HELM_VERSION="${HELM_VERSION:-v3.22.0}"          # helm.sh/helm/v3: helm lint and helm template in make verify, helm install in make e2e
