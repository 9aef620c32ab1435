"""kopf handlers: thin glue between the Kubernetes API and the pure modules.

The kubernetes client objects live in kopf's `memo` (`memo.custom`: CustomObjectsApi,
`memo.core`: CoreV1Api), set at startup; tests put an in-memory fake there.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from . import changes, names, render, status
from .spec import SpecError, parse_spec

RFJ = (names.GROUP, names.VERSION, names.PLURAL)
RAYJOB = (names.RAY_GROUP, names.RAY_VERSION, names.RAYJOB_PLURAL)
MERGE_PATCH = "application/merge-patch+json"
#: Condition on a job with retrievalClusterRef, and how often a waiting job looks again.
RETRIEVAL_CLUSTER_READY = "RetrievalClusterReady"
WAIT_FOR_CLUSTER_SECONDS = 15
#: How often a started, unfinished job's pods are checked for scheduling problems.
SCHEDULING_POLL_SECONDS = 15
_FINISHED_PHASES = ("Succeeded", "Failed")
#: Status reasons of a job that has no RayJob yet; creating it replaces them.
_PRE_RAYJOB_REASONS = (
    "InvalidSpec",
    "NameConflict",
    "RetrievalClusterMissing",
    "RetrievalClusterDeleting",
    "RetrievalClusterNotReady",
)


def now() -> str:
    """RFC 3339 UTC timestamp, second precision (what Kubernetes writes)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Keep kopf's bookkeeping in our own annotations; connect the kubernetes client."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=names.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=names.GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = names.FINALIZER  # only resources with a delete handler get it
    settings.posting.level = logging.WARNING
    if getattr(memo, "custom", None) is None:
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        memo.custom = client.CustomObjectsApi()
        memo.core = client.CoreV1Api()


# --- RagFinetuneJob: create / resume / spec change ------------------------------------------------


