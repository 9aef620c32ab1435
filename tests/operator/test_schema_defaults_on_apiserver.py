"""The CRDs' defaults on a real kube-apiserver: what it fills into a minimal RagFinetuneJob and
RagRetrievalCluster is what the operator's models assume; a shared job is still accepted; and an
object created before the CRDs had defaults (`helm upgrade` of the CRDs under running jobs) reads
back defaulted, yet is no spec change to the operator and can still be suspended, not changed."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from localcluster.controlplane import ControlPlane
from rag_operator import crd as crd_module
from rag_operator.common import names
from rag_operator.common.changes import rejected_changes_of
from rag_operator.common.defaults import fill_defaults
from rag_operator.common.sizing import no_kb_metadata
from rag_operator.finetunejob import plan, render
from rag_operator.finetunejob.controller import MUTABLE_PATHS
from rag_operator.finetunejob.spec import parse_spec
from rag_operator.retrievalcluster import spec as cluster_spec
from rag_operator.retrievalcluster.render import cluster_for
from rag_operator.retrievalcluster.spec import cluster_from_manifest, parse_rrc_spec
from tests.operator.apiserver import CRDS, NS, RFJS, RRCS, api_server_with
from tests.operator.testlib import RRC_EXAMPLE, SHARED_JOB_EXAMPLE
from tests.polling import eventually

pytestmark = pytest.mark.cluster

IMAGE = "rayproject/ray:2.60.0"
STORAGE = {"pvc": {"claimName": "rag-data"}}


def minimal_job(name: str) -> dict[str, Any]:
    """A RagFinetuneJob with only what it needs (indexSize: the operator reads no kb.json here)."""
    job = {"model": {"path": "/data/model"}, "retrieval": {"knowledge_base": "/data/kb"}}
    job["data"] = {"train_path": "/data/train"}
    spec = {"image": IMAGE, "storage": STORAGE, "job": job, "retrieval": {"indexSize": "1Gi"}}
    return _manifest(names.KIND, name, spec)


def minimal_cluster(name: str) -> dict[str, Any]:
    spec = {
        "image": IMAGE,
        "storage": STORAGE,
        "knowledgeBase": "/data/kb",
        "retrieval": {"indexSize": "1Gi"},
    }
    return _manifest(names.RRC_KIND, name, spec)


def _manifest(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def _without_defaults(node: Any) -> Any:
    """A CRD as it was before it had schema defaults."""
    if isinstance(node, dict):
        return {key: _without_defaults(value) for key, value in node.items() if key != "default"}
    if isinstance(node, list):
        return [_without_defaults(value) for value in node]
    return node


def _upgrade(plane: ControlPlane, crd: dict[str, Any]) -> None:
    """`helm upgrade` of one CRD: replace its spec, keep its resourceVersion."""
    api = plane.api()
    status, current = api.request("GET", f"{CRDS}/{crd['metadata']['name']}")
    assert status == 200, current
    status, body = api.request("PUT", f"{CRDS}/{crd['metadata']['name']}", {**current, "spec": crd["spec"]})
    assert status == 200, body


def _annotated(child_annotations: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"annotations": child_annotations}}


@pytest.fixture(scope="module")
def plane() -> Iterator[ControlPlane]:
    """Both CRDs as they were without defaults, a job and a cluster created and started (status
    names their child) under them, then the CRDs upgraded to today's, with defaults."""
    old = [_without_defaults(crd_module.crd()), _without_defaults(crd_module.rrc_crd())]
    with api_server_with(old, "rag-defaults-") as plane:
        api = plane.api()
        for path, doc, started in (
            (RFJS, minimal_job("old-job"), {"rayJobName": "old-job"}),
            (RRCS, minimal_cluster("old-cluster"), {"rayClusterName": "old-cluster"}),
        ):
            status, body = api.request("POST", path, doc)
            assert status == 201, body
            assert "security" not in body["spec"], "the old CRD filled a default"
            name = doc["metadata"]["name"]
            status, body = api.request("PATCH", f"{path}/{name}/status", {"status": started})
            assert status == 200, body
        _upgrade(plane, crd_module.crd())
        _upgrade(plane, crd_module.rrc_crd())

        def defaults_served() -> bool:
            _, body = api.request("GET", f"{RFJS}/old-job")
            _, cluster = api.request("GET", f"{RRCS}/old-cluster")
            return "security" in body["spec"] and "security" in cluster["spec"]

        eventually(defaults_served, 30, "the upgraded CRDs' defaults served")
        yield plane


