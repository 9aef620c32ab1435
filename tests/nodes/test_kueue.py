"""Kueue queues RagFinetuneJobs on real pods, as a platform team runs GPU jobs through it.

A real Kueue (its controller manager and admission webhooks, built by `make toolchain`; see
hack/localcluster/kueue.py for how it runs beside the API server) with a ClusterQueue whose quota
holds exactly one job. Two RagFinetuneJobs with `spec.rayJob.queueName` are applied together:
one is admitted and runs; the other waits, phase Queued, its RayJob suspended and no Ray pod of
its own, because Kueue holds it (not the nodes: nothing of it reaches the scheduler). When the
first finishes, Kueue releases its quota and admits the second, which then runs to Succeeded.
The operator never touches `suspend` on these RayJobs; Kueue's RayJob webhook validates them.
The jobs also carry a trainers `pod` override (label, env from a ConfigMap, a scratch volume),
checked inside the running trainer pods.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import yaml

from localcluster.kueue import Kueue, start_kueue, stop_kueue
from localcluster.realcluster import RealCluster
from localcluster.toolchain import REPO, Toolchain, ToolchainMissing, kueue_dir
from rag_operator.common.quantities import parse_quantity
from rag_operator.common.sizing import no_kb_metadata
from rag_operator.finetunejob.render import rayjob_for

from ..polling import eventually
from .test_example_job import get

pytestmark = pytest.mark.node

EXAMPLE = REPO / "examples" / "rag-finetune-job-cpu.yaml"
KUEUE_API = "kueue.x-k8s.io/v1beta2"
FLAVOR, CLUSTER_QUEUE, LOCAL_QUEUE = "rag-default", "rag-one-job", "rag-queue"
#: A per-group pod override, as a platform team adds one: a label, env from a ConfigMap and a
#: scratch volume on the trainer pods (checked on the running pods below).
TEAM_SETTINGS = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "team-settings"},
    "data": {"team": "ml"},
}
TRAINER_OVERRIDE = {
    "labels": {"team": "ml"},
    "env": [{"name": "RAG_TEAM", "valueFrom": {"configMapKeyRef": {"name": "team-settings", "key": "team"}}}],
    "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "64Mi"}}],
    "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
}


@pytest.fixture(scope="module")
def kueue(real_cluster: RealCluster, node_toolchain: Toolchain) -> Iterator[Kueue]:
    """Kueue on the real-node cluster for this module; unregistered and stopped after it."""
    try:
        directory = kueue_dir()
    except ToolchainMissing as err:
        pytest.skip(f"Kueue unavailable: {err}")
    started = time.monotonic()
    running = start_kueue(real_cluster.plane, directory, node_toolchain.openssl)
    print(f"\nKueue up in {time.monotonic() - started:.1f} s")
    try:
        yield running
    finally:
        stop_kueue(real_cluster.plane, running)


def queued_job(name: str) -> dict[str, Any]:
    """The CPU example, renamed and sent to the LocalQueue."""
    job = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    job["metadata"]["name"] = name
    job["spec"]["rayJob"]["queueName"] = LOCAL_QUEUE
    # Kueue counts a finished job's quota until KubeRay deletes its cluster (measured: the
    # example's 600 s TTL held the second job for 600 s more), so queued jobs keep none.
    job["spec"]["rayJob"]["ttlSecondsAfterFinished"] = 0
    job["spec"]["trainers"]["pod"] = TRAINER_OVERRIDE
    return job


def one_job_of_quota(job: dict[str, Any], namespace: str) -> dict[str, Decimal]:
    """CPU and memory one job's pods request, as Kueue counts them: the head, every worker pod
    and KubeRay's submitter pod, from the RayJob the operator renders for it."""
    rayjob, _ = rayjob_for({**job, "metadata": {**job["metadata"], "namespace": namespace}}, no_kb_metadata)
    cluster = rayjob["spec"]["rayClusterSpec"]
    pods = [(1, cluster["headGroupSpec"]["template"])]
    pods += [(group["replicas"], group["template"]) for group in cluster["workerGroupSpecs"]]
    if rayjob["spec"].get("submissionMode", "K8sJobMode") == "K8sJobMode":
        pods.append((1, rayjob["spec"]["submitterPodTemplate"]))
    total = {"cpu": Decimal(0), "memory": Decimal(0)}
    for count, template in pods:
        for container in template["spec"]["containers"]:
            for resource in total:
                total[resource] += count * parse_quantity(container["resources"]["requests"][resource])
    return total


