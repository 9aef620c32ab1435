"""Session setup for the kind tests: skip clearly without Docker or kind, else bring the cluster up
once (hack/kind-e2e.sh up is idempotent) and hand the tests a kubectl bound to its context."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `tests.tools` without relying on the pytest rootdir setup
    sys.path.insert(0, str(REPO_ROOT))

from tests.tools import find_helm, find_kind, find_kubectl  # noqa: E402

CLUSTER = os.environ.get("KIND_CLUSTER", "rag-e2e")
UP_TIMEOUT_S = 45 * 60


def docker_problem() -> str | None:
    """Why Docker cannot run kind here, or None when an engine answers."""
    try:
        proc = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        return "the docker CLI is not installed"
    except subprocess.TimeoutExpired:
        return "'docker info' timed out"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no Docker engine answers ('docker info' failed: {last})"
    return None


@dataclass(frozen=True)
class Kube:
    """kubectl bound to the kind cluster's context."""

    kubectl: Path
    context: str

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.kubectl), "--context", self.context, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    def json(self, *args: str) -> dict[str, Any]:
        return json.loads(self.run(*args, "-o", "json").stdout)


@pytest.fixture(scope="session")
def kube() -> Kube:
    """The kind cluster, up with KubeRay, the chart and the example data; or a clear skip."""
    problem = docker_problem()
    if problem:
        pytest.skip(f"kind end-to-end tests need Docker: {problem}")
    kind_env = os.environ.get("KIND")  # set by `make kind-test`
    kind = Path(shutil.which(kind_env) or kind_env) if kind_env else find_kind()
    if kind is None or not kind.exists():
        pytest.skip("kind end-to-end tests need kind: not on PATH nor in the tool cache (`make tools-kind`)")
    if os.environ.get("RAG_E2E") != "1":
        pytest.skip("kind end-to-end tests run only on request (they take ~20 min): `make kind-test`")
    helm, kubectl = find_helm(), find_kubectl()
    if helm is None or kubectl is None:
        pytest.skip("helm/kubectl missing: `make tools`")
    env = {
        **os.environ,
        "HELM": str(helm),
        "KUBECTL": str(kubectl),
        "KIND": str(kind),
        "KIND_CLUSTER": CLUSTER,
    }
    start = time.monotonic()
    proc = subprocess.run(
        [str(REPO_ROOT / "hack" / "kind-e2e.sh"), "up"],
        cwd=REPO_ROOT,
        env=env,
        timeout=UP_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, "hack/kind-e2e.sh up failed (its output is above)"
    print(f"kind cluster {CLUSTER} ready in {time.monotonic() - start:.0f} s")
    return Kube(kubectl=kubectl, context=f"kind-{CLUSTER}")
