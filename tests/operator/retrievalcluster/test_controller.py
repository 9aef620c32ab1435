"""The RagRetrievalCluster handlers and the shared-job path of the RagFinetuneJob handler, called
directly against the in-memory Kubernetes API of rfj_testlib (no API server runs on these
machines; tests/cluster runs the same flow on a real one). kopf's Patch and errors are real;
the dashboard is a loopback HTTP server (see test_rrc_actors.py for why).
"""

from __future__ import annotations

import copy
from typing import Any

import kopf
import pytest
import yaml

from rag_job.config import actor_name
from rag_operator.common import names
from rag_operator.finetunejob import controller
from rag_operator.retrievalcluster import controller as rrc_controller
from tests.operator.testlib import NO_FIT, RRC_EXAMPLE, SHARED_JOB_EXAMPLE, FakeMemo, merge_patch
from tests.operator.testlib import scheduled_pod as pod

from .test_actors import FakeDashboard, row

NS = "ml"
G, V = names.GROUP, names.VERSION
RAY = names.RAY_GROUP


def submit_cluster(memo: FakeMemo, **spec_changes: Any) -> dict[str, Any]:
    doc = yaml.safe_load(RRC_EXAMPLE.read_text())
    doc["spec"].update(spec_changes)
    return memo.custom.put(G, names.RRC_PLURAL, doc)


def submit_job(memo: FakeMemo, name: str = "rag-nq-lr3e5") -> dict[str, Any]:
    doc = yaml.safe_load(SHARED_JOB_EXAMPLE.read_text())
    doc["metadata"]["name"] = name
    return memo.custom.put(G, names.PLURAL, doc)


def get(memo: FakeMemo, plural: str, name: str) -> dict[str, Any]:
    group = RAY if plural in (names.RAYJOB_PLURAL, names.RAYCLUSTER_PLURAL) else G
    return memo.custom.get_namespaced_custom_object(group, V, NS, plural, name)


def run(handler, memo: FakeMemo, plural: str, body: dict[str, Any]) -> kopf.Patch:
    """Call a handler the way kopf does, then apply its patch to the stored object."""
    patch = kopf.Patch()
    try:
        handler(body=body, memo=memo, patch=patch)
    finally:
        key = (G, plural, NS, body["metadata"]["name"])
        memo.custom.objects[key] = merge_patch(memo.custom.objects[key], dict(patch))
    return patch


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def kuberay_moves(memo: FakeMemo, plural: str, name: str, **ray_status: Any) -> None:
    """KubeRay updates the status of a RayCluster or RayJob."""
    key = (RAY, plural, NS, name)
    memo.custom.objects[key] = merge_patch(memo.custom.objects[key], {"status": ray_status})


def make_ready(memo: FakeMemo, dashboard: FakeDashboard | None = None) -> dict[str, Any]:
    """The cluster comes up: pods ready, service RUNNING, (optionally) every actor ALIVE."""
    kuberay_moves(memo, names.RAYCLUSTER_PLURAL, "wiki-dpr", state="ready", readyWorkerReplicas=2)
    kuberay_moves(
        memo,
        names.RAYJOB_PLURAL,
        "wiki-dpr-retrieval-service",
        jobStatus="RUNNING",
        startTime="2026-01-01T00:00:00Z",
    )
    if dashboard is not None:
        dashboard.rows = [row(actor_name("wiki-dpr", s, 0)) for s in range(4)]
        memo.fetch_actors = lambda _url: rrc_controller.actors.fetch_actors(dashboard.url)
    return rrc_controller.refresh(memo, NS, "wiki-dpr", read_actors=dashboard is not None) or {}


@pytest.fixture
def dashboard():
    server = FakeDashboard()
    yield server
    server.stop()


# --- the cluster ----------------------------------------------------------------------------------------


