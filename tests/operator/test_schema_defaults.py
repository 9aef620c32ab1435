"""The CRDs' schema defaults (what the API server fills in and `kubectl explain` shows): each is
valid against its own node, each equals the model's default, none lands on a field whose omission
means something, and the spec-change check reads a defaulted object as the one it was."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import yaml

from rag_operator import crd as crd_module
from rag_operator.common import names
from rag_operator.common.changes import rejected_changes_of
from rag_operator.common.defaults import fill_defaults, sub_model
from rag_operator.common.sizing import no_kb_metadata
from rag_operator.finetunejob import plan, render
from rag_operator.finetunejob.controller import MUTABLE_PATHS
from rag_operator.finetunejob.spec import RagFinetuneJobSpec, parse_spec
from rag_operator.retrievalcluster import spec as cluster_spec
from rag_operator.retrievalcluster.render import cluster_for
from rag_operator.retrievalcluster.spec import cluster_from_manifest
from tests.operator.testlib import RRC_EXAMPLE, SHARED_JOB_EXAMPLE, load_example, strict

CRDS = {names.KIND: crd_module.crd, names.RRC_KIND: crd_module.rrc_crd}
TREES = {names.KIND: plan.SPEC_DEFAULTS, names.RRC_KIND: cluster_spec.SPEC_DEFAULTS}


def spec_schema(kind: str) -> dict[str, Any]:
    return CRDS[kind]()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def defaulted(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, node) of every schema node that carries a default."""
    if "default" in node:
        yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from defaulted(child, f"{path}.{name}" if path else name)
    for key, suffix in (("items", "[]"), ("additionalProperties", "{}")):
        if isinstance(node.get(key), dict):
            yield from defaulted(node[key], path + suffix)


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_every_default_is_valid_against_its_own_schema_node(kind: str) -> None:
    """The API server refuses a CRD whose default fails its node (type, enum, pattern, minimum);
    an object default `{}` must pass once its own fields' defaults are filled in."""
    found = list(defaulted(spec_schema(kind)))
    assert len(found) > 20
    for path, node in found:
        value = fill_defaults(node["default"], _subtree(TREES[kind], path))
        errors = [e.message for e in jsonschema.Draft4Validator(strict(node)).iter_errors(value)]
        assert errors == [], f"{kind} spec.{path}: default {value!r}: {errors}"


def _subtree(tree: Any, path: str) -> Any:
    for part in path.replace("[]", ".[]").split("."):
        tree = tree.children[part]
    return tree


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_the_crd_carries_exactly_the_defaults_the_operator_fills(kind: str) -> None:
    """The schema's defaults are the tree the spec-change check fills with, path for path."""
    in_schema = {path: node["default"] for path, node in defaulted(spec_schema(kind))}
    assert in_schema == TREES[kind].flat()


def test_no_default_where_omitting_a_field_means_something() -> None:
    """A shared job must omit head, retrieval and the trainer/rayJob fields a CEL rule tests with
    has(): a default would make the API server refuse every shared job. The job's name and output
    paths are derived from the resource when omitted."""
    schema, filled = spec_schema(names.KIND), TREES[names.KIND].flat()
    for field in plan.NO_SCHEMA_DEFAULT:
        node, model, keys = schema, RagFinetuneJobSpec, []
        for name in field.split("."):
            info = model.model_fields[name]
            keys.append(info.alias or name)
            node = node["properties"][keys[-1]]
            model = (sub_model(info.annotation) or ("", None))[1]
        assert "default" not in node and ".".join(keys) not in filled, field
    for refused in (
        "head",
        "retrieval",
        "trainers.cpu",
        "trainers.gpusPerPod",
        "rayJob.rayVersion",
        "job.name",
    ):
        assert refused not in filled
    for kept in ("trainers", "trainers.replicas", "rayJob.suspend", "security.hardened", "job.training.seed"):
        assert kept in filled


def _without_annotation(manifest: dict[str, Any]) -> dict[str, Any]:
    manifest = copy.deepcopy(manifest)
    manifest["metadata"].get("annotations", {}).pop(names.ANNOTATION_APPLIED_SPEC, None)
    return manifest


