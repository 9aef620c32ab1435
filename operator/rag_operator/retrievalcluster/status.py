"""Pure: a RagRetrievalCluster's status from its RayCluster, its service RayJob and its actors.

`Ready` needs all three: the RayCluster is ready, the service RayJob is RUNNING (it started
the actors and keeps checking them), and every actor is ALIVE. When the dashboard cannot be
asked (no route from the controller to the head service), Ready follows the first two and the
message says the actor states are unknown.
"""

from __future__ import annotations

import datetime
from typing import Any

from ..common.conditions import Event, condition_status, find_condition, set_condition
from ..common.scheduling import PODS_SCHEDULED, Scheduling
from .actors import ActorSummary

READY = "Ready"
DELETION_BLOCKED = "DeletionBlocked"
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})
#: Ray job states after which the service RayJob no longer supervises the actors.
SERVICE_ENDED = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})


def raycluster_ready(raycluster: dict[str, Any] | None) -> bool:
    """KubeRay's `state: ready`, or its HeadPodReady and RayClusterProvisioned conditions."""
    if not raycluster:
        return False
    ray_status = raycluster.get("status") or {}
    if ray_status.get("state") == "ready":
        return True
    conditions = ray_status.get("conditions") or []
    return all(
        condition_status(conditions, type_) == "True" for type_ in ("HeadPodReady", "RayClusterProvisioned")
    )


def _seconds_between(start: str | None, end: str | None) -> int | None:
    if not start or not end:
        return None
    parse = datetime.datetime.fromisoformat
    try:
        return max(
            0, int((parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds())
        )
    except ValueError:
        return None


def summarize(
    raycluster: dict[str, Any] | None,
    service: dict[str, Any] | None,
    actors: ActorSummary | None,
    current: dict[str, Any] | None,
    now: str,
    actors_error: str | None = None,
    pods_scheduling: Scheduling | None = None,
) -> tuple[dict[str, Any], list[Event]]:
    """The status patch and the events (Ready flips, pods that fit no node) for one cluster.

    `pods_scheduling` (read on polls only) sets PodsScheduled; None keeps the last reading.
    """
    current = current or {}
    cluster_status = (raycluster or {}).get("status") or {}
    service_status = (service or {}).get("status") or {}
    job_status = service_status.get("jobStatus") or None
    cluster_ok = raycluster_ready(raycluster)
    service_ok = job_status == "RUNNING"
    patch: dict[str, Any] = {
        "state": cluster_status.get("state"),
        "readyWorkerPods": cluster_status.get("readyWorkerReplicas"),
        "serviceJobStatus": job_status,
        "loadStarted": service_status.get("startTime"),
    }
    if actors is not None:
        patch.update(
            actorsAlive=actors.actors_alive,
            shardsLoaded=actors.shards_loaded,
            readyReplicas=actors.ready_replicas,
        )
        expected, alive, shards, shards_loaded = (
            actors.shards * actors.replicas,
            actors.actors_alive,
            actors.shards,
            actors.shards_loaded,
        )
        loaded: bool | None = actors.all_loaded
    elif actors_error is None and current.get("shardsLoaded") is not None:
        # No new reading (an event, not a poll): judge by the last one the status holds.
        shards = current.get("shards") or 0
        per_shard = current.get("actorsPerShard") or 1
        expected, alive, shards_loaded = (
            shards * per_shard,
            current.get("actorsAlive") or 0,
            current["shardsLoaded"],
        )
        loaded = (current.get("readyReplicas") or 0) >= per_shard and shards_loaded >= shards
    else:
        loaded = None
    if loaded and service_ok:
        same_run = current.get("loadStarted") == patch["loadStarted"]
        loaded_at = current.get("loadedAt") if same_run and current.get("loadedAt") else now
        patch["loadedAt"] = loaded_at
        patch["loadSeconds"] = _seconds_between(patch["loadStarted"], loaded_at)

    if not raycluster:
        ready, reason, message = False, "RayClusterMissing", "the RayCluster does not exist"
    elif not cluster_ok:
        state = cluster_status.get("state") or "pending"
        ready, reason, message = False, "RayClusterNotReady", f"RayCluster state is {state}"
    elif not service_ok:
        ready, reason = False, "ServiceNotRunning"
        message = f"retrieval service RayJob jobStatus is {job_status or 'not reported yet'}"
        if job_status in SERVICE_ENDED:
            name = (service or {}).get("metadata", {}).get("name", "the service RayJob")
            message += f": delete RayJob {name} to restart it (the operator creates it again)"
    elif loaded is None:
        ready, reason = True, "ServiceRunning"
        message = (
            f"RayCluster ready, service RUNNING; actor states unknown ({actors_error or 'not read yet'})"
        )
    elif not loaded:
        ready, reason = False, "ActorsLoading"
        message = f"{alive} of {expected} actors ALIVE, {shards_loaded} of {shards} shards loaded"
    else:
        ready, reason = True, "ActorsLoaded"
        message = f"all {expected} actors ALIVE ({shards} shards loaded)"
    conditions = set_condition(current.get("conditions"), READY, ready, reason, message, now)
    events = []
    was_ready = condition_status(current.get("conditions"), READY) == "True"
    if ready != was_ready:
        events.append(Event("Normal" if ready else "Warning", reason, message))
    if pods_scheduling is not None:
        found = pods_scheduling
        before = find_condition(current.get("conditions"), PODS_SCHEDULED).get("reason")
        conditions = set_condition(
            conditions, PODS_SCHEDULED, found.scheduled, found.reason, found.message, now
        )
        if found.reason == "Unschedulable" and before != "Unschedulable":
            events.append(Event("Warning", found.reason, found.message))
    patch["conditions"] = conditions
    return {key: value for key, value in patch.items() if value is not None}, events


def unfinished_referrers(jobs: list[dict[str, Any]], cluster_name: str) -> list[str]:
    """Names of RagFinetuneJobs that run on the cluster: they reference it, have a RayJob and have
    not Succeeded or Failed. A job still waiting for the cluster (no RayJob) does not hold its
    deletion: it would wait for the cluster while the cluster waits for it."""
    return sorted(
        job["metadata"]["name"]
        for job in jobs
        if (job.get("spec") or {}).get("retrievalClusterRef") == cluster_name
        and (job.get("status") or {}).get("rayJobName")
        and (job.get("status") or {}).get("phase") not in FINISHED_PHASES
    )


def is_ready(rrc: dict[str, Any]) -> bool:
    """The RagRetrievalCluster's Ready condition is True and it is not being deleted."""
    if (rrc.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return condition_status((rrc.get("status") or {}).get("conditions"), READY) == "True"
