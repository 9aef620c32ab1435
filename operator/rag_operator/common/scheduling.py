"""The PodsScheduled condition both resources set: whether kube-scheduler placed every pod.

A group that fits no node (too little CPU or memory, an untolerated taint) otherwise shows
only as a job that never starts; kube-scheduler writes the reason per node on each pod.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .conditions import find_condition

#: Condition saying whether the scheduler placed every pod, and if not, why.
PODS_SCHEDULED = "PodsScheduled"


@dataclass(frozen=True)
class Scheduling:
    """The PodsScheduled condition, read from pods."""

    scheduled: bool
    reason: str  # Scheduled | Unschedulable | WaitingForScheduler
    message: str


def scheduling(
    pods: list[dict[str, Any]], group_label: str, shared_label: str | None = None
) -> Scheduling | None:
    """Whether the scheduler placed every pod; None when there are no pods yet.

    Unschedulable pods (PodScheduled=False, with kube-scheduler's per-node reason) are reported
    per group (`group_label`), each distinct message once, so a user sees e.g. that the
    retrieval group's memory fits no node. Pods carrying `shared_label` belong to a shared
    RagRetrievalCluster's pool (a job waits on them too) and are named with that cluster.
    """
    if not pods:
        return None
    unschedulable: dict[str, list[str]] = {}
    waiting = 0
    for pod in pods:
        condition = find_condition((pod.get("status") or {}).get("conditions"), "PodScheduled")
        if condition.get("status") == "True":
            continue
        if not condition.get("message"):
            waiting += 1
            continue
        labels = (pod.get("metadata") or {}).get("labels") or {}
        group = labels.get(group_label, "?")
        if shared_label and labels.get(shared_label):
            group += f" of RagRetrievalCluster {labels[shared_label]}"
        unschedulable.setdefault(group, []).append(condition["message"])
    if unschedulable:
        parts = []
        for group, messages in sorted(unschedulable.items()):
            count = f"{len(messages)} pod{'s' if len(messages) > 1 else ''}"
            why = " | ".join(dict.fromkeys(messages))
            parts.append(f"group {group}: {count} cannot be scheduled: {why}")
        return Scheduling(False, "Unschedulable", "; ".join(parts))
    if waiting:
        return Scheduling(False, "WaitingForScheduler", f"{waiting} of {len(pods)} pods not scheduled yet")
    return Scheduling(True, "Scheduled", f"all {len(pods)} pods scheduled")
