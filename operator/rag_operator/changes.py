"""Which spec changes a RayJob that already exists can take, and which it cannot.

KubeRay reads a RayJob's cluster and entrypoint once; only `suspend` acts on a live RayJob.
The comparison is against the spec the RayJob was rendered from (kept in an annotation on
the RayJob), not against kopf's last-seen spec, so a rejected change stays rejected.
"""

from __future__ import annotations

from typing import Any

#: Dotted CR paths (under spec) that may change while the RayJob exists.
MUTABLE_PATHS = frozenset({"rayJob.suspend"})


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            _flatten(sub, f"{prefix}.{key}" if prefix else key, out)
    else:
        out[prefix] = value
    return out


def rejected_changes(
    applied: dict[str, Any], requested: dict[str, Any], mutable: frozenset[str] = MUTABLE_PATHS
) -> list[str]:
    """`spec.<path>` of every leaf that differs and is not in `mutable`, sorted."""
    old, new = _flatten(applied, "", {}), _flatten(requested, "", {})
    changed = {path for path in old.keys() | new.keys() if old.get(path) != new.get(path)}
    return sorted(f"spec.{path}" for path in changed - mutable)
