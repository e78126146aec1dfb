#!/usr/bin/env bash
# make release: builds a release of this tree into _output/release, with no
# Docker engine:
#   images.txt           the three images pushed to REGISTRY, each an OCI image
#                        index of PLATFORMS, by tag and digest (hack/image-local:
#                        static binaries cross-compiled, one layer on an empty
#                        base; the same commit gives the same digests)
#   kube-fledged.yaml    the install manifest: deploy/ with those images pinned
#                        by digest (kubectl apply --server-side -f kube-fledged.yaml)
#   kube-fledged-X.Y.Z.tgz  the Helm chart, packaged, its version X.Y.Z and
#                        appVersion vX.Y.Z, its images pinned to the same digests
#   RELEASE_NOTES.md     the version's CHANGELOG.md section
#   kubectl-fledged_VERSION_OS_ARCH.tar.gz  the kubectl plugin for each of
#                        PLUGIN_PLATFORMS (the binary and LICENSE; fixed
#                        times and owners, so the same bytes for a commit)
#   fledged.yaml         the plugin's Krew manifest: those archives at
#                        PLUGIN_URL, with their checksums
#   SHA256SUMS           the files' checksums (the chart archive is repacked
#                        with fixed times and owners, so it is the same bytes
#                        for the same commit too)
#
#   make release VERSION=v0.2.0 REGISTRY=ghcr.io/kube-fledged
#   VERSION   default: hack/version.sh (the VERSION file and git)
#   REGISTRY  default: ghcr.io/kube-fledged; the images are REGISTRY/kube-fledged,
#             REGISTRY/kube-fledged-helper, REGISTRY/kube-fledged-cri. Pushing
#             uses your registry credentials (~/.docker/config.json).
#   PLATFORMS default: linux/amd64,linux/arm64
#   PLUGIN_PLATFORMS default: linux/amd64,linux/arm64,darwin/amd64,darwin/arm64,windows/amd64
#   PLUGIN_URL default: https://github.com/kube-fledged/kube-fledged/releases/download/VERSION,
#             where the archives are published (the Krew manifest points there)
#   RELEASE_INSECURE=1      push to a plain-HTTP registry other than localhost
#   RELEASE_ALLOW_DIRTY=1   release a tree with uncommitted changes (its
#                           binaries say so; the digests then follow the changes)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
umask 022 # the chart archive's modes do not depend on the releaser's umask

VERSION="${VERSION:-$(hack/version.sh)}"
REGISTRY="${REGISTRY:-ghcr.io/kube-fledged}"
REGISTRY="${REGISTRY%/}"
PLATFORMS="${PLATFORMS:-linux/amd64,linux/arm64}"
PLUGIN_PLATFORMS="${PLUGIN_PLATFORMS:-linux/amd64,linux/arm64,darwin/amd64,darwin/arm64,windows/amd64}"
OUT="${RELEASE_OUT:-${ROOT}/_output/release}"
log() { echo "release: $*" >&2; }
fail() { log "$*"; exit 1; }

