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
# Fuzz targets run FUZZTIME_SHORT each in `make test`, FUZZTIME in `make fuzz`.
FUZZTIME_SHORT ?= 5s
FUZZTIME ?= 5m

BIN_DIR := bin
KPROF := $(BIN_DIR)/kprof
SAMPLE_APP := $(BIN_DIR)/sample-app

# Images: one kprof image for every subcommand (operator, agent, run, capture), and the sample app.
VERSION ?= latest
IMG ?= ghcr.io/kprof/kprof:$(VERSION)
SAMPLE_IMG ?= ghcr.io/kprof/sample-app:$(VERSION)
CONTAINER_TOOL ?= docker

KUBECTL ?= kubectl
HELM ?= helm
# One pin for kustomize: the one hack/install-tools.sh installs.
KUSTOMIZE_VERSION ?= $(shell sed -n 's|.*kustomize/kustomize/v5@$${KUSTOMIZE_VERSION:-\(v[0-9.]*\)}.*|\1|p' hack/install-tools.sh)
KUSTOMIZE ?= $(KPROF_CACHE)/bin/kustomize-$(KUSTOMIZE_VERSION)
# kustomize directory `make deploy` applies: default, portforward or agent-old-kernel.
DEPLOY_OVERLAY ?= default

# controller-gen runs once per role; each role's markers live in that role's packages.
OPERATOR_RBAC_PATHS := ./internal/controller/...;./internal/operator/...;./internal/capture/...;./internal/threshold/...;./internal/storage/...
AGENT_RBAC_PATHS := ./internal/agent/...
PORTFORWARD_RBAC_PATHS := ./internal/portforward/...

.PHONY: help
help: ## Show targets.
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-18s %s\n", $$1, $$2}'

.PHONY: tools
tools: ## Install test tools (etcd, kube-apiserver, controller-gen, kustomize, ...) into $(KPROF_CACHE).
	hack/install-tools.sh

.PHONY: deps
deps: tools ## Same as tools: everything build, generate and test need on a fresh machine.

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Install kustomize (the version hack/install-tools.sh pins) into $(KPROF_CACHE).
$(KUSTOMIZE):
	hack/install-go-tool.sh kustomize sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION) >/dev/null

# Stamped into the binary (kprof version): the tag or commit the tree is at, and the commit's time.
BUILD_VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
BUILD_COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
VERSION_PKG := github.com/kprof/kprof/internal/version
LDFLAGS := -X $(VERSION_PKG).Version=$(BUILD_VERSION) -X $(VERSION_PKG).Commit=$(BUILD_COMMIT) -X $(VERSION_PKG).Date=$(BUILD_DATE)

.PHONY: build
build: ## Build bin/kprof (version, commit and date stamped; see bin/kprof version) and bin/sample-app.
	CGO_ENABLED=0 go build -ldflags "$(LDFLAGS)" -o $(KPROF) ./cmd/kprof
	CGO_ENABLED=0 go build -o $(SAMPLE_APP) ./examples/sample-app

.PHONY: manifests
manifests: tools ## Generate the CRD and the RBAC of each role (operator, agent, portforward) from markers, and the chart's copies of both.
	$(CONTROLLER_GEN) crd paths="./api/..." output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=kprof-operator paths="$(OPERATOR_RBAC_PATHS)" output:rbac:artifacts:config=config/rbac/operator
	$(CONTROLLER_GEN) rbac:roleName=kprof-agent paths="$(AGENT_RBAC_PATHS)" output:rbac:artifacts:config=config/rbac/agent
	$(CONTROLLER_GEN) rbac:roleName=kprof-operator-portforward paths="$(PORTFORWARD_RBAC_PATHS)" output:rbac:artifacts:config=config/rbac/portforward
	hack/gen-chart.sh

.PHONY: generate
generate: tools ## Generate deepcopy code from markers.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths="./api/..."