def _filled(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    """`doc` as the API server stores it: every default of its CRD filled in."""
    filled = {**doc, "spec": fill_defaults(doc["spec"], TREES[kind])}
    assert filled["spec"] != doc["spec"]
    return filled


@pytest.mark.parametrize("which", ["cpu", "gpu"])
def test_a_job_filled_with_the_defaults_renders_the_same_rayjob(which: str) -> None:
    """What the API server stores for a job (the example plus every default) renders the RayJob the
    example renders, but for the applied-spec annotation, which records the filled spec."""
    doc = load_example(which)
    plain_rayjob, plain_plan = render.rayjob_for(doc, no_kb_metadata)
    filled_rayjob, filled_plan = render.rayjob_for(_filled(doc, names.KIND), no_kb_metadata)
    assert _without_annotation(filled_rayjob) == _without_annotation(plain_rayjob)
    assert filled_plan == plain_plan


def test_a_shared_job_and_its_cluster_filled_with_the_defaults_render_the_same() -> None:
    """The defaults leave a shared job nothing it must omit, and its cluster renders the same."""
    job, cluster = yaml.safe_load(SHARED_JOB_EXAMPLE.read_text()), yaml.safe_load(RRC_EXAMPLE.read_text())
    filled_job, filled_cluster = _filled(job, names.KIND), _filled(cluster, names.RRC_KIND)
    rendered = [
        render.rayjob_for(job, no_kb_metadata, cluster_from_manifest(cluster))[0],
        render.rayjob_for(filled_job, no_kb_metadata, cluster_from_manifest(filled_cluster))[0],
    ]
    assert _without_annotation(rendered[1]) == _without_annotation(rendered[0])
    plain_objects = cluster_for(cluster, no_kb_metadata)[:2]
    filled_objects = cluster_for(filled_cluster, no_kb_metadata)[:2]
    for plain_object, filled_object in zip(plain_objects, filled_objects, strict=True):
        assert _without_annotation(filled_object) == _without_annotation(plain_object)


def _child_of(doc: dict[str, Any]) -> dict[str, Any]:
    """A RayJob as the operator created it for `doc` (the annotation is all the check reads)."""
    annotations = render.rayjob_for(doc, no_kb_metadata)[0]["metadata"]["annotations"]
    return {
        "metadata": {
            "annotations": {names.ANNOTATION_APPLIED_SPEC: annotations[names.ANNOTATION_APPLIED_SPEC]}
        }
    }


def test_an_object_created_before_the_crd_had_defaults_is_unchanged_once_the_server_fills_them() -> None:
    doc = load_example("cpu")
    child = _child_of(doc)  # rendered from the spec without defaults (the CRD had none then)
    read_now = parse_spec(fill_defaults(doc["spec"], plan.SPEC_DEFAULTS))  # defaulted on read
    assert rejected_changes_of(child, read_now, MUTABLE_PATHS, plan.SPEC_DEFAULTS) == []


def test_a_real_change_is_still_rejected_beside_the_filled_defaults() -> None:
    doc = load_example("cpu")
    child = _child_of(doc)
    changed = fill_defaults(copy.deepcopy(doc["spec"]), plan.SPEC_DEFAULTS)
    changed["security"]["runAsUser"] = 2000  # was omitted: the default 1000 applied
    changed["job"]["training"]["seed"] = 7
    changed["rayJob"]["suspend"] = True  # the one field a live RayJob takes
    assert rejected_changes_of(child, parse_spec(changed), MUTABLE_PATHS, plan.SPEC_DEFAULTS) == [
        "spec.job.training.seed",
        "spec.security.runAsUser",
    ]


def test_writing_a_default_out_is_no_change_but_a_field_without_a_default_is() -> None:
    """Spelling out a default is what the API server does anyway; a field that has none (the
    job's name: omitted, it is the resource's name) changes the RayJob when written."""
    doc = load_example("cpu")
    child = _child_of(doc)
    spelled = copy.deepcopy(doc["spec"])
    spelled.setdefault("rayJob", {})["backoffLimit"] = 0
    assert rejected_changes_of(child, parse_spec(spelled), MUTABLE_PATHS, plan.SPEC_DEFAULTS) == []
    named = copy.deepcopy(doc["spec"])
    named["job"]["name"] = "rag-finetune"  # the model's default, but no schema default
    assert rejected_changes_of(child, parse_spec(named), MUTABLE_PATHS, plan.SPEC_DEFAULTS) == [
        "spec.job.name"
    ]


def test_a_job_without_training_is_unchanged_once_training_is_defaulted() -> None:
    """`training: {}` filled by the server makes the model set epochs (no stopping rule given): the
    annotation, written before, must read the same."""
    doc = load_example("cpu")
    doc["spec"]["job"].pop("training", None)
    child = _child_of(doc)
    read_now = parse_spec(fill_defaults(doc["spec"], plan.SPEC_DEFAULTS))
    assert read_now.job.training.epochs == 1
    assert rejected_changes_of(child, read_now, MUTABLE_PATHS, plan.SPEC_DEFAULTS) == []
