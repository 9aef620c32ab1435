"""Fixtures of the real-node tests: one cluster with two real nodes for this package's tests
(torn down when they end, so the tests after them run on a quiet machine).

The nodes are real: containerd runs the pods' containers with runc, the kubelets register
and report them, kube-proxy programs Services, CoreDNS answers cluster DNS
(hack/localcluster/realnodes.py). What is not production: the images are skeletons that
mount the host's /usr, Python and project read-only (hack/localcluster/images.py), because
no registry can be reached and installing torch into an image on every fresh machine would
cost minutes. Every test here skips, saying why, when the binaries, the Debian packages or
root are missing; they never skip quietly.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster.realcluster import RealCluster, data_volume, fill_data_volume, plan_for, start_real_cluster
from localcluster.realnodes import host_snapshot
from localcluster.toolchain import REPO, Toolchain, ToolchainMissing, find_toolchain, require_real_nodes

from ..polling import eventually
from ..tools import require_helm, require_kubectl

#: The session cluster's network (cluster-up and the lifecycle test use others).
PREFIX, OCTET = "rfot", 213
CHART = REPO / "charts" / "rag-finetune-operator"
RELEASE, OPERATOR_NS = "rag-finetune-operator", "rag-system"
_REPORT: list[str] = []


@pytest.fixture(scope="package")
def node_toolchain() -> Toolchain:
    """The binaries and host tools the real nodes need, or a skip that names what is missing."""
    try:
        toolchain = find_toolchain()
        require_real_nodes(toolchain)
    except ToolchainMissing as err:
        pytest.skip(f"real nodes unavailable: {err}")
    return toolchain


@pytest.fixture(scope="package")
def real_cluster(node_toolchain: Toolchain) -> Iterator[RealCluster]:
    """Two real nodes (trainer pool, retrieval pool) on a control plane of their own; at the
    end, fails if the teardown left a process, mount, namespace, link, route or rule behind."""
    before = host_snapshot()
    directory = Path(tempfile.mkdtemp(prefix="rag-realnodes-"))
    cluster = start_real_cluster(node_toolchain, directory, plan_for(PREFIX, OCTET, 2))
    _REPORT.append("real nodes start-up: " + ", ".join(f"{k} {v:.1f}s" for k, v in cluster.timings.items()))
    try:
        yield cluster
    finally:
        started = time.monotonic()
        problems = cluster.stop()
        steps = ", ".join(
            f"{k} {v:.1f}s" for k, v in cluster.nodes.timings.items() if k.startswith("teardown")
        )
        print(f"\nreal nodes teardown: {time.monotonic() - started:.1f}s ({steps})")
        left = {key: sorted(set(value) - set(before[key])) for key, value in host_snapshot().items()}
        left = {key: value for key, value in left.items() if value}
        shutil.rmtree(directory, ignore_errors=True)
        assert not problems and not left, f"the real nodes left behind: {problems} {left}"


@pytest.fixture(scope="package")
def node_kubectl(real_cluster: RealCluster):
    """kubectl against the real-node cluster as admin; returns the CompletedProcess."""
    kubectl = str(require_kubectl())

    def run(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = [kubectl, f"--kubeconfig={real_cluster.plane.kubeconfig}", *args]
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture(scope="package")
def node_helm(real_cluster: RealCluster):
    """helm against the real-node cluster."""
    helm = str(require_helm())

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        argv = [helm, f"--kubeconfig={real_cluster.plane.kubeconfig}", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture(scope="package")
def data_namespace(real_cluster: RealCluster) -> str:
    """A namespace whose `rag-data` claim holds the tiny model, knowledge base and data, filled
    by kind/rag-data.yaml's Job running on a real node."""
    name = f"rag-{uuid.uuid4().hex[:6]}"
    api = real_cluster.plane.api()
    status, body = api.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status == 201, body
    data_volume(api, name, real_cluster.nodes.directory / "data" / name)
    seconds = fill_data_volume(api, name)
    _REPORT.append(f"real nodes: data Job {seconds:.0f}s")
    return name


@pytest.fixture(scope="package")
def chart_operator(real_cluster: RealCluster, node_helm, node_kubectl) -> dict[str, Any]:
    """`helm install` of the chart as a user does: the operator runs as its Deployment's pods."""
    done = node_helm(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        OPERATOR_NS,
        "--create-namespace",
        "--wait",
        "--timeout=180s",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    body = json.loads(node_kubectl("-n", OPERATOR_NS, "get", "deployment", "-o", "json").stdout)
    (deployment,) = body["items"]
    return deployment


@pytest.fixture(scope="package")
def node_report() -> list[str]:
    """Lines for the terminal summary: the figures the node tests measure."""
    return _REPORT


@pytest.fixture(autouse=True)
def _nodes_left_empty(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, passed or failed, whatever it applied in the data namespace is deleted
    and its Ray pods are gone: a failed test must not hold the two nodes' CPUs and fail the
    tests after it (CI once saw a fault test's leftover job starve the next test's cluster)."""
    yield
    if "data_namespace" not in request.fixturenames:
        return
    namespace, kubectl = request.getfixturevalue("data_namespace"), request.getfixturevalue("node_kubectl")
    for kind in ("ragfinetunejobs", "ragretrievalclusters"):
        done = kubectl("-n", namespace, "delete", kind, "--all", "--wait=true", timeout=300)
        assert done.returncode == 0, done.stderr

    def no_ray_pods() -> bool:
        done = kubectl("-n", namespace, "get", "pods", "-l", "ray.io/node-type", "-o", "name")
        return done.returncode == 0 and not done.stdout.strip()

    eventually(no_ray_pods, timeout=300, what=f"no Ray pods left in {namespace}", interval=2)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """A failed node test's report carries every component's log tail."""
    outcome = yield
    report = outcome.get_result()
    cluster = item.funcargs.get("real_cluster") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(cluster, RealCluster):
        tails = cluster.plane.log_tails(20)
        tails += "\n".join(f"----- {c.name} -----\n{c.log_tail(20)}" for c in cluster.nodes.components)
        report.sections.append(("real node logs", tails))


def pytest_terminal_summary(terminalreporter) -> None:
    for line in _REPORT:
        terminalreporter.write_line(line)
