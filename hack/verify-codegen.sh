#!/usr/bin/env bash
# Fails when a generated file (deepcopy, client, CRD) is not what the API types
# produce now. It regenerates in a scratch copy of the tree and compares, so it
# neither needs a clean git state nor changes the work tree.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRATCH="$(mktemp -d)"
trap 'rm -rf "${SCRATCH}"' EXIT

tar -C "${ROOT}" --exclude=./.git --exclude=./_output -cf - . | tar -C "${SCRATCH}" -xf -
"${SCRATCH}/hack/update-codegen.sh" >/dev/null

status=0
for path in pkg/client deploy/crd charts/kube-fledged/crds charts/kube-fledged/files deploy/argocd; do
  if ! diff -ruN "${ROOT}/${path}" "${SCRATCH}/${path}"; then status=1; fi
done
while IFS= read -r f; do
  rel="${f#"${SCRATCH}/"}"
  if ! diff -u "${ROOT}/${rel}" "${f}"; then status=1; fi
done < <(find "${SCRATCH}/pkg/apis" -name 'zz_generated.*.go')
while IFS= read -r f; do
  rel="${f#"${ROOT}/"}"
  [[ -f "${SCRATCH}/${rel}" ]] || { echo "stale generated file: ${rel}"; status=1; }
done < <(find "${ROOT}/pkg/apis" -name 'zz_generated.*.go')

if [[ ${status} != 0 ]]; then
  echo "verify-codegen: generated files are out of date; run 'make generate'" >&2
  exit 1
fi
echo "verify-codegen: generated files are up to date"
