# Pinned helm and kubectl, fetched once into the tool cache (see hack/install-helm-kubectl.sh).
# On a machine where helm and kubectl are already on PATH, the chart and e2e targets use those.

HELM_VERSION := 4.1.4
KUBECTL_VERSION := 1.33.9
HELM_CACHED := $(CACHE_DIR)/bin/helm-$(HELM_VERSION)/helm
KUBECTL_CACHED := $(CACHE_DIR)/bin/kubectl-$(KUBECTL_VERSION)/kubectl
# PATH first, the cache second (filled by `make tools`).
HELM ?= $(or $(shell command -v helm 2>/dev/null),$(HELM_CACHED))
KUBECTL ?= $(or $(shell command -v kubectl 2>/dev/null),$(KUBECTL_CACHED))

.PHONY: tools
tools: ## fetch pinned helm and kubectl into $(CACHE_DIR)/bin (skipped when already there)
	@hack/install-helm-kubectl.sh "$(CACHE_DIR)"

# Ensure a usable helm: the one on PATH, else the cached one (installed on demand).
.PHONY: _need-helm
_need-helm:
	@if [ ! -x "$(HELM)" ]; then hack/install-helm-kubectl.sh "$(CACHE_DIR)"; fi

KIND_VERSION := 0.33.0
KIND_CACHED := $(CACHE_DIR)/bin/kind-$(KIND_VERSION)/kind
KIND ?= $(or $(shell command -v kind 2>/dev/null),$(KIND_CACHED))

.PHONY: tools-kind
tools-kind: ## build pinned kind $(KIND_VERSION) into $(CACHE_DIR)/bin with Go (about a minute; kind itself needs Docker)
	@if [ -x "$(KIND_CACHED)" ]; then echo "tools: kind $(KIND_VERSION) already in $(KIND_CACHED)"; \
	elif ! command -v go >/dev/null 2>&1; then echo "tools: kind is not on PATH and Go is missing to build it: install kind $(KIND_VERSION)"; exit 1; \
	else start=$$(date +%s); echo "tools: go install sigs.k8s.io/kind@v$(KIND_VERSION)"; \
	  GOBIN="$(dir $(KIND_CACHED))" go install sigs.k8s.io/kind@v$(KIND_VERSION) && \
	  echo "tools: installed kind -> $(KIND_CACHED) in $$(( $$(date +%s) - start )) s"; fi
