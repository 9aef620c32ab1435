"""Why Kueue holds a queued job: its Workload's admission condition, so `kubectl describe rfj`
says "no quota" or "no such LocalQueue" without the user reading Kueue's objects.

Kueue makes one Workload per RayJob, labelled with the RayJob's uid. Its QuotaReserved condition
says why it waits (reason Pending: not enough quota; Inadmissible: e.g. the LocalQueue does not
exist, or is stopped). Pure functions here; the controller's timer reads the Workloads.
"""

from __future__ import annotations

from typing import Any

from ..common.names import LABEL_KUEUE_QUEUE

KUEUE_GROUP = "kueue.x-k8s.io"
#: Newest first: v1beta2 since Kueue 0.15; older releases serve v1beta1 only.
WORKLOAD_VERSIONS = ("v1beta2", "v1beta1")
WORKLOAD_PLURAL = "workloads"
#: The label Kueue puts on a job's Workload: the job's uid.
JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"


def queue_of(rayjob: dict[str, Any]) -> str | None:
    """The LocalQueue a RayJob was sent to, if any."""
    return ((rayjob.get("metadata") or {}).get("labels") or {}).get(LABEL_KUEUE_QUEUE)


def waiting_message(queue: str, kueue_says: str | None = None) -> str:
    """status.message of a job Kueue holds, with Kueue's own reason when known."""
    base = f"waiting for Kueue to admit it from LocalQueue {queue}"
    return f"{base}: {kueue_says}" if kueue_says else base


def admission_detail(workloads: list[dict[str, Any]]) -> str | None:
    """What the newest Workload's QuotaReserved condition says while it has no quota, as
    '<reason>: <message>'; None when there is no Workload yet or it holds quota."""
    if not workloads:
        return None
    newest = max(workloads, key=lambda w: (w.get("metadata") or {}).get("creationTimestamp") or "")
    for condition in (newest.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "QuotaReserved" and condition.get("status") != "True":
            text = (condition.get("message") or "").strip()
            reason = condition.get("reason") or "Pending"
            return f"{reason}: {text}" if text else reason
    return None
