"""The defaults the API server fills into our custom resources (CRD schema `default`s), derived
from the pydantic models, and the same filling done here.

One tree per resource feeds both the CRD (crd.py writes each default into its schema node) and
the spec-change check (changes.py fills both sides before comparing), so the two cannot drift:
an object the API server defaulted on read reads as the one it stored.

A model field gets the model's default, except where omitting it means something (`omit`: the
field is then derived, or a shared job must leave it out and a CEL rule tests `has()`). A field
that defaults to None, or to an empty list or map, gets none: omitted is the Kubernetes way to
say "none", and a default would only lengthen `kubectl get -o yaml`. A sub-object gets `{}`, so
the API server fills its fields too, unless `omit` names it.
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python

#: Key of a list's items (and of a map's values) in a DefaultTree, as in the reference's paths.
ITEMS = "[]"
VALUES = "{}"


@dataclass
class DefaultTree:
    """The default of one schema node (`has_default`, `default`) and those below it, by key."""

    has_default: bool = False
    default: Any = None
    children: dict[str, DefaultTree] = field(default_factory=dict)

    def flat(self, prefix: str = "") -> dict[str, Any]:
        """Every default by dotted path (`secrets[].pods`): for tests and the reference."""
        out = {prefix: self.default} if self.has_default and prefix else {}
        for key, child in self.children.items():
            path = f"{prefix}{key}" if key in (ITEMS, VALUES) else f"{prefix}.{key}" if prefix else key
            out.update(child.flat(path))
        return out


def sub_model(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """("", M) for a field holding a model M (or None), (ITEMS, M) for a list of them, (VALUES, M)
    for a map of them; None for anything else."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "", annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return sub_model(args[0])
    if origin in (typing.Union, types.UnionType):
        found = [sub for arg in args if arg is not type(None) and (sub := sub_model(arg))]
        return found[0] if len(found) == 1 else None
    if origin is list and args:
        sub = sub_model(args[0])
        return (ITEMS, sub[1]) if sub and not sub[0] else None
    if origin is dict and len(args) == 2:
        sub = sub_model(args[1])
        return (VALUES, sub[1]) if sub and not sub[0] else None
    return None


def _field_default(info: FieldInfo, holds_model: bool) -> tuple[bool, Any]:
    """(has a schema default, its JSON value) of one pydantic field."""
    if info.default_factory is not None:
        value = info.get_default(call_default_factory=True)
    elif info.default is PydanticUndefined:
        return False, None
    else:
        value = info.default
    if value is None:
        return False, None
    if isinstance(value, BaseModel):
        return (True, {}) if holds_model else (False, None)
    value = to_jsonable_python(value)
    if isinstance(value, list | dict) and not value:
        return False, None
    return True, value


def defaults_tree(model: type[BaseModel], omit: Iterable[str] = ()) -> DefaultTree:
    """The defaults of `model`'s fields (by their aliases), without those at the `omit` paths
    (dotted field names, e.g. `ray_job.ray_version`); a path that names no field is an error."""
    omitted = set(omit)
    tree = _tree(model, "", omitted)
    if omitted:
        raise ValueError(f"{model.__name__}: no field at {sorted(omitted)} (omit lists field names)")
    return tree


def _tree(model: type[BaseModel], prefix: str, omit: set[str]) -> DefaultTree:
    node = DefaultTree()
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        key = info.alias or name
        sub = sub_model(info.annotation)
        child = _tree(sub[1], f"{path}.", omit) if sub else DefaultTree()
        if sub and sub[0]:
            child = DefaultTree(children={sub[0]: child})
        if path in omit:
            omit.discard(path)
        else:
            child.has_default, child.default = _field_default(info, holds_model=bool(sub and not sub[0]))
        if child.has_default or child.children:
            node.children[key] = child
    return node


def fill_defaults(value: Any, tree: DefaultTree) -> Any:
    """`value` with the tree's defaults filled in, as the API server's structural defaulting does:
    a missing field with a default gets a copy of it, then every present field is defaulted in turn
    (so a sub-object defaulted to `{}` gets its own fields). `value` itself is not changed."""
    if isinstance(value, dict) and VALUES in tree.children:
        return {name: fill_defaults(sub, tree.children[VALUES]) for name, sub in value.items()}
    if isinstance(value, dict):
        out = dict(value)
        for key, child in tree.children.items():
            if key not in out and child.has_default:
                out[key] = copy.deepcopy(child.default)
            if key in out:
                out[key] = fill_defaults(out[key], child)
        return out
    if isinstance(value, list) and ITEMS in tree.children:
        return [fill_defaults(item, tree.children[ITEMS]) for item in value]
    return value
