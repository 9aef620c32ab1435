"""The one error a spec can fail with, and how pydantic's errors become it."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError


class SpecError(ValueError):
    """A custom resource that cannot be rendered; `fields` are the dotted paths to fix."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        self.fields = [field for field, _ in problems]
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in problems))


Problems = list[tuple[str, str]]


def spec_error(
    err: ValidationError, prefix: str = "spec", hints: Mapping[str, str] | None = None
) -> SpecError:
    """pydantic's errors as a SpecError naming each field `<prefix>.<path>`, plus a hint where known."""
    problems = []
    for problem in err.errors():
        loc = [str(part) for part in problem["loc"]]
        message = problem["msg"].removeprefix("Value error, ")
        if loc[-1:] == ["[key]"]:  # a map key: name the map, and the key in the message
            loc, message = loc[:-2], f"key {loc[-2]!r}: {message}"
        path = ".".join([prefix, *loc])
        problems.append((path, message + (hints or {}).get(path, "")))
    return SpecError(problems)