@kopf.on.resume(*RFJ)
@kopf.on.create(*RFJ)
@kopf.on.update(*RFJ, field="spec")
def reconcile(body: Any, memo: Any, patch: Any, logger: Any = None, **_: Any) -> None:
    """Validate the spec, make sure the RayJob exists (once), apply `suspend`, reject the rest."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    current = dict(body.get("status") or {})
    conditions = current.get("conditions") or []
    stamp = now()
    manifest = {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": _plain(body.get("spec")),
    }
    try:
        cluster = _retrieval_cluster(memo, body, current, conditions, patch, stamp)
        if cluster is None:
            return
        rayjob, plan = render.rayjob_for(manifest, cluster=cluster or None)
    except SpecError as err:
        running = current.get("rayJobName")
        outcome = f"RayJob {running} is left as it was" if running else "nothing was created"
        message = f"invalid RagFinetuneJob, {outcome}: {err}"
        invalid = status.set_condition(conditions, status.INVALID, True, "InvalidSpec", message, stamp)
        if running:  # an invalid edit of a live job: say so, but the phase still follows the RayJob
            patch.status.update(conditions=invalid)
        else:
            patch.status.update(phase="Failed", reason="InvalidSpec", message=message, conditions=invalid)
        post_event(memo, body, status.Event("Warning", "InvalidSpec", message), stamp)
        raise kopf.PermanentError(message) from err

    conditions = status.set_condition(conditions, status.INVALID, False, "SpecValid", "spec is valid", stamp)
    if cluster:
        conditions = status.set_condition(
            conditions,
            RETRIEVAL_CLUSTER_READY,
            True,
            "Ready",
            f"runs on RagRetrievalCluster {cluster[0]}",
            stamp,
        )
    existing = get_rayjob(memo, namespace, rayjob["metadata"]["name"])
    if existing is not None and not _owned_by(existing, meta.get("uid")):
        message = (
            f"a RayJob named {rayjob['metadata']['name']!r} already exists in {namespace!r} and is not "
            "owned by this RagFinetuneJob: delete it or rename the RagFinetuneJob"
        )
        patch.status.update(
            phase="Failed",
            reason="NameConflict",
            message=message,
            conditions=status.set_condition(
                conditions, status.RAYJOB_CREATED, False, "NameConflict", message, stamp
            ),
        )
        post_event(memo, body, status.Event("Warning", "NameConflict", message), stamp)
        raise kopf.PermanentError(message)

    if existing is None and current.get("rayJobName"):
        # It existed (status says so) and someone deleted it: re-creating would rerun the training.
        message = (
            f"RayJob {current['rayJobName']} no longer exists and is not re-created (that would rerun "
            "the job): delete and re-create the RagFinetuneJob to run it again"
        )
        patch.status.update(
            conditions=status.set_condition(
                conditions, status.RAYJOB_CREATED, False, "RayJobDeleted", message, stamp
            )
        )
        return
    if existing is None:
        kopf.append_owner_reference(rayjob, owner=body)
        existing = create_rayjob(memo, namespace, rayjob)
        post_event(
            memo,
            body,
            status.Event("Normal", "RayJobCreated", f"created RayJob {rayjob['metadata']['name']}"),
            stamp,
        )
    else:
        conditions = _apply_spec_change(memo, body, existing, conditions, stamp, logger)

    conditions = status.set_condition(
        conditions, status.RAYJOB_CREATED, True, "Created", f"RayJob {existing['metadata']['name']}", stamp
    )
    update: dict[str, Any] = {
        "rayJobName": existing["metadata"]["name"],
        "trainers": plan.trainer_workers,
        "retrievalReplicas": plan.retrieval_pods,
        "retrievalMemory": plan.retrieval_memory or None,
        "observedGeneration": meta.get("generation"),
        "conditions": conditions,
    }
    if not current.get("phase") or current.get("reason") in _PRE_RAYJOB_REASONS:
        update.update(phase="Pending", reason="RayJobCreated", message=None)
    patch.status.update(
        {key: value for key, value in update.items() if value is not None or key == "message"}
    )


def _retrieval_cluster(
    memo: Any, body: Any, current: dict[str, Any], conditions: list[dict[str, Any]], patch: Any, stamp: str
) -> tuple[str, Any] | tuple[()] | None:
    """The (name, spec) of the RagRetrievalCluster the job references; () when it references none.

    A missing or not-Ready cluster holds a job that has no RayJob yet: the status says why,
    kopf retries after a delay (TemporaryError), nothing is created, nothing crash-loops.
    None: the job already has its RayJob but the cluster cannot be read (reported, no change).
    """
    from .rrc_spec import parse_rrc_spec
    from .rrc_status import is_ready

    meta = body["metadata"]
    ref = (body.get("spec") or {}).get("retrievalClusterRef")
    if not ref:
        return ()
    try:
        rrc = memo.custom.get_namespaced_custom_object(
            names.GROUP, names.VERSION, meta["namespace"], names.RRC_PLURAL, ref
        )
    except ApiException as err:
        if err.status != 404:
            raise
        rrc = None
    started = bool(current.get("rayJobName"))
    if rrc is not None and (started or is_ready(rrc)):
        return ref, parse_rrc_spec(_plain(rrc.get("spec")))
    if rrc is None:
        reason = "RetrievalClusterMissing"
        message = f"RagRetrievalCluster {ref!r} does not exist in {meta['namespace']!r}"
    elif (rrc.get("metadata") or {}).get("deletionTimestamp"):
        reason = "RetrievalClusterDeleting"
        message = f"RagRetrievalCluster {ref!r} is being deleted"
    else:
        reason = "RetrievalClusterNotReady"
        ready = status.find_condition((rrc.get("status") or {}).get("conditions"), "Ready")
        message = f"RagRetrievalCluster {ref!r} is not Ready ({ready.get('message') or 'no status yet'})"
    updated = status.set_condition(conditions, RETRIEVAL_CLUSTER_READY, False, reason, message, stamp)
    if started:
        patch.status.update(conditions=updated)
        return None
    message = f"waiting: {message}; the RayJob is created once it is Ready"
    updated = status.set_condition(conditions, RETRIEVAL_CLUSTER_READY, False, reason, message, stamp)
    patch.status.update(phase="Pending", reason=reason, message=message, conditions=updated)
    if current.get("reason") != reason:
        post_event(memo, body, status.Event("Normal", reason, message), stamp)
    raise kopf.TemporaryError(message, delay=WAIT_FOR_CLUSTER_SECONDS)


def _apply_spec_change(
    memo: Any, body: Any, rayjob: dict[str, Any], conditions: list[dict[str, Any]], stamp: str, logger: Any
) -> list[dict[str, Any]]:
    """Suspend/resume the RayJob; name (and refuse) every other field that changed."""
    requested = parse_spec(_plain(body.get("spec")))
    annotations = rayjob["metadata"].get("annotations") or {}
    applied = json.loads(annotations.get(names.ANNOTATION_APPLIED_SPEC, "{}"))
    rejected = changes.rejected_changes(applied, render.spec_as_written(requested)) if applied else []
    had_rejection = status.condition_status(conditions, status.SPEC_CHANGE_REJECTED) == "True"
    if rejected:
        message = (
            f"cannot change {', '.join(rejected)} while RayJob {rayjob['metadata']['name']} exists; "
            "only spec.rayJob.suspend can change. Delete and re-create the RagFinetuneJob to apply them"
        )
        conditions = status.set_condition(
            conditions, status.SPEC_CHANGE_REJECTED, True, "ImmutableFields", message, stamp
        )
        post_event(memo, body, status.Event("Warning", "SpecChangeRejected", message), stamp)
    elif had_rejection:
        conditions = status.set_condition(
            conditions,
            status.SPEC_CHANGE_REJECTED,
            False,
            "SpecMatchesRayJob",
            "spec matches the RayJob",
            stamp,
        )
    want = requested.ray_job.suspend
    if bool((rayjob.get("spec") or {}).get("suspend", False)) != want:
        meta = rayjob["metadata"]
        memo.custom.patch_namespaced_custom_object(
            *RAYJOB[:2],
            meta["namespace"],
            RAYJOB[2],
            meta["name"],
            {"spec": {"suspend": want}},
            _content_type=MERGE_PATCH,
        )
        reason = "Suspending" if want else "Resuming"
        post_event(memo, body, status.Event("Normal", reason, f"{reason} RayJob {meta['name']}"), stamp)
    return conditions


# --- RayJob status -> RagFinetuneJob status ------------------------------------------------------


@kopf.on.event(*RAYJOB, labels={names.LABEL_MANAGED_BY: names.OPERATOR_NAME})
def mirror_rayjob(event: dict[str, Any], body: Any, memo: Any, logger: Any = None, **_: Any) -> None:
    """Copy the RayJob's status into its owner's status; post an event on each phase change."""
    owner = _owner_name(body)
    if owner is None:
        return
    namespace = body["metadata"]["namespace"]
    try:
        job = memo.custom.get_namespaced_custom_object(*RFJ[:2], namespace, RFJ[2], owner)
    except ApiException as err:
        if err.status == 404:
            return  # the owner is gone; garbage collection removes the RayJob
        raise
    stamp = now()
    current = job.get("status") or {}
    if event.get("type") == "DELETED":
        if job["metadata"].get("deletionTimestamp"):
            return
        message = f"RayJob {body['metadata']['name']} was deleted"
        update = {
            "conditions": status.set_condition(
                current.get("conditions"), status.RAYJOB_CREATED, False, "RayJobDeleted", message, stamp
            )
        }
        events = [status.Event("Warning", "RayJobDeleted", message)]
    else:
        update, events = status.mirror(_plain(body), current, stamp)
    if any(current.get(key) != value for key, value in update.items()):
        memo.custom.patch_namespaced_custom_object_status(
            *RFJ[:2], namespace, RFJ[2], owner, {"status": update}, _content_type=MERGE_PATCH
        )
    for item in events:
        post_event(memo, job, item, stamp)


# --- pod scheduling -> RagFinetuneJob status ------------------------------------------------------


def _has_live_pods(status: Any, **_: Any) -> bool:
    """Only started, unfinished jobs have pods worth checking."""
    return bool(status.get("rayJobName")) and status.get("phase") not in _FINISHED_PHASES


@kopf.timer(*RFJ, interval=SCHEDULING_POLL_SECONDS, when=_has_live_pods)
def report_scheduling(body: Any, memo: Any, **_: Any) -> None:
    """Set PodsScheduled from the job's pods, so a group that fits no node says why in our status.

    Reads the pods by the job label (KubeRay copies our template labels onto them). Patches with
    the resourceVersion just read, so it never overwrites conditions the RayJob mirror wrote in
    between; on a conflict the next tick tries again.
    """
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    listed = memo.core.list_namespaced_pod(namespace, label_selector=f"{names.LABEL_JOB}={name}")
    pods = memo.core.api_client.sanitize_for_serialization(listed).get("items") or []
    found = status.scheduling(pods, names.LABEL_GROUP)
    if found is None:
        return
    job = memo.custom.get_namespaced_custom_object(*RFJ[:2], namespace, RFJ[2], name)
    conditions = (job.get("status") or {}).get("conditions") or []
    before = status.find_condition(conditions, status.PODS_SCHEDULED)
    wanted = ("True" if found.scheduled else "False", found.reason, found.message)
    if (before.get("status"), before.get("reason"), before.get("message")) == wanted:
        return
    stamp = now()
    updated = status.set_condition(
        conditions, status.PODS_SCHEDULED, found.scheduled, found.reason, found.message, stamp
    )
    body_patch = {"metadata": {"resourceVersion": job["metadata"]["resourceVersion"]}}
    body_patch["status"] = {"conditions": updated}
    try:
        memo.custom.patch_namespaced_custom_object_status(
            *RFJ[:2], namespace, RFJ[2], name, body_patch, _content_type=MERGE_PATCH
        )
    except ApiException as err:
        if err.status == 409:
            return
        raise
    if found.reason == "Unschedulable" and before.get("reason") != "Unschedulable":
        post_event(memo, job, status.Event("Warning", "Unschedulable", found.message), stamp)


# --- small API helpers ---------------------------------------------------------------------------


def get_rayjob(memo: Any, namespace: str, name: str) -> dict[str, Any] | None:
    """The RayJob, or None when there is none."""
    try:
        return memo.custom.get_namespaced_custom_object(*RAYJOB[:2], namespace, RAYJOB[2], name)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def create_rayjob(memo: Any, namespace: str, rayjob: dict[str, Any]) -> dict[str, Any]:
    """Create it; if another run of this handler won the race (409), use that one."""
    try:
        return memo.custom.create_namespaced_custom_object(*RAYJOB[:2], namespace, RAYJOB[2], rayjob)
    except ApiException as err:
        if err.status != 409:
            raise
        found = get_rayjob(memo, namespace, rayjob["metadata"]["name"])
        if found is None:
            raise kopf.TemporaryError("RayJob conflict but not found; retrying", delay=5) from err
        return found


def post_event(memo: Any, obj: Any, event: status.Event, stamp: str) -> None:
    """A core/v1 Event on the RagFinetuneJob; failing to post never fails the handler."""
    from kubernetes.client import CoreV1Event

    meta = obj["metadata"]
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": names.API_VERSION,
            "kind": obj.get("kind") or names.KIND,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
        },
        "type": event.type,
        "reason": event.reason,
        "message": event.message[:1024],
        "source": {"component": names.OPERATOR_NAME},
        "reportingComponent": names.OPERATOR_NAME,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    try:
        memo.core.create_namespaced_event(meta["namespace"], CoreV1Event.from_dict(body))
    except ApiException as err:
        logging.getLogger(__name__).warning("could not post event %s: %s", event.reason, err.reason)


def _owned_by(obj: dict[str, Any], uid: str | None) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid and ref.get("kind") == names.KIND for ref in refs)


def _owner_name(obj: Any) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == names.KIND and ref.get("apiVersion", "").startswith(f"{names.GROUP}/"):
            return ref.get("name")
    return None


def _plain(value: Any) -> Any:
    """kopf's body views -> plain dicts/lists (pydantic and json want real containers)."""
    if hasattr(value, "items"):
        return {key: _plain(sub) for key, sub in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(sub) for sub in value]
    return value
