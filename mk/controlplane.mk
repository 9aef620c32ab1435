# Control plane for the cluster tests (tests/cluster): a real kube-apiserver +
# etcd + kube-controller-manager + KubeRay operator on loopback, no nodes; the placement
# tests add kube-scheduler and kwok (simulated nodes) for themselves. The node tests
# (tests/nodes) and `make cluster-up REAL_NODES=N` run real nodes: containerd + kubelet +
# kube-proxy per node in network namespaces, CoreDNS (kind needs a Docker engine, which these
# machines lack).

# Real nodes for `make cluster-up` (0: kwok's simulated nodes).
REAL_NODES ?= 0
# Debian packages the real nodes run (the binaries Kubernetes itself ships are built by `toolchain`).
NODE_PACKAGES := containerd runc containernetworking-plugins iptables

.PHONY: toolchain
toolchain: ## build kube-apiserver, kube-controller-manager, kube-scheduler, the KubeRay operator, kwok, CoreDNS and Kueue into $(CACHE_DIR)/bin (once; needs Go)
	@PY=$(PY) hack/controlplane/toolchain.sh

.PHONY: test-cluster
test-cluster: install ## build the toolchain (when Go is there) and run the cluster tests; they skip, saying why, without it
	@PY=$(PY) hack/controlplane/toolchain.sh || echo "test-cluster: toolchain not built; the cluster tests will skip"
	$(PY) -m pytest tests/cluster -m cluster $(PYTEST_ARGS)

.PHONY: cluster-up
cluster-up: install toolchain ## start a local control plane in the background; prints the kubeconfig to use
	@PYTHONPATH=hack $(PY) -m localcluster up --real-nodes $(REAL_NODES)

.PHONY: node-packages
node-packages: ## apt-get install what the real nodes run (containerd, runc, CNI plugins, iptables); needs root
	@if command -v containerd >/dev/null && command -v runc >/dev/null && command -v iptables >/dev/null \
		&& { [ -x /usr/lib/cni/bridge ] || [ -x /opt/cni/bin/bridge ]; }; then \
		echo "node-packages: already installed"; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "node-packages: needs root and apt-get (install $(NODE_PACKAGES) yourself); the node tests will skip"; \
	else \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q --no-install-recommends $(NODE_PACKAGES) >/dev/null \
			|| { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $(NODE_PACKAGES) >/dev/null; } \
			|| echo "node-packages: apt-get failed; the node tests will skip"; \
	fi

.PHONY: cluster-down
cluster-down: ## stop the control plane started by cluster-up
	@PYTHONPATH=hack $(PY) -m localcluster down
