# Helm chart checks and the kind end-to-end cluster.
CHART := charts/rag-finetune-operator
CHART_VALUES := $(wildcard tests/chart/values/*.yaml)

.PHONY: chart-lint
chart-lint: _need-helm ## helm lint --strict the chart, with the defaults and every tests/chart/values file
	$(HELM) lint --strict $(CHART)
	@for f in $(CHART_VALUES); do $(HELM) lint --strict --quiet $(CHART) --values $$f >/dev/null \
	  || { echo "chart-lint: failed with $$f"; $(HELM) lint --strict $(CHART) --values $$f; exit 1; }; done
	@echo "chart-lint: ok with the defaults and $(words $(CHART_VALUES)) values files"

.PHONY: chart-template
chart-template: _need-helm ## helm template the chart (offline) into out/chart/, once per values file
	@mkdir -p out/chart
	$(HELM) template rag-finetune-operator $(CHART) --namespace rag-system --include-crds > out/chart/default.yaml
	@for f in $(CHART_VALUES); do n=$$(basename $$f .yaml); \
	  $(HELM) template rag-finetune-operator $(CHART) --namespace rag-system --include-crds --values $$f \
	    > out/chart/$$n.yaml || exit 1; done
	@echo "chart-template: rendered out/chart/default.yaml and $(words $(CHART_VALUES)) variants"

.PHONY: chart-test
chart-test: install ## the chart, RBAC, CRD and Dockerfile tests (tests/chart)
	$(PY) -m pytest tests/chart $(PYTEST_ARGS)

KIND_ENV = HELM="$(HELM)" KUBECTL="$(KUBECTL)" KIND="$(KIND)"

.PHONY: kind-up
kind-up: _need-helm ## kind cluster with KubeRay 1.7.0, our chart and the example data (needs Docker and kind)
	$(KIND_ENV) hack/kind-e2e.sh up

.PHONY: kind-test
kind-test: install _need-helm ## end-to-end tests on kind (brings the cluster up; skips without Docker/kind)
	RAG_E2E=1 $(KIND_ENV) $(PY) -m pytest -m e2e tests/e2e $(PYTEST_ARGS)

.PHONY: kind-down
kind-down: ## delete the kind cluster
	$(KIND_ENV) hack/kind-e2e.sh down