def _create(plane: ControlPlane, path: str, doc: dict[str, Any]) -> dict[str, Any]:
    status, body = plane.api().request("POST", path + "?dryRun=All", doc)
    assert status == 201, body
    return body


def test_the_api_server_fills_a_minimal_job_with_the_models_defaults(plane: ControlPlane) -> None:
    """The server fills exactly the operator's default tree; the operator reads the filled and the
    bare job alike, renders the same RayJob from both, and sees no spec change between them."""
    doc = minimal_job("minimal-job")
    stored = _create(plane, RFJS, doc)
    assert stored["spec"] == fill_defaults(doc["spec"], plan.SPEC_DEFAULTS)
    assert stored["spec"]["security"]["hardened"] is True and stored["spec"]["rayJob"]["suspend"] is False
    assert stored["spec"]["job"]["training"]["learning_rate"] == 3e-5
    for derived in ("name", "output_dir"):
        assert derived not in stored["spec"]["job"]
    assert "storage_path" not in stored["spec"]["job"]["checkpoint"]
    assert parse_spec(stored["spec"]) == parse_spec(doc["spec"])  # pydantic == ignores fields_set
    bare_rayjob, bare_plan = render.rayjob_for(doc, no_kb_metadata)
    stored_rayjob, stored_plan = render.rayjob_for(stored, no_kb_metadata)
    assert stored_plan == bare_plan
    assert stored_plan.job_config.name == "minimal-job"
    annotations = bare_rayjob["metadata"].pop("annotations")
    stored_rayjob["metadata"].pop("annotations")
    assert stored_rayjob == bare_rayjob
    child = _annotated(annotations)
    assert rejected_changes_of(child, parse_spec(stored["spec"]), MUTABLE_PATHS, plan.SPEC_DEFAULTS) == []


def test_the_api_server_fills_a_minimal_retrieval_cluster_with_the_models_defaults(
    plane: ControlPlane,
) -> None:
    doc = minimal_cluster("minimal-cluster")
    stored = _create(plane, RRCS, doc)
    assert stored["spec"] == fill_defaults(doc["spec"], cluster_spec.SPEC_DEFAULTS)
    assert (
        stored["spec"]["trainers"]["gpusPerPod"] == 1
        and stored["spec"]["autoscaler"]["idleTimeoutSeconds"] == 60
    )
    assert parse_rrc_spec(stored["spec"]) == parse_rrc_spec(doc["spec"])
    bare, stored_objects = cluster_for(doc, no_kb_metadata), cluster_for(stored, no_kb_metadata)
    assert stored_objects[2] == bare[2]
    for bare_object, stored_object in zip(bare[:2], stored_objects[:2], strict=True):
        bare_object, stored_object = copy.deepcopy(bare_object), copy.deepcopy(stored_object)
        bare_object["metadata"].pop("annotations", None)
        stored_object["metadata"].pop("annotations", None)
        assert stored_object == bare_object


def test_a_shared_job_is_still_accepted_and_runs_on_its_cluster(plane: ControlPlane) -> None:
    """No default lands on a field a job with retrievalClusterRef must omit."""
    cluster = yaml.safe_load(RRC_EXAMPLE.read_text())
    job = yaml.safe_load(SHARED_JOB_EXAMPLE.read_text())
    for doc in (cluster, job):
        doc["metadata"]["namespace"] = NS
    stored_cluster, stored_job = _create(plane, RRCS, cluster), _create(plane, RFJS, job)
    assert "head" not in stored_job["spec"] and "retrieval" not in stored_job["spec"]
    assert set(stored_job["spec"]["trainers"]) <= {"replicas", "workersPerPod"}
    rayjob, _ = render.rayjob_for(stored_job, no_kb_metadata, cluster_from_manifest(stored_cluster))
    assert rayjob["spec"]["clusterSelector"]


