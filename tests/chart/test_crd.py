"""The RagFinetuneJob CRD (generated into crds/ by `python -m rag_operator crd`) is a valid,
structural apiextensions.k8s.io/v1 CRD with the names the design fixes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import CHART_DIR
from .k8s_schemas import chart_kube_versions, validate_object
from .structural import structural_violations

CRD_FILE = CHART_DIR / "crds" / "rag.finetune.dev_ragfinetunejobs.yaml"


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    assert CRD_FILE.is_file(), f"{CRD_FILE} is missing: generate it with `python -m rag_operator crd`"
    return yaml.safe_load(CRD_FILE.read_text())


def crd_files() -> list[Path]:
    """Our CRD (crds/) and kopf's peering CRDs (the vendored kopf-peering subchart's crds/)."""
    return sorted(CHART_DIR.glob("crds/*.yaml")) + sorted(CHART_DIR.glob("charts/*/crds/*.yaml"))


def all_crds() -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in crd_files()]


def test_each_crd_is_defined_once_and_peering_crds_are_shipped() -> None:
    names = [crd["metadata"]["name"] for crd in all_crds()]
    assert len(names) == len(set(names)), f"a CRD is defined twice: {sorted(names)}"
    assert {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"} <= set(names), (
        "kopf's peering CRDs must ship with the chart: the chart creates a peering object"
    )


def test_every_crd_file_validates_against_the_crd_schema() -> None:
    crds = all_crds()
    assert crds, "crds/ is empty"
    for kube_version in chart_kube_versions():
        for obj in crds:
            validate_object(obj, kube_version, [])


def test_every_crd_schema_is_structural() -> None:
    for obj in all_crds():
        for version in obj["spec"]["versions"]:
            schema = version["schema"]["openAPIV3Schema"]
            assert structural_violations(schema) == [], f"{obj['metadata']['name']} {version['name']}"


def test_ragfinetunejob_crd_has_the_design_names_and_a_status_subresource(crd: dict[str, Any]) -> None:
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "ragfinetunejobs.rag.finetune.dev"
    assert spec["group"] == "rag.finetune.dev" and spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "RagFinetuneJob" and "rfj" in spec["names"]["shortNames"]
    (storage,) = [v for v in spec["versions"] if v["storage"]]
    assert storage["name"] == "v1alpha1"
    assert "status" in storage["subresources"]


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"type": "object", "properties": {"a": {"description": "no type"}}}, "properties.a: no 'type'"),
        ({"type": "object", "properties": {"a": {"$ref": "#/x", "type": "object"}}}, "'$ref'"),
        ({"type": "array", "items": {}}, "items: no 'type'"),
        ({"type": "object", "anyOf": [{"type": "string"}]}, "anyOf[0]: 'type'"),
    ],
)
def test_structural_checker_names_the_offending_node(schema: dict[str, Any], reason: str) -> None:
    problems = structural_violations(schema)
    assert any(reason in p for p in problems), problems


def test_structural_checker_accepts_int_or_string_and_preserved_fields() -> None:
    schema = {
        "type": "object",
        "properties": {
            "cpu": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "extra": {"x-kubernetes-preserve-unknown-fields": True},
        },
    }
    assert structural_violations(schema) == []
