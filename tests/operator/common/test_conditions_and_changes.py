"""Shared pure helpers: conditions keep their transition time; which spec changes are refused."""

from __future__ import annotations

from rag_operator.common import changes, conditions
from rag_operator.finetunejob.controller import MUTABLE_PATHS


def test_condition_transition_time_moves_only_when_the_status_flips() -> None:
    first = conditions.set_condition([], "Running", True, "Running", "a", "t1")
    same = conditions.set_condition(first, "Running", True, "Running", "b", "t2")
    flipped = conditions.set_condition(same, "Running", False, "NotRunning", "c", "t3")
    assert first[0]["lastTransitionTime"] == "t1"
    assert same[0]["lastTransitionTime"] == "t1" and same[0]["message"] == "b"
    assert flipped[0]["lastTransitionTime"] == "t3" and flipped[0]["status"] == "False"
    assert len(flipped) == 1


def test_only_suspend_may_change_on_a_live_rayjob() -> None:
    applied = {"trainers": {"replicas": 2, "gpusPerPod": 4}, "rayJob": {"suspend": False}, "image": "a"}
    requested = {"trainers": {"replicas": 3, "gpusPerPod": 4}, "rayJob": {"suspend": True}, "image": "b"}
    assert changes.rejected_changes(applied, requested, MUTABLE_PATHS) == [
        "spec.image",
        "spec.trainers.replicas",
    ]
    assert changes.rejected_changes(applied, {**applied, "rayJob": {"suspend": True}}, MUTABLE_PATHS) == []


def test_added_and_removed_fields_are_changes_too() -> None:
    applied = {"retrieval": {"replicas": 1}}
    requested = {"retrieval": {"replicas": 1, "memory": "8Gi"}, "secrets": [{"name": "A"}]}
    assert changes.rejected_changes(applied, requested, MUTABLE_PATHS) == [
        "spec.retrieval.memory",
        "spec.secrets",
    ]
