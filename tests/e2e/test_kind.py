"""On a kind cluster: the CPU example RagFinetuneJob succeeds, its retrieval actors ran on the
retrieval pods and its trainers on the trainer pods, and deleting it removes the RayJob and pods.

Placement is read from the job's own Ray cluster (Ray's state API on the head pod: every actor
with the node it ran on, every node with its custom resources), then tied to pods by IP.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from ..polling import eventually
from .conftest import REPO_ROOT, Kube

pytestmark = pytest.mark.e2e

EXAMPLE = REPO_ROOT / "examples" / "rag-finetune-job-cpu.yaml"
SUCCEED_TIMEOUT_S = 30 * 60
TRAINER_RESOURCE = "rag_trainer"
RETRIEVAL_RESOURCE = "rag_retrieval"
RETRIEVAL_ACTOR_CLASS = "RetrievalActor"
TRAIN_WORKER_CLASS = "RayTrainWorker"


def example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())


def example_name() -> str:
    return example()["metadata"]["name"]


def example_namespace() -> str:
    return example()["metadata"].get("namespace", "default")


def diagnostics(kube: Kube, name: str, ns: str) -> str:
    """What a failed run leaves to read: the CR, its RayJob, recent events and the operator log."""
    parts = []
    for args in (
        ("-n", ns, "get", "ragfinetunejob", name, "-o", "yaml"),
        ("-n", ns, "get", "rayjob", name, "-o", "yaml"),
        ("-n", ns, "get", "events", "--sort-by=.lastTimestamp"),
        ("-n", "rag-system", "logs", "deployment/rag-finetune-operator", "--tail=80"),
    ):
        proc = kube.run(*args, check=False)
        parts.append(f"$ kubectl {' '.join(args)}\n{proc.stdout}{proc.stderr}")
    return "\n".join(parts)


@pytest.fixture(scope="module")
def finished_job(kube: Kube) -> dict[str, Any]:
    """Apply the CPU example (fresh) and wait for phase Succeeded; fail fast on Failed."""
    name, ns = example_name(), example_namespace()
    kube.run("delete", "-f", str(EXAMPLE), "--ignore-not-found", "--wait=true", timeout=600)
    kube.run("apply", "-f", str(EXAMPLE))

    def succeeded() -> dict[str, Any] | None:
        obj = kube.json("-n", ns, "get", "ragfinetunejob", name)
        phase = (obj.get("status") or {}).get("phase")
        if phase == "Failed":
            raise AssertionError(f"{name} failed:\n{diagnostics(kube, name, ns)}")
        return obj if phase == "Succeeded" else None

    try:
        return eventually(succeeded, SUCCEED_TIMEOUT_S, f"RagFinetuneJob {name} succeeding", interval=10)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{diagnostics(kube, name, ns)}") from None


def groups_declaring(rayjob: dict[str, Any], resource: str) -> set[str]:
    """Worker groups whose pods declare the Ray custom resource (rayStartParams.resources)."""
    groups = rayjob["spec"]["rayClusterSpec"].get("workerGroupSpecs", [])
    return {
        g["groupName"] for g in groups if resource in str(g.get("rayStartParams", {}).get("resources", ""))
    }


def ray_state(kube: Kube, ns: str, head_pod: str, what: str) -> list[dict[str, Any]]:
    """`ray list <what>` on the head pod, as JSON (dead actors included, with their node)."""
    proc = kube.run(
        "-n", ns, "exec", head_pod, "--", "ray", "list", what, "--detail", "--format", "json", "--limit", "10000",
        timeout=180,
    )  # fmt: skip
    return json.loads(proc.stdout)


def test_cpu_example_succeeds(finished_job: dict[str, Any]) -> None:
    status = finished_job["status"]
    assert status["phase"] == "Succeeded"
    assert status.get("jobStatus") in (None, "SUCCEEDED"), status


def test_retrieval_actors_ran_on_retrieval_pods_and_trainers_on_trainer_pods(
    kube: Kube, finished_job: dict[str, Any]
) -> None:
    name, ns = example_name(), example_namespace()
    rayjob = kube.json("-n", ns, "get", "rayjob", name)
    cluster = rayjob["status"]["rayClusterName"]
    trainer_groups = groups_declaring(rayjob, TRAINER_RESOURCE)
    retrieval_groups = groups_declaring(rayjob, RETRIEVAL_RESOURCE)
    assert trainer_groups and retrieval_groups and not trainer_groups & retrieval_groups, rayjob["spec"]

    pods = kube.json("-n", ns, "get", "pods", "-l", f"ray.io/cluster={cluster}")["items"]
    group_of_ip = {p["status"].get("podIP"): p["metadata"]["labels"].get("ray.io/group") for p in pods}
    (head,) = [
        p["metadata"]["name"] for p in pods if p["metadata"]["labels"].get("ray.io/node-type") == "head"
    ]

    nodes = {n["node_id"]: n for n in ray_state(kube, ns, head, "nodes")}
    actors = ray_state(kube, ns, head, "actors")
    placed: dict[str, list[tuple[str, str]]] = {RETRIEVAL_ACTOR_CLASS: [], TRAIN_WORKER_CLASS: []}
    for actor in actors:
        if actor["class_name"] in placed:
            node = nodes[actor["node_id"]]
            placed[actor["class_name"]].append((node["node_ip"], ",".join(sorted(node["resources_total"]))))

    retrieval, trainers = placed[RETRIEVAL_ACTOR_CLASS], placed[TRAIN_WORKER_CLASS]
    assert retrieval, f"no {RETRIEVAL_ACTOR_CLASS} ran: {[a['class_name'] for a in actors]}"
    assert trainers, f"no {TRAIN_WORKER_CLASS} ran: {[a['class_name'] for a in actors]}"
    for ip, resources in retrieval:
        assert RETRIEVAL_RESOURCE in resources.split(","), (
            f"retrieval actor on a node without it: {resources}"
        )
        assert group_of_ip.get(ip) in retrieval_groups, f"retrieval actor on pod group {group_of_ip.get(ip)}"
    for ip, resources in trainers:
        assert TRAINER_RESOURCE in resources.split(","), f"trainer on a node without it: {resources}"
        assert group_of_ip.get(ip) in trainer_groups, f"trainer on pod group {group_of_ip.get(ip)}"


def test_deleting_the_job_removes_its_rayjob_and_pods(kube: Kube, finished_job: dict[str, Any]) -> None:
    name, ns = example_name(), example_namespace()
    cluster = kube.json("-n", ns, "get", "rayjob", name)["status"]["rayClusterName"]
    kube.run("-n", ns, "delete", "ragfinetunejob", name, "--wait=true", timeout=300)

    def rayjob_gone() -> bool:
        return kube.run("-n", ns, "get", "rayjob", name, check=False).returncode != 0

    def pods_gone() -> bool:
        ray_pods = kube.json("-n", ns, "get", "pods", "-l", f"ray.io/cluster={cluster}")["items"]
        submitter = kube.json("-n", ns, "get", "pods", "-l", f"batch.kubernetes.io/job-name={name}")["items"]
        return not ray_pods and not submitter

    eventually(rayjob_gone, 300, f"RayJob {name} garbage-collected", interval=5)
    eventually(pods_gone, 300, f"the pods of {cluster} gone", interval=5)
