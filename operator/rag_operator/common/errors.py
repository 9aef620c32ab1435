"""The one error a spec can fail with, and how pydantic's errors become it."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from .k8s_objects import KubeObject


class SpecError(ValueError):
    """A custom resource that cannot be rendered; `fields` are the dotted paths to fix."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        self.fields = [field for field, _ in problems]
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in problems))


Problems = list[tuple[str, str]]


def spec_error(
    err: ValidationError,
    prefix: str = "spec",
    hints: Mapping[str, str] | None = None,
    model: type[BaseModel] | None = None,
) -> SpecError:
    """pydantic's errors as a SpecError naming each field `<prefix>.<path>`, plus a hint where known.

    With `model` (the model `err` came from), a problem inside a Kubernetes object (an Affinity, a
    NetworkPolicy peer) whose message has no example gets the innermost object's example.
    """
    problems = []
    for problem in err.errors():
        loc = [str(part) for part in problem["loc"]]
        message = problem["msg"].removeprefix("Value error, ")
        if model is not None and "e.g." not in message:
            found = kube_object_at(model, problem["loc"])
            if found is not None:
                message += f"; a valid {found.kube_type} is e.g. {found.example}"
        if loc[-1:] == ["[key]"]:  # a map key: name the map, and the key in the message
            loc, message = loc[:-2], f"key {loc[-2]!r}: {message}"
        path = ".".join([prefix, *loc])
        problems.append((path, message + (hints or {}).get(path, "")))
    return SpecError(problems)


def _unwrap(annotation: Any) -> Any:
    """`X | None` and `Annotated[X, ...]` -> X."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(rest) != 1:
                return annotation
            annotation = rest[0]
        else:
            return annotation


def kube_object_at(model: type[BaseModel], loc: Sequence[str | int]) -> type[KubeObject] | None:
    """The innermost Kubernetes object type on the way from `model` down `loc`, if any."""
    found: type[KubeObject] | None = None
    current: Any = model
    for part in [*loc, None]:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, KubeObject):
            found = current
        if part is None:  # a list of objects (too long, say): its items' example
            item = _unwrap(typing.get_args(current)[0]) if typing.get_origin(current) is list else None
            if isinstance(item, type) and issubclass(item, KubeObject):
                found = item
            break
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = current.model_fields
            field = fields.get(str(part)) or next((f for f in fields.values() if f.alias == part), None)
            if field is None:
                break
            current = field.annotation
        elif typing.get_origin(current) is list and isinstance(part, int):
            current = typing.get_args(current)[0]
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        else:
            break
    return found
