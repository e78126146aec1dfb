# kube-fledged: build, generate, verify and test.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

OUTPUT      ?= _output
BIN         := $(OUTPUT)/bin
GO_TEST_FLAGS ?=
# The version every binary, image, chart and manifest carries (--version,
# kubefledged_build_info, the image labels): hack/version.sh derives it from
# the VERSION file and git; and the commit.
VERSION  ?= $(shell hack/version.sh)
RELEASE  := $(shell hack/version.sh --release)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X kubefledged.io/kube-fledged/pkg/version.Version=$(VERSION) -X kubefledged.io/kube-fledged/pkg/version.Revision=$(REVISION)

.PHONY: build
build: ## Build the binaries into _output/bin.
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

.PHONY: generate
generate: ## Regenerate deepcopy, the client (clientset, listers, informers, apply configurations) and the CRD.
	hack/update-codegen.sh

.PHONY: verify
verify: ## gofmt, go vet, the generated code, CRD and reference pages up to date, the Helm chart linted and in step with deploy/, one version everywhere.
	@out="$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go'))"; \
	  if [[ -n "$$out" ]]; then echo "gofmt: these files need formatting:"; echo "$$out"; exit 1; fi
	go vet ./...
	go vet -tags e2e ./test/e2e/
	hack/verify-codegen.sh
	hack/verify-chart.sh
	hack/set-version.sh --check
	go run ./hack/docgen --check

.PHONY: docs
docs: ## Regenerate the reference pages of docs/reference (flags, API, Helm values, metrics, events) from the code.
	go run ./hack/docgen

.PHONY: testbin
testbin: ## Build the real control-plane binaries (etcd, kube-apiserver, ..., kwok) into the cache.
	hack/testbin.sh

.PHONY: test
test: ## Unit, integration (real kube-apiserver and etcd), registry and containerd tests; installs what they need first.
	hack/test.sh $(GO_TEST_FLAGS)

.PHONY: e2e
e2e: ## End-to-end suite: the fledged binary against a local cluster (real control plane, kwok nodes).
	hack/e2e.sh -v

.PHONY: bench
bench: ## Benchmark: nodes x images on a fresh local cluster; results in _output/bench (BENCH_FLAGS=-scenarios=100x10).
	hack/bench.sh $(BENCH_FLAGS)

POD_START_RUNS ?= 3
POD_START_MIB  ?= 2048
POD_START_LINK ?= 100mbit
PLUGIN_NODES ?= 5000
.PHONY: bench-plugin
bench-plugin: ## kubectl fledged on a cache of 5,000 nodes x 100 images (real API server): time to first line, total time, peak memory; _output/bench/plugin.json (PLUGIN_NODES).
	KUBE_FLEDGED_TESTBIN="$$(bash hack/testbin.sh)" KUBE_FLEDGED_PLUGIN_NODES=$(PLUGIN_NODES) \
	  go test -count=1 -timeout 30m -run '^TestPluginScale$$' -v ./test/integration/
SCALE_NODES ?= 65000
SCALE_IMAGES ?= 10
.PHONY: bench-scale
bench-scale: ## One cache of 10 images over 65,000 nodes (real API server and etcd, the controller in the test's process, the pulls played by the test): time to Succeeded, slices, bytes written per pull, peak memory, kubectl fledged nodes; _output/bench/scale.json (SCALE_NODES, SCALE_IMAGES).
	KUBE_FLEDGED_TESTBIN="$$(bash hack/testbin.sh)" KUBE_FLEDGED_SCALE_NODES=$(SCALE_NODES) KUBE_FLEDGED_SCALE_IMAGES=$(SCALE_IMAGES) \
	  go test -count=1 -timeout 120m -run '^TestLedgerScale$$' -v ./test/integration/