def test_create_makes_an_owned_raycluster_and_service_rayjob_and_reports_the_layout(memo: FakeMemo) -> None:
    body = submit_cluster(memo)
    run(rrc_controller.reconcile_cluster, memo, names.RRC_PLURAL, body)
    raycluster = get(memo, names.RAYCLUSTER_PLURAL, "wiki-dpr")
    service = get(memo, names.RAYJOB_PLURAL, "wiki-dpr-retrieval-service")
    for child in (raycluster, service):
        (owner,) = child["metadata"]["ownerReferences"]
        assert owner["uid"] == body["metadata"]["uid"] and owner["kind"] == names.RRC_KIND
    assert service["spec"]["clusterSelector"] == {"ray.io/cluster": "wiki-dpr"}
    rrc = get(memo, names.RRC_PLURAL, "wiki-dpr")
    st = rrc["status"]
    assert (st["shards"], st["replicas"], st["actorsPerShard"]) == (4, 2, 1)
    assert (st["indexSize"], st["memoryPerPod"], st["memoryComputed"]) == ("64Gi", "50Gi", True)
    assert condition(rrc, "Ready")["status"] == "False"
    assert memo.core.reasons() == ["RayClusterCreated", "ServiceCreated"]
    assert memo.core.events[0]["involvedObject"]["kind"] == names.RRC_KIND


def test_a_restart_creates_nothing_twice(memo: FakeMemo) -> None:
    body = submit_cluster(memo)
    run(rrc_controller.reconcile_cluster, memo, names.RRC_PLURAL, body)
    run(rrc_controller.reconcile_cluster, memo, names.RRC_PLURAL, get(memo, names.RRC_PLURAL, "wiki-dpr"))
    created = [call for call in memo.custom.calls if call[0] == "create"]
    assert sorted(created) == [
        ("create", "networkpolicies", "wiki-dpr-ray"),
        ("create", names.RAYCLUSTER_PLURAL, "wiki-dpr"),
        ("create", names.RAYJOB_PLURAL, "wiki-dpr-retrieval-service"),
    ]


def test_an_invalid_cluster_gets_an_invalid_condition_naming_the_field_and_nothing_is_created(
    memo: FakeMemo,
) -> None:
    body = submit_cluster(memo, retrieval={"replicas": 2, "shards": 4, "actorsPerPod": 1, "indexSize": "1Gi"})
    with pytest.raises(kopf.PermanentError, match=r"spec\.retrieval\.actorsPerPod"):
        run(rrc_controller.reconcile_cluster, memo, names.RRC_PLURAL, body)
    rrc = get(memo, names.RRC_PLURAL, "wiki-dpr")
    assert condition(rrc, "Invalid")["status"] == "True"
    assert "spec.retrieval.actorsPerPod" in condition(rrc, "Ready")["message"]
    assert not [call for call in memo.custom.calls if call[0] == "create"]


def test_a_spec_change_is_refused_naming_the_field(memo: FakeMemo) -> None:
    body = submit_cluster(memo)
    run(rrc_controller.reconcile_cluster, memo, names.RRC_PLURAL, body)
    edited = get(memo, names.RRC_PLURAL, "wiki-dpr")
    edited["spec"]["retrieval"]["replicas"] = 4
    memo.custom.objects[(G, names.RRC_PLURAL, NS, "wiki-dpr")] = copy.deepcopy(edited)
    run(rrc_controller.reconcile_cluster, memo, names.RRC_PLURAL, edited)
    rejected = condition(get(memo, names.RRC_PLURAL, "wiki-dpr"), "SpecChangeRejected")
    assert rejected["status"] == "True" and "spec.retrieval.replicas" in rejected["message"]
    assert get(memo, names.RAYCLUSTER_PLURAL, "wiki-dpr")["spec"]["workerGroupSpecs"][0]["replicas"] == 2


def test_ready_needs_the_raycluster_ready_and_the_service_running(memo: FakeMemo) -> None:
    run(rrc_controller.reconcile_cluster, memo, names.RRC_PLURAL, submit_cluster(memo))
    kuberay_moves(memo, names.RAYCLUSTER_PLURAL, "wiki-dpr", state="ready", readyWorkerReplicas=2)
    rrc_controller.refresh(memo, NS, "wiki-dpr")
    rrc = get(memo, names.RRC_PLURAL, "wiki-dpr")
    assert condition(rrc, "Ready")["status"] == "False"
    assert condition(rrc, "Ready")["reason"] == "ServiceNotRunning"
    make_ready(memo)
    rrc = get(memo, names.RRC_PLURAL, "wiki-dpr")
    assert condition(rrc, "Ready")["status"] == "True" and rrc["status"]["readyWorkerPods"] == 2
    assert "actor states unknown" in condition(rrc, "Ready")["message"]
    assert "ServiceRunning" in memo.core.reasons()


