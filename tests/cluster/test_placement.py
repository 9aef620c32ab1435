"""Placement on simulated nodes: the real kube-scheduler places the pods KubeRay makes from our
RayJob onto kwok nodes shaped like GPU and high-memory machines, and a group that fits no node
is reported in the RagFinetuneJob's status (the operator reads the job's pods, with the chart's
RBAC).

Nodes are simulated (kwok): no container runs, but scheduling, taints, tolerations, node
selectors and resource fit are the real scheduler's.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from localcluster.kwok import GPU_NODE, HIGHMEM_NODE, INSTANCE_TYPE, NodeShape
from localcluster.toolchain import REPO
from tests.polling import eventually

from .kube import get_json

pytestmark = pytest.mark.cluster

GPU_EXAMPLE = REPO / "examples" / "rag-finetune-job.yaml"
RELEASE, NS = "placement", "placement"  # read by the operator_on_nodes fixture (conftest.py)
JOB_LABEL, GROUP_LABEL = "rag.finetune.dev/job", "rag.finetune.dev/group"


def gpu_job(name: str, index_size: str | None = None) -> str:
    """The GPU example in NS under another name, optionally with a bigger index (more memory)."""
    doc = yaml.safe_load(GPU_EXAMPLE.read_text())
    doc["metadata"].update(name=name, namespace=NS)
    if index_size:
        doc["spec"]["retrieval"]["indexSize"] = index_size
    return yaml.safe_dump(doc)


def pods_of(kubectl, job: str) -> list[dict[str, Any]]:
    return get_json(kubectl, "pods", "-n", NS, "-l", f"{JOB_LABEL}={job}")["items"]


def pods_scheduled(job: dict[str, Any]) -> dict[str, Any] | None:
    conditions = (job.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "PodsScheduled"), None)


def test_trainers_land_only_on_gpu_nodes_and_retrieval_only_on_high_memory_nodes(
    operator_on_nodes, nodes: dict[str, NodeShape], kubectl
) -> None:
    applied = kubectl("apply", "-f", "-", stdin=gpu_job("placed"))
    assert applied.returncode == 0, applied.stderr

    def all_bound() -> list[dict[str, Any]] | None:
        pods = pods_of(kubectl, "placed")
        return pods if len(pods) == 5 and all(p["spec"].get("nodeName") for p in pods) else None

    pods = eventually(all_bound, timeout=120, what="the head, 2 trainer and 2 retrieval pods bound to nodes")
    kinds: dict[str, set[str]] = {}
    for pod in pods:
        kind = nodes[pod["spec"]["nodeName"]].instance_type
        kinds.setdefault(pod["metadata"]["labels"][GROUP_LABEL], set()).add(kind)
    assert kinds["trainer"] == {GPU_NODE.instance_type}
    assert kinds["retrieval"] == {HIGHMEM_NODE.instance_type}
    assert kinds["head"] == {HIGHMEM_NODE.instance_type}  # no toleration for the GPU taint
    trainer_nodes = {p["spec"]["nodeName"] for p in pods if p["metadata"]["labels"][GROUP_LABEL] == "trainer"}
    assert len(trainer_nodes) == 2, "4 GPUs per pod and per node: one trainer per GPU node"

    job = eventually(
        lambda: (
            (c := pods_scheduled(get_json(kubectl, "rfj", "placed", "-n", NS)))
            and c["status"] == "True"
            and c
        ),
        timeout=60,
        what="PodsScheduled=True on the RagFinetuneJob",
    )
    assert job["message"] == "all 5 pods scheduled"
    node = get_json(kubectl, "node", next(iter(trainer_nodes)))
    assert node["metadata"]["labels"][INSTANCE_TYPE] == "gpu-a100x4"


def test_a_retrieval_group_that_fits_no_node_stays_pending_and_the_status_says_why(
    operator_on_nodes, kubectl
) -> None:
    # 4Ti index over 4 shards, 2 actors per pod: 3074Gi per retrieval pod, more than any node has.
    applied = kubectl("apply", "-f", "-", stdin=gpu_job("too-big", index_size="4Ti"))
    assert applied.returncode == 0, applied.stderr

    def unschedulable() -> dict[str, Any] | None:
        condition = pods_scheduled(get_json(kubectl, "rfj", "too-big", "-n", NS))
        both = condition and condition["message"].startswith("group retrieval: 2 pods cannot be scheduled")
        return condition if both else None

    condition = eventually(unschedulable, timeout=90, what="PodsScheduled=False naming both retrieval pods")
    assert (condition["status"], condition["reason"]) == ("False", "Unschedulable")
    message = condition["message"]
    assert ": 0/6 nodes are available: " in message, message
    assert "Insufficient memory" in message and "group trainer" not in message, message

    retrieval = [
        p for p in pods_of(kubectl, "too-big") if p["metadata"]["labels"][GROUP_LABEL] == "retrieval"
    ]
    assert len(retrieval) == 2
    for pod in retrieval:
        assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
    events = get_json(kubectl, "events", "-n", NS, "--field-selector", "involvedObject.name=too-big")["items"]
    assert any(e["reason"] == "Unschedulable" and e["type"] == "Warning" for e in events), events
