"""Pure status logic: RayJob status -> phase, conditions and events of the RagFinetuneJob."""

from __future__ import annotations

import pytest

from rag_operator.finetunejob import status


@pytest.mark.parametrize(
    ("job_status", "deployment", "phase"),
    [
        (None, None, "Pending"),
        ("", "Initializing", "Pending"),
        ("PENDING", "Running", "Pending"),
        ("RUNNING", "Running", "Running"),
        ("SUCCEEDED", "Complete", "Succeeded"),
        ("FAILED", "Complete", "Failed"),
        ("STOPPED", "Complete", "Failed"),
        ("RUNNING", "Failed", "Failed"),
        ("", "Failed", "Failed"),
        ("RUNNING", "Suspending", "Suspended"),
        ("", "Suspended", "Suspended"),
        ("FAILED", "Retrying", "Pending"),
        ("SUCCEEDED", "Running", "Succeeded"),
    ],
)
def test_phase_follows_the_rayjob(job_status, deployment, phase) -> None:
    assert status.phase_of(job_status, deployment) == phase


def test_mirror_copies_the_rayjob_fields_and_posts_one_event_per_phase_change() -> None:
    rayjob = {
        "status": {
            "jobStatus": "RUNNING",
            "jobDeploymentStatus": "Running",
            "startTime": "2026-01-01T00:00:00Z",
            "dashboardURL": "svc:8265",
            "rayClusterName": "rj-abcde",
        }
    }
    patch, events = status.mirror(rayjob, {"phase": "Pending"}, "t1")
    assert patch["phase"] == "Running" and patch["jobStatus"] == "RUNNING"
    assert patch["dashboardURL"] == "svc:8265" and patch["startTime"] == "2026-01-01T00:00:00Z"
    assert [(e.type, e.reason) for e in events] == [("Normal", "Running")]
    running = {c["type"]: c["status"] for c in patch["conditions"]}
    assert running == {
        "Queued": "False",
        "Running": "True",
        "Succeeded": "False",
        "Failed": "False",
        "Suspended": "False",
    }

    again, events = status.mirror(rayjob, patch, "t2")
    assert events == [] and again == patch


def test_failure_is_a_warning_with_the_kuberay_reason() -> None:
    rayjob = {
        "status": {
            "jobStatus": "RUNNING",
            "jobDeploymentStatus": "Failed",
            "reason": "DeadlineExceeded",
            "message": "activeDeadlineSeconds reached",
        }
    }
    patch, events = status.mirror(rayjob, {"phase": "Running"}, "t")
    assert patch["phase"] == "Failed" and patch["reason"] == "DeadlineExceeded"
    (event,) = events
    assert event.type == "Warning" and "DeadlineExceeded" in event.message
    failed = next(c for c in patch["conditions"] if c["type"] == "Failed")
    assert failed["status"] == "True" and failed["reason"] == "DeadlineExceeded"
