#!/usr/bin/env bash
# Sets the tree's release everywhere it is written, or checks that those
# places agree (make verify):
#   VERSION                          vX.Y.Z
#   charts/kube-fledged/Chart.yaml   version X.Y.Z, appVersion vX.Y.Z
#   deploy/kustomization.yaml        the three images' newTag vX.Y.Z
#   CHANGELOG.md                     a "## [X.Y.Z]" section, or "## [Unreleased]"
#
#   hack/set-version.sh v0.2.0       set them (make set-version VERSION=v0.2.0)
#   hack/set-version.sh --check      check them
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
CHART=charts/kube-fledged/Chart.yaml
KUSTOMIZATION=deploy/kustomization.yaml
semver='^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$'

if [[ "${1:-}" != --check ]]; then
  v="${1:?usage: set-version.sh vX.Y.Z | --check}"
  [[ "${v}" =~ ${semver} ]] || { echo "set-version: ${v} is not vMAJOR.MINOR.PATCH[-PRERELEASE]" >&2; exit 2; }
  echo "${v}" >VERSION
  sed -i -E "s/^version: .*/version: ${v#v}/; s/^appVersion: .*/appVersion: \"${v}\"/" "${CHART}"
  sed -i -E "s/^(  newTag: ).*/\1${v}/" "${KUSTOMIZATION}"
  echo "set-version: ${v} in VERSION, ${CHART} and ${KUSTOMIZATION}; write its CHANGELOG.md section"
fi

v="$(hack/version.sh --release)"
errs=()
[[ "$(sed -n 's/^version: //p' "${CHART}")" == "${v#v}" ]] || errs+=("${CHART}: version is not ${v#v}")
[[ "$(sed -n 's/^appVersion: //p' "${CHART}" | tr -d '"')" == "${v}" ]] || errs+=("${CHART}: appVersion is not ${v}")
tags="$(sed -n 's/^  newTag: //p' "${KUSTOMIZATION}" | sort -u)"
[[ "${tags}" == "${v}" && "$(grep -c '^  newTag: ' "${KUSTOMIZATION}")" == 3 ]] ||
  errs+=("${KUSTOMIZATION}: the three images are not pinned to ${v} (newTag: ${tags//$'\n'/, })")
grep -qE "^## \[(${v#v}|Unreleased)\]" CHANGELOG.md || errs+=("CHANGELOG.md: no section for ${v#v}, nor an Unreleased one")
if ((${#errs[@]})); then
  printf 'set-version: VERSION says %s, but\n' "${v}" >&2
  printf '  %s\n' "${errs[@]}" >&2
  echo "  hack/set-version.sh ${v} writes it everywhere" >&2
  exit 1
fi
echo "set-version: ${v} everywhere"
