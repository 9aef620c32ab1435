"""A checker for Kubernetes *structural* schemas (what apiextensions.k8s.io/v1 requires of a CRD).

Why our own: the API server's check is in Go; this is the subset that catches real mistakes
(a node without a type, references, type-bearing keywords inside allOf/anyOf/oneOf/not).
"""

from __future__ import annotations

from typing import Any

FORBIDDEN_KEYWORDS = ("$ref", "definitions", "dependencies", "$schema", "id", "patternProperties")
JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
#: Inside a junctor only value validations are allowed, never structure or annotations.
NOT_IN_JUNCTORS = ("type", "additionalProperties", "description", "default", "nullable", "title")


def _untyped_ok(node: dict[str, Any]) -> bool:
    return bool(node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields"))


def _children(node: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    out = [(f"{path}.properties.{k}", v) for k, v in node.get("properties", {}).items()]
    if isinstance(node.get("additionalProperties"), dict):
        out.append((f"{path}.additionalProperties", node["additionalProperties"]))
    if isinstance(node.get("items"), dict):
        out.append((f"{path}.items", node["items"]))
    return out


def _junctor_violations(node: Any, path: str) -> list[str]:
    problems = []
    if isinstance(node, dict):
        for key in NOT_IN_JUNCTORS:
            if key in node:
                problems.append(f"{path}: '{key}' is not allowed inside allOf/anyOf/oneOf/not")
        for key, value in node.items():
            problems += _junctor_violations(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            problems += _junctor_violations(value, f"{path}[{i}]")
    return problems


def structural_violations(schema: dict[str, Any], path: str = "openAPIV3Schema") -> list[str]:
    """Every reason `schema` is not structural, each with the path of the offending node."""
    problems = []
    if not schema.get("type") and not _untyped_ok(schema):
        problems.append(f"{path}: no 'type' (or x-kubernetes-int-or-string / preserve-unknown-fields)")
    for key in FORBIDDEN_KEYWORDS:
        if key in schema:
            problems.append(f"{path}: '{key}' is not allowed in a structural schema")
    for junctor in JUNCTORS:
        # int-or-string may spell its two types as anyOf: the one allowed exception.
        if junctor in schema and not schema.get("x-kubernetes-int-or-string"):
            problems += _junctor_violations(schema[junctor], f"{path}.{junctor}")
    for child_path, child in _children(schema, path):
        problems += structural_violations(child, child_path)
    return problems
