"""Manifests in and out: the checks every incoming custom resource gets, the applied-spec
annotation, kopf bodies as plain dicts, and YAML the way `render` prints it."""

from __future__ import annotations

import json
from typing import Any

import yaml
from pydantic import BaseModel

from .errors import SpecError
from .names import API_VERSION


def check_manifest(body: dict[str, Any], kind: str) -> tuple[str, str | None]:
    """(name, namespace) of a manifest of our `kind`; SpecError naming apiVersion/kind/name if not."""
    problems = []
    if body.get("apiVersion") != API_VERSION:
        problems.append(("apiVersion", f"must be {API_VERSION}, got {body.get('apiVersion')!r}"))
    if body.get("kind") != kind:
        problems.append(("kind", f"must be {kind}, got {body.get('kind')!r}"))
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        problems.append(("metadata", "must be a mapping with name (and namespace)"))
        metadata = {}
    name, namespace = metadata.get("name"), metadata.get("namespace")
    if not name or not isinstance(name, str):
        problems.append(("metadata.name", "is required and must be a string"))
    if namespace is not None and not isinstance(namespace, str):
        problems.append(("metadata.namespace", "must be a string"))
    if problems:
        raise SpecError(problems)
    return name, namespace


def manifest_of(body: Any, kind: str) -> dict[str, Any]:
    """A kopf body as the minimal manifest the renderers take (name, namespace, plain spec)."""
    meta = body["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": plain(body.get("spec")),
    }


def plain(value: Any) -> Any:
    """kopf's body views -> plain dicts/lists (pydantic and json want real containers)."""
    if hasattr(value, "items"):
        return {key: plain(sub) for key, sub in value.items()}
    if isinstance(value, list | tuple):
        return [plain(sub) for sub in value]
    return value


def spec_as_written(spec: BaseModel) -> dict[str, Any]:
    """The fields the manifest holds (the user's, and the CRD defaults the API server filled in), not
    the model's other defaults: an operator upgrade that adds a model default is no change."""
    return spec.model_dump(mode="json", by_alias=True, exclude_unset=True)


def applied_spec(spec: BaseModel) -> str:
    """`spec_as_written` as compact JSON: stored on the child to detect later changes."""
    return json.dumps(spec_as_written(spec), sort_keys=True, separators=(",", ":"))


def runtime_env_yaml(env_var: str, value: str) -> str:
    """A RayJob's runtimeEnvYAML that carries one config as an environment variable."""
    return yaml.safe_dump({"env_vars": {env_var: value}}, width=1 << 16)


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (runtimeEnvYAML) as literal blocks, so the output stays readable."""


def _str_presenter(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_presenter)


def to_yaml(manifest: dict[str, Any]) -> str:
    """A manifest as YAML in the key order it was built (what `render` prints)."""
    return yaml.dump(manifest, Dumper=_BlockDumper, sort_keys=False, width=100)
