"""kopf handlers for RagFinetuneJob: thin glue between the Kubernetes API and the pure modules.

- create/resume/spec change: validate, create the owned RayJob once (after the referenced
  RagRetrievalCluster is Ready, for a shared job), apply `suspend`, refuse other changes;
- RayJob events: mirror its status into ours;
- a timer: the job's pods' scheduling (PodsScheduled), a shared job's pool pods included;
- a timer: a running job's training progress, from its Ray head's metrics (status.progress);
- a timer: why Kueue holds a queued job (its Workload's condition, into status.message).
"""

from __future__ import annotations

from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from ..common import names
from ..common.changes import rejected_changes_of
from ..common.conditions import SPEC_CHANGE_REJECTED, Event, condition_status, find_condition, set_condition
from ..common.errors import SpecError
from ..common.kube import (
    NETWORKPOLICY,
    RAYJOB,
    RFJ,
    RRC,
    CreateRejected,
    create_object,
    ensure_owned,
    get_object,
    list_objects,
    list_pods,
    now,
    owned_by,
    patch_status,
    post_event,
    update_status,
)
from ..common.manifests import manifest_of, plain
from ..common.pods import TRAINER_GROUP
from ..common.reconcile import invalid_spec, valid_spec
from ..common.scheduling import PODS_SCHEDULED, scheduling
from ..metrics import measured
from ..retrievalcluster.spec import parse_rrc_spec
from ..retrievalcluster.status import READY as CLUSTER_READY
from ..retrievalcluster.status import is_ready
from . import progress, queueing, render, status
from .plan import SPEC_DEFAULTS
from .spec import parse_spec

#: Condition on a job with retrievalClusterRef, and how often a waiting job looks again.
RETRIEVAL_CLUSTER_READY = "RetrievalClusterReady"
WAIT_FOR_CLUSTER_SECONDS = 15
#: How often a started, unfinished job's pods are checked for scheduling problems.
SCHEDULING_POLL_SECONDS = 15
#: How often a running job's training progress is read from its Ray head's metrics.
PROGRESS_POLL_SECONDS = 20
#: How often a queued job's Kueue Workload is read for the reason it waits.
QUEUE_POLL_SECONDS = 15
#: Dotted spec paths that may change while the RayJob exists.
MUTABLE_PATHS = frozenset({"rayJob.suspend"})
_FINISHED_PHASES = ("Succeeded", "Failed")
#: Status reasons of a job that has no RayJob yet; creating it replaces them.
_PRE_RAYJOB_REASONS = (
    "InvalidSpec",
    "NameConflict",
    "RetrievalClusterMissing",
    "RetrievalClusterDeleting",
    "RetrievalClusterNotReady",
)


# --- RagFinetuneJob: create / resume / spec change ------------------------------------------------


