"""A RagRetrievalCluster that turns Ready on a real control plane, and a RagFinetuneJob with
retrievalClusterRef that waits for it and then runs on it through a clusterSelector RayJob.

Simulated nodes (kwok, kube-scheduler) let KubeRay bring the RayCluster up for real (its pods
are bound and reported Running). No Ray process runs, so the retrieval service RayJob never
reaches RUNNING by itself: the test writes that one status field, as the status-mirroring tests
do; everything else (RayCluster state, our Ready condition, the job's RayJob) is computed by
KubeRay and our operator.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from localcluster.controlplane import ControlPlane
from localcluster.toolchain import REPO
from tests.polling import eventually

from .kube import get_if_exists, get_json, owned_by

pytestmark = pytest.mark.cluster

RELEASE, NS = "rrc-ready", "rrc-ready"  # read by the operator_on_nodes fixture (conftest.py)
CLUSTER = "wiki-dpr"
SERVICE = f"{CLUSTER}-retrieval-service"
RAYJOBS = f"/apis/ray.io/v1/namespaces/{NS}/rayjobs"


def example(name: str) -> str:
    doc = yaml.safe_load((REPO / "examples" / name).read_text())
    doc["metadata"]["namespace"] = NS
    return yaml.safe_dump(doc)


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_), {})


def test_a_job_waits_for_the_cluster_then_runs_on_it_through_a_clusterselector(
    operator_on_nodes, control_plane: ControlPlane, kubectl
) -> None:
    assert kubectl("apply", "-f", "-", stdin=example("rag-retrieval-cluster.yaml")).returncode == 0
    job_doc = yaml.safe_load(example("rag-finetune-job-shared.yaml"))
    job_name = job_doc["metadata"]["name"]
    assert kubectl("apply", "-f", "-", stdin=yaml.safe_dump(job_doc)).returncode == 0

    waiting = eventually(
        lambda: (
            (s := (get_if_exists(kubectl, "rfj", job_name, "-n", NS) or {}).get("status"))
            and s.get("reason")
            and s
        ),
        timeout=60,
        what="the job's waiting status",
    )
    assert (waiting["phase"], waiting["reason"]) == ("Pending", "RetrievalClusterNotReady"), waiting

    # KubeRay sees the head and retrieval pods Running on the simulated nodes.
    eventually(
        lambda: (
            ((get_if_exists(kubectl, "raycluster", CLUSTER, "-n", NS) or {}).get("status") or {}).get("state")
            == "ready"
        ),
        timeout=120,
        what="KubeRay to report the RayCluster ready",
    )
    assert kubectl("get", "rayjob", job_name, "-n", NS).returncode != 0, (
        "created before the cluster was Ready"
    )

    api = control_plane.api()

    def service_running_and_cluster_ready() -> bool:
        """Write jobStatus RUNNING (again, if KubeRay wrote over it) until our Ready turns True."""
        service = get_json(kubectl, "rayjob", SERVICE, "-n", NS)
        if (service.get("status") or {}).get("jobStatus") != "RUNNING":
            service["status"] = {**(service.get("status") or {}), "jobStatus": "RUNNING"}
            api.request("PUT", f"{RAYJOBS}/{SERVICE}/status", service)  # a conflict: next round
        return condition(get_json(kubectl, "rrc", CLUSTER, "-n", NS), "Ready").get("status") == "True"

    eventually(
        service_running_and_cluster_ready, timeout=90, what="the RagRetrievalCluster's Ready condition"
    )

    rayjob = eventually(
        lambda: get_if_exists(kubectl, "rayjob", job_name, "-n", NS),
        timeout=60,
        what="the job's RayJob once the cluster is Ready",
    )
    assert rayjob["spec"]["clusterSelector"] == {"ray.io/cluster": CLUSTER}
    assert "rayClusterSpec" not in rayjob["spec"]
    # The operator creates the RayJob, then writes the job's status: wait for that write.
    job = eventually(
        lambda: (
            (j := get_json(kubectl, "rfj", job_name, "-n", NS))
            and condition(j, "RetrievalClusterReady").get("status") == "True"
            and j
        ),
        timeout=60,
        what="the job's RetrievalClusterReady condition",
    )
    assert owned_by(rayjob, job["metadata"]["uid"])
    assert CLUSTER in condition(job, "RetrievalClusterReady")["message"]

    # KubeRay takes it onto the shared cluster and makes no RayCluster of its own.
    accepted = eventually(
        lambda: (
            (s := get_json(kubectl, "rayjob", job_name, "-n", NS).get("status") or {}).get("rayClusterName")
            and s
        ),
        timeout=60,
        what="KubeRay to pick the RayCluster for the job's RayJob",
    )
    assert accepted["rayClusterName"] == CLUSTER and accepted.get("jobDeploymentStatus") != "ValidationFailed"
    clusters = [c["metadata"]["name"] for c in get_json(kubectl, "rayclusters", "-n", NS)["items"]]
    assert clusters == [CLUSTER]
