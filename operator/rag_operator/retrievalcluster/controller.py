"""kopf handlers for RagRetrievalCluster: its RayCluster, its retrieval service, its status, its deletion.

- create/resume/spec change: validate, find-or-create the owned RayCluster and the service RayJob
  (`<name>-retrieval-service`, clusterSelector on that RayCluster); spec changes are refused.
- RayCluster and service RayJob events, and a timer that reads the actors from the dashboard:
  the status (ready pods, shards loaded, replicas ready, load time, `Ready`).
- deletion: held back by kopf's finalizer while unfinished RagFinetuneJobs reference the
  cluster; the status and an event name them. Then ownerReferences cascade.
"""

from __future__ import annotations

from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from ..common import names
from ..common.changes import rejected_changes_of
from ..common.conditions import SPEC_CHANGE_REJECTED, Event, condition_status, set_condition
from ..common.errors import SpecError
from ..common.kube import (
    NETWORKPOLICY,
    RAYCLUSTER,
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
)
from ..common.manifests import manifest_of, plain
from ..common.reconcile import invalid_spec, valid_spec
from ..common.scheduling import scheduling
from ..metrics import measured
from . import actors, status
from .render import cluster_for, render_cluster_network_policy
from .spec import SPEC_DEFAULTS, parse_rrc_spec

#: Seconds between dashboard polls, and between retries of a blocked deletion.
POLL_SECONDS = 30
DELETION_RETRY_SECONDS = 15
OWNED = {names.LABEL_RETRIEVAL_CLUSTER: kopf.PRESENT}


@kopf.on.resume(*RRC)
@kopf.on.create(*RRC)
@kopf.on.update(*RRC, field="spec")
@measured("ragretrievalcluster")
def reconcile_cluster(body: Any, memo: Any, patch: Any, **_: Any) -> None:
    """Validate, create the RayCluster and the service RayJob once, report the layout."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    current = dict(body.get("status") or {})
    conditions = current.get("conditions") or []
    stamp = now()
    try:
        raycluster, service, plan = cluster_for(manifest_of(body, names.RRC_KIND))
    except SpecError as err:
        made = current.get("rayClusterName")
        message, conditions = invalid_spec(
            memo, body, err, names.RRC_KIND, made and f"RayCluster {made}", conditions, stamp
        )
        if not made:
            conditions = set_condition(conditions, status.READY, False, "InvalidSpec", message, stamp)
        patch.status.update(conditions=conditions)
        raise kopf.PermanentError(message) from err
    conditions = valid_spec(conditions, stamp)

    existing = get_object(memo, RAYCLUSTER, namespace, raycluster["metadata"]["name"])
    existing_service = get_object(memo, RAYJOB, namespace, service["metadata"]["name"])
    for kind, found in (("RayCluster", existing), ("RayJob", existing_service)):
        if found is not None and not owned_by(found, meta.get("uid"), names.RRC_KIND):
            message = (
                f"a {kind} named {found['metadata']['name']!r} already exists in {namespace!r} and "
                "is not owned by this RagRetrievalCluster: delete it or rename the RagRetrievalCluster"
            )
            conditions = set_condition(conditions, status.READY, False, "NameConflict", message, stamp)
            patch.status.update(conditions=conditions)
            post_event(memo, body, Event("Warning", "NameConflict", message), stamp)
            raise kopf.PermanentError(message)
    policy = render_cluster_network_policy(name, namespace, parse_rrc_spec(plain(body.get("spec"))))
    try:
        ensure_owned(memo, NETWORKPOLICY, body, policy)
        if existing is None:
            kopf.append_owner_reference(raycluster, owner=body)
            create_object(memo, RAYCLUSTER, namespace, raycluster)
            post_event(memo, body, Event("Normal", "RayClusterCreated", f"created RayCluster {name}"), stamp)
        else:
            conditions = _spec_change(memo, body, existing, conditions, stamp)
        # The service RayJob is created once the RayCluster exists (it selects it by name).
        if existing_service is None:
            kopf.append_owner_reference(service, owner=body)
            create_object(memo, RAYJOB, namespace, service)
            created = f"created RayJob {service['metadata']['name']}"
            post_event(memo, body, Event("Normal", "ServiceCreated", created), stamp)
    except CreateRejected as err:
        message = (
            f"{err}; nothing more is tried until the RagRetrievalCluster changes or the operator restarts"
        )
        conditions = set_condition(conditions, status.READY, False, "CreateRejected", message, stamp)
        patch.status.update(conditions=conditions)
        post_event(memo, body, Event("Warning", "CreateRejected", message), stamp)
        raise kopf.PermanentError(message) from err
    if condition_status(conditions, status.READY) is None:
        conditions = set_condition(
            conditions, status.READY, False, "Starting", "RayCluster and retrieval service created", stamp
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
    rejected = rejected_changes_of(
        raycluster, parse_rrc_spec(plain(body.get("spec"))), frozenset(), SPEC_DEFAULTS
    )
    if rejected:
        message = (
            f"cannot change {', '.join(rejected)} while RayCluster {raycluster['metadata']['name']} "
            "exists: create a new RagRetrievalCluster (jobs reference it by name)"
        )
        post_event(memo, body, Event("Warning", "SpecChangeRejected", message), stamp)
        return set_condition(conditions, SPEC_CHANGE_REJECTED, True, "ImmutableFields", message, stamp)
    if condition_status(conditions, SPEC_CHANGE_REJECTED) == "True":
        return set_condition(
            conditions, SPEC_CHANGE_REJECTED, False, "SpecMatchesRayCluster", "spec matches", stamp
        )
    return conditions


# --- status: RayCluster + service RayJob + actors -> RagRetrievalCluster ------------------------------


@kopf.on.event(*RAYCLUSTER, labels=OWNED)
@measured("ragretrievalcluster")
def on_raycluster(body: Any, memo: Any, **_: Any) -> None:
    """A change of the RayCluster (pods ready, state) may change Ready."""
    refresh(memo, body["metadata"]["namespace"], body["metadata"]["labels"][names.LABEL_RETRIEVAL_CLUSTER])


@kopf.on.event(*RAYJOB, labels=OWNED)
@measured("ragretrievalcluster")
def on_service_rayjob(body: Any, memo: Any, **_: Any) -> None:
    """The service RayJob's jobStatus (RUNNING once the actors are being started) may change Ready."""
    cluster = body["metadata"]["labels"][names.LABEL_RETRIEVAL_CLUSTER]
    if body["metadata"]["name"] == names.service_rayjob_name(cluster):  # not a job's RayJob
        refresh(memo, body["metadata"]["namespace"], cluster)