def test_actors_read_from_the_dashboard_give_shards_loaded_replicas_and_load_time(
    memo: FakeMemo, dashboard: FakeDashboard
) -> None:
    run(rrc_controller.reconcile_cluster, memo, names.RRC_PLURAL, submit_cluster(memo))
    dashboard.rows = [row(actor_name("wiki-dpr", 0, 0)), row(actor_name("wiki-dpr", 1, 0))]
    memo.fetch_actors = lambda _url: rrc_controller.actors.fetch_actors(dashboard.url)
    kuberay_moves(memo, names.RAYCLUSTER_PLURAL, "wiki-dpr", state="ready", readyWorkerReplicas=2)
    kuberay_moves(
        memo,
        names.RAYJOB_PLURAL,
        "wiki-dpr-retrieval-service",
        jobStatus="RUNNING",
        startTime="2026-01-01T00:00:00Z",
    )
    rrc_controller.refresh(memo, NS, "wiki-dpr", read_actors=True)
    rrc = get(memo, names.RRC_PLURAL, "wiki-dpr")
    assert (rrc["status"]["shardsLoaded"], rrc["status"]["readyReplicas"]) == (2, 0)
    assert condition(rrc, "Ready")["reason"] == "ActorsLoading"
    # an event between polls keeps judging by the last reading
    rrc_controller.refresh(memo, NS, "wiki-dpr")
    assert condition(get(memo, names.RRC_PLURAL, "wiki-dpr"), "Ready")["status"] == "False"

    dashboard.rows = [row(actor_name("wiki-dpr", s, 0)) for s in range(4)]
    rrc_controller.refresh(memo, NS, "wiki-dpr", read_actors=True)
    rrc = get(memo, names.RRC_PLURAL, "wiki-dpr")
    assert (rrc["status"]["shardsLoaded"], rrc["status"]["readyReplicas"], rrc["status"]["actorsAlive"]) == (
        4,
        1,
        4,
    )
    assert condition(rrc, "Ready")["status"] == "True" and condition(rrc, "Ready")["reason"] == "ActorsLoaded"
    assert rrc["status"]["loadStarted"] == "2026-01-01T00:00:00Z" and rrc["status"]["loadSeconds"] > 0
    first_loaded = rrc["status"]["loadedAt"]
    rrc_controller.refresh(memo, NS, "wiki-dpr", read_actors=True)
    assert get(memo, names.RRC_PLURAL, "wiki-dpr")["status"]["loadedAt"] == first_loaded  # not moved

    dashboard.rows[2] = row(actor_name("wiki-dpr", 2, 0), state="RESTARTING")  # an actor died
    rrc_controller.refresh(memo, NS, "wiki-dpr", read_actors=True)
    rrc = get(memo, names.RRC_PLURAL, "wiki-dpr")
    assert condition(rrc, "Ready")["status"] == "False" and rrc["status"]["shardsLoaded"] == 3


def test_service_events_of_a_jobs_rayjob_do_not_touch_the_cluster(memo: FakeMemo) -> None:
    run(rrc_controller.reconcile_cluster, memo, names.RRC_PLURAL, submit_cluster(memo))
    before = len(memo.custom.calls)
    job_rayjob = {
        "metadata": {
            "name": "rag-nq-lr3e5",
            "namespace": NS,
            "labels": {names.LABEL_RETRIEVAL_CLUSTER: "wiki-dpr"},
        }
    }
    rrc_controller.on_service_rayjob(body=job_rayjob, memo=memo)
    assert len(memo.custom.calls) == before


# --- a job that references the cluster ---------------------------------------------------------------


def reconcile_job(memo: FakeMemo, name: str = "rag-nq-lr3e5") -> kopf.Patch:
    return run(controller.reconcile, memo, names.PLURAL, get(memo, names.PLURAL, name))


