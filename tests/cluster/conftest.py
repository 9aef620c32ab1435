"""Session fixtures for the cluster tests: one real control plane for the session.

Skips every cluster test, with the reason, when a binary is missing (`make
toolchain` builds them; it needs Go). When a test fails, the tails of every
component's log go into its report.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster.controlplane import Component, ControlPlane, start_control_plane
from localcluster.kwok import NODES, NodeShape, simulated_nodes
from localcluster.toolchain import REPO, Toolchain, ToolchainMissing, find_toolchain, require_placement

from .nodes import operator_with_claim

_PLANE: list[ControlPlane] = []  # the session's control plane, for the failure hook
_STARTUP: list[str] = []  # its start-up timings, for the terminal summary


@pytest.fixture(scope="session")
def toolchain() -> Toolchain:
    """The control-plane binaries, or a skip that says how to build them."""
    try:
        return find_toolchain()
    except ToolchainMissing as err:
        pytest.skip(f"cluster toolchain not built: {err}")


@pytest.fixture(scope="session")
def control_plane(toolchain: Toolchain) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager + KubeRay operator on loopback."""
    directory = Path(tempfile.mkdtemp(prefix="rag-controlplane-"))
    plane = start_control_plane(toolchain, directory)
    timings = ", ".join(f"{step} {seconds:.1f}s" for step, seconds in plane.timings.items())
    _STARTUP.append(f"control plane start-up: {timings}")
    _PLANE.append(plane)
    try:
        yield plane
    finally:
        _PLANE.clear()
        plane.stop()
        if not os.environ.get("RAG_KEEP_CONTROLPLANE"):
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def nodes(control_plane: ControlPlane, toolchain: Toolchain) -> Iterator[dict[str, NodeShape]]:
    """Simulated GPU and high-memory nodes with kube-scheduler and kwok, for one test module."""
    try:
        require_placement(toolchain)
    except ToolchainMissing as err:
        pytest.skip(f"placement toolchain not built: {err}")
    started = time.monotonic()
    with simulated_nodes(control_plane, toolchain, NODES) as registered:
        _STARTUP.append(
            f"simulated nodes (kube-scheduler, kwok, {len(NODES)} nodes): {time.monotonic() - started:.1f}s"
        )
        yield registered


@pytest.fixture(scope="module")
def operator_on_nodes(
    request: pytest.FixtureRequest, nodes: dict[str, NodeShape], control_plane: ControlPlane, helm_path: str
) -> Iterator[Component]:
    """Nodes up, the examples' claim bound in the module's NS, the chart installed as its RELEASE,
    and our operator watching NS as the chart's ServiceAccount."""
    module = request.module
    with operator_with_claim(control_plane, helm_path, module.RELEASE, module.NS) as component:
        yield component


def _shared_tools():
    """tests/tools.py (the shared pinned helm/kubectl lookup), however pytest was started."""
    root = str(REPO)
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module("tests.tools")


@pytest.fixture(scope="session")
def kubectl_path() -> str:
    """kubectl from PATH or the tool cache (installed on first use), or a skip."""
    return str(_shared_tools().require_kubectl())


@pytest.fixture(scope="session")
def helm_path() -> str:
    """helm from PATH or the tool cache (installed on first use), or a skip."""
    return str(_shared_tools().require_helm())


@pytest.fixture
def kubectl(control_plane: ControlPlane, kubectl_path: str):
    """Run kubectl against the control plane as admin; returns the CompletedProcess."""

    def run(
        *args: str, stdin: str | None = None, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        config = kubeconfig or control_plane.kubeconfig
        argv = [kubectl_path, f"--kubeconfig={config}", *args]
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60)

    return run


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards, so tests never see each other's objects."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    api = control_plane.api()
    status, body = api.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status == 201, body
    yield name
    api.request("DELETE", f"/api/v1/namespaces/{name}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Attach every component's log tail to a failed cluster test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and _PLANE and item.get_closest_marker("cluster"):
        report.sections.append(("control plane logs", _PLANE[0].log_tails()))


def pytest_terminal_summary(terminalreporter) -> None:
    """Print how long the control plane took to start (the number worth watching)."""
    for line in _STARTUP:
        terminalreporter.write_line(line)
