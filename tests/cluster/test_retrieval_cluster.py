"""RagRetrievalCluster on a real control plane: the chart's CRD and RBAC, our operator running as
the chart's ServiceAccount (so the RBAC authorizer checks every call, rayclusters included), and
KubeRay reconciling the RayCluster, the service RayJob and a job's clusterSelector RayJob.

No nodes: pods stay Pending and no Ray process runs, so the cluster never turns Ready; what is
checked is everything up to that point (objects, ownership, KubeRay's acceptance, a waiting
job, a held deletion). test_retrieval_cluster_ready.py takes it to Ready on simulated nodes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster.controlplane import Component, ControlPlane
from localcluster.toolchain import REPO
from tests.polling import eventually

from .kube import chart_operator, get_if_exists, get_json, owned_by

pytestmark = pytest.mark.cluster

RRC_EXAMPLE = REPO / "examples" / "rag-retrieval-cluster.yaml"
SHARED_JOB_EXAMPLE = REPO / "examples" / "rag-finetune-job-shared.yaml"
RELEASE, NS = "rrc", "rrc-jobs"
CLUSTER = "wiki-dpr"
SERVICE = f"{CLUSTER}-retrieval-service"


def _manifest(path: Path, name: str | None = None) -> str:
    doc = yaml.safe_load(path.read_text())
    doc["metadata"]["namespace"] = NS
    if name:
        doc["metadata"]["name"] = name
    return yaml.safe_dump(doc)


@pytest.fixture(scope="module")
def operator_process(control_plane: ControlPlane, helm_path: str) -> Iterator[Component]:
    """The chart installed (watching NS) and our operator running as its ServiceAccount."""
    with chart_operator(control_plane, helm_path, RELEASE, NS) as component:
        yield component


@pytest.fixture(scope="module")
def retrieval_cluster(operator_process, control_plane: ControlPlane, kubectl_path: str) -> dict[str, Any]:
    """The example RagRetrievalCluster applied once; returns it as stored."""
    config = f"--kubeconfig={control_plane.kubeconfig}"
    argv = [kubectl_path, config, "apply", "-f", "-"]
    done = subprocess.run(argv, input=_manifest(RRC_EXAMPLE), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    argv = [kubectl_path, config, "get", "rrc", CLUSTER, "-n", NS, "-o", "yaml"]
    return yaml.safe_load(subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout)


def test_operator_creates_the_raycluster_and_service_that_kuberay_accepts(retrieval_cluster, kubectl) -> None:
    uid = retrieval_cluster["metadata"]["uid"]
    raycluster = eventually(
        lambda: get_if_exists(kubectl, "raycluster", CLUSTER, "-n", NS), 60, "the RayCluster"
    )
    assert owned_by(raycluster, uid)
    assert raycluster["spec"]["enableInTreeAutoscaling"] is True
    service = eventually(
        lambda: get_if_exists(kubectl, "rayjob", SERVICE, "-n", NS), 30, "the service RayJob"
    )
    assert owned_by(service, uid)
    assert service["spec"]["clusterSelector"] == {"ray.io/cluster": CLUSTER}

    def head_pod() -> dict[str, Any] | None:
        pods = get_json(kubectl, "pods", "-n", NS, "-l", f"ray.io/cluster={CLUSTER},ray.io/node-type=head")
        return pods["items"][0] if pods["items"] else None

    # KubeRay took our RayCluster: a head pod with the autoscaler sidecar, and no trainer pod (min 0).
    pod = eventually(head_pod, timeout=60, what="KubeRay's head pod for the RayCluster")
    assert "autoscaler" in {c["name"] for c in pod["spec"]["containers"]}
    trainers = get_json(kubectl, "pods", "-n", NS, "-l", f"ray.io/cluster={CLUSTER},ray.io/group=trainer")
    assert trainers["items"] == []

    # KubeRay accepted the clusterSelector RayJob (a rejected one reports ValidationFailed).
    status = eventually(
        lambda: (get_json(kubectl, "rayjob", SERVICE, "-n", NS).get("status") or {}).get(
            "jobDeploymentStatus"
        ),
        timeout=60,
        what="KubeRay's status on the service RayJob",
    )
    assert status not in ("ValidationFailed", "Failed"), status

    rrc = eventually(
        lambda: (
            (s := get_json(kubectl, "rrc", CLUSTER, "-n", NS).get("status") or {}).get("rayClusterName") and s
        ),
        timeout=30,
        what="the RagRetrievalCluster status",
    )
    assert (rrc["shards"], rrc["replicas"], rrc["indexSize"], rrc["memoryPerPod"]) == (4, 2, "64Gi", "50Gi")
    ready = next(c for c in rrc["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"  # no nodes: pods never run
    printed = kubectl("get", "rrc", "-n", NS)
    assert printed.returncode == 0 and "INDEX-SIZE" in printed.stdout and "64Gi" in printed.stdout


def test_kuberay_accepts_a_shared_jobs_clusterselector_rayjob_on_that_raycluster(
    retrieval_cluster, kubectl
) -> None:
    """The RayJob the operator renders for a job with retrievalClusterRef, applied directly (the
    operator only creates it once the cluster is Ready, which needs nodes)."""
    from rag_operator.common.sizing import no_kb_metadata
    from rag_operator.finetunejob import render
    from rag_operator.retrievalcluster.spec import cluster_from_manifest

    job = yaml.safe_load(_manifest(SHARED_JOB_EXAMPLE, "direct-shared"))
    rayjob, _ = render.rayjob_for(
        job, no_kb_metadata, cluster_from_manifest(yaml.safe_load(_manifest(RRC_EXAMPLE)))
    )
    applied = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(rayjob))
    assert applied.returncode == 0, applied.stderr
    status = eventually(
        lambda: (
            (s := get_json(kubectl, "rayjob", "direct-shared", "-n", NS).get("status") or {}).get(
                "jobDeploymentStatus"
            )
            and s
        ),
        timeout=60,
        what="KubeRay's status on the shared job's RayJob",
    )
    assert status["jobDeploymentStatus"] not in ("ValidationFailed", "Failed"), status
    assert status.get("rayClusterName") == CLUSTER
    # no RayCluster of its own
    clusters = [c["metadata"]["name"] for c in get_json(kubectl, "rayclusters", "-n", NS)["items"]]
    assert clusters == [CLUSTER]
    kubectl("delete", "rayjob", "direct-shared", "-n", NS, "--wait=false")


def test_a_job_waiting_for_the_cluster_does_not_hold_its_deletion(retrieval_cluster, kubectl) -> None:
    """A job that has no RayJob yet does not use the cluster: holding the deletion for it would
    deadlock (the job waits for the cluster, the cluster for the job). The cluster goes, and the
    job keeps waiting, saying the cluster is missing. (A job that runs on the cluster does hold it:
    tests/operator/retrievalcluster/test_controller.py.)"""
    applied = kubectl("apply", "-f", "-", stdin=_manifest(SHARED_JOB_EXAMPLE))
    assert applied.returncode == 0, applied.stderr
    job_name = yaml.safe_load(SHARED_JOB_EXAMPLE.read_text())["metadata"]["name"]
    job = eventually(
        lambda: (s := get_json(kubectl, "rfj", job_name, "-n", NS).get("status") or {}).get("reason") and s,
        timeout=60,
        what="the waiting job's status",
    )
    assert job["phase"] == "Pending" and job["reason"] == "RetrievalClusterNotReady", job
    assert kubectl("get", "rayjob", job_name, "-n", NS).returncode != 0  # nothing created

    deleted = kubectl("delete", "rrc", CLUSTER, "-n", NS, "--wait=false")
    assert deleted.returncode == 0, deleted.stderr
    eventually(
        lambda: kubectl("get", "rrc", CLUSTER, "-n", NS).returncode != 0,
        timeout=90,
        what="the RagRetrievalCluster to go although a job waits for it",
    )
    eventually(
        lambda: kubectl("get", "raycluster", CLUSTER, "-n", NS).returncode != 0,
        timeout=90,
        what="the garbage collector to remove the owned RayCluster",
    )
    job = eventually(
        lambda: (
            (s := get_json(kubectl, "rfj", job_name, "-n", NS).get("status") or {}).get("reason")
            == "RetrievalClusterMissing"
            and s
        ),
        timeout=60,
        what="the job to say its cluster is missing",
    )
    assert job["phase"] == "Pending" and kubectl("get", "rayjob", job_name, "-n", NS).returncode != 0
    assert kubectl("delete", "rfj", job_name, "-n", NS).returncode == 0
