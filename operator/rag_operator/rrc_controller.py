"""kopf handlers for RagRetrievalCluster: its RayCluster, its retrieval service, its status, its deletion.

- create/resume/spec change: validate, find-or-create the owned RayCluster and the service RayJob
  (`<name>-retrieval-service`, clusterSelector on that RayCluster); spec changes are refused.
- RayCluster and service RayJob events, and a timer that reads the actors from the dashboard:
  the status (ready pods, shards loaded, replicas ready, load time, `Ready`).
- deletion: held back by kopf's finalizer while unfinished RagFinetuneJobs reference the
  cluster; the status and an event name them. Then ownerReferences cascade.
"""

from __future__ import annotations

import json
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from . import actors, changes, names, rrc_status, status
from .controller import MERGE_PATCH, RAYJOB, RFJ, _plain, now, post_event
from .render_cluster import cluster_for
from .rrc_spec import parse_rrc_spec
from .spec import SpecError

RRC = (names.GROUP, names.VERSION, names.RRC_PLURAL)
RAYCLUSTER = (names.RAY_GROUP, names.RAY_VERSION, names.RAYCLUSTER_PLURAL)
#: Seconds between dashboard polls, and between retries of a blocked deletion.
POLL_SECONDS = 30
DELETION_RETRY_SECONDS = 15
OWNED = {names.LABEL_RETRIEVAL_CLUSTER: kopf.PRESENT}


