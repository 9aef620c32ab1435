# Control plane for the cluster tests (tests/cluster): a real kube-apiserver +
# etcd + kube-controller-manager + KubeRay operator on loopback, no nodes; the placement
# tests add kube-scheduler and kwok (simulated nodes) for themselves
# (kind needs a Docker engine, which these machines lack).

.PHONY: toolchain
toolchain: ## build kube-apiserver, kube-controller-manager, kube-scheduler, the KubeRay operator and kwok into $(CACHE_DIR)/bin (once; needs Go)
	@PY=$(PY) hack/controlplane/toolchain.sh

.PHONY: test-cluster
test-cluster: install ## build the toolchain (when Go is there) and run the cluster tests; they skip, saying why, without it
	@PY=$(PY) hack/controlplane/toolchain.sh || echo "test-cluster: toolchain not built; the cluster tests will skip"
	$(PY) -m pytest tests/cluster -m cluster $(PYTEST_ARGS)

.PHONY: cluster-up
cluster-up: install toolchain ## start a local control plane in the background; prints the kubeconfig to use
	@PYTHONPATH=hack $(PY) -m localcluster up

.PHONY: cluster-down
cluster-down: ## stop the control plane started by cluster-up
	@PYTHONPATH=hack $(PY) -m localcluster down
