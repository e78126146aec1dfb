#!/usr/bin/env bash
# The Helm chart's checks, run by `make verify`, with helm built from its Go
# module (hack/helm.sh):
#   - helm lint --strict;
#   - the chart renders with every option on, and with a namespace of its own;
#   - values.schema.json refuses bad values, each with a message naming it;
#   - hack/chartcheck: the chart and deploy/ install the same objects.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
# shellcheck source=hack/versions.sh
source hack/versions.sh
HELM="$(bash hack/helm.sh)"
CHART=charts/kube-fledged
KV=(--kube-version "${KUBE_VERSION}")

"${HELM}" lint --strict "${CHART}" "${KV[@]}" | grep -v '^$'

all=(--set replicaCount=3 --set logging.format=json --set startupTaint.enabled=true --set userRoles.enabled=true
  --set metrics.serviceMonitor.enabled=true --set image.digest="sha256:$(printf '0%.0s' {1..64})"
  --set controller.imageCacheRefreshFrequency=1h --set controller.imagesPerJob=5 --set controller.maxInFlightJobs=50 --set controller.maxFinishedJobs=3000
  --set controller.criSocketPath=/run/containerd/containerd.sock --set controller.jobRetentionPolicy=retain
  --set-json controller.kubeAPIQPS=20.5 --set podDisruptionBudget.enabled=false
  --set-json 'controller.jobTolerations=["nvidia.com/gpu:NoSchedule","dedicated=cache"]'
  --set-json 'controller.helperImageArchitectures=["amd64"]' --set controller.nodeStatusMaxImages=-1
  --set 'controller.jobContainerRequests=cpu=50m\,memory=32Mi' --set controller.jobContainerLimits=memory=128Mi
  --set controller.pullRetryDeadline=2h --set controller.pullRetryMaxBackoff=5m
  --set metrics.prometheusRule.enabled=true --set metrics.grafanaDashboard.enabled=true)
out="$("${HELM}" template kube-fledged "${CHART}" -n kube-fledged "${KV[@]}" "${all[@]}")"
for want in "kind: ServiceMonitor" "kind: ValidatingAdmissionPolicy" "name: kube-fledged-edit" "--logging-format=json" \
  "--images-per-job=5" "--max-finished-jobs=3000" "--kube-api-qps=20.5" "@sha256:" "--job-tolerations=nvidia.com/gpu:NoSchedule,dedicated=cache" \
  "--helper-image-architectures=amd64" "--node-status-max-images=-1" "--job-container-requests=cpu=50m,memory=32Mi" \
  "--job-container-limits=memory=128Mi" "--pull-retry-deadline=2h" "--pull-retry-max-backoff=5m" \
  "kind: PrometheusRule" "alert: KubeFledgedImageCacheFailed" 'rest_client_requests_total{job="kube-fledged-metrics"' \
  "grafana_dashboard: \"1\"" '"title": "kube-fledged"' "honorLabels: true"; do
  grep -qF -- "${want}" <<<"${out}" || { echo "verify-chart: with every option on, the chart does not render ${want}" >&2; exit 1; }
done
for unwanted in "kind: Namespace" "kind: PodDisruptionBudget"; do
  if grep -qF -- "${unwanted}" <<<"${out}"; then echo "verify-chart: the chart renders ${unwanted} when told not to" >&2; exit 1; fi
done

# The helper and CRI remover images follow the controller's repository and tag.
out="$("${HELM}" template kube-fledged "${CHART}" -n kube-fledged "${KV[@]}" --set image.repository=reg.local/kf --set image.tag=v9)"
for want in "value: reg.local/kf-helper:v9" "value: reg.local/kf-cri:v9" "image: reg.local/kf:v9"; do
  grep -qF -- "${want}" <<<"${out}" || { echo "verify-chart: with image reg.local/kf:v9, the chart does not render ${want}" >&2; exit 1; }
done

# The alerts name the release's metrics Service as their job.
out="$("${HELM}" template kf "${CHART}" -n kube-fledged "${KV[@]}" --set metrics.prometheusRule.enabled=true)"
grep -qF 'workqueue_retries_total{job="kf-kube-fledged-metrics"}' <<<"${out}" ||
  { echo "verify-chart: release kf's PrometheusRule does not select job kf-kube-fledged-metrics" >&2; exit 1; }

# The chart owning the namespace, the release kept in another one.
out="$("${HELM}" template kube-fledged "${CHART}" -n default "${KV[@]}" --set namespace.name=kf-system --set namespace.create=true)"
grep -qF "pod-security.kubernetes.io/enforce: privileged" <<<"${out}" ||
  { echo "verify-chart: with namespace.create=true, the Namespace lacks its Pod Security label" >&2; exit 1; }
if grep -qE "namespace: default|:default:" <<<"${out}"; then
  echo "verify-chart: with namespace.name=kf-system, an object is still in the release's namespace" >&2; exit 1
fi

# VALUE  WHAT THE ERROR MUST SAY
bad="
replicaCount=-1                         /replicaCount
controller.imagesPerJob=0               /controller/imagesPerJob
controller.imagePullDeadline=5min       /controller/imagePullDeadline
logging.format=xml                      /logging/format
controller.maxInFlightJobs=many         /controller/maxInFlightJobs
controller.maxFinishedJobs=0            /controller/maxFinishedJobs
controller.nodeStatusMaxImages=-2       /controller/nodeStatusMaxImages
controller.jobContainerRequests=cpu     /controller/jobContainerRequests
controller.pullRetryMaxBackoff=0        /controller/pullRetryMaxBackoff
replicas=3                              'replicas' not allowed
"
while read -r value says; do
  [[ -n "${value}" ]] || continue
  if err="$("${HELM}" template kube-fledged "${CHART}" "${KV[@]}" --set "${value}" 2>&1 >/dev/null)"; then
    echo "verify-chart: values.schema.json accepted ${value}" >&2; exit 1
  fi
  grep -qF -- "${says}" <<<"${err}" || { echo "verify-chart: ${value} was refused, but the error does not say ${says}: ${err}" >&2; exit 1; }
done <<<"${bad}"

go build -C hack/tools -o "${ROOT}/_output/tools/kustomize" sigs.k8s.io/kustomize/kustomize/v5
go run ./hack/chartcheck --helm "${HELM}" --kustomize "${ROOT}/_output/tools/kustomize" --kube-version "${KUBE_VERSION}"
