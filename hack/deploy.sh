#!/usr/bin/env bash
# make deploy / make undeploy: applies (or deletes) deploy/ with kubectl, the
# controller's image set from FLEDGED_IMAGE (default: the image in deploy/),
# and, when FLEDGED_PATCH names a file, that strategic-merge patch of the
# Deployment (node selector, tolerations, resources, flags, ...).
#   FLEDGED_IMAGE=registry.example.com/kube-fledged:v1 hack/deploy.sh apply
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
action="${1:-apply}"
KUBECTL="${KUBECTL:-kubectl}"
image="${FLEDGED_IMAGE:-ghcr.io/kube-fledged/kube-fledged:latest}"

# Split the image into name and tag (or digest).
name="${image}" tag="" digest=""
if [[ "${image}" == *@* ]]; then
  name="${image%@*}"; digest="${image#*@}"
elif [[ "${image##*/}" == *:* ]]; then
  name="${image%:*}"; tag="${image##*:}"
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
  if [[ -n "${FLEDGED_PATCH:-}" ]]; then
    cp "${FLEDGED_PATCH}" "${overlay}/deployment-patch.yaml"
    echo "patches:"
    echo "- path: deployment-patch.yaml"
    echo "  target: {kind: Deployment, name: kube-fledged}"
  fi
  # The helper image follows the controller's image.
  sed -n '/^replacements:/,$p' "${ROOT}/deploy/kustomization.yaml"
} >"${overlay}/kustomization.yaml"

case "${action}" in
  apply)
    "${KUBECTL}" apply --server-side --force-conflicts -k "${overlay}"
    ;;
  delete)
    "${KUBECTL}" delete --ignore-not-found -k "${overlay}"
    ;;
  render)
    "${KUBECTL}" kustomize "${overlay}"
    ;;
  *)
    echo "usage: deploy.sh apply|delete|render" >&2
    exit 2
    ;;
esac