def test_a_job_on_a_missing_cluster_waits_with_a_status_and_creates_nothing(memo: FakeMemo) -> None:
    submit_job(memo)
    with pytest.raises(kopf.TemporaryError) as err:
        reconcile_job(memo)
    assert err.value.delay == controller.WAIT_FOR_CLUSTER_SECONDS
    job = get(memo, names.PLURAL, "rag-nq-lr3e5")
    assert job["status"]["phase"] == "Pending" and job["status"]["reason"] == "RetrievalClusterMissing"
    assert "wiki-dpr" in condition(job, "RetrievalClusterReady")["message"]
    assert not [c for c in memo.custom.calls if c[0] == "create"]
    with pytest.raises(kopf.TemporaryError):  # a retry: same status, no second event
        reconcile_job(memo)
    assert memo.core.reasons() == ["RetrievalClusterMissing"]


def test_a_job_waits_for_a_cluster_that_is_not_ready_then_runs_on_it(memo: FakeMemo) -> None:
    run(rrc_controller.reconcile_cluster, memo, names.RRC_PLURAL, submit_cluster(memo))
    submit_job(memo)
    with pytest.raises(kopf.TemporaryError, match="not Ready"):
        reconcile_job(memo)
    assert get(memo, names.PLURAL, "rag-nq-lr3e5")["status"]["reason"] == "RetrievalClusterNotReady"

    make_ready(memo)
    reconcile_job(memo)
    rayjob = get(memo, names.RAYJOB_PLURAL, "rag-nq-lr3e5")
    assert rayjob["spec"]["clusterSelector"] == {"ray.io/cluster": "wiki-dpr"}
    assert "rayClusterSpec" not in rayjob["spec"]
    job = get(memo, names.PLURAL, "rag-nq-lr3e5")
    assert job["status"]["reason"] == "RayJobCreated" and job["status"]["trainers"] == 8
    assert condition(job, "RetrievalClusterReady")["status"] == "True"


def test_two_jobs_share_one_cluster_and_both_hold_its_deletion(
    memo: FakeMemo, dashboard: FakeDashboard
) -> None:
    run(rrc_controller.reconcile_cluster, memo, names.RRC_PLURAL, submit_cluster(memo))
    make_ready(memo, dashboard)
    for name in ("job-a", "job-b"):
        submit_job(memo, name)
        reconcile_job(memo, name)
    selectors = {
        get(memo, names.RAYJOB_PLURAL, n)["spec"]["clusterSelector"]["ray.io/cluster"]
        for n in ("job-a", "job-b")
    }
    assert selectors == {"wiki-dpr"}
    assert len([c for c in memo.custom.calls if c[:2] == ("create", names.RAYCLUSTER_PLURAL)]) == 1

    rrc = get(memo, names.RRC_PLURAL, "wiki-dpr")
    rrc["metadata"]["deletionTimestamp"] = "2026-01-01T01:00:00Z"
    memo.custom.objects[(G, names.RRC_PLURAL, NS, "wiki-dpr")] = copy.deepcopy(rrc)
    with pytest.raises(kopf.TemporaryError, match="job-a, job-b"):
        run(rrc_controller.guard_deletion, memo, names.RRC_PLURAL, rrc)
    blocked = get(memo, names.RRC_PLURAL, "wiki-dpr")
    assert blocked["status"]["inUseBy"] == ["job-a", "job-b"]
    assert condition(blocked, "DeletionBlocked")["status"] == "True"
    assert "DeletionBlocked" in memo.core.reasons()

    # a new job does not start on a cluster being deleted
    submit_job(memo, "job-c")
    with pytest.raises(kopf.TemporaryError, match="being deleted"):
        reconcile_job(memo, "job-c")
    memo.custom.delete(G, names.PLURAL, NS, "job-c")

    for name, phase in (("job-a", "Succeeded"), ("job-b", "Running")):
        key = (G, names.PLURAL, NS, name)
        memo.custom.objects[key] = merge_patch(memo.custom.objects[key], {"status": {"phase": phase}})
    with pytest.raises(kopf.TemporaryError, match="job-b"):
        run(rrc_controller.guard_deletion, memo, names.RRC_PLURAL, get(memo, names.RRC_PLURAL, "wiki-dpr"))
    key = (G, names.PLURAL, NS, "job-b")
    memo.custom.objects[key] = merge_patch(memo.custom.objects[key], {"status": {"phase": "Failed"}})
    run(rrc_controller.guard_deletion, memo, names.RRC_PLURAL, get(memo, names.RRC_PLURAL, "wiki-dpr"))
    assert memo.core.reasons()[-1] == "Deleting"


