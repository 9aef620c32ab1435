"""The PodsScheduled condition from a job's pods (what kube-scheduler wrote on them): the pure
summary, and the timer's glue on the in-memory fake API.

The real scheduler, API server and RBAC are exercised in tests/cluster/test_placement.py; the
fake is used here for what a real server shows only by chance: a write conflict.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from rag_operator.common import names
from rag_operator.finetunejob import controller, status
from tests.operator.testlib import FakeMemo, load_example

NO_FIT = "0/4 nodes are available: 2 Insufficient memory, 2 node(s) had untolerated taint {nvidia.com/gpu: }."


def pod(group: str, scheduled: str | None, message: str = "") -> dict[str, Any]:
    """A pod as the API returns it; scheduled None: the scheduler has not looked at it yet."""
    conditions = []
    if scheduled is not None:
        conditions.append({"type": "PodScheduled", "status": scheduled, "message": message})
    return {
        "metadata": {"labels": {names.LABEL_GROUP: group}},
        "status": {"phase": "Pending" if scheduled != "True" else "Running", "conditions": conditions},
    }


def test_no_pods_yet_sets_nothing() -> None:
    assert status.scheduling([], names.LABEL_GROUP) is None


def test_every_pod_scheduled() -> None:
    found = status.scheduling([pod("head", "True"), pod("trainer", "True")], names.LABEL_GROUP)
    assert found == status.Scheduling(True, "Scheduled", "all 2 pods scheduled")


def test_an_unschedulable_group_is_named_with_the_schedulers_message_once() -> None:
    pods = [pod("head", "True"), pod("trainer", "True"), pod("retrieval", "False", NO_FIT)]
    pods.append(pod("retrieval", "False", NO_FIT))
    found = status.scheduling(pods, names.LABEL_GROUP)
    assert found is not None and not found.scheduled and found.reason == "Unschedulable"
    assert found.message == f"group retrieval: 2 pods cannot be scheduled: {NO_FIT}"


def test_two_unschedulable_groups_are_both_reported_in_a_stable_order() -> None:
    pods = [pod("trainer", "False", "no GPU"), pod("retrieval", "False", "no memory")]
    found = status.scheduling(pods, names.LABEL_GROUP)
    assert found is not None
    assert found.message == (
        "group retrieval: 1 pod cannot be scheduled: no memory; group trainer: 1 pod cannot be scheduled: no GPU"
    )


def test_pods_the_scheduler_has_not_seen_are_waiting_not_unschedulable() -> None:
    found = status.scheduling([pod("head", "True"), pod("trainer", None)], names.LABEL_GROUP)
    assert found == status.Scheduling(False, "WaitingForScheduler", "1 of 2 pods not scheduled yet")


def test_a_pod_without_the_group_label_is_reported_under_a_placeholder() -> None:
    stray = pod("x", "False", "no fit")
    del stray["metadata"]["labels"]
    found = status.scheduling([stray], names.LABEL_GROUP)
    assert found is not None and found.message.startswith("group ?: 1 pod cannot be scheduled")


class PodsMemo(FakeMemo):
    """FakeMemo whose core API also lists pods by label, as the real CoreV1Api does."""

    def __init__(self, pods: list[dict[str, Any]]) -> None:
        super().__init__()
        self.pods = pods
        self.core.api_client = ApiClient()
        self.core.list_namespaced_pod = self.list_namespaced_pod

    def list_namespaced_pod(self, namespace: str, label_selector: str) -> dict[str, Any]:
        key, value = label_selector.split("=")
        return {"items": [p for p in self.pods if p["metadata"]["labels"].get(key) == value]}


def started_job(memo: FakeMemo) -> dict[str, Any]:
    doc = load_example("cpu")
    doc["metadata"].update(namespace="ns", resourceVersion="7")
    doc["status"] = {"rayJobName": doc["metadata"]["name"], "phase": "Pending"}
    return memo.custom.put(names.GROUP, names.PLURAL, doc)


def labelled(pod_: dict[str, Any], job: str) -> dict[str, Any]:
    pod_["metadata"]["labels"][names.LABEL_JOB] = job
    return pod_


def test_the_timer_sets_the_condition_and_warns_once() -> None:
    memo = PodsMemo([])
    job = started_job(memo)
    name = job["metadata"]["name"]
    memo.pods += [
        labelled(pod("retrieval", "False", NO_FIT), name),
        labelled(pod("head", "False", "x"), "other"),
    ]
    controller.report_scheduling(body=job, memo=memo)
    controller.report_scheduling(body=job, memo=memo)  # nothing changed: no second write, no second event
    stored = memo.custom.get_namespaced_custom_object(names.GROUP, names.VERSION, "ns", names.PLURAL, name)
    (condition,) = [c for c in stored["status"]["conditions"] if c["type"] == status.PODS_SCHEDULED]
    assert (condition["status"], condition["reason"]) == ("False", "Unschedulable")
    assert condition["message"] == f"group retrieval: 1 pod cannot be scheduled: {NO_FIT}"
    assert memo.core.reasons() == ["Unschedulable"]
    assert [c for c in memo.custom.calls if c[0] == "patch-status"] == [("patch-status", names.PLURAL, name)]


def test_the_timer_skips_a_conflicting_write_and_posts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    memo = PodsMemo([])
    job = started_job(memo)
    memo.pods.append(labelled(pod("retrieval", "False", NO_FIT), job["metadata"]["name"]))

    def conflict(*_: Any, **__: Any) -> None:
        raise ApiException(status=409, reason="Conflict")

    monkeypatch.setattr(memo.custom, "patch_namespaced_custom_object_status", conflict)
    controller.report_scheduling(body=job, memo=memo)
    assert memo.core.reasons() == []


def test_the_timer_only_runs_for_started_unfinished_jobs() -> None:
    assert controller._has_live_pods({"rayJobName": "j", "phase": "Running"})
    assert not controller._has_live_pods({"phase": "Pending"})
    assert not controller._has_live_pods({"rayJobName": "j", "phase": "Succeeded"})
