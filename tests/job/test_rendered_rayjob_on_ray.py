"""The loop without Kubernetes: what the operator renders runs on Ray the way KubeRay would run it.

KubeRay starts one Ray node per pod with the group's `rayStartParams` and submits the
RayJob's entrypoint and runtime env through Ray's Job Submission API. This test does the
same on one machine: a `ray.cluster_utils.Cluster` whose nodes carry exactly the rendered
worker groups' resources, and a `JobSubmissionClient` submission of the rendered
entrypoint and `runtimeEnvYAML`.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray_start_resources(group: dict) -> dict[str, float]:
    """KubeRay's quoted JSON form '"{\\"rag_trainer\\": 1}"' back into a dict."""
    raw = group["rayStartParams"].get("resources")
    return json.loads(json.loads(raw)) if raw else {}


def _cpus(group: dict) -> int:
    """The pod's CPU request as a Ray node's CPU count (KubeRay rounds a fraction up)."""
    cpu = str(group["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"])
    return math.ceil(float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu))


def _submit_when_the_job_agent_is_up(client, rayjob: dict, timeout_s: float = 120) -> str:
    """KubeRay also retries: the head's job agent answers a moment after the dashboard."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return client.submit_job(
                entrypoint=rayjob["spec"]["entrypoint"],
                runtime_env=yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"]),
            )
        except RuntimeError as err:
            if "No available agent" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(2)


def test_the_rendered_cpu_example_succeeds_through_the_job_submission_api(tiny_assets, tmp_path, monkeypatch):
    from ray.job_submission import JobStatus, JobSubmissionClient

    from rag_job.local.cluster import LOOPBACK, stay_on_loopback
    from rag_operator.finetunejob.render import rayjob_for

    body = yaml.safe_load((REPO / "examples" / "rag-finetune-job-cpu.yaml").read_text())
    job = body["spec"]["job"]
    job["model"]["path"] = str(tiny_assets.rag)
    job["retrieval"]["knowledge_base"] = str(tiny_assets.kb_flat)
    job["data"]["train_path"] = str(tiny_assets.qa_train)
    job["evaluation"] = {"at_end": False}
    body["spec"]["storage"]["pvc"]["mountPath"] = str(tmp_path / "data")
    rayjob, plan = rayjob_for(body)
    cluster_spec = rayjob["spec"]["rayClusterSpec"]
    assert cluster_spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"

    # The job image runs `python`: make it this interpreter, for the job's driver too.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    stay_on_loopback()
    from ray.cluster_utils import Cluster

    dashboard_port = _free_port()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "node_ip_address": LOOPBACK,
            "include_dashboard": True,
            "dashboard_host": LOOPBACK,
            "dashboard_port": dashboard_port,
            # Free ports: the suite's own cluster may already hold Ray's default agent port.
            "dashboard_agent_listen_port": _free_port(),
            "metrics_export_port": _free_port(),
        },
    )
    nodes_by_group: dict[str, set[str]] = {}
    try:
        for group in cluster_spec["workerGroupSpecs"]:
            for _ in range(group["replicas"]):
                node = cluster.add_node(
                    num_cpus=_cpus(group), resources=_ray_start_resources(group), node_ip_address=LOOPBACK
                )
                nodes_by_group.setdefault(group["groupName"], set()).add(node.node_id)
        cluster.wait_for_nodes()
        client = JobSubmissionClient(f"http://{LOOPBACK}:{dashboard_port}")
        submission = client.submit_job(
            entrypoint=rayjob["spec"]["entrypoint"],
            runtime_env=yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"]),
        )
        deadline = time.monotonic() + 600
        while (status := client.get_job_status(submission)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED}:
            assert time.monotonic() < deadline, "the job did not finish in 10 minutes"
            time.sleep(2)
        logs = client.get_job_logs(submission)
        assert status == JobStatus.SUCCEEDED, logs[-4000:]
    finally:
        cluster.shutdown()

    metrics = json.loads((Path(plan.job_config.output_dir) / "metrics.json").read_text())
    assert metrics["steps"] == plan.job_config.training.max_steps
    assert metrics["trainer_nodes"] and set(metrics["trainer_nodes"]) <= nodes_by_group["trainer"]
    assert metrics["retrieval_actors"]
    assert {a["node_id"] for a in metrics["retrieval_actors"]} <= nodes_by_group["retrieval"]
