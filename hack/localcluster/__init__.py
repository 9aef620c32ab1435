"""A real Kubernetes control plane on this machine, for the tests and for `make cluster-up`.

etcd + kube-apiserver + kube-controller-manager + the KubeRay operator on loopback, built
once by `make toolchain` (hack/controlplane/toolchain.sh) into the tool cache; kube-scheduler
and kwok add simulated nodes. A developer tool, not part of the product: the tests import it
(pytest puts hack/ on the path) and `make cluster-up` runs `python -m localcluster`.
"""