@kopf.on.resume(*RFJ)
@kopf.on.create(*RFJ)
@kopf.on.update(*RFJ, field="spec")
@measured("ragfinetunejob")
def reconcile(body: Any, memo: Any, patch: Any, logger: Any = None, **_: Any) -> None:
    """Validate the spec, make sure the RayJob exists (once), apply `suspend`, reject the rest."""
    meta = body["metadata"]
    namespace = meta["namespace"]
    current = dict(body.get("status") or {})
    conditions = current.get("conditions") or []
    stamp = now()
    try:
        cluster = _retrieval_cluster(memo, body, current, conditions, patch, stamp)
        if cluster is None:
            return
        rayjob, plan = render.rayjob_for(manifest_of(body, names.KIND), cluster=cluster or None)
        if not current.get("rayJobName"):
            _check_paths_are_free(memo, body, plan.job_config)
    except SpecError as err:
        running = current.get("rayJobName")
        message, invalid = invalid_spec(
            memo, body, err, names.KIND, running and f"RayJob {running}", conditions, stamp
        )
        if running:  # an invalid edit of a live job: say so, but the phase still follows the RayJob
            patch.status.update(conditions=invalid)
        else:
            patch.status.update(phase="Failed", reason="InvalidSpec", message=message, conditions=invalid)
        raise kopf.PermanentError(message) from err

    conditions = valid_spec(conditions, stamp)
    if cluster:
        message = f"runs on RagRetrievalCluster {cluster[0]}"
        conditions = set_condition(conditions, RETRIEVAL_CLUSTER_READY, True, "Ready", message, stamp)
    rayjob_name = rayjob["metadata"]["name"]
    existing = get_object(memo, RAYJOB, namespace, rayjob_name)
    if existing is not None and not owned_by(existing, meta.get("uid"), names.KIND):
        message = (
            f"a RayJob named {rayjob_name!r} already exists in {namespace!r} and is not "
            "owned by this RagFinetuneJob: delete it or rename the RagFinetuneJob"
        )
        conditions = set_condition(conditions, status.RAYJOB_CREATED, False, "NameConflict", message, stamp)
        patch.status.update(phase="Failed", reason="NameConflict", message=message, conditions=conditions)
        post_event(memo, body, Event("Warning", "NameConflict", message), stamp)
        raise kopf.PermanentError(message)

    if existing is None and current.get("rayJobName"):
        # It existed (status says so) and someone deleted it: re-creating would rerun the training.
        if current.get("phase") not in _FINISHED_PHASES:
            update, event = rayjob_vanished(current, current["rayJobName"], stamp)
            patch.status.update(update)
            post_event(memo, body, event, stamp)
        return
    policy = render.render_job_network_policy(meta["name"], namespace, plan_spec(body))
    try:
        ensure_owned(memo, NETWORKPOLICY, body, policy)
        if existing is None:
            kopf.append_owner_reference(rayjob, owner=body)
            existing = create_object(memo, RAYJOB, namespace, rayjob)
            post_event(memo, body, Event("Normal", "RayJobCreated", f"created RayJob {rayjob_name}"), stamp)
        else:
            conditions = _apply_spec_change(memo, body, existing, conditions, stamp)
    except CreateRejected as err:
        message = f"{err}; nothing more is tried until the RagFinetuneJob changes or the operator restarts"
        conditions = set_condition(conditions, status.RAYJOB_CREATED, False, "CreateRejected", message, stamp)
        if not current.get("rayJobName"):
            patch.status.update(
                phase="Failed", reason="CreateRejected", message=message, conditions=conditions
            )
        else:
            patch.status.update(conditions=conditions)
        post_event(memo, body, Event("Warning", "CreateRejected", message), stamp)
        raise kopf.PermanentError(message) from err

    conditions = set_condition(
        conditions, status.RAYJOB_CREATED, True, "Created", f"RayJob {existing['metadata']['name']}", stamp
    )
    update: dict[str, Any] = {
        "rayJobName": existing["metadata"]["name"],
        "trainers": plan.trainer_workers,
        "retrievalReplicas": plan.retrieval_pods,
        "retrievalMemory": plan.retrieval_memory or None,
        "outputDir": plan.job_config.output_dir,
        "checkpointPath": plan.job_config.checkpoint.storage_path,
        "networkPolicyName": policy["metadata"]["name"] if policy else None,
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
    meta = body["metadata"]
    ref = (body.get("spec") or {}).get("retrievalClusterRef")
    if not ref:
        return ()
    rrc = get_object(memo, RRC, meta["namespace"], ref)
    started = bool(current.get("rayJobName"))
    if rrc is not None and (started or is_ready(rrc)):
        return ref, parse_rrc_spec(plain(rrc.get("spec")))
    if rrc is None:
        reason = "RetrievalClusterMissing"
        message = f"RagRetrievalCluster {ref!r} does not exist in {meta['namespace']!r}"
    elif (rrc.get("metadata") or {}).get("deletionTimestamp"):
        reason = "RetrievalClusterDeleting"
        message = f"RagRetrievalCluster {ref!r} is being deleted"
    else:
        reason = "RetrievalClusterNotReady"
        ready = find_condition((rrc.get("status") or {}).get("conditions"), CLUSTER_READY)
        message = f"RagRetrievalCluster {ref!r} is not Ready ({ready.get('message') or 'no status yet'})"
    if started:
        patch.status.update(
            conditions=set_condition(conditions, RETRIEVAL_CLUSTER_READY, False, reason, message, stamp)
        )
        return None
    message = f"waiting: {message}; the RayJob is created once it is Ready"
    updated = set_condition(conditions, RETRIEVAL_CLUSTER_READY, False, reason, message, stamp)
    patch.status.update(phase="Pending", reason=reason, message=message, conditions=updated)
    if current.get("reason") != reason:
        post_event(memo, body, Event("Normal", reason, message), stamp)
    raise kopf.TemporaryError(message, delay=WAIT_FOR_CLUSTER_SECONDS)


def _apply_spec_change(
    memo: Any, body: Any, rayjob: dict[str, Any], conditions: list[dict[str, Any]], stamp: str
) -> list[dict[str, Any]]:
    """Suspend/resume the RayJob; name (and refuse) every other field that changed."""
    requested = parse_spec(plain(body.get("spec")))
    rejected = rejected_changes_of(rayjob, requested, MUTABLE_PATHS, SPEC_DEFAULTS)
    had_rejection = condition_status(conditions, SPEC_CHANGE_REJECTED) == "True"
    if rejected:
        message = (
            f"cannot change {', '.join(rejected)} while RayJob {rayjob['metadata']['name']} exists; "
            "only spec.rayJob.suspend can change. Delete and re-create the RagFinetuneJob to apply them"
        )
        conditions = set_condition(conditions, SPEC_CHANGE_REJECTED, True, "ImmutableFields", message, stamp)
        post_event(memo, body, Event("Warning", "SpecChangeRejected", message), stamp)
    elif had_rejection:
        conditions = set_condition(
            conditions, SPEC_CHANGE_REJECTED, False, "SpecMatchesRayJob", "spec matches the RayJob", stamp
        )
    want = requested.ray_job.suspend
    queued = names.LABEL_KUEUE_QUEUE in (rayjob["metadata"].get("labels") or {})
    if not queued and bool((rayjob.get("spec") or {}).get("suspend", False)) != want:  # Kueue owns it
        meta = rayjob["metadata"]
        memo.custom.patch_namespaced_custom_object(
            *RAYJOB[:2],
            meta["namespace"],
            RAYJOB[2],
            meta["name"],
            {"spec": {"suspend": want}},  # a dict body: sent as a merge patch
        )
        reason = "Suspending" if want else "Resuming"
        post_event(memo, body, Event("Normal", reason, f"{reason} RayJob {meta['name']}"), stamp)
    return conditions


# --- RayJob status -> RagFinetuneJob status ------------------------------------------------------


@kopf.on.event(*RAYJOB, labels={names.LABEL_MANAGED_BY: names.OPERATOR_NAME})
@measured("ragfinetunejob")
def mirror_rayjob(event: dict[str, Any], body: Any, memo: Any, logger: Any = None, **_: Any) -> None:
    """Copy the RayJob's status into its owner's status; post an event on each phase change."""
    owner = _owner_name(body)
    if owner is None:
        return
    namespace = body["metadata"]["namespace"]
    stamp = now()
    events: list[Event] = []

    def compute(job: dict[str, Any]) -> dict[str, Any] | None:
        current = job.get("status") or {}
        if event.get("type") == "DELETED":
            if job["metadata"].get("deletionTimestamp"):
                return None
            update, deleted = rayjob_vanished(current, body["metadata"]["name"], stamp)
            found = [deleted]
        else:
            update, found = status.mirror(plain(body), current, stamp)
        events[:] = found
        return update if any(current.get(key) != value for key, value in update.items()) else None

    job = update_status(memo, RFJ, namespace, owner, compute)
    if job is None:
        return  # the owner is gone (garbage collection removes the RayJob), or it is being deleted
    for item in events:
        post_event(memo, job, item, stamp)


# --- pod scheduling -> RagFinetuneJob status ------------------------------------------------------


def _has_live_pods(status: Any, **_: Any) -> bool:
    """Only started, unfinished jobs have pods worth checking."""
    return bool(status.get("rayJobName")) and status.get("phase") not in _FINISHED_PHASES


@kopf.timer(*RFJ, interval=SCHEDULING_POLL_SECONDS, when=_has_live_pods)
@measured("ragfinetunejob")
def report_scheduling(body: Any, memo: Any, **_: Any) -> None:
    """Set PodsScheduled from the job's pods, so a group that fits no node says why in our status.

    Reads the pods by the job label (KubeRay copies our template labels onto them). Patches with
    the resourceVersion just read, so it never overwrites conditions the RayJob mirror wrote in
    between; on a conflict the next tick tries again.
    """
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    pods = list_pods(memo, namespace, f"{names.LABEL_JOB}={name}")
    shared = (body.get("spec") or {}).get("retrievalClusterRef")
    if shared:  # its trainers are pods of the shared cluster's pool, which KubeRay's autoscaler adds
        pool = f"{names.LABEL_RETRIEVAL_CLUSTER}={shared},{names.LABEL_GROUP}={TRAINER_GROUP}"
        pods += list_pods(memo, namespace, pool)
    found = scheduling(pods, names.LABEL_GROUP, names.LABEL_RETRIEVAL_CLUSTER)
    if found is None:
        return
    job = get_object(memo, RFJ, namespace, name)
    if job is None:
        return
    conditions = (job.get("status") or {}).get("conditions") or []
    before = find_condition(conditions, PODS_SCHEDULED)
    wanted = ("True" if found.scheduled else "False", found.reason, found.message)
    if (before.get("status"), before.get("reason"), before.get("message")) == wanted:
        return
    stamp = now()
    updated = set_condition(conditions, PODS_SCHEDULED, found.scheduled, found.reason, found.message, stamp)
    body_patch = {
        "metadata": {"resourceVersion": job["metadata"]["resourceVersion"]},
        "status": {"conditions": updated},
    }
    try:
        patch_status(memo, RFJ, namespace, name, body_patch)
    except ApiException as err:
        if err.status == 409:
            return
        raise
    if found.reason == "Unschedulable" and before.get("reason") != "Unschedulable":
        post_event(memo, job, Event("Warning", "Unschedulable", found.message), stamp)


# --- training progress (the Ray head's metrics) -> RagFinetuneJob status ----------------------------


def _is_running(status: Any, **_: Any) -> bool:
    return (
        status.get("phase") == "Running"
        and bool(status.get("rayClusterName"))
        and bool(status.get("outputDir"))
    )


@kopf.timer(*RFJ, interval=PROGRESS_POLL_SECONDS, initial_delay=PROGRESS_POLL_SECONDS, when=_is_running)
@measured("ragfinetunejob")
def report_progress(body: Any, memo: Any, logger: Any, **_: Any) -> None:
    """Copy the job's last training report (step, loss, step time, retrieval p50, ETA) into
    status.progress, so `kubectl get rfj` and `kubectl describe rfj` show how far it is.

    An unreachable head is logged and tried again on the next tick: progress is informative,
    never a reason to change the phase.
    """
    meta, current = body["metadata"], body.get("status") or {}
    url = progress.metrics_url(current["rayClusterName"], meta["namespace"])
    read = getattr(memo, "fetch_metrics", None) or progress.fetch_metrics
    try:
        found = progress.parse_progress(read(url), current["outputDir"])
    except progress.MetricsUnavailable as err:
        logger.info("training progress not read: %s", err)
        return
    if found is None or found == current.get("progress"):
        return
    patch = {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "status": {"progress": found}}
    try:
        patch_status(memo, RFJ, meta["namespace"], meta["name"], patch)
    except ApiException as err:
        if err.status != 409:  # another handler wrote the status: the next tick tries again
            raise


def _is_queued(status: Any, **_: Any) -> bool:
    return status.get("phase") == "Queued" and bool(status.get("rayJobName"))


def _workloads(memo: Any, namespace: str, rayjob_uid: str) -> list[dict[str, Any]]:
    """Kueue's Workloads of a RayJob, from the newest API version Kueue serves."""
    selector = f"{queueing.JOB_UID_LABEL}={rayjob_uid}"
    for version in queueing.WORKLOAD_VERSIONS:
        try:
            listed = memo.custom.list_namespaced_custom_object(
                queueing.KUEUE_GROUP, version, namespace, queueing.WORKLOAD_PLURAL, label_selector=selector
            )
        except ApiException as err:
            if err.status == 404 and version != queueing.WORKLOAD_VERSIONS[-1]:
                continue
            raise
        return listed.get("items") or []
    return []


@kopf.timer(*RFJ, interval=QUEUE_POLL_SECONDS, initial_delay=5, when=_is_queued)
@measured("ragfinetunejob")
def report_queue(body: Any, memo: Any, logger: Any, **_: Any) -> None:
    """Add Kueue's reason for holding a queued job (its Workload's QuotaReserved condition: not
    enough quota, no such LocalQueue...) to status.message and the Queued condition.

    Kueue not installed, or no permission to read its Workloads, is logged: the job still shows
    Queued with the LocalQueue it waits in.
    """
    meta, current = body["metadata"], body.get("status") or {}
    namespace = meta["namespace"]
    rayjob = get_object(memo, RAYJOB, namespace, current["rayJobName"])
    if rayjob is None or not queueing.queue_of(rayjob):
        return
    try:
        detail = queueing.admission_detail(_workloads(memo, namespace, rayjob["metadata"]["uid"]))
    except ApiException as err:
        if err.status not in (403, 404):
            raise
        logger.info(
            "Kueue's Workloads not readable (%s %s): status shows the queue only", err.status, err.reason
        )
        return
    stamp = now()

    def compute(job: dict[str, Any]) -> dict[str, Any] | None:
        held = job.get("status") or {}
        if held.get("phase") != "Queued":
            return None  # admitted meanwhile: the RayJob mirror owns the status now
        message = queueing.waiting_message(queueing.queue_of(rayjob) or "", detail)
        update, _ = status.mirror(plain(rayjob), {**held, "message": message}, stamp)
        return update if any(held.get(key) != value for key, value in update.items()) else None

    update_status(memo, RFJ, namespace, meta["name"], compute)


def rayjob_vanished(current: dict[str, Any], rayjob: str, stamp: str) -> tuple[dict[str, Any], Event]:
    """The status patch and event when the RayJob of a job was deleted by someone else.

    An unfinished job becomes Failed (it can never finish now); re-creating the RayJob would rerun
    the training, so it is not done: the message says how to run it again.
    """
    message = (
        f"RayJob {rayjob} was deleted and is not re-created (that would rerun the training): "
        "delete and re-create the RagFinetuneJob to run it again"
    )
    conditions = set_condition(
        current.get("conditions"), status.RAYJOB_CREATED, False, "RayJobDeleted", message, stamp
    )
    update: dict[str, Any] = {"conditions": conditions}
    if current.get("phase") not in _FINISHED_PHASES:
        update.update(phase="Failed", reason="RayJobDeleted", message=message)
    return update, Event("Warning", "RayJobDeleted", message)


def plan_spec(body: Any) -> Any:
    """The validated spec of a body that already rendered (so it cannot fail here)."""
    return parse_spec(plain(body.get("spec")))


def _check_paths_are_free(memo: Any, body: Any, config: Any) -> None:
    """SpecError when another unfinished job in the namespace writes the same output or checkpoints."""
    meta = body["metadata"]
    mine = {"outputDir": config.output_dir, "checkpointPath": config.checkpoint.storage_path}
    problems = []
    for other in list_objects(memo, RFJ, meta["namespace"]):
        other_status = other.get("status") or {}
        if other["metadata"].get("uid") == meta.get("uid") or other_status.get("phase") in _FINISHED_PHASES:
            continue
        for key, field in (
            ("outputDir", "spec.job.output_dir"),
            ("checkpointPath", "spec.job.checkpoint.storage_path"),
        ):
            if other_status.get(key) and other_status.get(key) == mine[key]:
                problems.append(
                    (
                        field,
                        f"{mine[key]!r} is also used by RagFinetuneJob {other['metadata']['name']!r}, which has "
                        "not finished: choose another path (or omit it: the default is unique per job)",
                    )
                )
    if problems:
        raise SpecError(problems)


def _owner_name(obj: Any) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == names.KIND and ref.get("apiVersion", "").startswith(f"{names.GROUP}/"):
            return ref.get("name")
    return None
