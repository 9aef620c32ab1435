"""Pure mapping from a RayJob's status to the RagFinetuneJob's status."""

from __future__ import annotations

from typing import Any

from ..common.conditions import Event, set_condition
from .queueing import queue_of, waiting_message

#: Condition types, one per phase plus the lifecycle ones the controller sets.
RAYJOB_CREATED = "RayJobCreated"
PHASE_CONDITIONS = ("Queued", "Running", "Succeeded", "Failed", "Suspended")

_TERMINAL_FAILED = {"FAILED", "STOPPED"}


def phase_of(job_status: str | None, deployment_status: str | None) -> str:
    """Our phase from KubeRay's two fields: the deployment status wins, then Ray's job state."""
    deployment = deployment_status or ""
    job = (job_status or "").upper()
    if deployment in ("Suspended", "Suspending"):
        return "Suspended"
    if deployment == "Failed":
        return "Failed"
    if deployment == "Complete":
        return "Succeeded" if job == "SUCCEEDED" else "Failed"
    if deployment == "Retrying":
        return "Pending"
    if job == "SUCCEEDED":
        return "Succeeded"
    if job in _TERMINAL_FAILED:
        return "Failed"
    if job == "RUNNING" and deployment == "Running":
        return "Running"
    return "Pending"


def mirror(
    rayjob: dict[str, Any], current: dict[str, Any] | None, now: str
) -> tuple[dict[str, Any], list[Event]]:
    """The status patch for the RagFinetuneJob and the events to post, from its RayJob."""
    current = current or {}
    ray_status = rayjob.get("status") or {}
    job_status = ray_status.get("jobStatus") or None
    deployment = ray_status.get("jobDeploymentStatus") or None
    phase = phase_of(job_status, deployment)
    reason = ray_status.get("reason") or None
    message = ray_status.get("message") or None
    queue = queue_of(rayjob)
    if queue and phase in ("Suspended", "Pending") and (rayjob.get("spec") or {}).get("suspend"):
        # Kueue holds it: waiting for quota in the queue, not suspended by anyone here. Kueue's own
        # reason, once the queue timer has read it, stays until the job leaves the queue.
        phase, reason = "Queued", "WaitingForAdmission"
        message = waiting_message(queue)
        if current.get("phase") == "Queued" and (current.get("message") or "").startswith(message):
            message = current["message"]
    patch: dict[str, Any] = {
        "phase": phase,
        "jobStatus": job_status,
        "jobDeploymentStatus": deployment,
        "reason": reason,
        "message": message,
        "startTime": ray_status.get("startTime"),
        "endTime": ray_status.get("endTime"),
        "dashboardURL": ray_status.get("dashboardURL"),
        "rayClusterName": ray_status.get("rayClusterName"),
    }
    conditions = current.get("conditions") or []
    detail = f"RayJob jobDeploymentStatus={deployment or '-'} jobStatus={job_status or '-'}"
    for type_ in PHASE_CONDITIONS:
        why = reason or type_ if type_ == phase else f"Not{type_}"
        text = f"{detail}: {message}" if (message and type_ == phase) else detail
        conditions = set_condition(conditions, type_, type_ == phase, why, text, now)
    patch["conditions"] = conditions
    events = []
    if phase != current.get("phase"):
        kind = "Warning" if phase == "Failed" else "Normal"
        text = f"{phase}: {detail}" + (f" ({reason}: {message})" if reason or message else "")
        events.append(Event(kind, phase, text))
    # Drop keys KubeRay has not set yet, so a patch never writes explicit nulls over our own fields.
    cleaned = {key: value for key, value in patch.items() if value is not None}
    return cleaned, events
