"""What a queued job's status says about Kueue's Workload (pure functions of queueing.py)."""

from __future__ import annotations

from typing import Any

from rag_operator.finetunejob.queueing import admission_detail, waiting_message


def workload(created: str, **quota_reserved: str) -> dict[str, Any]:
    conditions = [{"type": "QuotaReserved", **quota_reserved}] if quota_reserved else []
    return {"metadata": {"creationTimestamp": created}, "status": {"conditions": conditions}}


def test_no_workload_yet_or_quota_held_says_nothing_more() -> None:
    assert admission_detail([]) is None
    assert admission_detail([workload("2026-12-04T05:00:00Z")]) is None  # Kueue has not looked yet
    assert admission_detail([workload("2026-12-04T05:00:00Z", status="True", reason="QuotaReserved")]) is None


def test_the_newest_workload_gives_kueues_reason_and_message() -> None:
    old = workload("2026-12-04T05:00:00Z", status="False", reason="Pending", message="old news")
    new = workload(
        "2026-12-04T06:00:00Z",
        status="False",
        reason="Inadmissible",
        message="LocalQueue rag-queue doesn't exist",
    )
    assert admission_detail([new, old]) == "Inadmissible: LocalQueue rag-queue doesn't exist"
    assert admission_detail([workload("2026-12-04T05:00:00Z", status="False")]) == "Pending"


def test_the_message_names_the_queue_and_adds_kueues_reason_when_known() -> None:
    assert waiting_message("q") == "waiting for Kueue to admit it from LocalQueue q"
    assert (
        waiting_message("q", "Pending: no quota")
        == "waiting for Kueue to admit it from LocalQueue q: Pending: no quota"
    )
