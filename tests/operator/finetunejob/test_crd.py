"""The RagFinetuneJob CRD: generated from the model, no drift, structural, rejects bad input."""

from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

import jsonschema
import pytest
import yaml

from rag_operator import crd as crd_module
from rag_operator.common import names
from tests.operator.testlib import EXAMPLES, REPO, load_example

CRD_FILE = REPO / "charts" / "rag-finetune-operator" / "crds" / names.CRD_FILENAME


def openapi_schema() -> dict[str, Any]:
    return crd_module.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def api_server_accepts(obj: dict[str, Any]) -> list[str]:
    """The CRD schema's verdict (OpenAPI v3.0 semantics: Draft 4, boolean exclusiveMinimum).

    Unknown fields count as errors, as with kubectl's default strict field validation.
    """
    from tests.operator.testlib import strict

    validator = jsonschema.Draft4Validator(strict(openapi_schema()))
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]


def test_crd_file_in_the_chart_matches_the_model() -> None:
    assert CRD_FILE.is_file(), f"{CRD_FILE} missing: run `make crds`"
    assert CRD_FILE.read_text() == crd_module.crd_yaml(), (
        "the CRD in the chart drifted from the pydantic models: run `make crds`"
    )


def test_cli_crd_writes_the_file_into_out(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rag_operator", "crd", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / names.CRD_FILENAME).read_text() == crd_module.crd_yaml()


@pytest.mark.parametrize("command", ["crd", "docs"])
def test_cli_names_an_output_it_cannot_write_with_exit_1_and_no_traceback(tmp_path, command: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "rag_operator", command, "--out", str(blocker / "out")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert f"cannot write {blocker / 'out'}" in result.stderr and "Traceback" not in result.stderr


def test_crd_names_subresource_and_printer_columns() -> None:
    crd = yaml.safe_load(crd_module.crd_yaml())
    spec = crd["spec"]
    assert (spec["group"], spec["names"]["plural"], spec["names"]["shortNames"]) == (
        "rag.finetune.dev",
        "ragfinetunejobs",
        ["rfj"],
    )
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase"
    assert columns["Trainers"] == ".status.trainers"
    assert columns["Retrieval"] == ".status.retrievalReplicas"
    assert columns["Age"] == ".metadata.creationTimestamp"


def _walk(node: dict[str, Any], path: str):
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def test_crd_schema_is_structural() -> None:
    for path, node in _walk(openapi_schema(), "openAPIV3Schema"):
        assert "$ref" not in node and "$defs" not in node, path
        typed = (
            "type" in node
            or node.get("x-kubernetes-int-or-string")
            or node.get("x-kubernetes-preserve-unknown-fields")
        )
        assert typed, f"{path} has no type"
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string"), f"{path}: anyOf outside int-or-string"
        assert not ("properties" in node and "additionalProperties" in node), path
        for branch in node.get("oneOf", []):
            assert set(branch) <= {"required"}, f"{path}: oneOf may only carry value validations"


#: The fields of apiextensions.k8s.io/v1 JSONSchemaProps that a CRD schema node may hold.
JSON_SCHEMA_PROPS = {
    "description", "type", "format", "title", "default", "maximum", "exclusiveMaximum", "minimum",
    "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems",
    "multipleOf", "enum", "maxProperties", "minProperties", "required", "items", "allOf", "oneOf",
    "anyOf", "not", "properties", "additionalProperties", "nullable", "example", "externalDocs",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource", "x-kubernetes-int-or-string",
    "x-kubernetes-list-map-keys", "x-kubernetes-list-type", "x-kubernetes-map-type", "x-kubernetes-validations",
}  # fmt: skip


@pytest.mark.parametrize(
    "make", [crd_module.crd, crd_module.rrc_crd], ids=["RagFinetuneJob", "RagRetrievalCluster"]
)
def test_every_schema_node_holds_only_what_a_crd_schema_declares(make) -> None:
    """A key pydantic writes that JSONSchemaProps lacks (a raw `ge`) is dropped by a plain create
    but fails `helm install`'s typed patch: 'field not declared in schema'."""
    schema = make()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema, "openAPIV3Schema"):
        assert set(node) <= JSON_SCHEMA_PROPS, (path, set(node) - JSON_SCHEMA_PROPS)


def test_no_field_keeps_unknown_fields_not_even_inside_an_affinity_or_a_network_peer() -> None:
    """Every node is typed, down to the insides of an Affinity and of a NetworkPolicy peer, so a
    misspelt key there is refused at `kubectl apply` like anywhere else."""
    loose = [
        path for path, node in _walk(openapi_schema(), "") if node.get("x-kubernetes-preserve-unknown-fields")
    ]
    assert loose == []
    for path, node in _walk(openapi_schema(), ""):
        if path.endswith(".affinity") or path.endswith(".dashboardPeers[]"):
            assert node["type"] == "object" and node["properties"], path


def test_every_list_and_map_on_the_way_to_a_cel_rule_is_bounded() -> None:
    """The API server refuses a CRD whose CEL rules may cost too much: each map a rule checks
    (label keys), and each list or map above it, needs maxItems/maxProperties."""

    def walk(node: dict[str, Any], path: str, bounded: bool):
        bounded = bounded and (
            node.get("type") not in ("array", "object")
            or "maxItems" in node
            or "maxProperties" in node
            or "properties" in node
        )
        yield path, node, bounded
        for name, child in (node.get("properties") or {}).items():
            yield from walk(child, f"{path}.{name}", bounded)
        for key, suffix in (("items", "[]"), ("additionalProperties", "{}")):
            if isinstance(node.get(key), dict):
                yield from walk(node[key], path + suffix, bounded)

    ruled = [
        (path, bounded)
        for path, node, bounded in walk(openapi_schema(), "", True)
        if "x-kubernetes-validations" in node
    ]
    assert len(ruled) > 10  # every matchLabels and nodeSelector
    assert [path for path, bounded in ruled if not bounded] == []


@pytest.mark.parametrize("which", sorted(EXAMPLES))
def test_crd_schema_accepts_the_examples(which: str) -> None:
    assert api_server_accepts(load_example(which)) == []


def test_crd_schema_accepts_a_status_the_controller_writes() -> None:
    doc = load_example("cpu")
    doc["status"] = {
        "phase": "Running",
        "jobStatus": "RUNNING",
        "jobDeploymentStatus": "Running",
        "dashboardURL": "rag-tiny-cpu-head-svc.default.svc.cluster.local:8265",
        "rayJobName": "rag-tiny-cpu",
        "trainers": 2,
        "retrievalReplicas": 1,
        "retrievalMemory": "3Gi",
        "conditions": [
            {
                "type": "Running",
                "status": "True",
                "reason": "Running",
                "message": "m",
                "lastTransitionTime": "t",
            }
        ],
    }
    assert api_server_accepts(doc) == []


@pytest.mark.parametrize(
    ("path", "value", "complaint"),
    [
        ("trainers.replicas", 0, "minimum"),
        ("trainers.gpusPerPod", "two", "not of type"),
        ("trainers.memory", "lots", "does not match"),
        ("retrieval.memoryHeadroom", 0.5, "minimum"),
        ("rayJob.submissionMode", "Foo", "is not one of"),
        ("imagePullPolicy", "Sometimes", "is not one of"),
        ("storage", {}, "is not valid under any of the given schemas"),
        ("storage", {"pvc": {"claimName": "a"}, "uri": "s3://b"}, "is valid under each of"),
        ("job.training.learning_rate", 0, "less than or equal to the minimum"),
        ("job.model.type", "rag_magic", "is not one of"),
        ("job.scaling", {"num_workers": 2}, "Additional properties"),
        ("rayJob.ttlSecondsAfterFinished", -1, "minimum"),
        ("trainers.affinity", {"nodeAfinity": {}}, "Additional properties"),
        (
            "trainers.affinity",
            {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "a b"}]}},
            "does not match",
        ),
        (
            "head.affinity",
            {
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 101, "preference": {}}]
                }
            },
            "maximum",
        ),
        ("security.dashboardPeers", [{"ipBlock": {"cidr": "10.0.0.0"}}], "does not match"),
        ("security.dashboardPeers", [{"ipBlock": {"except": []}}], "'cidr' is a required property"),
    ],
)
def test_crd_schema_rejects_bad_values_at_apply_time(path: str, value: Any, complaint: str) -> None:
    doc = copy.deepcopy(load_example("cpu"))
    *parents, leaf = path.split(".")
    node = doc["spec"]
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    errors = api_server_accepts(doc)
    assert errors, f"spec.{path}={value!r} was accepted"
    assert any(complaint in error for error in errors), errors


def test_crd_schema_requires_image_job_and_storage() -> None:
    doc = load_example("cpu")
    for key in ("image", "job", "storage"):
        del doc["spec"][key]
    errors = " ".join(api_server_accepts(doc))
    for key in ("image", "job", "storage"):
        assert f"'{key}' is a required property" in errors
