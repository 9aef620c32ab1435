"""The CRDs' CEL rules, enforced by a real kube-apiserver: what the operator would report only after
the object exists (a name too long for KubeRay, a layout that cannot be split, fields a shared job
must omit, changes to a running job) is refused at `kubectl apply`, with a message naming the
field and the fix, and the operator's own checks refuse the same field (the rules are generated
from them: operator/rag_operator/cel.py)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from localcluster.controlplane import ControlPlane
from rag_operator.common import names
from rag_operator.common.errors import SpecError
from rag_operator.common.sizing import no_kb_metadata
from rag_operator.finetunejob import render
from rag_operator.retrievalcluster.plan import plan_retrieval_cluster
from rag_operator.retrievalcluster.spec import parse_rrc_spec
from tests.operator.apiserver import NS, RFJS, RRCS, api_server_with
from tests.operator.testlib import REPO, RRC_EXAMPLE, SHARED_JOB_EXAMPLE, load_example

pytestmark = pytest.mark.cluster

CRD_DIR = REPO / "charts" / "rag-finetune-operator" / "crds"


@pytest.fixture(scope="module")
def plane() -> Iterator[ControlPlane]:
    """A kube-apiserver with both CRDs from the chart, as `helm install` leaves them (no operator);
    creating them shows the API server takes the rules (syntax and cost budget)."""
    crds = [yaml.safe_load((CRD_DIR / f).read_text()) for f in (names.CRD_FILENAME, names.RRC_CRD_FILENAME)]
    with api_server_with(crds, "rag-cel-") as plane:
        yield plane


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def _shared_job() -> dict[str, Any]:
    doc = yaml.safe_load(SHARED_JOB_EXAMPLE.read_text())
    doc["metadata"]["namespace"] = NS
    return doc


def _job(which: str = "cpu") -> dict[str, Any]:
    doc = load_example(which)
    doc["metadata"]["namespace"] = NS
    return doc


def _queued(doc: dict[str, Any]) -> dict[str, Any]:
    doc["spec"].setdefault("rayJob", {})["queueName"] = "team-a-gpus"
    return doc


def _cluster() -> dict[str, Any]:
    doc = yaml.safe_load(RRC_EXAMPLE.read_text())
    doc["metadata"]["namespace"] = NS
    return doc


def assert_names(error: SpecError, field: str) -> None:
    """The operator names `field`, or the object holding it with the field's name in the message
    (a rule across an object's fields is reported on the object), or an item inside it (a CEL
    rule over a list is reported on the list)."""
    leaf = field.rsplit(".", 1)[-1]
    assert any(
        named == field or (field.startswith(named + ".") and leaf in message) or named.startswith(field + ".")
        for named, message in error.problems
    ), error.problems


def _create(plane: ControlPlane, path: str, doc: dict[str, Any], dry_run: bool) -> tuple[int, Any]:
    return plane.api().request("POST", path + ("?dryRun=All" if dry_run else ""), doc)


#: A pod override that mounts a volume where the examples mount spec.storage.pvc.
MOUNT_AT_DATA = {
    "volumes": [{"name": "m", "emptyDir": {}}],
    "volumeMounts": [{"name": "m", "mountPath": "/data"}],
}

#: (id, the resource, what to set, the field the refusal names, words of its message)
JOB_CASES = [
    ("name-too-long", _job, "metadata.name", "r" * 48, "metadata.name", "at most 47 characters"),
    ("name-not-dns-1035", _job, "metadata.name", "9-lives", "metadata.name", "DNS-1035 label"),
    ("workers-not-gpus", lambda: _job("gpu"), "spec.trainers.workersPerPod", 3, "spec.trainers.workersPerPod", "must equal gpusPerPod"),
    ("actors-not-a-multiple", _job, "spec.retrieval.shards", 2, "spec.retrieval.actorsPerPod", "multiple of shards"),
    ("shared-with-head", _shared_job, "spec.head", {"cpu": "1"}, "spec.head", "must be omitted with spec.retrievalClusterRef"),
    ("shared-with-retrieval", _shared_job, "spec.retrieval", {"replicas": 2}, "spec.retrieval", "must be omitted with spec.retrievalClusterRef"),
    ("shared-with-trainer-cpu", _shared_job, "spec.trainers.cpu", "2", "spec.trainers.cpu", "must be omitted with spec.retrievalClusterRef"),
    ("shared-with-ray-version", _shared_job, "spec.rayJob.rayVersion", "2.60.0", "spec.rayJob.rayVersion", "must be omitted with spec.retrievalClusterRef"),
    ("shared-suspended", _shared_job, "spec.rayJob.suspend", True, "spec.rayJob.suspend", "cannot suspend"),
    ("shared-sidecar", _shared_job, "spec.rayJob.submissionMode", "SidecarMode", "spec.rayJob.submissionMode", "SidecarMode cannot run"),
    ("shared-backoff", _shared_job, "spec.rayJob.backoffLimit", 2, "spec.rayJob.backoffLimit", "must be 0"),
    ("shared-queued", _shared_job, "spec.rayJob.queueName", "team-a", "spec.rayJob.queueName", "Kueue cannot admit"),
    ("queued-and-suspended", lambda: _queued(_job()), "spec.rayJob.suspend", True, "spec.rayJob.suspend", "must be false with spec.rayJob.queueName"),
    ("shared-torch-retrieval", _shared_job, "spec.job.retrieval.mode", "torch", "spec.job.retrieval.mode", "must be ray"),
    ("shared-end-to-end", _shared_job, "spec.job.retrieval.end_to_end", {"refresh_every_steps": 10}, "spec.job.retrieval.end_to_end", "remove spec.retrievalClusterRef to run the job with its own retrieval group"),
    ("shared-with-trainer-pod", _shared_job, "spec.trainers.pod", {"labels": {"team": "ml"}}, "spec.trainers.pod", "must be omitted with spec.retrievalClusterRef"),
    ("pod-mount-over-storage", _job, "spec.trainers.pod", MOUNT_AT_DATA, "spec.trainers.pod.volumeMounts", "where spec.storage.pvc is mounted"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "path", "value", "field", "words"),
    [case[1:] for case in JOB_CASES],
    ids=[c[0] for c in JOB_CASES],
)
def test_a_job_the_operator_would_refuse_is_refused_at_apply_naming_the_field(
    plane: ControlPlane, make, path: str, value: Any, field: str, words: str
) -> None:
    doc = make()
    status, _ = _create(plane, RFJS, doc, dry_run=True)
    assert status == 201, "the unchanged example must be accepted"
    _set(doc, path, value)
    status, body = _create(plane, RFJS, doc, dry_run=True)
    assert status == 422, body
    message = body["message"]
    assert words in message and field in message, message
    with pytest.raises(SpecError) as caught:  # the operator, had it got in, refuses the same field
        render.rayjob_for(doc, no_kb_metadata)
    assert_names(caught.value, field)


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        ("metadata.name", "c" * 30, "metadata.name", "at most 29 characters"),
        ("spec.retrieval.shards", 3, "spec.retrieval.actorsPerPod", "multiple of shards"),
        ("spec.trainers.workersPerPod", 2, "spec.trainers.workersPerPod", "must equal gpusPerPod"),
        ("spec.head.pod", MOUNT_AT_DATA, "spec.head.pod.volumeMounts", "where spec.storage.pvc is mounted"),
    ],
    ids=["name-too-long", "actors-not-a-multiple", "workers-not-gpus", "pod-mount-over-storage"],
)
def test_a_retrieval_cluster_the_operator_would_refuse_is_refused_at_apply(
    plane: ControlPlane, path: str, value: Any, field: str, words: str
) -> None:
    doc = _cluster()
    assert _create(plane, RRCS, doc, dry_run=True)[0] == 201
    _set(doc, path, value)
    status, body = _create(plane, RRCS, doc, dry_run=True)
    assert status == 422, body
    assert words in body["message"] and field in body["message"], body["message"]
    with pytest.raises(SpecError) as caught:
        spec = parse_rrc_spec(doc["spec"])
        plan_retrieval_cluster(doc["metadata"]["name"], spec, no_kb_metadata)
    assert_names(caught.value, field)


def _merge_patch(
    plane: ControlPlane, path: str, patch: dict[str, Any], subresource: str = ""
) -> tuple[int, str]:
    request = urllib.request.Request(
        plane.server + path + subresource, data=json.dumps(patch).encode(), method="PATCH"
    )
    request.add_header("Content-Type", "application/merge-patch+json")
    try:
        with urllib.request.urlopen(request, context=plane.api().context, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_a_job_can_be_fixed_while_pending_but_only_suspended_once_its_rayjob_exists(
    plane: ControlPlane,
) -> None:
    doc = _job()
    doc["metadata"]["name"] = "rfj-immutable"
    assert _create(plane, RFJS, doc, dry_run=False)[0] == 201
    path = f"{RFJS}/rfj-immutable"
    # Pending (no RayJob yet): a spec can still be fixed.
    assert _merge_patch(plane, path, {"spec": {"trainers": {"replicas": 1}}})[0] == 200

    # The operator records its RayJob: from now on only rayJob.suspend may change.
    assert _merge_patch(plane, path, {"status": {"rayJobName": "rfj-immutable"}}, "/status")[0] == 200
    status, body = _merge_patch(plane, path, {"spec": {"trainers": {"replicas": 3}}})
    assert status == 422, body
    assert (
        "spec.trainers cannot change once the RayJob exists" in body
        and "only spec.rayJob.suspend can" in body
    )
    status, body = _merge_patch(plane, path, {"spec": {"rayJob": {"ttlSecondsAfterFinished": 60}}})
    assert status == 422 and "spec.rayJob.ttlSecondsAfterFinished cannot change" in body, body
    status, body = _merge_patch(plane, path, {"spec": {"storage": {"pvc": None, "uri": "s3://b/p"}}})
    assert status == 422 and "spec.storage cannot change" in body, body
    status, body = _merge_patch(plane, path, {"spec": {"rayJob": {"suspend": True}}})
    assert status == 200, body
    # Metadata and status stay writable (kopf's annotations, finalizers and the status patches).
    assert _merge_patch(plane, path, {"metadata": {"labels": {"team": "rag"}}})[0] == 200
    assert _merge_patch(plane, path, {"status": {"phase": "Suspended"}}, "/status")[0] == 200
    assert plane.api().request("DELETE", path)[0] == 200


def test_a_retrieval_cluster_keeps_its_spec_once_its_raycluster_exists(plane: ControlPlane) -> None:
    doc = _cluster()
    doc["metadata"]["name"] = "rrc-immutable"
    assert _create(plane, RRCS, doc, dry_run=False)[0] == 201
    path = f"{RRCS}/rrc-immutable"
    assert _merge_patch(plane, path, {"spec": {"retrieval": {"replicas": 2}}})[0] == 200
    assert _merge_patch(plane, path, {"status": {"rayClusterName": "rrc-immutable"}}, "/status")[0] == 200
    status, body = _merge_patch(plane, path, {"spec": {"retrieval": {"replicas": 4}}})
    assert status == 422 and "spec.retrieval cannot change once the RayCluster exists" in body, body
    status, body = _merge_patch(plane, path, {"spec": {"faissThreads": 4}})
    assert status == 422 and "spec.faissThreads cannot change" in body, body
    assert _merge_patch(plane, path, {"status": {"state": "ready"}}, "/status")[0] == 200
    assert plane.api().request("DELETE", path)[0] == 200
