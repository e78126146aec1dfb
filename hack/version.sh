#!/usr/bin/env bash
# The version of this tree, one place for every binary, image, chart and
# manifest (make build, make image-local, make release):
#   - at a commit tagged vX.Y.Z: that tag;
#   - anywhere else: the VERSION file's release, with -dev.gSHA after it (a
#     pre-release of it: VERSION names the next release once one is tagged,
#     hack/set-version.sh writes it);
#   - outside git: the VERSION file's, with -dev.
# "-dirty" follows when the tree has uncommitted changes.
#
#   hack/version.sh            print the version
#   hack/version.sh --release  print the VERSION file's release (vX.Y.Z)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
release="$(tr -d '[:space:]' <"${ROOT}/VERSION")"
if [[ ! "${release}" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  echo "version: ${ROOT}/VERSION holds ${release:-nothing}, not vMAJOR.MINOR.PATCH" >&2
  exit 1
fi
if [[ "${1:-}" == --release ]]; then
  echo "${release}"
  exit 0
fi
cd "${ROOT}"
if ! git rev-parse --git-dir >/dev/null 2>&1; then
  echo "${release}-dev"
  exit 0
fi
if tag="$(git describe --tags --exact-match --match 'v[0-9]*' --dirty 2>/dev/null)"; then
  echo "${tag}"
  exit 0
fi
dirty=""
[[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]] || dirty="-dirty"
echo "${release}-dev.g$(git rev-parse --short=12 HEAD)${dirty}"
