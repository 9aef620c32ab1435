"""The RagRetrievalCluster CRD: generated from the model, no drift, the issue's names and printer
columns, a status subresource, and a schema that accepts the example and rejects bad input;
and the permissions the RagRetrievalCluster handlers use are the ones the chart grants."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import jsonschema
import kopf
import pytest
import yaml

from rag_operator import crd as crd_module
from rag_operator import permissions
from rag_operator.common import names
from rag_operator.finetunejob import controller
from rag_operator.retrievalcluster import controller as rrc_controller
from tests.operator.testlib import (
    REPO,
    RRC_EXAMPLE,
    SHARED_JOB_EXAMPLE,
    FakeMemo,
    merge_patch,
    rbac_calls,
    strict,
)

CRD_FILE = REPO / "charts" / "rag-finetune-operator" / "crds" / names.RRC_CRD_FILENAME


def schema() -> dict[str, Any]:
    return crd_module.rrc_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def errors_of(obj: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft4Validator(strict(schema()))
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]


def test_crd_file_in_the_chart_matches_the_model() -> None:
    assert CRD_FILE.is_file(), f"{CRD_FILE} missing: run `make crds`"
    assert CRD_FILE.read_text() == crd_module.crd_yaml(names.RRC_KIND), "drifted: run `make crds`"


def test_cli_crd_writes_both_crds_into_out(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rag_operator", "crd", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / names.RRC_CRD_FILENAME).read_text() == crd_module.crd_yaml(names.RRC_KIND)
    assert (tmp_path / names.CRD_FILENAME).read_text() == crd_module.crd_yaml()


def test_crd_names_status_subresource_and_printer_columns() -> None:
    crd = yaml.safe_load(crd_module.crd_yaml(names.RRC_KIND))
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "ragretrievalclusters.rag.finetune.dev"
    assert (spec["group"], spec["names"]["kind"], spec["names"]["plural"], spec["names"]["shortNames"]) == (
        "rag.finetune.dev",
        "RagRetrievalCluster",
        "ragretrievalclusters",
        ["rrc"],
    )
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Shards"] == ".status.shards" and columns["Replicas"] == ".status.replicas"
    assert columns["Index-Size"] == ".status.indexSize"
    assert columns["Age"] == ".metadata.creationTimestamp"


def test_crd_schema_accepts_the_example_and_a_status_the_controller_writes() -> None:
    doc = yaml.safe_load(RRC_EXAMPLE.read_text())
    assert errors_of(doc) == []
    doc["status"] = {
        "rayClusterName": "wiki-dpr",
        "serviceRayJobName": "wiki-dpr-retrieval-service",
        "state": "ready",
        "shards": 4,
        "replicas": 2,
        "readyReplicas": 1,
        "actorsPerShard": 1,
        "actorsAlive": 4,
        "shardsLoaded": 4,
        "readyWorkerPods": 2,
        "indexSize": "64Gi",
        "memoryPerPod": "50Gi",
        "memoryComputed": True,
        "serviceJobStatus": "RUNNING",
        "loadStarted": "t0",
        "loadedAt": "t1",
        "loadSeconds": 30,
        "inUseBy": ["a"],
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "r", "message": "m", "lastTransitionTime": "t"}
        ],
    }
    assert errors_of(doc) == []


@pytest.mark.parametrize(
    ("path", "value", "complaint"),
    [
        ("retrieval.shards", 0, "minimum"),
        ("trainers.maxReplicas", 0, "minimum"),
        ("trainers.memory", "lots", "does not match"),
        ("autoscaler.upscalingMode", "Wild", "is not one of"),
        ("retrieval.typo", 1, "Additional properties"),
    ],
)
def test_crd_schema_rejects_bad_values_at_apply_time(path: str, value: Any, complaint: str) -> None:
    doc = yaml.safe_load(RRC_EXAMPLE.read_text())
    *parents, leaf = path.split(".")
    node = doc["spec"]
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    errors = errors_of(doc)
    assert any(complaint in error for error in errors), errors


def test_the_ragfinetunejob_crd_takes_a_retrieval_cluster_ref() -> None:
    from tests.operator.finetunejob.test_crd import api_server_accepts

    assert api_server_accepts(yaml.safe_load(SHARED_JOB_EXAMPLE.read_text())) == []
    bad = yaml.safe_load(SHARED_JOB_EXAMPLE.read_text())
    bad["spec"]["retrievalClusterRef"] = "Not_A_Name"
    assert any("retrievalClusterRef" in error for error in api_server_accepts(bad))


def _granted(group: str, resource: str, verb: str) -> bool:
    return any(
        group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"]
        for r in permissions.WORKLOAD
    )


def test_permissions_cover_every_call_the_retrieval_cluster_flow_makes() -> None:
    memo = FakeMemo()
    ns = "ml"
    rrc = memo.custom.put(names.GROUP, names.RRC_PLURAL, yaml.safe_load(RRC_EXAMPLE.read_text()))
    patch = kopf.Patch()
    rrc_controller.reconcile_cluster(body=rrc, memo=memo, patch=patch)
    key = (names.GROUP, names.RRC_PLURAL, ns, "wiki-dpr")
    memo.custom.objects[key] = merge_patch(memo.custom.objects[key], dict(patch))
    for plural, name, status in (
        (names.RAYCLUSTER_PLURAL, "wiki-dpr", {"state": "ready"}),
        (names.RAYJOB_PLURAL, "wiki-dpr-retrieval-service", {"jobStatus": "RUNNING"}),
    ):
        ray_key = (names.RAY_GROUP, plural, ns, name)
        memo.custom.objects[ray_key] = merge_patch(memo.custom.objects[ray_key], {"status": status})
    rrc_controller.refresh(memo, ns, "wiki-dpr")
    job = memo.custom.put(names.GROUP, names.PLURAL, yaml.safe_load(SHARED_JOB_EXAMPLE.read_text()))
    job_patch = kopf.Patch()
    controller.reconcile(body=job, memo=memo, patch=job_patch)
    job_key = (names.GROUP, names.PLURAL, ns, job["metadata"]["name"])
    memo.custom.objects[job_key] = merge_patch(memo.custom.objects[job_key], dict(job_patch))  # as kopf would
    with pytest.raises(kopf.TemporaryError):
        rrc_controller.guard_deletion(body=memo.custom.objects[key], memo=memo, patch=kopf.Patch())

    used = rbac_calls(memo.custom.calls)
    assert {u[1] for u in used} >= {
        "rayclusters",
        "rayjobs",
        "ragretrievalclusters",
        "ragretrievalclusters/status",
    }
    for group, resource, verb in used:
        assert _granted(group, resource, verb), (group, resource, verb)
    # and nothing broader than the calls plus kopf's watches and finalizer patches
    rules = [r for r in permissions.WORKLOAD if names.RAYCLUSTER_PLURAL in r["resources"]]
    assert rules and set(rules[0]["verbs"]) == {"get", "list", "watch", "create"}