def test_an_object_created_before_the_defaults_reads_back_defaulted_and_unchanged(
    plane: ControlPlane,
) -> None:
    """The annotation on its child was written without defaults; the object now reads with them:
    no change. A real change next to them is still named."""
    api = plane.api()
    for path, doc, defaults, parse in (
        (RFJS, minimal_job("old-job"), plan.SPEC_DEFAULTS, parse_spec),
        (RRCS, minimal_cluster("old-cluster"), cluster_spec.SPEC_DEFAULTS, parse_rrc_spec),
    ):
        if doc["kind"] == names.KIND:
            child = render.rayjob_for(doc, no_kb_metadata)[0]
        else:
            child = cluster_for(doc, no_kb_metadata)[0]
        status, stored = api.request("GET", f"{path}/{doc['metadata']['name']}")
        assert status == 200, stored
        assert stored["spec"] == fill_defaults(doc["spec"], defaults), "defaulted on read"
        mutable = MUTABLE_PATHS if doc["kind"] == names.KIND else frozenset()
        assert rejected_changes_of(child, parse(stored["spec"]), mutable, defaults) == []
        changed = copy.deepcopy(stored["spec"])
        changed["security"]["runAsUser"] = 2000
        assert rejected_changes_of(child, parse(changed), mutable, defaults) == ["spec.security.runAsUser"]


def test_a_started_job_from_before_the_defaults_can_be_suspended_but_not_changed(plane: ControlPlane) -> None:
    """The immutability rule compares the old and the new object both defaulted (the old one on its
    read from etcd), so the defaults the upgrade added are no change; suspend still is allowed."""
    api = plane.api()
    job, cluster = f"{RFJS}/old-job", f"{RRCS}/old-cluster"
    status, body = api.request("PATCH", job, {"spec": {"trainers": {"replicas": 2}}})
    assert status == 422 and "spec.trainers cannot change once the RayJob exists" in str(body), body
    status, body = api.request("PATCH", job, {"spec": {"rayJob": {"ttlSecondsAfterFinished": 60}}})
    assert status == 422 and "spec.rayJob.ttlSecondsAfterFinished cannot change" in str(body), body
    status, body = api.request("PATCH", job, {"metadata": {"labels": {"team": "rag"}}})
    assert status == 200, body
    status, body = api.request("PATCH", job, {"spec": {"rayJob": {"suspend": True}}})
    assert status == 200, body
    assert body["spec"]["rayJob"] == {"suspend": True, "submissionMode": "K8sJobMode", "backoffLimit": 0}
    status, body = api.request("PATCH", cluster, {"metadata": {"labels": {"team": "rag"}}})
    assert status == 200, body
    status, body = api.request("PATCH", cluster, {"spec": {"autoscaler": {"idleTimeoutSeconds": 30}}})
    assert status == 422 and "spec.autoscaler cannot change" in str(body), body


def test_the_published_openapi_schema_carries_the_defaults(plane: ControlPlane) -> None:
    """What clients read (kubectl explain, editors, client generators) has the defaults; the
    fields left unfilled on purpose have none there either."""
    api = plane.api()
    path = f"/openapi/v3/apis/{names.API_VERSION}"

    def published() -> dict[str, Any] | None:
        status, body = api.request("GET", path)
        schemas = body.get("components", {}).get("schemas", {}) if status == 200 else {}
        found = schemas.get(f"dev.finetune.rag.{names.VERSION}.{names.KIND}")
        return found if found and "default" in found["properties"]["spec"]["properties"]["security"] else None

    spec = eventually(published, 30, "the upgraded schema published")["properties"]["spec"]["properties"]
    assert spec["security"]["properties"]["runAsUser"]["default"] == 1000
    assert spec["job"]["properties"]["training"]["properties"]["seed"]["default"] == 42
    assert "default" not in spec["rayJob"]["properties"]["rayVersion"]
    assert "default" not in spec["job"]["properties"]["name"]
