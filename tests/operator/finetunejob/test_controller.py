"""The kopf handlers, called directly against an in-memory Kubernetes API.

No API server runs on these machines (the cluster tests in tests/cluster bring a real one
where a toolchain is built), so these tests use `FakeCustomObjectsApi`/`FakeCoreV1Api` from
rfj_testlib: the same client methods, 404/409 errors and merge-patch semantics. kopf itself
is real: its Patch object, its PermanentError, its owner references.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from rag_operator.common import names
from rag_operator.finetunejob import controller
from tests.operator.testlib import FakeMemo, load_example, merge_patch

GROUP, PLURAL = names.GROUP, names.PLURAL
RAY, RAYJOBS = names.RAY_GROUP, names.RAYJOB_PLURAL
NS = "team-a"


def submit(memo: FakeMemo, which: str = "cpu", **spec_changes: Any) -> dict[str, Any]:
    """`kubectl apply` of an example: the object as the API server stores it."""
    doc = load_example(which)
    doc["metadata"]["namespace"] = NS
    doc["spec"].update(spec_changes)
    return memo.custom.put(GROUP, PLURAL, doc)


def stored(memo: FakeMemo, body: dict[str, Any]) -> dict[str, Any]:
    return memo.custom.get_namespaced_custom_object(
        GROUP, names.VERSION, NS, PLURAL, body["metadata"]["name"]
    )


def edit(memo: FakeMemo, body: dict[str, Any], change: Any) -> dict[str, Any]:
    """`kubectl edit`: the API server stores the new spec and bumps the generation."""
    key = (GROUP, PLURAL, NS, body["metadata"]["name"])
    obj = memo.custom.objects[key]
    change(obj["spec"])
    obj["metadata"]["generation"] += 1
    return copy.deepcopy(obj)


def reconcile(memo: FakeMemo, body: dict[str, Any]) -> kopf.Patch:
    """Run the create/resume/update handler the way kopf does, then apply its patch."""
    patch = kopf.Patch()
    try:
        controller.reconcile(body=body, memo=memo, patch=patch)
    finally:
        key = (GROUP, PLURAL, NS, body["metadata"]["name"])
        memo.custom.objects[key] = merge_patch(memo.custom.objects[key], dict(patch))
    return patch


def rayjobs(memo: FakeMemo) -> list[dict[str, Any]]:
    return [obj for (group, *_), obj in memo.custom.objects.items() if group == RAY]


def ray_progress(memo: FakeMemo, name: str, **ray_status: Any) -> dict[str, Any]:
    """KubeRay moves the RayJob on; returns the RayJob as a watch event would carry it."""
    key = (RAY, RAYJOBS, NS, name)
    memo.custom.objects[key] = merge_patch(memo.custom.objects[key], {"status": ray_status})
    return copy.deepcopy(memo.custom.objects[key])


def creates(memo: FakeMemo) -> int:
    return sum(1 for verb, plural, _ in memo.custom.calls if verb == "create" and plural == RAYJOBS)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def test_create_makes_one_owned_rayjob_and_reports_the_layout(memo: FakeMemo) -> None:
    body = submit(memo)
    reconcile(memo, body)

    (rayjob,) = rayjobs(memo)
    (owner,) = rayjob["metadata"]["ownerReferences"]
    assert owner["uid"] == body["metadata"]["uid"] and owner["kind"] == "RagFinetuneJob"
    assert owner["controller"] is True  # deletion cascades through the garbage collector
    assert rayjob["metadata"]["namespace"] == NS

    job = stored(memo, body)
    assert job["status"]["phase"] == "Pending"
    assert job["status"]["rayJobName"] == rayjob["metadata"]["name"]
    assert (job["status"]["trainers"], job["status"]["retrievalReplicas"]) == (2, 1)
    assert job["status"]["retrievalMemory"] == "3Gi"  # 64Mi x 1.5 + 2Gi, rounded up
    assert condition(job, "RayJobCreated")["status"] == "True"
    assert condition(job, "Invalid")["status"] == "False"
    assert memo.core.reasons() == ["RayJobCreated"]
    assert memo.core.events[0]["involvedObject"]["uid"] == body["metadata"]["uid"]


def test_rerun_after_an_operator_restart_creates_no_second_rayjob(memo: FakeMemo) -> None:
    body = submit(memo)
    reconcile(memo, body)
    rayjob = ray_progress(memo, body["metadata"]["name"], jobStatus="RUNNING", jobDeploymentStatus="Running")
    controller.mirror_rayjob(event={"type": "MODIFIED"}, body=rayjob, memo=memo)

    # A new operator process: kopf calls the resume handler with the stored object.
    reconcile(memo, stored(memo, body))
    reconcile(memo, stored(memo, body))

    assert creates(memo) == 1 and len(rayjobs(memo)) == 1
    assert stored(memo, body)["status"]["phase"] == "Running"  # not reset to Pending
    assert memo.core.reasons().count("RayJobCreated") == 1


def test_a_lost_create_race_adopts_the_existing_rayjob(memo: FakeMemo) -> None:
    body = submit(memo)
    reconcile(memo, body)
    # The first run created the RayJob but died before kopf recorded it; the rerun sees 409.
    original_get = memo.custom.get_namespaced_custom_object
    misses = iter([True])

    def get_missing_once(group, version, namespace, plural, name):
        if plural == RAYJOBS and next(misses, False):
            from kubernetes.client.exceptions import ApiException

            raise ApiException(status=404)
        return original_get(group, version, namespace, plural, name)

    memo.custom.get_namespaced_custom_object = get_missing_once
    reconcile(memo, stored(memo, body))
    assert len(rayjobs(memo)) == 1
    assert stored(memo, body)["status"]["rayJobName"] == body["metadata"]["name"]


def test_rayjob_status_is_mirrored_with_events_on_each_phase_change(memo: FakeMemo) -> None:
    body = submit(memo)
    reconcile(memo, body)
    name = body["metadata"]["name"]

    running = ray_progress(
        memo,
        name,
        jobStatus="RUNNING",
        jobDeploymentStatus="Running",
        startTime="2026-11-25T10:00:00Z",
        dashboardURL="rag-tiny-cpu-raycluster-head-svc.team-a.svc.cluster.local:8265",
    )
    controller.mirror_rayjob(event={"type": "MODIFIED"}, body=running, memo=memo)
    job = stored(memo, body)
    assert (job["status"]["phase"], job["status"]["jobStatus"]) == ("Running", "RUNNING")
    assert job["status"]["dashboardURL"].endswith(":8265")
    assert job["status"]["startTime"] == "2026-11-25T10:00:00Z"
    assert condition(job, "Running")["status"] == "True"
    # The fields the create handler set survive the mirror.
    assert job["status"]["retrievalMemory"] == "3Gi" and condition(job, "RayJobCreated")["status"] == "True"

    status_patches = sum(1 for verb, *_ in memo.custom.calls if verb == "patch-status")
    controller.mirror_rayjob(event={"type": "MODIFIED"}, body=running, memo=memo)  # nothing new
    assert sum(1 for verb, *_ in memo.custom.calls if verb == "patch-status") == status_patches

    done = ray_progress(
        memo, name, jobStatus="SUCCEEDED", jobDeploymentStatus="Complete", endTime="2026-11-25T11:00:00Z"
    )
    controller.mirror_rayjob(event={"type": "MODIFIED"}, body=done, memo=memo)
    job = stored(memo, body)
    assert job["status"]["phase"] == "Succeeded" and job["status"]["endTime"] == "2026-11-25T11:00:00Z"
    assert condition(job, "Succeeded")["status"] == "True" and condition(job, "Running")["status"] == "False"
    assert memo.core.reasons() == ["RayJobCreated", "Running", "Succeeded"]


def test_failure_reason_reaches_the_status_and_a_warning_event(memo: FakeMemo) -> None:
    body = submit(memo)
    reconcile(memo, body)
    failed = ray_progress(
        memo,
        body["metadata"]["name"],
        jobStatus="FAILED",
        jobDeploymentStatus="Failed",
        reason="AppFailed",
        message="Job entrypoint command failed with exit code 1",
    )
    controller.mirror_rayjob(event={"type": "MODIFIED"}, body=failed, memo=memo)
    job = stored(memo, body)
    assert (job["status"]["phase"], job["status"]["reason"]) == ("Failed", "AppFailed")
    assert "exit code 1" in job["status"]["message"]
    assert memo.core.events[-1]["type"] == "Warning" and memo.core.events[-1]["reason"] == "Failed"


def test_invalid_spec_sets_an_invalid_condition_naming_the_field_and_creates_nothing(memo: FakeMemo) -> None:
    doc = load_example("cpu")
    body = submit(memo, trainers={**doc["spec"]["trainers"], "replicas": 0})
    with pytest.raises(kopf.PermanentError, match=r"spec\.trainers\.replicas"):
        reconcile(memo, body)
    assert rayjobs(memo) == [] and creates(memo) == 0
    job = stored(memo, body)
    invalid = condition(job, "Invalid")
    assert invalid["status"] == "True" and "spec.trainers.replicas" in invalid["message"]
    assert job["status"]["phase"] == "Failed" and job["status"]["reason"] == "InvalidSpec"
    assert memo.core.events[-1]["type"] == "Warning" and memo.core.events[-1]["reason"] == "InvalidSpec"


def test_fixing_an_invalid_spec_creates_the_rayjob(memo: FakeMemo) -> None:
    doc = load_example("cpu")
    body = submit(memo, trainers={**doc["spec"]["trainers"], "replicas": 0})
    with pytest.raises(kopf.PermanentError):
        reconcile(memo, body)
    reconcile(memo, edit(memo, body, lambda spec: spec["trainers"].update(replicas=2)))
    assert len(rayjobs(memo)) == 1
    job = stored(memo, body)
    assert condition(job, "Invalid")["status"] == "False" and job["status"]["phase"] == "Pending"


def test_suspend_is_applied_to_the_running_rayjob(memo: FakeMemo) -> None:
    body = submit(memo)
    reconcile(memo, body)
    name = body["metadata"]["name"]

    reconcile(memo, edit(memo, body, lambda spec: spec["rayJob"].update(suspend=True)))
    (rayjob,) = rayjobs(memo)
    assert rayjob["spec"]["suspend"] is True
    assert "SpecChangeRejected" not in [c["type"] for c in stored(memo, body)["status"]["conditions"]]
    assert memo.core.reasons()[-1] == "Suspending"

    suspended = ray_progress(memo, name, jobDeploymentStatus="Suspended")
    controller.mirror_rayjob(event={"type": "MODIFIED"}, body=suspended, memo=memo)
    assert stored(memo, body)["status"]["phase"] == "Suspended"

    reconcile(memo, edit(memo, body, lambda spec: spec["rayJob"].update(suspend=False)))
    assert rayjobs(memo)[0]["spec"]["suspend"] is False
    assert memo.core.reasons()[-1] == "Resuming"


def test_changes_a_live_rayjob_cannot_take_are_rejected_naming_the_fields(memo: FakeMemo) -> None:
    body = submit(memo)
    reconcile(memo, body)
    before = copy.deepcopy(rayjobs(memo)[0])

    def scale_and_bump(spec: dict[str, Any]) -> None:
        spec["trainers"]["replicas"] = 3
        spec["image"] = "ghcr.io/rag-finetune/rag-job:0.2.0-cpu"

    reconcile(memo, edit(memo, body, scale_and_bump))

    assert rayjobs(memo)[0]["spec"] == before["spec"]  # nothing was applied
    rejected = condition(stored(memo, body), "SpecChangeRejected")
    assert rejected["status"] == "True"
    assert "spec.trainers.replicas" in rejected["message"] and "spec.image" in rejected["message"]
    assert memo.core.events[-1]["type"] == "Warning"

    # Still rejected on the next unrelated run (the comparison is with the RayJob, not kopf's diff).
    reconcile(memo, stored(memo, body))
    assert condition(stored(memo, body), "SpecChangeRejected")["status"] == "True"

    def revert(spec: dict[str, Any]) -> None:
        spec.clear()
        spec.update(copy.deepcopy(body["spec"]))

    reconcile(memo, edit(memo, body, revert))
    assert condition(stored(memo, body), "SpecChangeRejected")["status"] == "False"


def test_a_foreign_rayjob_with_the_same_name_is_left_alone(memo: FakeMemo) -> None:
    body = submit(memo)
    foreign = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": body["metadata"]["name"], "namespace": NS},
        "spec": {"entrypoint": "echo mine"},
    }
    memo.custom.put(RAY, RAYJOBS, foreign)
    with pytest.raises(kopf.PermanentError, match="not owned"):
        reconcile(memo, body)
    (rayjob,) = rayjobs(memo)
    assert rayjob["spec"] == {"entrypoint": "echo mine"}
    assert condition(stored(memo, body), "RayJobCreated")["status"] == "False"


def test_a_deleted_rayjob_is_reported(memo: FakeMemo) -> None:
    body = submit(memo)
    reconcile(memo, body)
    (rayjob,) = rayjobs(memo)
    memo.custom.delete(RAY, RAYJOBS, NS, rayjob["metadata"]["name"])
    controller.mirror_rayjob(event={"type": "DELETED"}, body=rayjob, memo=memo)
    created = condition(stored(memo, body), "RayJobCreated")
    assert created["status"] == "False" and created["reason"] == "RayJobDeleted"


def test_a_deleted_rayjob_is_not_recreated_on_restart(memo: FakeMemo) -> None:
    body = submit(memo)
    reconcile(memo, body)
    (rayjob,) = rayjobs(memo)
    memo.custom.delete(RAY, RAYJOBS, NS, rayjob["metadata"]["name"])
    reconcile(memo, stored(memo, body))  # resume after an operator restart
    assert rayjobs(memo) == [] and creates(memo) == 1
    created = condition(stored(memo, body), "RayJobCreated")
    assert created["status"] == "False" and "not re-created" in created["message"]


def test_an_invalid_edit_of_a_live_job_keeps_its_phase_and_rayjob(memo: FakeMemo) -> None:
    body = submit(memo)
    reconcile(memo, body)
    running = ray_progress(memo, body["metadata"]["name"], jobStatus="RUNNING", jobDeploymentStatus="Running")
    controller.mirror_rayjob(event={"type": "MODIFIED"}, body=running, memo=memo)
    with pytest.raises(kopf.PermanentError, match=r"spec\.retrieval\.shards"):
        reconcile(memo, edit(memo, body, lambda spec: spec["retrieval"].update(shards=0)))
    job = stored(memo, body)
    assert job["status"]["phase"] == "Running" and len(rayjobs(memo)) == 1
    assert condition(job, "Invalid")["status"] == "True"


def test_events_for_a_rayjob_without_its_owner_are_ignored(memo: FakeMemo) -> None:
    body = submit(memo)
    reconcile(memo, body)
    (rayjob,) = rayjobs(memo)
    memo.custom.delete(GROUP, PLURAL, NS, body["metadata"]["name"])
    controller.mirror_rayjob(event={"type": "MODIFIED"}, body=rayjob, memo=memo)  # no exception
    assert not any(verb == "patch-status" for verb, *_ in memo.custom.calls)


def test_the_rayjob_keeps_the_spec_it_was_rendered_from(memo: FakeMemo) -> None:
    body = submit(memo)
    reconcile(memo, body)
    (rayjob,) = rayjobs(memo)
    applied = json.loads(rayjob["metadata"]["annotations"][names.ANNOTATION_APPLIED_SPEC])
    assert applied["trainers"]["replicas"] == body["spec"]["trainers"]["replicas"]


def test_handlers_are_registered_for_create_resume_spec_changes_and_rayjob_events() -> None:
    registry = kopf.get_default_registry()
    changing = registry._changing.get_all_handlers()
    reasons = {(h.reason, h.field) for h in changing if h.fn is controller.reconcile}
    assert {r for r, _ in reasons} == {"create", "update", None}  # None: resume
    watching = registry._watching.get_all_handlers()
    (mirror,) = [h for h in watching if h.fn is controller.mirror_rayjob]
    assert mirror.selector.group == "ray.io" and mirror.labels == {
        names.LABEL_MANAGED_BY: names.OPERATOR_NAME
    }


# --- queueing with Kueue (spec.rayJob.queueName) ---------------------------------------------------
# The fake API stands in for Kueue here (it un-suspends the RayJob as Kueue's admission does, and
# holds the Workload Kueue would make); tests/nodes/test_kueue.py runs the real Kueue on real pods.


def test_a_queued_job_is_created_suspended_for_kueue_and_the_operator_never_resumes_it(
    memo: FakeMemo,
) -> None:
    body = submit(memo, rayJob={"queueName": "team-a-gpus"})
    reconcile(memo, body)
    (rayjob,) = rayjobs(memo)
    assert rayjob["metadata"]["labels"][names.LABEL_KUEUE_QUEUE] == "team-a-gpus"
    assert rayjob["spec"]["suspend"] is True
    name = body["metadata"]["name"]

    held = ray_progress(memo, name, jobDeploymentStatus="Suspended")
    controller.mirror_rayjob(event={"type": "MODIFIED"}, body=held, memo=memo)
    job = stored(memo, body)
    assert (job["status"]["phase"], job["status"]["reason"]) == ("Queued", "WaitingForAdmission")
    assert "LocalQueue team-a-gpus" in job["status"]["message"]
    assert condition(job, "Queued")["status"] == "True"

    reconcile(memo, stored(memo, body))  # a resume or restart of the operator: suspend is Kueue's
    assert rayjobs(memo)[0]["spec"]["suspend"] is True
    assert not [c for c in memo.custom.calls if c[0] == "patch" and c[1] == RAYJOBS]

    key = (RAY, RAYJOBS, NS, name)  # Kueue admits it: un-suspends the RayJob, KubeRay runs it
    memo.custom.objects[key]["spec"]["suspend"] = False
    running = ray_progress(memo, name, jobDeploymentStatus="Running", jobStatus="RUNNING")
    controller.mirror_rayjob(event={"type": "MODIFIED"}, body=running, memo=memo)
    job = stored(memo, body)
    assert job["status"]["phase"] == "Running" and condition(job, "Queued")["status"] == "False"
    reconcile(memo, stored(memo, body))
    assert rayjobs(memo)[0]["spec"]["suspend"] is False  # and it never suspends it again either


def test_a_queued_job_may_not_be_suspended_by_hand(memo: FakeMemo) -> None:
    body = submit(memo, rayJob={"queueName": "q", "suspend": True})
    with pytest.raises(kopf.PermanentError):
        reconcile(memo, body)
    job = stored(memo, body)
    assert "spec.rayJob.suspend: must be false with spec.rayJob.queueName" in job["status"]["message"]
    assert rayjobs(memo) == []


def kueue_workload(memo: FakeMemo, rayjob: dict[str, Any], **condition: str) -> None:
    """The Workload Kueue makes for a RayJob, with its QuotaReserved condition."""
    memo.custom.put(
        "kueue.x-k8s.io",
        "workloads",
        {
            "metadata": {
                "name": f"rayjob-{rayjob['metadata']['name']}-1a2b3",
                "namespace": NS,
                "labels": {"kueue.x-k8s.io/job-uid": rayjob["metadata"]["uid"]},
                "creationTimestamp": "2026-12-04T05:00:00Z",
            },
            "status": {"conditions": [{"type": "QuotaReserved", **condition}]},
        },
    )


def test_a_queued_job_says_why_kueue_holds_it(memo: FakeMemo) -> None:
    body = submit(memo, rayJob={"queueName": "team-a-gpus"})
    reconcile(memo, body)
    (rayjob,) = rayjobs(memo)
    held = ray_progress(memo, body["metadata"]["name"], jobDeploymentStatus="Suspended")
    controller.mirror_rayjob(event={"type": "MODIFIED"}, body=held, memo=memo)
    why = "couldn't assign flavors to pod set head: insufficient unused quota for cpu in flavor default, 3 more needed"
    kueue_workload(memo, rayjob, status="False", reason="Pending", message=why)

    controller.report_queue(body=stored(memo, body), memo=memo, logger=None)
    job = stored(memo, body)
    assert job["status"]["phase"] == "Queued"
    assert (
        job["status"]["message"]
        == f"waiting for Kueue to admit it from LocalQueue team-a-gpus: Pending: {why}"
    )
    assert why in condition(job, "Queued")["message"]
    # A later RayJob event (KubeRay touching the suspended RayJob) keeps Kueue's reason.
    controller.mirror_rayjob(event={"type": "MODIFIED"}, body=held, memo=memo)
    assert why in stored(memo, body)["status"]["message"]


def test_a_queued_job_without_kueue_installed_still_shows_its_queue(memo: FakeMemo) -> None:
    """The Workload API answering 404 (no Kueue, or a version without it) changes nothing."""
    body = submit(memo, rayJob={"queueName": "q"})
    reconcile(memo, body)
    held = ray_progress(memo, body["metadata"]["name"], jobDeploymentStatus="Suspended")
    controller.mirror_rayjob(event={"type": "MODIFIED"}, body=held, memo=memo)
    before = stored(memo, body)["status"]
    listing = memo.custom.list_namespaced_custom_object

    def no_kueue(group: str, version: str, namespace: str, plural: str, **kwargs: Any) -> Any:
        if plural == "workloads":
            raise ApiException(status=404, reason="Not Found")
        return listing(group, version, namespace, plural, **kwargs)

    memo.custom.list_namespaced_custom_object = no_kueue
    logged: list[str] = []

    class Logger:
        def info(self, text: str, *args: Any) -> None:
            logged.append(text % args)

    controller.report_queue(body=stored(memo, body), memo=memo, logger=Logger())
    assert stored(memo, body)["status"] == before
    assert logged and "404" in logged[0], logged
