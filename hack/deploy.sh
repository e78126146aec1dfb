#!/usr/bin/env bash
# make deploy / make undeploy: applies (or deletes) deploy/ with kubectl, the
# controller's image set from FLEDGED_IMAGE (default: the image in deploy/),
# the helper and CRI remover images from FLEDGED_HELPER_IMAGE and
# FLEDGED_CRI_IMAGE (default: FLEDGED_IMAGE's repository with -helper and
# -cri, its tag), and, when FLEDGED_PATCH names a file, that strategic-merge
# patch of the Deployment (node selector, tolerations, resources, flags, ...).
#   FLEDGED_IMAGE=registry.example.com/kube-fledged:v1 hack/deploy.sh apply
#   hack/deploy.sh sibling IMAGE SUFFIX   prints IMAGE with SUFFIX added to its repository
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
action="${1:-apply}"
KUBECTL="${KUBECTL:-kubectl}"
image="${FLEDGED_IMAGE:-ghcr.io/kube-fledged/kube-fledged:$("${ROOT}/hack/version.sh" --release)}"

# sibling IMAGE SUFFIX: registry/kube-fledged:v1 -> registry/kube-fledged-helper:v1.
# A digest names one image only: the siblings take the image's tag, else the
# tree's release.
sibling() {
  local img="$1" suffix="$2" digest=""
  if [[ "${img}" == *@* ]]; then
    img="${img%@*}" digest=y
  fi
  if [[ "${img##*/}" == *:* ]]; then
    echo "${img%:*}${suffix}:${img##*:}"
  elif [[ -n "${digest}" ]]; then
    echo "${img}${suffix}:$("${ROOT}/hack/version.sh" --release)"
  else
    echo "${img}${suffix}"
  fi
}
if [[ "${action}" == sibling ]]; then
  sibling "$2" "$3"
  exit 0
fi
# An image named without a tag or digest takes the tree's release, as
# deploy/ pins it, so that the three images agree.
if [[ "${image}" != *@* && "${image##*/}" != *:* ]]; then
  image="${image}:$("${ROOT}/hack/version.sh" --release)"
fi
helper="${FLEDGED_HELPER_IMAGE:-$(sibling "${image}" -helper)}"
cri="${FLEDGED_CRI_IMAGE:-$(sibling "${image}" -cri)}"

# Split the image into name and tag (or digest).
name="${image}" tag="" digest=""
if [[ "${name}" == *@* ]]; then
  digest="${name#*@}"; name="${name%@*}"
fi
if [[ "${name##*/}" == *:* ]]; then
  tag="${name##*:}"; name="${name%:*}"
fi

overlay="${ROOT}/_output/deploy"
mkdir -p "${overlay}"
rel="$(realpath --relative-to="${overlay}" "${ROOT}/deploy")"
{
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources:"
  echo "- ${rel}"
  echo "images:"
  echo "- name: ghcr.io/kube-fledged/kube-fledged"
  echo "  newName: ${name}"
  [[ -n "${tag}" ]] && echo "  newTag: \"${tag}\""
  [[ -n "${digest}" ]] && echo "  digest: ${digest}"
  echo "patches:"
  echo "- path: images-patch.yaml"
  echo "  target: {kind: Deployment, name: kube-fledged}"
  if [[ -n "${FLEDGED_PATCH:-}" ]]; then
    cp "${FLEDGED_PATCH}" "${overlay}/deployment-patch.yaml"
    echo "- path: deployment-patch.yaml"
    echo "  target: {kind: Deployment, name: kube-fledged}"
  fi
} >"${overlay}/kustomization.yaml"
# The images of the pull and delete Jobs.
cat >"${overlay}/images-patch.yaml" <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: kube-fledged}
spec:
  template:
    spec:
      containers:
      - name: fledged
        env:
        - {name: KUBEFLEDGED_HELPER_IMAGE, value: "${helper}"}
        - {name: KUBEFLEDGED_CRI_IMAGE, value: "${cri}"}
YAML

# undeploy deletes what apply installed, saying what first. The CRD stays
# unless UNDEPLOY_CRD=1: deleting it deletes every ImageCache in the cluster.
# So does the namespace while ImageCaches are in it.
undeploy() {
  local rendered keep_ns="" crd=imagecaches.kubefledged.io ns caches
  rendered="$("${KUBECTL}" kustomize "${overlay}")"
  ns="$(awk '/^kind: Namespace$/ {on = 1} on && /^  name: / {print $2; exit}' <<<"${rendered}")"
  if [[ "${UNDEPLOY_CRD:-}" != 1 ]]; then
    caches="$("${KUBECTL}" get imagecaches -A --no-headers 2>/dev/null | wc -l || true)"
    echo "undeploy: keeping the CRD ${crd} and the ${caches} ImageCaches of the cluster (UNDEPLOY_CRD=1 deletes them too)"
    if [[ -n "${ns}" ]] && [[ -n "$("${KUBECTL}" get imagecaches -n "${ns}" -o name 2>/dev/null)" ]]; then
      echo "undeploy: keeping the namespace ${ns}: it holds ImageCaches"
      keep_ns=y
    fi
  else
    echo "undeploy: UNDEPLOY_CRD=1: deleting the CRD ${crd}, and with it every ImageCache of the cluster (the images stay on the nodes)"
  fi
  # The objects to delete: every document of the rendering but those kept.
  rendered="$(awk -v keep_crd="$([[ "${UNDEPLOY_CRD:-}" == 1 ]] || echo y)" -v keep_ns="${keep_ns}" '
    function flush() {
      if (doc != "" && !(keep_crd && doc ~ /\nkind: CustomResourceDefinition\n/) && !(keep_ns && doc ~ /\nkind: Namespace\n/)) {
        printf "---%s\n", doc
      }
      doc = ""
    }
    /^---$/ { flush(); next }
    { doc = doc "\n" $0 }
    END { doc = doc "\n"; flush() }' <<<"${rendered}")"
  echo "undeploy: deleting:"
  "${KUBECTL}" get --ignore-not-found -o name -f - <<<"${rendered}" | sed 's/^/  /'
  "${KUBECTL}" delete --ignore-not-found -f - <<<"${rendered}"
}

case "${action}" in
  apply)
    "${KUBECTL}" apply --server-side --force-conflicts -k "${overlay}"
    ;;
  delete)
    undeploy
    ;;
  render)
    "${KUBECTL}" kustomize "${overlay}"
    ;;
  *)
    echo "usage: deploy.sh apply|delete|render" >&2
    exit 2
    ;;
esac
