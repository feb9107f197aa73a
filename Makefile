# erpsync-operator
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

IMG ?= ghcr.io/erpsync/erpsync-operator:latest
# The kube-apiserver, etcd and kubectl that tests run against are built from
# the Go module proxy by hack/build-k8s-binaries.sh and cached under bin/k8s/.
K8S_BIN = $(shell hack/build-k8s-binaries.sh)
CONTROLLER_GEN = go tool controller-gen
# Packages whose markers generate the CRD, RBAC and deepcopy code.
GEN_PATHS = ./api/...;./controllers/...;./internal/quotastore/...

.PHONY: all
all: build

##@ Development

.PHONY: manifests
manifests: ## Generate the CRD and RBAC manifests from the markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="$(GEN_PATHS)" output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## gofmt the code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet the code.
	go vet ./...

.PHONY: lint
lint: ## Run golangci-lint (pinned in hack/tools/go.mod, config .golangci.yml).
	GOLANGCI_LINT_CACHE="$(CURDIR)/bin/golangci-lint-cache" go tool -modfile=hack/tools/go.mod golangci-lint run ./...

.PHONY: verify
verify: ## Fail when generated files are stale or code is not gofmt'ed, vet-clean or lint-clean.
	hack/verify.sh

.PHONY: k8s-binaries
k8s-binaries: ## Build (once) kube-apiserver, etcd and kubectl for the tests.
	@hack/build-k8s-binaries.sh >/dev/null

.PHONY: test
test: ## Run every test against a real API server (builds it on first use).
	hack/verify.sh
	specs=$$(hack/fetch-specs.sh); \
	KUBEBUILDER_ASSETS="$(K8S_BIN)" ERPSYNC_SPECS_DIR="$$specs" go test -count=1 -timeout 45m ./...

.PHONY: bench
bench: ## Run the benchmarks and print their BENCH lines.
	hack/bench.sh

.PHONY: bench-scale
bench-scale: ## Scale benchmark (not part of test): N ErpSyncs on one manager; KUBEBUILDER_ASSETS or bin/k8s; SCALE_ARGS such as '-n 1000'.
	KUBEBUILDER_ASSETS="$(or $(KUBEBUILDER_ASSETS),$(K8S_BIN))" go run ./test/scale $(SCALE_ARGS)

##@ Build

.PHONY: build
build: ## Build the manager binary.
	CGO_ENABLED=0 go build -trimpath -o bin/manager ./cmd/manager

.PHONY: build-plugin
build-plugin: ## Build kubectl-erpsync (GOOS/GOARCH pick the platform); put it on PATH for `kubectl erpsync`.
	CGO_ENABLED=0 go build -trimpath -o bin/kubectl-erpsync$(if $(filter windows,$(GOOS)),.exe) ./cmd/kubectl-erpsync

.PHONY: run
run: manifests generate ## Run the manager against the cluster in your kubeconfig.
	go run ./cmd/manager

.PHONY: docker-build
docker-build: ## Build the manager image.
	docker build -t $(IMG) .

##@ Deployment

.PHONY: install
install: manifests ## Install the CRD into the cluster in your kubeconfig.
	kubectl apply -k config/crd

.PHONY: deploy
deploy: manifests ## Deploy the operator into the cluster in your kubeconfig.
	cd config/manager && kustomize edit set image controller=$(IMG) 2>/dev/null || true
	kubectl apply -k config/default

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-14s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Demo

.PHONY: demo
demo: ## Run the operator on a local control plane against erpsim (DEMO_ONCE=1: stop once all are Ready).
	go run ./hack/demo $(if $(filter 1,$(DEMO_ONCE)),--once)