.PHONY: verify-generated
verify-generated: manifests generate ## Fail when generated files differ from the committed ones.
	@if [ -n "$$(git status --porcelain -- config api charts)" ]; then \
		echo "generated files are stale; run 'make manifests generate' and commit:"; git status --porcelain -- config api charts; git diff --stat -- config api charts; exit 1; fi

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
test: tools manifests generate lint ## Run every test (installs tools on a fresh machine), then every fuzz target briefly.
	go test $(GO_TEST_FLAGS) ./...
	FUZZTIME=$(FUZZTIME_SHORT) hack/fuzz.sh

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 5m) and print the exec counts.
	FUZZTIME=$(FUZZTIME) hack/fuzz.sh

.PHONY: demo
demo: build ## Run kprof's main job on the embedded default: sample-app + `kprof run --once`.
	hack/demo.sh

# The size of the scale benchmark: pods (100 per kwok node), ProfilingConfigs sharing them, a
# soak after the schedule window (e.g. 30m; 0 for none), and a directory for the operator's own
# CPU and heap profiles (--enable-pprof; empty for none).
SCALE_PODS ?= 2000
SCALE_CONFIGS ?= 1
SCALE_SOAK ?= 0
SCALE_PPROF ?=

.PHONY: bench-scale
bench-scale: ## Scale benchmark: the operator with SCALE_PODS kwok pods (RSS, CPU, reconcile latency, API writes) beside a bare peer manager.
	KPROF_SCALE_PODS=$(SCALE_PODS) KPROF_SCALE_CONFIGS=$(SCALE_CONFIGS) KPROF_SCALE_SOAK=$(SCALE_SOAK) KPROF_SCALE_PPROF=$(SCALE_PPROF) \
		go test -tags scale -run TestScale -count=1 -v -timeout 3h ./test/scale/

##@ Images and deployment

.PHONY: docker-build
docker-build: ## Build the kprof image ($(IMG)) and the sample-app image ($(SAMPLE_IMG)) with $(CONTAINER_TOOL).
	$(CONTAINER_TOOL) build -t $(IMG) -f Dockerfile \
		--build-arg VERSION=$(BUILD_VERSION) --build-arg COMMIT=$(BUILD_COMMIT) --build-arg DATE=$(BUILD_DATE) .
	$(CONTAINER_TOOL) build -t $(SAMPLE_IMG) -f examples/sample-app/Dockerfile .

.PHONY: docker-push
docker-push: ## Push $(IMG) and $(SAMPLE_IMG).
	$(CONTAINER_TOOL) push $(IMG)
	$(CONTAINER_TOOL) push $(SAMPLE_IMG)

.PHONY: install
install: ## Install the CRD into the cluster of the current kubeconfig context.
	$(KUBECTL) apply --server-side -f config/crd/bases

.PHONY: uninstall
uninstall: ## Remove the CRD (and with it every ProfilingConfig) from the cluster.
	$(KUBECTL) delete --ignore-not-found -f config/crd/bases

# deploy sets the image in a copy of config/, so the tree (and verify-generated) stays clean.
.PHONY: deploy
deploy: kustomize ## Deploy config/$(DEPLOY_OVERLAY) (operator, agent, CRD, RBAC) with image $(IMG).
	@tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; cp -R config "$$tmp/"; \
	(cd "$$tmp/config/default" && $(KUSTOMIZE) edit set image ghcr.io/kprof/kprof=$(IMG)); \
	$(KUSTOMIZE) build "$$tmp/config/$(DEPLOY_OVERLAY)" | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: kustomize ## Delete what deploy created (namespace kprof-system included).
	$(KUSTOMIZE) build config/$(DEPLOY_OVERLAY) | $(KUBECTL) delete --ignore-not-found -f -

.PHONY: helm-install
helm-install: ## Install or upgrade the Helm chart charts/kprof into kprof-system.
	$(HELM) upgrade --install kprof charts/kprof -n kprof-system --create-namespace

.PHONY: test-deploy
test-deploy: ## Render config/ with kustomize, apply it to envtest and prove the RBAC is least privilege.
	go test $(GO_TEST_FLAGS) ./test/deploy/
