#!/usr/bin/env bash
# Regenerates everything derived from the API types in pkg/apis:
#   - deepcopy and the typed clientset (with watch and apply configurations),
#     listers and informers under pkg/client, by k8s.io/code-generator;
#   - the CRD under deploy/crd, by controller-gen (sigs.k8s.io/controller-tools).
# Generated files are never edited by hand: change the types and run this.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
MODULE="$(go list -m)"
BOILERPLATE="${ROOT}/hack/boilerplate.go.txt"

# The generators are built into the project's own tools folder.
export GOBIN="${ROOT}/_output/tools"
mkdir -p "${GOBIN}"

go mod download k8s.io/code-generator
CODEGEN_PKG="$(go list -m -f '{{.Dir}}' k8s.io/code-generator)"
# shellcheck source=/dev/null
source "${CODEGEN_PKG}/kube_codegen.sh"

kube::codegen::gen_helpers \
  --boilerplate "${BOILERPLATE}" \
  "${ROOT}/pkg/apis"

kube::codegen::gen_client \
  --with-watch \
  --with-applyconfig \
  --output-dir "${ROOT}/pkg/client" \
  --output-pkg "${MODULE}/pkg/client" \
  --boilerplate "${BOILERPLATE}" \
  "${ROOT}/pkg/apis"

# controller-gen, pinned by hack/tools/go.mod.
go build -C "${ROOT}/hack/tools" -o "${GOBIN}/controller-gen" sigs.k8s.io/controller-tools/cmd/controller-gen
rm -rf "${ROOT}/deploy/crd"
"${GOBIN}/controller-gen" crd:crdVersions=v1 paths=./pkg/apis/... output:crd:dir=./deploy/crd
# The Helm chart installs the same CRD, from its crds/ folder.
rm -rf "${ROOT}/charts/kube-fledged/crds"
cp -r "${ROOT}/deploy/crd" "${ROOT}/charts/kube-fledged/crds"
echo "update-codegen: done"