.PHONY: bench-podstart
bench-podstart: ## Pod start on the real node (a 2 GiB image across a 100 Mbit/s link with 20 ms each way, 3 runs): cold, cached, on a joining node with the startup taint; then 50 replicas on kwok; _output/e2e/pod-start.json, deployment-start.json.
	KUBE_FLEDGED_POD_START_RUNS=$(POD_START_RUNS) KUBE_FLEDGED_POD_START_MIB=$(POD_START_MIB) \
	  KUBE_FLEDGED_POD_START_LINK=$(POD_START_LINK) hack/e2e.sh -run '^TestRealNodePodStart' -timeout 120m -v

.PHONY: cluster-up
cluster-up: ## Start the local cluster (NODES=5 kwok nodes by default).
	hack/local-up.sh

.PHONY: cluster-down
cluster-down: ## Stop the local cluster, by PID.
	hack/local-down.sh

.PHONY: demo
demo: ## The main job on a fresh machine: local cluster, controller, sample ImageCache, watched to Succeeded.
	hack/demo.sh

FLEDGED_IMAGE ?= ghcr.io/kube-fledged/kube-fledged:$(RELEASE)
# The helper and CRI remover images: the controller's repository with -helper
# and -cri, the same tag (make deploy and hack/deploy.sh derive them alike).
FLEDGED_HELPER_IMAGE ?= $(shell hack/deploy.sh sibling '$(FLEDGED_IMAGE)' -helper)
FLEDGED_CRI_IMAGE    ?= $(shell hack/deploy.sh sibling '$(FLEDGED_IMAGE)' -cri)
IMAGE_LOCAL   ?= 127.0.0.1:5000/kube-fledged:dev
PLATFORMS     ?= linux/amd64,linux/arm64
BUILDX        = docker buildx build --platform $(PLATFORMS) --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION)

.PHONY: deploy
deploy: ## Apply deploy/ with kubectl, the controller image from FLEDGED_IMAGE.
	hack/deploy.sh apply

.PHONY: undeploy
undeploy: ## Remove what make deploy applied, saying what; the CRD and every ImageCache stay unless UNDEPLOY_CRD=1.
	hack/deploy.sh delete

.PHONY: image-local
image-local: ## Build the controller, helper and CRI remover images for PLATFORMS without Docker; push them to IMAGE_LOCAL and its -helper and -cri siblings (plain HTTP allowed).
	go run ./hack/image-local --image $(IMAGE_LOCAL) --platforms $(PLATFORMS) --out $(OUTPUT)/bin --version $(VERSION) --revision $(REVISION)

.PHONY: image
image: ## Build the three images with docker buildx (needs a Docker engine).
	$(BUILDX) --target controller -t $(FLEDGED_IMAGE) .
	$(BUILDX) --target helper -t $(FLEDGED_HELPER_IMAGE) .
	$(BUILDX) --target cri -t $(FLEDGED_CRI_IMAGE) .

.PHONY: push
push: ## Build and push the three multi-arch images with docker buildx.
	$(BUILDX) --push --target controller -t $(FLEDGED_IMAGE) .
	$(BUILDX) --push --target helper -t $(FLEDGED_HELPER_IMAGE) .
	$(BUILDX) --push --target cri -t $(FLEDGED_CRI_IMAGE) .

REGISTRY ?= ghcr.io/kube-fledged
.PHONY: release
release: ## A release into _output/release, no Docker needed: the three images for PLATFORMS pushed to REGISTRY, the packaged chart and kube-fledged.yaml pinning their digests, the release notes (VERSION=v0.2.0 REGISTRY=...).
	@VERSION=$(VERSION) REGISTRY=$(REGISTRY) PLATFORMS=$(PLATFORMS) hack/release.sh

.PHONY: set-version
set-version: ## Write VERSION=vX.Y.Z into VERSION, the chart and deploy/ (then add its CHANGELOG.md section).
	@[[ "$(origin VERSION)" == "command line" ]] || { echo "make set-version needs VERSION=vX.Y.Z" >&2; exit 2; }
	hack/set-version.sh $(VERSION)

.PHONY: help
help: ## Show the targets.
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-10s %s\n", $$1, $$2}'
