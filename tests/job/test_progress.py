"""Training progress on the driver node's metrics port, read the way the operator reads it.

A real training run on the test Ray cluster sets the `ray_rag_train_*` gauges from Ray Train's
controller; a scraper polls the metrics port of the driver's node meanwhile (what the operator
polls on a head pod) and hands each page to the operator's own parser (rag_operator/finetunejob/
progress.py), so the two halves are tested against each other, not each against a copy.
"""

from __future__ import annotations

import math
import threading
import time
import urllib.request

import pytest

from rag_job.train.progress import progress_values
from rag_operator.finetunejob.progress import parse_progress
from tests.job.test_training import make_config

pytestmark = [pytest.mark.ray]


def test_the_gauges_of_one_report_give_the_eta_from_the_remaining_steps() -> None:
    values = progress_values({"step": 30, "max_steps": 100, "loss": 1.5, "step_time_s": 0.5}, now=1000.0)
    assert values is not None
    assert values["rag_train_eta_seconds"] == 35.0 and values["rag_train_updated_unix"] == 1000.0
    assert values["rag_train_step"] == 30 and values["rag_train_max_steps"] == 100
    done = progress_values({"step": 100, "max_steps": 100, "step_time_s": 0.5}, now=1.0)
    assert done is not None and done["rag_train_eta_seconds"] == 0.0
    assert progress_values({"loss": 1.0}, now=1.0) is None  # a report without a step sets nothing


def _driver_metrics_url() -> str:
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    (node,) = [n for n in ray.nodes() if n["NodeID"] == node_id and n["Alive"]]
    return f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"


def test_a_run_exports_its_progress_where_the_operator_reads_it(ray_cluster, tiny_assets, tmp_path) -> None:
    from rag_job.train.driver import run_training

    config = make_config(
        tiny_assets,
        tmp_path,
        "progress",
        retrieval__mode="local",
        training__max_steps=12,
        training__log_every_steps=1,
        checkpoint__every_steps=12,
    )
    url, seen, stop = _driver_metrics_url(), [], threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            try:
                found = parse_progress(
                    urllib.request.urlopen(url, timeout=5).read().decode(), config.output_dir
                )
            except OSError:
                found = None
            if found and (not seen or seen[-1] != found):
                seen.append(found)
            time.sleep(0.3)

    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    try:
        summary = run_training(config)
        # Ray exports every second here (tests/conftest.py), and keeps a finished process's
        # series for a while: the last report shows up after the run.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (seen and seen[-1]["step"] == 12):
            time.sleep(0.5)
    finally:
        stop.set()
        scraper.join(timeout=10)

    assert seen, "no progress series for this run's output_dir on the driver node"
    losses = {h["step"]: h["loss"] for h in summary.history}
    for progress in seen:
        assert progress["maxSteps"] == 12, progress
        step = progress["step"]
        # One step per report: the reported loss is that step's loss, the ETA the steps left.
        assert math.isclose(progress["loss"], losses[step], abs_tol=1e-3), (progress, losses[step])
        assert math.isclose(progress["etaSeconds"], (12 - step) * progress["stepSeconds"], abs_tol=1.0)
        assert progress["updatedAt"].endswith("Z")
    steps = [p["step"] for p in seen]
    assert steps == sorted(steps) and steps[-1] == 12, steps
    # Another run's series (another output_dir) is never taken for this one.
    assert parse_progress(urllib.request.urlopen(url, timeout=5).read().decode(), "/elsewhere") is None
