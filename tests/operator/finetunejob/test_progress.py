"""status.progress from a Ray head's metrics page: the parser, the HTTP read, and the timer's glue.

The pages are written by prometheus_client with the label sets Ray's exporter puts on a series
(Component, NodeAddress, SessionName, WorkerId, ...); the HTTP read is a real server on loopback.
The timer runs on the in-memory fake API (the head's DNS name resolves only inside a cluster):
that the job's real gauges parse is tests/job/test_progress.py, and that a job on real pods gets
its progress into status is tests/nodes/test_faults.py.
"""

from __future__ import annotations

import math
import socket
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest, start_http_server

from rag_operator.common import names
from rag_operator.finetunejob import controller, progress
from tests.operator.testlib import FakeMemo, load_example


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


GAUGES = ("step", "max_steps", "loss", "step_seconds", "retrieval_p50_ms", "eta_seconds", "updated_unix")
RAY_LABELS = ("Component", "NodeAddress", "SessionName", "WorkerId", "job", "output_dir")


def page(*runs: dict[str, Any], registry: CollectorRegistry | None = None) -> str:
    """A metrics page with one labelled series per gauge for each run: {worker, output_dir, values}."""
    registry = registry or CollectorRegistry()
    gauges = {name: Gauge(f"ray_rag_train_{name}", name, RAY_LABELS, registry=registry) for name in GAUGES}
    for run in runs:
        labels = ("core_worker", "10.0.0.5", "session_1", run["worker"], "rag", run["output_dir"])
        for name, value in run["values"].items():
            gauges[name].labels(*labels).set(value)
    return generate_latest(registry).decode()


def run_values(step: int, updated: float, loss: float = 1.25) -> dict[str, float]:
    return {
        "step": step,
        "max_steps": 100,
        "loss": loss,
        "step_seconds": 0.5,
        "retrieval_p50_ms": 3.25,
        "eta_seconds": (100 - step) * 0.5,
        "updated_unix": updated,
    }


def test_the_series_of_this_jobs_output_dir_becomes_status_progress() -> None:
    text = page(
        {"worker": "w1", "output_dir": "/data/outputs/a", "values": run_values(40, 1_800_000_000)},
        {"worker": "w2", "output_dir": "/data/outputs/b", "values": run_values(7, 1_800_000_100)},
    )
    assert progress.parse_progress(text, "/data/outputs/a") == {
        "step": 40,
        "maxSteps": 100,
        "loss": 1.25,
        "stepSeconds": 0.5,
        "retrievalP50Ms": 3.25,
        "etaSeconds": 30,
        "updatedAt": "2027-01-15T08:00:00Z",
    }
    assert progress.parse_progress(text, "/data/outputs/b")["step"] == 7
    assert progress.parse_progress(text, "/data/outputs/c") is None


def test_a_restarted_controllers_series_wins_over_the_stale_one() -> None:
    text = page(
        {"worker": "old", "output_dir": "/o", "values": run_values(60, 1_800_000_000)},
        {"worker": "new", "output_dir": "/o", "values": run_values(20, 1_800_000_500, loss=2.0)},
    )
    found = progress.parse_progress(text, "/o")
    assert (found["step"], found["loss"]) == (20, 2.0)


def test_a_nan_loss_is_left_out_and_a_partial_series_or_a_foreign_page_gives_nothing() -> None:
    text = page({"worker": "w", "output_dir": "/o", "values": run_values(5, 1_800_000_000, loss=math.nan)})
    assert "loss" not in progress.parse_progress(text, "/o")
    partial = {"step": 5, "max_steps": 100}  # no updated_unix yet
    assert progress.parse_progress(page({"worker": "w", "output_dir": "/o", "values": partial}), "/o") is None
    assert progress.parse_progress("<html>not metrics</html>\n", "/o") is None
    assert progress.parse_progress("", "/o") is None


def test_fetch_reads_a_real_metrics_server_and_names_the_url_when_it_cannot() -> None:
    registry = CollectorRegistry()
    page({"worker": "w", "output_dir": "/o", "values": run_values(3, 1_800_000_000)}, registry=registry)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        text = progress.fetch_metrics(f"http://127.0.0.1:{port}/metrics")
        assert progress.parse_progress(text, "/o")["step"] == 3
    finally:
        server.shutdown()
        thread.join(5)
    closed = f"http://127.0.0.1:{free_port()}/metrics"
    with pytest.raises(progress.MetricsUnavailable, match=closed):
        progress.fetch_metrics(closed, timeout=2)


def test_the_url_is_the_ray_clusters_head_service_metrics_port() -> None:
    assert (
        progress.metrics_url("rag-tiny-abcde", "team-a")
        == "http://rag-tiny-abcde-head-svc.team-a.svc:8080/metrics"
    )


def running_job(memo: FakeMemo) -> dict[str, Any]:
    doc = load_example("cpu")
    doc["metadata"].update(namespace="ns", resourceVersion="7")
    doc["status"] = {
        "rayJobName": doc["metadata"]["name"],
        "rayClusterName": f"{doc['metadata']['name']}-x1y2z",
        "phase": "Running",
        "outputDir": "/data/outputs/rag-tiny-cpu",
    }
    return memo.custom.put(names.GROUP, names.PLURAL, doc)


class Logger:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str, *args: Any) -> None:
        self.lines.append(message % args)


def test_the_timer_writes_progress_once_per_change_and_survives_an_unreachable_head() -> None:
    memo = FakeMemo()
    job = running_job(memo)
    name = job["metadata"]["name"]
    asked: list[str] = []
    current = {
        "text": page(
            {"worker": "w", "output_dir": job["status"]["outputDir"], "values": run_values(10, 1.8e9)}
        )
    }

    def fetch(url: str) -> str:
        asked.append(url)
        if current["text"] is None:
            raise progress.MetricsUnavailable(f"GET {url}: connection refused")
        return current["text"]

    memo.fetch_metrics = fetch
    logger = Logger()
    controller.report_progress(body=job, memo=memo, logger=logger)
    stored = memo.custom.get_namespaced_custom_object(names.GROUP, names.VERSION, "ns", names.PLURAL, name)
    assert stored["status"]["progress"]["step"] == 10 and stored["status"]["phase"] == "Running"
    assert asked == [f"http://{job['status']['rayClusterName']}-head-svc.ns.svc:8080/metrics"]

    controller.report_progress(body=stored, memo=memo, logger=logger)  # nothing new: no second write
    assert [c for c in memo.custom.calls if c[0] == "patch-status"] == [("patch-status", names.PLURAL, name)]

    current["text"] = None  # the head restarts: logged, the last progress kept, nothing raised
    controller.report_progress(body=stored, memo=memo, logger=logger)
    assert "connection refused" in logger.lines[-1]
    again = memo.custom.get_namespaced_custom_object(names.GROUP, names.VERSION, "ns", names.PLURAL, name)
    assert again["status"]["progress"]["step"] == 10


def test_the_timer_runs_only_for_a_running_job_with_a_cluster_and_an_output_dir() -> None:
    running = {"phase": "Running", "rayClusterName": "c", "outputDir": "/o"}
    assert controller._is_running(running)
    assert not controller._is_running({**running, "phase": "Succeeded"})
    assert not controller._is_running({"phase": "Running", "outputDir": "/o"})
    assert not controller._is_running({"phase": "Running", "rayClusterName": "c"})
