"""The steps both create/resume/update handlers share: reporting a spec that cannot be rendered."""

from __future__ import annotations

from typing import Any

from .conditions import INVALID, Event, set_condition
from .errors import SpecError
from .kube import post_event


def invalid_spec(
    memo: Any,
    body: Any,
    err: SpecError,
    kind: str,
    made: str | None,
    conditions: list[dict[str, Any]],
    stamp: str,
) -> tuple[str, list[dict[str, Any]]]:
    """(message, conditions with Invalid=True) for a spec that cannot be rendered; posts a Warning.

    `made` names the child that already runs (it is left alone), or None when nothing was created.
    """
    outcome = f"{made} is left as it was" if made else "nothing was created"
    message = f"invalid {kind}, {outcome}: {err}"
    post_event(memo, body, Event("Warning", "InvalidSpec", message), stamp)
    return message, set_condition(conditions, INVALID, True, "InvalidSpec", message, stamp)


def valid_spec(conditions: list[dict[str, Any]], stamp: str) -> list[dict[str, Any]]:
    """Conditions with Invalid=False: the spec rendered."""
    return set_condition(conditions, INVALID, False, "SpecValid", "spec is valid", stamp)
