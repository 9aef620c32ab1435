"""The PodsScheduled condition from a job's pods (what kube-scheduler wrote on them): the pure
summary, and the timer's glue on the in-memory fake API.

The real scheduler, API server and RBAC are exercised in tests/cluster/test_placement.py; the
fake is used here for what a real server shows only by chance: a write conflict.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from rag_operator.common import names
from rag_operator.common.scheduling import PODS_SCHEDULED, Scheduling, scheduling
from rag_operator.finetunejob import controller
from tests.operator.testlib import NO_FIT, FakeMemo, load_example
from tests.operator.testlib import scheduled_pod as pod


def test_no_pods_yet_sets_nothing() -> None:
    assert scheduling([], names.LABEL_GROUP) is None


def test_every_pod_scheduled() -> None:
    found = scheduling([pod("head", "True"), pod("trainer", "True")], names.LABEL_GROUP)
    assert found == Scheduling(True, "Scheduled", "all 2 pods scheduled")


def test_an_unschedulable_group_is_named_with_the_schedulers_message_once() -> None:
    pods = [pod("head", "True"), pod("trainer", "True"), pod("retrieval", "False", NO_FIT)]
    pods.append(pod("retrieval", "False", NO_FIT))
    found = scheduling(pods, names.LABEL_GROUP)
    assert found is not None and not found.scheduled and found.reason == "Unschedulable"
    assert found.message == f"group retrieval: 2 pods cannot be scheduled: {NO_FIT}"


def test_two_unschedulable_groups_are_both_reported_in_a_stable_order() -> None:
    pods = [pod("trainer", "False", "no GPU"), pod("retrieval", "False", "no memory")]
    found = scheduling(pods, names.LABEL_GROUP)
    assert found is not None
    assert found.message == (
        "group retrieval: 1 pod cannot be scheduled: no memory; group trainer: 1 pod cannot be scheduled: no GPU"
    )


def test_pods_the_scheduler_has_not_seen_are_waiting_not_unschedulable() -> None:
    found = scheduling([pod("head", "True"), pod("trainer", None)], names.LABEL_GROUP)
    assert found == Scheduling(False, "WaitingForScheduler", "1 of 2 pods not scheduled yet")


def test_a_pod_without_the_group_label_is_reported_under_a_placeholder() -> None:
    stray = pod("x", "False", "no fit")
    del stray["metadata"]["labels"]
    found = scheduling([stray], names.LABEL_GROUP)
    assert found is not None and found.message.startswith("group ?: 1 pod cannot be scheduled")


def started_job(memo: FakeMemo, example: str = "cpu") -> dict[str, Any]:
    doc = load_example(example)
    doc["metadata"].update(namespace="ns", resourceVersion="7")
    doc["status"] = {"rayJobName": doc["metadata"]["name"], "phase": "Pending"}
    return memo.custom.put(names.GROUP, names.PLURAL, doc)


def labelled(pod_: dict[str, Any], job: str) -> dict[str, Any]:
    pod_["metadata"]["labels"][names.LABEL_JOB] = job
    return pod_


def test_the_timer_sets_the_condition_and_warns_once() -> None:
    memo = FakeMemo()
    job = started_job(memo)
    name = job["metadata"]["name"]
    memo.core.pods += [
        labelled(pod("retrieval", "False", NO_FIT), name),
        labelled(pod("head", "False", "x"), "other"),
    ]
    controller.report_scheduling(body=job, memo=memo)
    controller.report_scheduling(body=job, memo=memo)  # nothing changed: no second write, no second event
    stored = memo.custom.get_namespaced_custom_object(names.GROUP, names.VERSION, "ns", names.PLURAL, name)
    (condition,) = [c for c in stored["status"]["conditions"] if c["type"] == PODS_SCHEDULED]
    assert (condition["status"], condition["reason"]) == ("False", "Unschedulable")
    assert condition["message"] == f"group retrieval: 1 pod cannot be scheduled: {NO_FIT}"
    assert memo.core.reasons() == ["Unschedulable"]
    assert [c for c in memo.custom.calls if c[0] == "patch-status"] == [("patch-status", names.PLURAL, name)]


def test_the_timer_skips_a_conflicting_write_and_posts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    memo = FakeMemo()
    job = started_job(memo)
    memo.core.pods.append(labelled(pod("retrieval", "False", NO_FIT), job["metadata"]["name"]))

    def conflict(*_: Any, **__: Any) -> None:
        raise ApiException(status=409, reason="Conflict")

    monkeypatch.setattr(memo.custom, "patch_namespaced_custom_object_status", conflict)
    controller.report_scheduling(body=job, memo=memo)
    assert memo.core.reasons() == []


def test_the_timer_only_runs_for_started_unfinished_jobs() -> None:
    assert controller._has_live_pods({"rayJobName": "j", "phase": "Running"})
    assert not controller._has_live_pods({"phase": "Pending"})
    assert not controller._has_live_pods({"rayJobName": "j", "phase": "Succeeded"})


def test_a_shared_job_reports_its_clusters_pending_trainer_pods() -> None:
    """A shared job's trainers are pods of the cluster's pool (no job label): a pool pod that fits
    no node is why the job waits, so the job names it, and not the other groups of the cluster."""
    memo = FakeMemo()
    job = started_job(memo, "shared")
    name, ref = job["metadata"]["name"], job["spec"]["retrievalClusterRef"]
    submitter = labelled(pod("submitter", "True"), name)
    pool = [pod("trainer", "True"), pod("trainer", "False", NO_FIT), pod("retrieval", "False", "x")]
    for member in pool:
        member["metadata"]["labels"][names.LABEL_RETRIEVAL_CLUSTER] = ref
    elsewhere = pod("trainer", "False", "y")
    elsewhere["metadata"]["labels"][names.LABEL_RETRIEVAL_CLUSTER] = "another-cluster"
    memo.core.pods += [submitter, *pool, elsewhere]
    controller.report_scheduling(body=job, memo=memo)
    stored = memo.custom.get_namespaced_custom_object(names.GROUP, names.VERSION, "ns", names.PLURAL, name)
    (condition,) = [c for c in stored["status"]["conditions"] if c["type"] == PODS_SCHEDULED]
    assert (condition["status"], condition["reason"]) == ("False", "Unschedulable")
    assert (
        condition["message"]
        == f"group trainer of RagRetrievalCluster {ref}: 1 pod cannot be scheduled: {NO_FIT}"
    )
