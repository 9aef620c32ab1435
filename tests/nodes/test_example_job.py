"""The CPU example RagFinetuneJob on real pods, as a platform engineer runs it: the operator
from the chart's Deployment, `kubectl apply -f examples/rag-finetune-job-cpu.yaml`, and the
RagFinetuneJob reaching Succeeded. Asserted from what ran, not from status alone: where the
pods ran, where Ray placed the trainers and the retrieval actors (Ray's state API through the
API server's service proxy), the model on the volume, and the clean-up on delete."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster.realcluster import RealCluster
from localcluster.realnodes import POOL_LABEL
from localcluster.toolchain import REPO

from ..polling import eventually
from .conftest import OPERATOR_NS

pytestmark = pytest.mark.node

EXAMPLE = REPO / "examples" / "rag-finetune-job-cpu.yaml"
GROUP_LABEL = "ray.io/group"


def get(node_kubectl, *args: str) -> dict[str, Any]:
    done = node_kubectl("get", *args, "-o", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_operator_runs_from_the_charts_deployment(chart_operator: dict[str, Any], node_kubectl) -> None:
    selector = ",".join(f"{k}={v}" for k, v in chart_operator["spec"]["selector"]["matchLabels"].items())
    pods = get(node_kubectl, "-n", OPERATOR_NS, "pods", "-l", selector)["items"]
    assert len(pods) == chart_operator["spec"]["replicas"] >= 1
    nodes = {n["metadata"]["name"] for n in get(node_kubectl, "nodes")["items"]}
    for pod in pods:
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert ready["Ready"] == "True", pod["status"]  # the liveness/readiness probes answer
        assert pod["spec"]["nodeName"] in nodes
        assert (
            pod["spec"]["serviceAccountName"]
            == chart_operator["spec"]["template"]["spec"]["serviceAccountName"]
        )
        (container,) = pod["spec"]["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        (status,) = pod["status"]["containerStatuses"]
        assert status["ready"] and status["restartCount"] == 0, status


def ray_state(plane_api, namespace: str, service: str, what: str) -> list[dict[str, Any]]:
    """Ray's state API of a head, through the API server's service proxy (as KubeRay reaches it)."""
    path = f"/api/v1/namespaces/{namespace}/services/{service}:8265/proxy/api/v0/{what}?limit=1000&detail=1"
    status, body = plane_api.request("GET", path)
    assert status == 200, body
    return body["data"]["result"]["result"]


def test_cpu_example_succeeds_on_real_pods(
    real_cluster: RealCluster, chart_operator: dict[str, Any], data_namespace: str, node_kubectl
) -> None:
    namespace = data_namespace
    example = yaml.safe_load(EXAMPLE.read_text())
    name = example["metadata"]["name"]
    started = time.monotonic()
    done = node_kubectl("-n", namespace, "apply", "-f", str(EXAMPLE))
    assert done.returncode == 0, done.stderr

    phases: list[str] = []

    def finished() -> str | None:
        job = get(node_kubectl, "-n", namespace, "rfj", name)
        phase = (job.get("status") or {}).get("phase")
        if phase and (not phases or phases[-1] != phase):
            phases.append(phase)
        return phase if phase in ("Succeeded", "Failed") else None

    assert eventually(finished, timeout=900, what=f"{name} Succeeded or Failed", interval=1) == "Succeeded", (
        phases
    )
    seconds = time.monotonic() - started
    assert phases[-2:] == ["Running", "Succeeded"], phases

    # Where the pods ran: each group on the node labelled for it (the example prefers them).
    job = get(node_kubectl, "-n", namespace, "rfj", name)
    pods = get(
        node_kubectl, "-n", namespace, "pods", "-l", f"ray.io/cluster={job['status']['rayClusterName']}"
    )
    node_pool = {
        n["metadata"]["name"]: n["metadata"]["labels"][POOL_LABEL]
        for n in get(node_kubectl, "nodes")["items"]
    }
    by_ip = {}
    for pod in pods["items"]:
        group = pod["metadata"]["labels"].get(GROUP_LABEL)
        assert pod["status"]["phase"] == "Running", (pod["metadata"]["name"], pod["status"])
        where = (pod["metadata"]["name"], pod["spec"]["nodeName"])
        if group in ("trainer", "retrieval"):
            assert node_pool[pod["spec"]["nodeName"]] == group, where
        else:  # KubeRay's head group: the example's affinity keeps it off the trainers' node
            assert node_pool[pod["spec"]["nodeName"]] != "trainer", where
        by_ip[pod["status"]["podIP"]] = group if group in ("trainer", "retrieval") else "head"
    assert sorted(by_ip.values()) == ["head", "retrieval", "trainer", "trainer"], by_ip

    # Where Ray ran the work: trainers on trainer pods, retrieval actors on retrieval pods.
    api = real_cluster.plane.api()
    service = f"{job['status']['rayClusterName']}-head-svc"
    node_group = {n["node_id"]: by_ip.get(n["node_ip"]) for n in ray_state(api, namespace, service, "nodes")}
    actors = ray_state(api, namespace, service, "actors")
    placed = {(a["class_name"], node_group.get(a["node_id"])) for a in actors}
    assert ("RetrievalActor", "retrieval") in placed, placed
    assert any(cls.endswith("RayTrainWorker") and group == "trainer" for cls, group in placed), placed
    assert not any(cls == "RetrievalActor" and group != "retrieval" for cls, group in placed), placed

    # What it wrote: metrics and a model that loads, on the volume the pods mounted.
    volume = real_cluster.nodes.directory / "data" / namespace
    output = volume / "outputs" / name
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["steps"] == example["spec"]["job"]["training"]["max_steps"]
    assert {a["hostname"] for a in metrics["retrieval_actors"]} <= {
        p["metadata"]["name"]
        for p in pods["items"]
        if p["metadata"]["labels"].get(GROUP_LABEL) == "retrieval"
    }
    assert_model_loads(output / "model")
    print(f"\nexample job on real pods: Succeeded in {seconds:.0f} s, phases {phases}")

    # Deleting the RagFinetuneJob removes its RayJob, RayCluster and pods.
    done = node_kubectl("-n", namespace, "delete", "rfj", name, "--wait=true", timeout=180)
    assert done.returncode == 0, done.stderr

    def gone() -> bool:
        left = [get(node_kubectl, "-n", namespace, kind)["items"] for kind in ("rayjobs", "rayclusters")] + [
            get(
                node_kubectl,
                "-n",
                namespace,
                "pods",
                "-l",
                f"ray.io/cluster={job['status']['rayClusterName']}",
            )["items"]
        ]
        return not any(left)

    eventually(
        gone,
        timeout=180,
        what="the RayJob, RayCluster and Ray pods deleted with the RagFinetuneJob",
        interval=1,
    )


def assert_model_loads(model_dir: Path) -> None:
    """Plain transformers loads the saved checkpoint (no retriever needed for the weights)."""
    import transformers

    config = transformers.RagConfig.from_pretrained(model_dir)
    architecture = (config.architectures or ["RagTokenForGeneration"])[0]
    model = getattr(transformers, architecture).from_pretrained(model_dir)
    assert sum(p.numel() for p in model.parameters()) > 0