def queue_objects(namespace: str, quota: dict[str, Decimal]) -> list[dict[str, Any]]:
    """A flavor, a ClusterQueue with quota for exactly `quota`, and the namespace's LocalQueue."""
    cpu_millis, memory_bytes = int(quota["cpu"] * 1000), int(quota["memory"])
    return [
        {"apiVersion": KUEUE_API, "kind": "ResourceFlavor", "metadata": {"name": FLAVOR}},
        {
            "apiVersion": KUEUE_API,
            "kind": "ClusterQueue",
            "metadata": {"name": CLUSTER_QUEUE},
            "spec": {
                "namespaceSelector": {},
                "queueingStrategy": "StrictFIFO",
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory"],
                        "flavors": [
                            {
                                "name": FLAVOR,
                                "resources": [
                                    {"name": "cpu", "nominalQuota": f"{cpu_millis}m"},
                                    {"name": "memory", "nominalQuota": str(memory_bytes)},
                                ],
                            }
                        ],
                    }
                ],
            },
        },
        {
            "apiVersion": KUEUE_API,
            "kind": "LocalQueue",
            "metadata": {"name": LOCAL_QUEUE, "namespace": namespace},
            "spec": {"clusterQueue": CLUSTER_QUEUE},
        },
    ]


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == kind]
    return found[0] if found else {}


def workload_of(node_kubectl, namespace: str, rayjob: str) -> dict[str, Any] | None:
    """Kueue's Workload for a RayJob (it owns it)."""
    for workload in get(node_kubectl, "-n", namespace, "workloads.kueue.x-k8s.io")["items"]:
        owners = workload["metadata"].get("ownerReferences") or []
        if any(o["kind"] == "RayJob" and o["name"] == rayjob for o in owners):
            return workload
    return None


