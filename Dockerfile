# kube-fledged's image: the controller (fledged), the helper the pull Jobs run
# (fledged-helper) and the CRI remover the delete Jobs run (fledged-cri),
# static binaries on a minimal non-root base.
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 .
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY pkg/ pkg/
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w" -o /out/ ./cmd/fledged ./cmd/fledged-helper ./cmd/fledged-cri

FROM gcr.io/distroless/static:nonroot
LABEL org.opencontainers.image.title="kube-fledged" \
      org.opencontainers.image.description="Caches container images on Kubernetes nodes" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/fledged /out/fledged-helper /out/fledged-cri /
USER 65532:65532
ENTRYPOINT ["/fledged"]
