"""The shared retrieval cluster on real pods: `kubectl apply` of the CPU RagRetrievalCluster
example, which loads the index once into named retrieval actors, then of the job that names it
(`retrievalClusterRef`). Asserted from what ran: the job's RayJob runs on the cluster (no
RayCluster of its own), its trainers ran in the cluster's trainer pool (which KubeRay's
autoscaler grows from zero), and the job was served by the very actor processes that were loaded
before it was submitted (same names and pids: the job loaded no index)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml

from localcluster.realcluster import RealCluster
from localcluster.toolchain import REPO

from ..polling import eventually
from .test_example_job import get, ray_state

pytestmark = pytest.mark.node

CLUSTER_EXAMPLE = REPO / "examples" / "rag-retrieval-cluster-cpu.yaml"
JOB_EXAMPLE = REPO / "examples" / "rag-finetune-job-shared-cpu.yaml"


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == kind]
    return found[0] if found else {}


def retrieval_actors(api, namespace: str, service: str) -> dict[str, int]:
    """Name -> pid of the live retrieval actors, from Ray's state API of the cluster's head."""
    return {
        a["name"]: a["pid"]
        for a in ray_state(api, namespace, service, "actors")
        if a["class_name"] == "RetrievalActor" and a["state"] == "ALIVE"
    }


def test_a_job_on_the_shared_retrieval_cluster_uses_its_loaded_actors(
    real_cluster: RealCluster,
    chart_operator: dict[str, Any],
    data_namespace: str,
    node_kubectl,
    node_report: list[str],
) -> None:
    namespace = data_namespace
    rrc = yaml.safe_load(CLUSTER_EXAMPLE.read_text())
    cluster = rrc["metadata"]["name"]
    job = yaml.safe_load(JOB_EXAMPLE.read_text())
    name = job["metadata"]["name"]
    expected_actors = rrc["spec"]["retrieval"]["shards"] * rrc["spec"]["retrieval"]["replicas"]

    started = time.monotonic()
    done = node_kubectl("-n", namespace, "apply", "-f", str(CLUSTER_EXAMPLE))
    assert done.returncode == 0, done.stderr

    def ready() -> bool:
        return condition(get(node_kubectl, "-n", namespace, "rrc", cluster), "Ready").get("status") == "True"

    eventually(ready, timeout=600, what=f"RagRetrievalCluster {cluster} Ready", interval=2)
    ready_s = time.monotonic() - started
    api = real_cluster.plane.api()
    service = f"{cluster}-head-svc"

    def all_alive() -> dict[str, int] | None:  # Ready is read on the operator's last poll
        alive = retrieval_actors(api, namespace, service)
        return alive if len(alive) == expected_actors else None

    loaded = eventually(all_alive, timeout=120, what=f"{expected_actors} retrieval actors ALIVE", interval=2)

    started = time.monotonic()
    done = node_kubectl("-n", namespace, "apply", "-f", str(JOB_EXAMPLE))
    assert done.returncode == 0, done.stderr
    phases: list[str] = []

    def finished() -> str | None:
        phase = (get(node_kubectl, "-n", namespace, "rfj", name).get("status") or {}).get("phase")
        if phase and (not phases or phases[-1] != phase):
            phases.append(phase)
        return phase if phase in ("Succeeded", "Failed") else None

    outcome = eventually(finished, timeout=900, what=f"{name} Succeeded or Failed", interval=2)
    job_s = time.monotonic() - started
    assert outcome == "Succeeded", phases

    # The job ran on the cluster: a RayJob with clusterSelector, and no RayCluster of its own.
    status = get(node_kubectl, "-n", namespace, "rfj", name)["status"]
    rayjob = get(node_kubectl, "-n", namespace, "rayjob", status["rayJobName"])
    assert rayjob["spec"].get("clusterSelector") == {"ray.io/cluster": cluster}, rayjob["spec"]
    assert "rayClusterSpec" not in rayjob["spec"]
    rayclusters = [c["metadata"]["name"] for c in get(node_kubectl, "-n", namespace, "rayclusters")["items"]]
    assert rayclusters == [cluster], rayclusters

    # Served by the actors loaded before the job: same names, same processes, none added.
    assert retrieval_actors(api, namespace, service) == loaded
    output = real_cluster.nodes.directory / "data" / namespace / "outputs" / name
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["steps"] == job["spec"]["job"]["training"]["max_steps"]
    served_by = {a["pid"] for a in metrics["retrieval_actors"]}
    assert served_by == set(loaded.values()), (served_by, loaded)
    assert sum(a["calls"] for a in metrics["retrieval_actors"]) > 0

    # The trainers ran in the cluster's trainer pool: on Ray nodes that offer `rag_trainer` (the
    # pool's pods, which the autoscaler may already have removed: Ray still lists their nodes).
    ray_nodes = {n["node_id"]: n for n in ray_state(api, namespace, service, "nodes")}
    assert metrics["trainer_nodes"], metrics.keys()
    for node_id in metrics["trainer_nodes"]:
        assert "rag_trainer" in ray_nodes[node_id]["resources_total"], ray_nodes[node_id]
        assert "rag_retrieval" not in ray_nodes[node_id]["resources_total"], ray_nodes[node_id]

    node_report.append(
        f"shared retrieval cluster on real pods: Ready in {ready_s:.0f}s ({len(loaded)} actor loaded once), "
        f"job on it Succeeded in {job_s:.0f}s, phases {phases}"
    )
    node_kubectl("-n", namespace, "delete", "rfj", name, "--wait=true", timeout=180)
    done = node_kubectl("-n", namespace, "delete", "rrc", cluster, "--wait=true", timeout=180)
    assert done.returncode == 0, done.stderr
    eventually(
        lambda: not get(node_kubectl, "-n", namespace, "rayclusters")["items"],
        timeout=180,
        what="the RayCluster deleted with the RagRetrievalCluster",
        interval=2,
    )
