"""Validate rendered objects: built-in kinds against the Kubernetes OpenAPI schemas
(kubernetes-validate), custom kinds against the openAPIV3Schema of their CRD."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

CHART_DIR = Path(__file__).resolve().parents[2] / "charts" / "rag-finetune-operator"


def chart_kube_versions() -> list[str]:
    """Kubernetes minor versions to validate against: the chart's minimum, the kind node's, the newest."""
    kube_version = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["kubeVersion"]
    match = re.search(r">=\s*(\d+)\.(\d+)", kube_version)
    assert match, f"Chart.yaml kubeVersion {kube_version!r} has no lower bound"
    minimum = f"{match.group(1)}.{match.group(2)}"
    newest = ".".join(kubernetes_validate.utils.latest_version().split(".")[:2])
    return sorted({minimum, "1.33", newest}, key=lambda v: tuple(int(p) for p in v.split(".")))


def crd_index(crds: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(group, version, kind) -> openAPIV3Schema, for every served version of every CRD."""
    index = {}
    for crd in crds:
        spec = crd["spec"]
        for version in spec["versions"]:
            if version.get("served", True):
                key = (spec["group"], version["name"], spec["names"]["kind"])
                index[key] = version.get("schema", {}).get("openAPIV3Schema", {})
    return index


def _to_jsonschema(node: Any) -> Any:
    """Drop the x-kubernetes-* extensions jsonschema does not know (they only relax or annotate)."""
    if isinstance(node, dict):
        if node.get("x-kubernetes-int-or-string"):
            rest = {k: v for k, v in node.items() if not k.startswith("x-kubernetes")}
            return {"anyOf": [{"type": "integer"}, {"type": "string"}], **_to_jsonschema(rest)}
        return {k: _to_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if isinstance(node, list):
        return [_to_jsonschema(v) for v in node]
    return node


def validate_object(obj: dict[str, Any], kube_version: str, crds: list[dict[str, Any]]) -> None:
    """Raise AssertionError naming the object and the field when `obj` does not validate."""
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    try:
        kubernetes_validate.validate(copy.deepcopy(obj), kube_version, strict=True)
        return
    except kubernetes_validate.ValidationError as err:
        path = ".".join(str(p) for p in err.path)
        raise AssertionError(
            f"{name} is invalid for Kubernetes {kube_version} at {path}: {err.message}"
        ) from None
    except kubernetes_validate.SchemaNotFoundError:
        pass  # not a built-in kind: use its CRD
    group, _, version = obj["apiVersion"].rpartition("/")
    schema = crd_index(crds).get((group, version, obj["kind"]))
    assert schema is not None, (
        f"{name}: no Kubernetes schema and no CRD for {obj['apiVersion']} {obj['kind']} in the chart's "
        "crds/ — `helm install` would fail with 'no matches for kind'"
    )
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    try:
        jsonschema.validate(body, _to_jsonschema(schema))
    except jsonschema.ValidationError as err:
        path = ".".join(str(p) for p in err.path)
        raise AssertionError(f"{name} does not match its CRD schema at {path}: {err.message}") from None