@kopf.on.resume(*RRC)
@kopf.on.create(*RRC)
@kopf.on.update(*RRC, field="spec")
def reconcile_cluster(body: Any, memo: Any, patch: Any, **_: Any) -> None:
    """Validate, create the RayCluster and the service RayJob once, report the layout."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    current = dict(body.get("status") or {})
    conditions = current.get("conditions") or []
    stamp = now()
    manifest = {
        "apiVersion": names.API_VERSION,
        "kind": names.RRC_KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": _plain(body.get("spec")),
    }
    try:
        raycluster, service, plan = cluster_for(manifest)
    except SpecError as err:
        made = current.get("rayClusterName")
        outcome = f"RayCluster {made} is left as it was" if made else "nothing was created"
        message = f"invalid RagRetrievalCluster, {outcome}: {err}"
        conditions = status.set_condition(conditions, status.INVALID, True, "InvalidSpec", message, stamp)
        if not made:
            conditions = status.set_condition(
                conditions, rrc_status.READY, False, "InvalidSpec", message, stamp
            )
        patch.status.update(conditions=conditions)
        post_event(memo, body, status.Event("Warning", "InvalidSpec", message), stamp)
        raise kopf.PermanentError(message) from err
    conditions = status.set_condition(conditions, status.INVALID, False, "SpecValid", "spec is valid", stamp)

    existing = _get(memo, RAYCLUSTER, namespace, raycluster["metadata"]["name"])
    if existing is not None and not _owned_by(existing, meta.get("uid")):
        message = (
            f"a RayCluster named {raycluster['metadata']['name']!r} already exists in {namespace!r} and "
            "is not owned by this RagRetrievalCluster: delete it or rename the RagRetrievalCluster"
        )
        conditions = status.set_condition(conditions, rrc_status.READY, False, "NameConflict", message, stamp)
        patch.status.update(conditions=conditions)
        post_event(memo, body, status.Event("Warning", "NameConflict", message), stamp)
        raise kopf.PermanentError(message)
    if existing is None:
        kopf.append_owner_reference(raycluster, owner=body)
        _create(memo, RAYCLUSTER, namespace, raycluster)
        post_event(
            memo, body, status.Event("Normal", "RayClusterCreated", f"created RayCluster {name}"), stamp
        )
    else:
        conditions = _spec_change(memo, body, existing, conditions, stamp)
    # The service RayJob is created once the RayCluster exists (it selects it by name).
    if _get(memo, RAYJOB, namespace, service["metadata"]["name"]) is None:
        kopf.append_owner_reference(service, owner=body)
        _create(memo, RAYJOB, namespace, service)
        post_event(
            memo,
            body,
            status.Event("Normal", "ServiceCreated", f"created RayJob {service['metadata']['name']}"),
            stamp,
        )
    if status.condition_status(conditions, rrc_status.READY) is None:
        conditions = status.set_condition(
            conditions, rrc_status.READY, False, "Starting", "RayCluster and retrieval service created", stamp
        )
    update = {
        "rayClusterName": raycluster["metadata"]["name"],
        "serviceRayJobName": service["metadata"]["name"],
        "shards": plan.shards,
        "replicas": plan.retrieval_pods,
        "actorsPerShard": plan.actors_per_shard,
        "indexSize": plan.index_size,
        "memoryPerPod": plan.memory_per_pod,
        "memoryComputed": plan.memory_computed,
        "observedGeneration": meta.get("generation"),
        "conditions": conditions,
    }
    patch.status.update({key: value for key, value in update.items() if value is not None})


def _spec_change(
    memo: Any, body: Any, raycluster: dict[str, Any], conditions: list[dict[str, Any]], stamp: str
) -> list[dict[str, Any]]:
    """A running cluster keeps its spec: name each changed field in SpecChangeRejected."""
    requested = parse_rrc_spec(_plain(body.get("spec")))
    annotations = raycluster["metadata"].get("annotations") or {}
    applied = json.loads(annotations.get(names.ANNOTATION_APPLIED_SPEC, "{}"))
    written = requested.model_dump(mode="json", by_alias=True, exclude_unset=True)
    rejected = changes.rejected_changes(applied, written, mutable=frozenset()) if applied else []
    if rejected:
        message = (
            f"cannot change {', '.join(rejected)} while RayCluster {raycluster['metadata']['name']} "
            "exists: create a new RagRetrievalCluster (jobs reference it by name)"
        )
        post_event(memo, body, status.Event("Warning", "SpecChangeRejected", message), stamp)
        return status.set_condition(
            conditions, status.SPEC_CHANGE_REJECTED, True, "ImmutableFields", message, stamp
        )
    if status.condition_status(conditions, status.SPEC_CHANGE_REJECTED) == "True":
        return status.set_condition(
            conditions, status.SPEC_CHANGE_REJECTED, False, "SpecMatchesRayCluster", "spec matches", stamp
        )
    return conditions


# --- status: RayCluster + service RayJob + actors -> RagRetrievalCluster ------------------------------


@kopf.on.event(*RAYCLUSTER, labels=OWNED)
def on_raycluster(body: Any, memo: Any, **_: Any) -> None:
    """A change of the RayCluster (pods ready, state) may change Ready."""
    refresh(memo, body["metadata"]["namespace"], body["metadata"]["labels"][names.LABEL_RETRIEVAL_CLUSTER])


@kopf.on.event(*RAYJOB, labels=OWNED)
def on_service_rayjob(body: Any, memo: Any, **_: Any) -> None:
    """The service RayJob's jobStatus (RUNNING once the actors are being started) may change Ready."""
    cluster = body["metadata"]["labels"][names.LABEL_RETRIEVAL_CLUSTER]
    if body["metadata"]["name"] == names.service_rayjob_name(cluster):  # not a job's RayJob
        refresh(memo, body["metadata"]["namespace"], cluster)


@kopf.timer(*RRC, interval=POLL_SECONDS, initial_delay=POLL_SECONDS)
def poll_actors(body: Any, memo: Any, **_: Any) -> None:
    """Read the actors from the dashboard (nothing notifies us when one dies or finishes loading)."""
    refresh(memo, body["metadata"]["namespace"], body["metadata"]["name"], read_actors=True)