def test_an_invalid_shared_job_names_the_field_and_waits_for_nothing(memo: FakeMemo) -> None:
    run(rrc_controller.reconcile_cluster, memo, names.RRC_PLURAL, submit_cluster(memo))
    make_ready(memo)
    doc = submit_job(memo)
    doc["spec"]["head"] = {"cpu": 2}
    memo.custom.objects[(G, names.PLURAL, NS, doc["metadata"]["name"])] = copy.deepcopy(doc)
    with pytest.raises(kopf.PermanentError, match=r"spec\.head"):
        reconcile_job(memo)
    assert get(memo, names.PLURAL, "rag-nq-lr3e5")["status"]["reason"] == "InvalidSpec"


def test_a_failed_service_says_how_to_restart_it_and_a_deleted_one_is_created_again(memo: FakeMemo) -> None:
    body = submit_cluster(memo)
    run(rrc_controller.reconcile_cluster, memo, names.RRC_PLURAL, body)
    make_ready(memo)
    kuberay_moves(memo, names.RAYJOB_PLURAL, "wiki-dpr-retrieval-service", jobStatus="FAILED")
    rrc_controller.refresh(memo, NS, "wiki-dpr")
    ready = condition(get(memo, names.RRC_PLURAL, "wiki-dpr"), "Ready")
    assert ready["status"] == "False" and "delete RayJob wiki-dpr-retrieval-service" in ready["message"]

    memo.custom.delete(RAY, names.RAYJOB_PLURAL, NS, "wiki-dpr-retrieval-service")
    rrc_controller.refresh(memo, NS, "wiki-dpr")
    service = get(memo, names.RAYJOB_PLURAL, "wiki-dpr-retrieval-service")
    assert "status" not in service  # a fresh RayJob, which KubeRay submits again
    (owner,) = service["metadata"]["ownerReferences"]
    assert owner["uid"] == body["metadata"]["uid"]
    assert memo.core.reasons().count("ServiceCreated") == 2


def test_a_pool_pod_that_fits_no_node_is_reported_once_and_cleared_when_placed(memo: FakeMemo) -> None:
    """The autoscaler adds trainer-pool pods for jobs; one that fits no node shows on the cluster
    (PodsScheduled=False naming the group, one Warning), read on polls only."""
    run(rrc_controller.reconcile_cluster, memo, names.RRC_PLURAL, submit_cluster(memo))
    make_ready(memo)
    pending = pod("trainer", "False", NO_FIT)
    memo.core.pods += [pod("retrieval", "True"), pending]
    for member in memo.core.pods:
        member["metadata"]["labels"][names.LABEL_RETRIEVAL_CLUSTER] = "wiki-dpr"
    rrc_controller.refresh(memo, NS, "wiki-dpr")  # an event, not a poll: pods are not read
    types = [c["type"] for c in get(memo, names.RRC_PLURAL, "wiki-dpr")["status"]["conditions"]]
    assert "PodsScheduled" not in types
    for _ in range(2):
        rrc_controller.refresh(memo, NS, "wiki-dpr", read_actors=True)
    placed = condition(get(memo, names.RRC_PLURAL, "wiki-dpr"), "PodsScheduled")
    assert (placed["status"], placed["reason"]) == ("False", "Unschedulable")
    assert placed["message"] == f"group trainer: 1 pod cannot be scheduled: {NO_FIT}"
    assert memo.core.reasons().count("Unschedulable") == 1
    pending["status"]["conditions"][0].update(status="True", message="")
    rrc_controller.refresh(memo, NS, "wiki-dpr", read_actors=True)
    placed = condition(get(memo, names.RRC_PLURAL, "wiki-dpr"), "PodsScheduled")
    assert (placed["status"], placed["reason"]) == ("True", "Scheduled")