@kopf.timer(*RRC, interval=POLL_SECONDS, initial_delay=POLL_SECONDS)
@measured("ragretrievalcluster")
def poll_actors(body: Any, memo: Any, **_: Any) -> None:
    """Read the actors from the dashboard (nothing notifies us when one dies or finishes loading)."""
    refresh(memo, body["metadata"]["namespace"], body["metadata"]["name"], read_actors=True)


def refresh(
    memo: Any, namespace: str, name: str, read_actors: bool = False, attempts: int = 5
) -> dict[str, Any] | None:
    """Recompute and patch the status; returns the patch (None when the cluster is gone).

    The patch carries the resourceVersion it was computed from: if another handler wrote the
    status in between (its conditions list would be overwritten), it is computed again.
    """
    rrc = get_object(memo, RRC, namespace, name)
    if rrc is None:
        return None
    current = rrc.get("status") or {}
    raycluster = get_object(memo, RAYCLUSTER, namespace, names.raycluster_name(name))
    service = get_object(memo, RAYJOB, namespace, names.service_rayjob_name(name))
    uid = rrc["metadata"].get("uid")
    if raycluster is not None and not owned_by(raycluster, uid, names.RRC_KIND):
        raycluster = None  # someone else's: never report its state as ours (reconcile says NameConflict)
    if service is not None and not owned_by(service, uid, names.RRC_KIND):
        return None
    if service is None and raycluster is not None and not rrc["metadata"].get("deletionTimestamp"):
        service = _recreate_service(memo, rrc)
    summary, error = None, None
    shards, per_shard = current.get("shards"), current.get("actorsPerShard")
    if read_actors and raycluster is not None and status.raycluster_ready(raycluster) and shards:
        read = getattr(memo, "fetch_actors", None) or actors.fetch_actors
        try:
            rows = read(actors.dashboard_url(raycluster))
            summary = actors.summarize_actors(rows, name, shards, per_shard or 1)
        except actors.DashboardError as err:
            error = str(err)
    placed = None
    if read_actors:  # on polls: a pool pod the autoscaler added may fit no node
        placed = scheduling(
            list_pods(memo, namespace, f"{names.LABEL_RETRIEVAL_CLUSTER}={name}"), names.LABEL_GROUP
        )
    stamp = now()
    update, events = status.summarize(raycluster, service, summary, current, stamp, error, placed)
    update["inUseBy"] = status.unfinished_referrers(list_objects(memo, RFJ, namespace), name)
    if any(current.get(key) != value for key, value in update.items()):
        body = {"metadata": {"resourceVersion": rrc["metadata"].get("resourceVersion")}, "status": update}
        try:
            patch_status(memo, RRC, namespace, name, body)
        except ApiException as err:
            if err.status != 409 or attempts <= 1:
                raise
            return refresh(memo, namespace, name, read_actors, attempts - 1)
    for event in events:
        post_event(memo, rrc, event, stamp)
    return update


def _recreate_service(memo: Any, rrc: dict[str, Any]) -> dict[str, Any] | None:
    """The service RayJob was deleted (how a user restarts a failed supervisor): create it again."""
    try:
        _, service, _ = cluster_for(manifest_of(rrc, names.RRC_KIND))
    except SpecError:
        return None  # reconcile_cluster reports it
    kopf.append_owner_reference(service, owner=rrc)
    try:
        create_object(memo, RAYJOB, rrc["metadata"]["namespace"], service)
    except CreateRejected:
        return None  # reported by reconcile_cluster on the next spec change or restart
    text = f"re-created RayJob {service['metadata']['name']}"
    post_event(memo, rrc, Event("Normal", "ServiceCreated", text), now())
    return service


# --- deletion: held while unfinished jobs use the cluster --------------------------------------------


@kopf.on.delete(*RRC)
@measured("ragretrievalcluster")
def guard_deletion(body: Any, memo: Any, patch: Any, **_: Any) -> None:
    """Keep the finalizer (retry later) while unfinished RagFinetuneJobs reference this cluster."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    users = status.unfinished_referrers(list_objects(memo, RFJ, namespace), name)
    stamp = now()
    conditions = (body.get("status") or {}).get("conditions") or []
    if users:
        message = (
            f"deletion waits for RagFinetuneJobs still using this cluster: {', '.join(users)} "
            "(it proceeds when they succeed, fail or are deleted)"
        )
        patch.status.update(
            inUseBy=users,
            conditions=set_condition(conditions, status.DELETION_BLOCKED, True, "InUse", message, stamp),
        )
        post_event(memo, body, Event("Warning", "DeletionBlocked", message), stamp)
        raise kopf.TemporaryError(message, delay=DELETION_RETRY_SECONDS)
    post_event(
        memo, body, Event("Normal", "Deleting", "no unfinished job uses this cluster: deleting it"), stamp
    )