PLUGIN_URL="${PLUGIN_URL:-https://github.com/kube-fledged/kube-fledged/releases/download/${VERSION}}"
PLUGIN_URL="${PLUGIN_URL%/}"
[[ "${VERSION}" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] ||
  fail "VERSION=${VERSION} is not vMAJOR.MINOR.PATCH[-PRERELEASE] (tag the commit, or pass VERSION=v0.2.0)"
chart_version="${VERSION#v}"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
  [[ "${RELEASE_ALLOW_DIRTY:-}" == 1 ]] ||
    fail "the tree has uncommitted changes: commit them (a release is built from a commit), or set RELEASE_ALLOW_DIRTY=1"
  revision="${revision}-dirty"
fi
[[ "${VERSION}" == "$(hack/version.sh --release)" ]] ||
  log "note: VERSION=${VERSION}, the tree says $(hack/version.sh --release) (VERSION file, chart, deploy/): the release carries ${VERSION}"

if [[ "${chart_version}" != *-* ]] && ! grep -qF "## [${chart_version}]" CHANGELOG.md; then
  fail "CHANGELOG.md has no \"## [${chart_version}]\" section: write its changes and upgrade notes first"
fi

rm -rf "${OUT}"
build="${OUT}/.build"
mkdir -p "${build}"
trap 'rm -rf "${build}"' EXIT

# The images.
image="${REGISTRY}/kube-fledged:${VERSION}"
log "building and pushing ${image} and its -helper and -cri siblings for ${PLATFORMS}"
go run ./hack/image-local --image "${image}" --platforms "${PLATFORMS}" --out "${build}/bin" \
  --version "${VERSION}" --revision "${revision}" --insecure="$([[ "${RELEASE_INSECURE:-}" == 1 ]] && echo true || echo false)" \
  --digests "${OUT}/images.txt" >&2
mapfile -t refs <"${OUT}/images.txt"
((${#refs[@]} == 3)) || fail "image-local wrote ${#refs[@]} images, want 3"
digest() { echo "${refs[$1]##*@}"; }

# The manifest: deploy/ with the three images pinned.
GOBIN="${ROOT}/_output/tools"
go build -C hack/tools -o "${GOBIN}/kustomize" sigs.k8s.io/kustomize/kustomize/v5
overlay="${build}/manifest"
mkdir -p "${overlay}"
cp deploy/images-in-env.yaml "${overlay}/"
{
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources:"
  echo "- $(realpath --relative-to="${overlay}" "${ROOT}/deploy")"
  echo "configurations:"
  echo "- images-in-env.yaml"
  echo "images:"
  i=0
  for suffix in "" -helper -cri; do
    echo "- name: ghcr.io/kube-fledged/kube-fledged${suffix}"
    echo "  newName: ${REGISTRY}/kube-fledged${suffix}"
    echo "  newTag: \"${VERSION}\""
    echo "  digest: $(digest ${i})"
    i=$((i + 1))
  done
} >"${overlay}/kustomization.yaml"
"${GOBIN}/kustomize" build "${overlay}" >"${build}/rendered.yaml"
for ref in "${refs[@]}"; do
  grep -qF -- "${ref}" "${build}/rendered.yaml" || fail "kube-fledged.yaml would not name ${ref}"
done
{
  echo "# kube-fledged ${VERSION} (${revision}): kubectl apply --server-side -f kube-fledged.yaml"
  cat "${build}/rendered.yaml"
} >"${OUT}/kube-fledged.yaml"

# The chart, its images pinned the same way.
HELM="$(bash hack/helm.sh)"
cp -r charts/kube-fledged "${build}/chart"
chart="${build}/chart"
sed -i -E "s/^version: .*/version: ${chart_version}/; s/^appVersion: .*/appVersion: \"${VERSION}\"/" "${chart}/Chart.yaml"
sed -i -E "0,/^  repository: .*/s##  repository: ${REGISTRY}/kube-fledged#" "${chart}/values.yaml"
sed -i -E "0,/^  tag: .*/s##  tag: \"${VERSION}\"#" "${chart}/values.yaml"
sed -i -E "0,/^  digest: .*/s##  digest: \"$(digest 0)\"#" "${chart}/values.yaml"
sed -i -E "0,/^  helperDigest: .*/s##  helperDigest: \"$(digest 1)\"#" "${chart}/values.yaml"
sed -i -E "0,/^  criDigest: .*/s##  criDigest: \"$(digest 2)\"#" "${chart}/values.yaml"
source hack/versions.sh
rendered="$("${HELM}" template kube-fledged "${chart}" -n kube-fledged --kube-version "${KUBE_VERSION}")"
for ref in "${refs[@]}"; do
  grep -qF -- "${ref}" <<<"${rendered}" || fail "the chart does not render ${ref}"
done
"${HELM}" lint --strict "${chart}" --kube-version "${KUBE_VERSION}" >/dev/null
"${HELM}" package "${chart}" -d "${build}/packaged" >/dev/null
# helm stamps the archive with the time of packaging: repack it with the
# commit's time, sorted, owned by root, so the same commit gives the same bytes.
tgz="kube-fledged-${chart_version}.tgz"
mtime="@$(git log -1 --format=%ct 2>/dev/null || echo 0)"
mkdir -p "${build}/unpacked"
tar -xzmf "${build}/packaged/${tgz}" -C "${build}/unpacked"
tar --sort=name --mtime="${mtime}" --owner=0 --group=0 --numeric-owner --mode='u+rwX,go=rX,go-w' --format=gnu \
  -C "${build}/unpacked" -cf - kube-fledged | gzip -n -9 >"${OUT}/${tgz}"

# The release notes: the version's CHANGELOG section.
awk -v v="${chart_version}" '
  /^## \[/ { on = index($0, "## [" v "]") == 1 }
  on' CHANGELOG.md >"${OUT}/RELEASE_NOTES.md"
if [[ ! -s "${OUT}/RELEASE_NOTES.md" ]]; then
  # A release says what changed and how to upgrade; a pre-release may not yet.
  [[ "${chart_version}" == *-* ]] ||
    fail "CHANGELOG.md has no \"## [${chart_version}]\" section: write its changes and upgrade notes first"
  log "note: CHANGELOG.md has no section for the pre-release ${chart_version}: RELEASE_NOTES.md lists the images alone"
  echo "## [${chart_version}]" >"${OUT}/RELEASE_NOTES.md"
fi
{
  echo
  echo "### Images"
  for ref in "${refs[@]}"; do echo "- \`${ref}\` (${PLATFORMS//,/, })"; done
} >>"${OUT}/RELEASE_NOTES.md"

# The kubectl plugin, an archive per platform, and its Krew manifest.
plugins=()
krew_platforms=""
IFS=, read -ra plugin_platforms <<<"${PLUGIN_PLATFORMS}"
for platform in "${plugin_platforms[@]}"; do
  os="${platform%/*}" arch="${platform#*/}"
  exe="kubectl-fledged"
  [[ "${os}" == windows ]] && exe="kubectl-fledged.exe"
  dir="${build}/plugin-${os}-${arch}"
  mkdir -p "${dir}"
  log "building kubectl-fledged for ${os}/${arch}"
  CGO_ENABLED=0 GOOS="${os}" GOARCH="${arch}" go build -trimpath -buildvcs=false \
    -ldflags "-s -w -X kubefledged.io/kube-fledged/pkg/version.Version=${VERSION} -X kubefledged.io/kube-fledged/pkg/version.Revision=${revision}" \
    -o "${dir}/${exe}" ./cmd/kubectl-fledged
  cp LICENSE "${dir}/"
  archive="kubectl-fledged_${VERSION}_${os}_${arch}.tar.gz"
  tar --sort=name --mtime="${mtime}" --owner=0 --group=0 --numeric-owner --mode='u+rwX,go=rX,go-w' --format=gnu \
    -C "${dir}" -cf - "${exe}" LICENSE | gzip -n -9 >"${OUT}/${archive}"
  plugins+=("${archive}")
  krew_platforms+="
  - selector:
      matchLabels:
        os: ${os}
        arch: ${arch}
    uri: ${PLUGIN_URL}/${archive}
    sha256: $(sha256sum "${OUT}/${archive}" | cut -d' ' -f1)
    files:
    - from: ${exe}
      to: .
    - from: LICENSE
      to: .
    bin: ${exe}"
done
cat >"${OUT}/fledged.yaml" <<KREW
apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: fledged
spec:
  version: ${VERSION}
  homepage: https://github.com/kube-fledged/kube-fledged
  shortDescription: Which nodes are warm for which cached images, and why not
  description: |
    Reports what kube-fledged's ImageCaches hold, cache by cache and node by
    node (status, nodes, node), asks for a refresh or a purge and follows it,
    and waits for a cache to succeed, for scripts and pipelines (wait).
  platforms:${krew_platforms}
KREW

{
  echo
  echo "### kubectl plugin"
  echo "- \`kubectl krew install --manifest=fledged.yaml\`, or an archive's \`kubectl-fledged\` on PATH:"
  for archive in "${plugins[@]}"; do echo "  - \`${archive}\`"; done
} >>"${OUT}/RELEASE_NOTES.md"

(cd "${OUT}" && sha256sum images.txt kube-fledged.yaml "${tgz}" RELEASE_NOTES.md "${plugins[@]}" fledged.yaml >SHA256SUMS)
log "kube-fledged ${VERSION} in ${OUT}:"
(cd "${OUT}" && cat SHA256SUMS) >&2
printf '%s\n' "${refs[@]}"
