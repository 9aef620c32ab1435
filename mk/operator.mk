# The operator (operator/rag_operator): CRD generation, KubeRay CRDs for the schema tests, tests.

KUBERAY_VERSION ?= v1.7.0
# The RayJob/RayCluster CRDs the render tests validate against (tests read $KUBERAY_CRDS_DIR).
KUBERAY_CRDS_DIR ?= $(abspath ../shared/kuberay/$(KUBERAY_VERSION)/crds)
KUBERAY_CRDS_URL ?= https://raw.githubusercontent.com/ray-project/kuberay/$(KUBERAY_VERSION)/ray-operator/config/crd/bases
CRD_DIR := charts/rag-finetune-operator/crds

.PHONY: crds
crds: install ## regenerate the RagFinetuneJob and RagRetrievalCluster CRDs in the chart's crds/ from the pydantic models
	$(PY) -m rag_operator crd --out $(CRD_DIR)

.PHONY: fetch-kuberay-crds
fetch-kuberay-crds: ## download the KubeRay $(KUBERAY_VERSION) CRDs into $(KUBERAY_CRDS_DIR) (needs internet)
	mkdir -p $(KUBERAY_CRDS_DIR)
	for crd in rayjobs rayclusters; do \
	  curl -fsSL -o $(KUBERAY_CRDS_DIR)/ray.io_$$crd.yaml $(KUBERAY_CRDS_URL)/ray.io_$$crd.yaml || exit 1; \
	done

.PHONY: test-operator
test-operator: install ## operator tests: render goldens, RayJob schema, CRD drift, handlers on a fake API
	KUBERAY_CRDS_DIR=$(KUBERAY_CRDS_DIR) $(PY) -m pytest tests/operator $(PYTEST_ARGS)

.PHONY: golden
golden: install ## rewrite the operator's golden RayJob/RayCluster renders after an intended change
	UPDATE_GOLDEN=1 $(PY) -m pytest tests/operator -k golden -q

.PHONY: render-examples
render-examples: install ## print what the operator renders for examples/*.yaml (RayJobs, the RayCluster)
	for f in examples/rag-finetune-job.yaml examples/rag-finetune-job-cpu.yaml examples/rag-retrieval-cluster.yaml; do \
	  echo "# $$f"; $(PY) -m rag_operator render -f $$f || exit 1; done
	echo "# examples/rag-finetune-job-shared.yaml (on examples/rag-retrieval-cluster.yaml)"
	$(PY) -m rag_operator render -f examples/rag-finetune-job-shared.yaml -f examples/rag-retrieval-cluster.yaml

.PHONY: test-retrieval-cluster
test-retrieval-cluster: install ## RagRetrievalCluster tests: render, CRD, handlers, dashboard reading (no cluster)
	KUBERAY_CRDS_DIR=$(KUBERAY_CRDS_DIR) $(PY) -m pytest tests/operator/test_rrc_render.py \
	  tests/operator/test_rrc_crd.py tests/operator/test_rrc_controller.py tests/operator/test_rrc_actors.py \
	  tests/chart/test_rrc_crd.py $(PYTEST_ARGS)

.PHONY: docs
docs: install ## regenerate docs/configuration.md (the configuration reference) from the models
	$(PY) -m rag_operator docs --out docs/configuration.md