def test_kueue_admits_one_job_at_a_time_from_a_queue_with_quota_for_one(
    real_cluster: RealCluster,
    chart_operator: dict[str, Any],
    kueue: Kueue,
    data_namespace: str,
    node_kubectl,
    node_report: list[str],
) -> None:
    namespace = data_namespace
    jobs = [queued_job("queued-first"), queued_job("queued-second")]
    quota = one_job_of_quota(jobs[0], namespace)
    queues = "---\n".join(yaml.safe_dump(doc) for doc in [*queue_objects(namespace, quota), TEAM_SETTINGS])
    done = node_kubectl("-n", namespace, "apply", "-f", "-", stdin=queues)
    assert done.returncode == 0, done.stderr

    def queue_active() -> bool:
        return condition(get(node_kubectl, "clusterqueue", CLUSTER_QUEUE), "Active").get("status") == "True"

    eventually(queue_active, timeout=60, what=f"ClusterQueue {CLUSTER_QUEUE} Active", interval=1)

    started = time.monotonic()
    done = node_kubectl("-n", namespace, "apply", "-f", "-", stdin="---\n".join(map(yaml.safe_dump, jobs)))
    assert done.returncode == 0, done.stderr
    names = [job["metadata"]["name"] for job in jobs]
    phases: dict[str, list[str]] = {name: [] for name in names}

    def status_of(name: str) -> dict[str, Any]:
        status = get(node_kubectl, "-n", namespace, "rfj", name).get("status") or {}
        phase = status.get("phase")
        if phase and (not phases[name] or phases[name][-1] != phase):
            phases[name].append(phase)
        return status

    def one_admitted_one_queued() -> tuple[str, str] | None:
        statuses = {name: status_of(name) for name in names}
        running = [n for n, s in statuses.items() if s.get("phase") == "Running"]
        queued = [n for n, s in statuses.items() if s.get("phase") == "Queued"]
        return (running[0], queued[0]) if len(running) == 1 and len(queued) == 1 else None

    first, second = eventually(
        one_admitted_one_queued, timeout=300, what="one job Running and the other Queued", interval=1
    )

    # The second is held by Kueue: its RayJob suspended with the queue label, no RayCluster or pod
    # of its own, its Workload without quota, and the RagFinetuneJob's status says so.
    status = status_of(second)
    assert status["phase"] == "Queued", status
    assert status["reason"] == "WaitingForAdmission" and LOCAL_QUEUE in status["message"], status

    def kueue_says_why() -> str | None:  # the operator's queue timer reads the Workload
        message = status_of(second).get("message") or ""
        return message if "insufficient unused quota" in message else None

    why = eventually(
        kueue_says_why, timeout=60, what=f"{second}'s status saying why Kueue holds it", interval=1
    )
    status = status_of(second)
    assert condition({"status": status}, "Queued")["status"] == "True", status
    rayjob = get(node_kubectl, "-n", namespace, "rayjob", status["rayJobName"])
    assert rayjob["spec"]["suspend"] is True, rayjob["spec"]
    assert rayjob["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == LOCAL_QUEUE
    held = workload_of(node_kubectl, namespace, status["rayJobName"])
    assert held is not None, "Kueue made no Workload for the queued RayJob"
    assert condition(held, "QuotaReserved").get("status") != "True", held["status"]
    first_status = status_of(first)
    first_cluster = first_status["rayClusterName"]
    for pod in get(node_kubectl, "-n", namespace, "pods", "-l", "ray.io/node-type")["items"]:
        assert pod["metadata"]["labels"].get("ray.io/cluster") == first_cluster, pod["metadata"]["name"]

    # The trainers' pod override reached the running pods: the label, and in the container the
    # ConfigMap's value and a writable scratch volume.
    def trainer_pods() -> list[dict[str, Any]] | None:
        selector = f"ray.io/cluster={first_cluster},ray.io/group=trainer"
        pods = get(node_kubectl, "-n", namespace, "pods", "-l", selector)["items"]
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        return running if running and len(running) == len(pods) else None

    for pod in eventually(trainer_pods, timeout=300, what=f"{first}'s trainer pods Running", interval=2):
        assert pod["metadata"]["labels"]["team"] == "ml", pod["metadata"]["labels"]
        probe = 'echo "$RAG_TEAM"; touch /scratch/written && echo written'
        done = node_kubectl(
            "-n", namespace, "exec", pod["metadata"]["name"], "-c", "ray-worker", "--", "sh", "-c", probe
        )
        assert done.returncode == 0 and done.stdout.split() == ["ml", "written"], (done.stdout, done.stderr)

    def finished(name: str) -> str | None:
        phase = status_of(name).get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    assert (
        eventually(lambda: finished(first), timeout=900, what=f"{first} finished", interval=2) == "Succeeded"
    ), phases
    first_s = time.monotonic() - started
    # Only now is the second admitted: Kueue reserved its quota after the first's Workload ended.
    assert (
        eventually(lambda: finished(second), timeout=900, what=f"{second} finished", interval=2)
        == "Succeeded"
    ), phases
    total_s = time.monotonic() - started
    first_workload = workload_of(node_kubectl, namespace, first_status["rayJobName"])
    second_workload = workload_of(node_kubectl, namespace, status["rayJobName"])
    assert first_workload is not None and second_workload is not None
    finished_at = condition(first_workload, "Finished")["lastTransitionTime"]
    admitted_at = condition(second_workload, "QuotaReserved")["lastTransitionTime"]
    assert condition(second_workload, "QuotaReserved")["status"] == "True", second_workload["status"]
    assert admitted_at >= finished_at, (admitted_at, finished_at)  # RFC 3339 UTC strings sort by time
    # Pending may come first (the job before its RayJob exists); Queued precedes its run.
    assert "Queued" in phases[second] and phases[second][-2:] == ["Running", "Succeeded"], phases
    assert phases[second].index("Queued") < phases[second].index("Running"), phases
    assert "Queued" not in phases[first][phases[first].index("Running") :], phases

    node_report.append(
        f"Kueue on real pods: quota for one job ({quota['cpu']} CPU); {first} Succeeded after {first_s:.0f}s, "
        f"{second} (Queued until then) after {total_s:.0f}s; phases {phases}; while queued: {why!r}"
    )
    for kind, name in (
        ("localqueue", LOCAL_QUEUE),
        ("clusterqueue", CLUSTER_QUEUE),
        ("resourceflavor", FLAVOR),
    ):
        node_kubectl("-n", namespace, "delete", kind, name, "--wait=false")
    node_kubectl("-n", namespace, "delete", "configmap", "team-settings")
