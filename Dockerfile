# kube-fledged's images, static binaries on a minimal non-root base:
#   helper      the helper the pull Jobs' init container installs (fledged-helper alone);
#   cri         the CRI remover the delete Jobs run (fledged-cri alone);
#   controller  the controller (fledged, with the helper and the CRI remover), the default.
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 --target helper .
# Without Docker: make image-local builds the same three.
ARG VERSION=dev REVISION=unknown
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS TARGETARCH VERSION REVISION
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY pkg/ pkg/
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -o /out/ \
      -ldflags "-s -w -X kubefledged.io/kube-fledged/pkg/version.Version=$VERSION -X kubefledged.io/kube-fledged/pkg/version.Revision=$REVISION" \
      ./cmd/fledged ./cmd/fledged-helper ./cmd/fledged-cri

# What the three share: the base, the user, the licence, the version.
FROM gcr.io/distroless/static:nonroot AS base
ARG VERSION REVISION
LABEL org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.revision="$REVISION"
USER 65532:65532

FROM base AS helper
LABEL org.opencontainers.image.title="kube-fledged-helper" \
      org.opencontainers.image.description="kube-fledged's pull helper, which the pull Jobs install in their pods"
COPY --from=build /out/fledged-helper /
ENTRYPOINT ["/fledged-helper"]

FROM base AS cri
LABEL org.opencontainers.image.title="kube-fledged-cri" \
      org.opencontainers.image.description="kube-fledged's CRI image remover, which the delete Jobs run"
COPY --from=build /out/fledged-cri /
ENTRYPOINT ["/fledged-cri"]

FROM base AS controller
LABEL org.opencontainers.image.title="kube-fledged" \
      org.opencontainers.image.description="Caches container images on Kubernetes nodes"
COPY --from=build /out/fledged /out/fledged-helper /out/fledged-cri /
# Upstream kube-fledged's command, so that a Deployment kept from its manifests
# runs this image with its command and arguments.
COPY --from=build /out/fledged /opt/bin/kubefledged-controller
ENTRYPOINT ["/fledged"]
