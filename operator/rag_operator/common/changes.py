"""Which spec changes a child that already exists (RayJob, RayCluster) can take.

KubeRay reads a RayJob's cluster and entrypoint once; only `suspend` acts on a live RayJob, and
a RayCluster's shape is fixed for our purposes. The comparison is against the spec the child was
rendered from (kept in an annotation on it), not against kopf's last-seen spec, so a rejected
change stays rejected.

Both sides are compared with the CRD's defaults filled in (common/defaults.py): the API server
fills them into an object on every read, also into one created before the CRD had them, whose
annotation lacks them; a field present on one side only, with its default value, is no change.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

from .defaults import DefaultTree, fill_defaults
from .manifests import spec_as_written
from .names import ANNOTATION_APPLIED_SPEC


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            _flatten(sub, f"{prefix}.{key}" if prefix else key, out)
    else:
        out[prefix] = value
    return out


def rejected_changes(
    applied: dict[str, Any], requested: dict[str, Any], mutable: frozenset[str]
) -> list[str]:
    """`spec.<path>` of every leaf that differs and is not in `mutable`, sorted."""
    old, new = _flatten(applied, "", {}), _flatten(requested, "", {})
    changed = {path for path in old.keys() | new.keys() if old.get(path) != new.get(path)}
    return sorted(f"spec.{path}" for path in changed - mutable)


def rejected_changes_of(
    child: dict[str, Any], requested: BaseModel, mutable: frozenset[str], defaults: DefaultTree
) -> list[str]:
    """The fields of `requested` that differ from what `child` was rendered from (its annotation),
    both with the CRD's `defaults` filled in."""
    annotations = child["metadata"].get("annotations") or {}
    applied = json.loads(annotations.get(ANNOTATION_APPLIED_SPEC, "{}"))
    if not applied:
        return []
    model = type(requested)
    return rejected_changes(
        _normalised(applied, model, defaults),
        _normalised(spec_as_written(requested), model, defaults),
        mutable,
    )


def _normalised(spec: dict[str, Any], model: type[BaseModel], defaults: DefaultTree) -> dict[str, Any]:
    """`spec` filled with the defaults and read through the model, as the operator reads an object:
    what a validator sets once a defaulted sub-object is there (job.training.epochs) is on both
    sides. An annotation the model no longer takes is compared as it is."""
    filled = fill_defaults(spec, defaults)
    try:
        return spec_as_written(model.model_validate(filled))
    except ValidationError:
        return filled
