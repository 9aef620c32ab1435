"""Kubernetes-style conditions and events: pure helpers both resources' status code uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Condition types both resources set.
INVALID = "Invalid"
SPEC_CHANGE_REJECTED = "SpecChangeRejected"


@dataclass(frozen=True)
class Event:
    """A Kubernetes event to post on one of our custom resources."""

    type: str  # Normal | Warning
    reason: str
    message: str


def set_condition(
    conditions: list[dict[str, Any]] | None,
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: str,
) -> list[dict[str, Any]]:
    """A new list with `type_` set; lastTransitionTime moves only when the status flips."""
    new_status = "True" if status else "False"
    previous = find_condition(conditions, type_)
    changed = previous.get("status") != new_status
    updated = {
        "type": type_,
        "status": new_status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now if changed else previous.get("lastTransitionTime", now),
    }
    result = [updated if c.get("type") == type_ else dict(c) for c in conditions or []]
    if not previous:
        result.append(updated)
    return result


def find_condition(conditions: list[dict[str, Any]] | None, type_: str) -> dict[str, Any]:
    """The condition of `type_`, or {} when absent."""
    return next((c for c in conditions or [] if c.get("type") == type_), {})


def condition_status(conditions: list[dict[str, Any]] | None, type_: str) -> str | None:
    """ "True"/"False" of a condition type, None when absent."""
    return find_condition(conditions, type_).get("status")
