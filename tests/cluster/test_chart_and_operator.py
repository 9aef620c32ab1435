"""The Helm chart installs into a real API server, and our operator, run as a local
process with the chart's ServiceAccount token (so the real RBAC authorizer checks
every call it makes), turns a RagFinetuneJob into a RayJob that KubeRay reconciles.

No nodes: the chart's Deployment never gets pods (its image is never pulled);
the operator runs outside the cluster instead.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster.controlplane import Component, ControlPlane
from localcluster.toolchain import REPO
from tests.polling import eventually

from .kube import (
    CHART,
    get_json,
    install_chart,
    one_of_kind,
    operator_running,
    owned_by,
    service_account_kubeconfig,
)

pytestmark = pytest.mark.cluster

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
CPU_EXAMPLE = REPO / "examples" / "rag-finetune-job-cpu.yaml"
RELEASE, RELEASE_NAMESPACE, JOBS_NAMESPACE = "rfo", "rfo-system", "rag-jobs"


def _require(*paths: Path) -> None:
    missing = [str(p.relative_to(REPO)) for p in paths if not p.exists()]
    if missing:
        pytest.skip(f"not in the tree yet: {', '.join(missing)}")


@pytest.fixture(scope="module")
def release(control_plane: ControlPlane, helm_path: str, kubectl_path: str) -> dict[str, Any]:
    """The chart installed once (watching JOBS_NAMESPACE: a Role there, least privilege)."""
    _require(CHART / "Chart.yaml")
    objects = install_chart(control_plane, helm_path, RELEASE, RELEASE_NAMESPACE, JOBS_NAMESPACE)
    return {"objects": objects, "kinds": {(o["kind"], o["metadata"]["name"]) for o in objects}}


def _one(release: dict[str, Any], kind: str) -> dict[str, Any]:
    return one_of_kind(release["objects"], kind)


def test_helm_install_creates_the_crd_serviceaccount_rbac_and_deployment(release, kubectl) -> None:
    crd = get_json(kubectl, "crd", "ragfinetunejobs.rag.finetune.dev")
    assert any(c["type"] == "Established" and c["status"] == "True" for c in crd["status"]["conditions"])
    account = _one(release, "ServiceAccount")["metadata"]["name"]
    get_json(kubectl, "serviceaccount", account, "-n", RELEASE_NAMESPACE)
    role = _one(release, "Role")["metadata"]["name"]
    get_json(kubectl, "role", role, "-n", JOBS_NAMESPACE)
    binding = get_json(
        kubectl, "rolebinding", _one(release, "RoleBinding")["metadata"]["name"], "-n", JOBS_NAMESPACE
    )
    assert {"kind": "ServiceAccount", "name": account, "namespace": RELEASE_NAMESPACE} in binding["subjects"]
    deployment = get_json(
        kubectl, "deployment", _one(release, "Deployment")["metadata"]["name"], "-n", RELEASE_NAMESPACE
    )
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_accepted_by_the_api_server(release, kubectl, control_plane, example: Path) -> None:
    manifest = yaml.safe_load(example.read_text())
    target = manifest["metadata"].get("namespace", JOBS_NAMESPACE)
    control_plane.api().request("POST", "/api/v1/namespaces", {"metadata": {"name": target}})
    done = kubectl("apply", "--dry-run=server", "-n", target, "-f", str(example))
    assert done.returncode == 0, done.stderr


def _cpu_job() -> dict[str, Any]:
    return yaml.safe_load(CPU_EXAMPLE.read_text())


def _broken(path: list[str], value: Any) -> dict[str, Any]:
    """The CPU example with one field set (or removed, for value None)."""
    manifest = copy.deepcopy(_cpu_job())
    node = manifest
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return manifest


BAD_JOBS = {
    "negative-replicas": (["spec", "trainers", "replicas"], -1, "spec.trainers.replicas"),
    "string-for-a-number": (["spec", "trainers", "replicas"], "two", "spec.trainers.replicas"),
    "unknown-enum": (["spec", "job", "retrieval", "mode"], "telepathy", "spec.job.retrieval.mode"),
    "missing-required-field": (["spec", "image"], None, "spec.image"),
}


@pytest.mark.parametrize("case", sorted(BAD_JOBS))
def test_bad_ragfinetunejob_is_refused_naming_the_field(release, kubectl, case: str) -> None:
    _require(CPU_EXAMPLE)
    path, value, field = BAD_JOBS[case]
    refused = kubectl("apply", "-n", JOBS_NAMESPACE, "-f", "-", stdin=yaml.safe_dump(_broken(path, value)))
    assert refused.returncode != 0, f"{case} was accepted"
    assert field in refused.stderr, refused.stderr


@pytest.fixture(scope="module")
def operator_kubeconfig(release, control_plane: ControlPlane) -> Path:
    """A kubeconfig carrying a TokenRequest token of the chart's ServiceAccount."""
    return service_account_kubeconfig(control_plane, release["objects"], RELEASE_NAMESPACE, JOBS_NAMESPACE)


def test_chart_serviceaccount_may_use_rayjobs_only_in_the_watched_namespace(
    operator_kubeconfig, kubectl
) -> None:
    """The RBAC authorizer is really on: the operator's token is refused elsewhere."""
    allowed = kubectl("get", "rayjobs", "-n", JOBS_NAMESPACE, kubeconfig=operator_kubeconfig)
    assert allowed.returncode == 0, allowed.stderr
    denied = kubectl("get", "rayjobs", "-n", "default", kubeconfig=operator_kubeconfig)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower(), denied.stderr


@pytest.fixture(scope="module")
def operator_process(operator_kubeconfig: Path, control_plane: ControlPlane) -> Iterator[Component]:
    """`python -m rag_operator run --standalone --namespace JOBS_NAMESPACE`, as the chart's ServiceAccount."""
    _require(REPO / "operator" / "rag_operator" / "__main__.py", CPU_EXAMPLE)
    with operator_running(control_plane, operator_kubeconfig, JOBS_NAMESPACE, "rag-operator") as component:
        yield component


def test_operator_turns_the_cpu_example_into_one_owned_rayjob_that_kuberay_reconciles(
    operator_process, kubectl
) -> None:
    applied = kubectl("apply", "-n", JOBS_NAMESPACE, "-f", str(CPU_EXAMPLE))
    assert applied.returncode == 0, applied.stderr
    name = _cpu_job()["metadata"]["name"]
    owner_uid = get_json(kubectl, "ragfinetunejob", name, "-n", JOBS_NAMESPACE)["metadata"]["uid"]

    def owned_rayjobs() -> list[dict[str, Any]]:
        jobs = get_json(kubectl, "rayjobs", "-n", JOBS_NAMESPACE)["items"]
        return [j for j in jobs if owned_by(j, owner_uid)]

    eventually(owned_rayjobs, timeout=90, what="a RayJob owned by the RagFinetuneJob")
    time.sleep(3)  # a second reconcile must not create a second RayJob
    jobs = owned_rayjobs()
    assert len(jobs) == 1, json.dumps([j["metadata"]["name"] for j in jobs])
    rayjob_uid = jobs[0]["metadata"]["uid"]

    def kuberay_cluster() -> bool:
        clusters = get_json(kubectl, "rayclusters", "-n", JOBS_NAMESPACE)["items"]
        return any(owned_by(c, rayjob_uid) for c in clusters)

    eventually(kuberay_cluster, timeout=60, what="KubeRay's RayCluster for the operator's RayJob")