def refresh(memo: Any, namespace: str, name: str, read_actors: bool = False) -> dict[str, Any] | None:
    """Recompute and patch the status; returns the patch (None when the cluster is gone)."""
    rrc = _get(memo, RRC, namespace, name)
    if rrc is None:
        return None
    current = rrc.get("status") or {}
    raycluster = _get(memo, RAYCLUSTER, namespace, names.raycluster_name(name))
    service = _get(memo, RAYJOB, namespace, names.service_rayjob_name(name))
    if service is None and raycluster is not None and not rrc["metadata"].get("deletionTimestamp"):
        service = _recreate_service(memo, rrc)
    summary, error = None, None
    shards, per_shard = current.get("shards"), current.get("actorsPerShard")
    if read_actors and raycluster is not None and rrc_status.raycluster_ready(raycluster) and shards:
        read = getattr(memo, "fetch_actors", None) or actors.fetch_actors
        try:
            rows = read(actors.dashboard_url(raycluster))
            summary = actors.summarize_actors(rows, name, shards, per_shard or 1)
        except actors.DashboardError as err:
            error = str(err)
    stamp = now()
    update, events = rrc_status.summarize(raycluster, service, summary, current, stamp, error)
    jobs = _list(memo, RFJ, namespace)
    update["inUseBy"] = rrc_status.unfinished_referrers(jobs, name)
    if any(current.get(key) != value for key, value in update.items()):
        memo.custom.patch_namespaced_custom_object_status(
            *RRC[:2], namespace, RRC[2], name, {"status": update}, _content_type=MERGE_PATCH
        )
    for event in events:
        post_event(memo, rrc, event, stamp)
    return update


def _recreate_service(memo: Any, rrc: dict[str, Any]) -> dict[str, Any] | None:
    """The service RayJob was deleted (how a user restarts a failed supervisor): create it again."""
    meta = rrc["metadata"]
    manifest = {**rrc, "metadata": {"name": meta["name"], "namespace": meta["namespace"]}}
    try:
        _, service, _ = cluster_for(manifest)
    except SpecError:
        return None  # reconcile_cluster reports it
    kopf.append_owner_reference(service, owner=rrc)
    _create(memo, RAYJOB, meta["namespace"], service)
    stamp = now()
    text = f"re-created RayJob {service['metadata']['name']}"
    post_event(memo, rrc, status.Event("Normal", "ServiceCreated", text), stamp)
    return service


# --- deletion: held while unfinished jobs use the cluster --------------------------------------------


@kopf.on.delete(*RRC)
def guard_deletion(body: Any, memo: Any, patch: Any, **_: Any) -> None:
    """Keep the finalizer (retry later) while unfinished RagFinetuneJobs reference this cluster."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    users = rrc_status.unfinished_referrers(_list(memo, RFJ, namespace), name)
    stamp = now()
    conditions = (body.get("status") or {}).get("conditions") or []
    if users:
        message = (
            f"deletion waits for RagFinetuneJobs still using this cluster: {', '.join(users)} "
            "(it proceeds when they succeed, fail or are deleted)"
        )
        patch.status.update(
            inUseBy=users,
            conditions=status.set_condition(
                conditions, rrc_status.DELETION_BLOCKED, True, "InUse", message, stamp
            ),
        )
        post_event(memo, body, status.Event("Warning", "DeletionBlocked", message), stamp)
        raise kopf.TemporaryError(message, delay=DELETION_RETRY_SECONDS)
    post_event(
        memo,
        body,
        status.Event("Normal", "Deleting", "no unfinished job uses this cluster: deleting it"),
        stamp,
    )


# --- small API helpers ---------------------------------------------------------------------------


def _get(memo: Any, resource: tuple[str, str, str], namespace: str, name: str) -> dict[str, Any] | None:
    group, version, plural = resource
    try:
        return memo.custom.get_namespaced_custom_object(group, version, namespace, plural, name)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def _list(memo: Any, resource: tuple[str, str, str], namespace: str) -> list[dict[str, Any]]:
    group, version, plural = resource
    return memo.custom.list_namespaced_custom_object(group, version, namespace, plural).get("items") or []


def _create(memo: Any, resource: tuple[str, str, str], namespace: str, obj: dict[str, Any]) -> None:
    """Create it; a 409 means an earlier run of this handler already did."""
    group, version, plural = resource
    try:
        memo.custom.create_namespaced_custom_object(group, version, namespace, plural, obj)
    except ApiException as err:
        if err.status != 409:
            raise


def _owned_by(obj: dict[str, Any], uid: str | None) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid and ref.get("kind") == names.RRC_KIND for ref in refs)
