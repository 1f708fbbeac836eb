# kprof — run `make help` for targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c

KPROF_CACHE ?= $(HOME)/.cache/kprof
export KPROF_CACHE
CONTROLLER_GEN ?= $(KPROF_CACHE)/bin/controller-gen
K8S_VERSION ?= 1.36.3
KUBEBUILDER_ASSETS ?= $(KPROF_CACHE)/k8s/$(K8S_VERSION)
export KUBEBUILDER_ASSETS
GO_TEST_FLAGS ?= -race -count=1 -timeout 20m

BIN_DIR := bin
KPROF := $(BIN_DIR)/kprof
SAMPLE_APP := $(BIN_DIR)/sample-app

.PHONY: help
help: ## Show targets.
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-18s %s\n", $$1, $$2}'

.PHONY: tools
tools: ## Install test tools (etcd, kube-apiserver, controller-gen) into $(KPROF_CACHE).
	hack/install-tools.sh

.PHONY: build
build: ## Build bin/kprof and bin/sample-app.
	CGO_ENABLED=0 go build -o $(KPROF) ./cmd/kprof
	CGO_ENABLED=0 go build -o $(SAMPLE_APP) ./examples/sample-app

.PHONY: manifests
manifests: tools ## Generate CRD and RBAC manifests from markers.
	$(CONTROLLER_GEN) rbac:roleName=kprof-operator crd paths="./..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: tools ## Generate deepcopy code from markers.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths="./api/..."

.PHONY: verify-generated
verify-generated: manifests generate ## Fail when generated files differ from the committed ones.
	@if [ -n "$$(git status --porcelain -- config api)" ]; then \
		echo "generated files are stale; run 'make manifests generate' and commit:"; git status --porcelain -- config api; git diff --stat -- config api; exit 1; fi

.PHONY: fmt
fmt: ## gofmt the tree.
	gofmt -w .

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: lint
lint: vet ## gofmt check + go vet.
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: test
test: tools manifests generate lint ## Run every test (installs tools on a fresh machine).
	go test $(GO_TEST_FLAGS) ./...

.PHONY: demo
demo: build ## Run kprof's main job on the embedded default: sample-app + `kprof run --once`.
	hack/demo.sh

.PHONY: bench-scale
bench-scale: ## Scale benchmark: the operator with 2 000 kwok pods on 20 nodes (RSS, CPU, reconcile latency).
	go test -tags scale -run TestScale -count=1 -v -timeout 30m ./test/scale/
