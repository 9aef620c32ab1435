"""`bench startup` at a tiny size on the suite's Ray cluster: the report's fields, and warm loads no index."""

from __future__ import annotations

import json
from itertools import pairwise

import pytest

from rag_job.train.timeline import PHASES, WAITING_FOR_RETRIEVAL

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_tiny_startup_bench_reports_cold_and_warm_and_the_warm_job_loads_no_index(bench_cluster, tmp_path):
    from rag_job.bench.startup import StartupBenchConfig, run_startup_bench

    config = StartupBenchConfig(
        passages=500, dim=64, replicas=2, workers=1, steps=1, prime=False, out_dir=tmp_path
    )
    run_startup_bench(config)

    result = json.loads((tmp_path / "startup.json").read_text())
    cold, warm = result["cold"], result["warm"]
    # Cold: the job started its own 2 actors, each loaded the index. Warm: it used the
    # service's actors, loaded before the job, and no process of it loaded the index.
    assert cold["index_loads"] == config.replicas
    assert warm["index_loads"] == 0
    assert len(warm["runs"][0]["actor_pids"]) == config.replicas
    assert not set(warm["runs"][0]["actor_pids"]) & set(cold["runs"][0]["actor_pids"])
    for row in (cold, warm):
        assert row["runs"][0]["steps"] == config.steps
        assert row["time_to_first_step_s"] > row["retrieval_ready_s"] >= 0
    assert result["warm_over_cold"] == pytest.approx(
        warm["time_to_first_step_s"] / cold["time_to_first_step_s"]
    )
    assert result["service_load_s"] > 0 and cold["actor_load_s_max"] > 0
    assert cold["runs"][0]["evicted_mib"] > 0  # its files were dropped from the page cache first
    assert "500 synthetic passages x 64 dims" in result["settings"]["knowledge_base"]
    table = (tmp_path / "startup.md").read_text()
    assert "| submit to first training step |" in table and "warm / cold" in table

    # Start-up by phase: every phase, in order, each starting where the one before ended, and
    # together no longer than the measured start-up (they tile it).
    for row in (cold, warm):
        phases = row["runs"][0]["phases"]
        assert [p["phase"] for p in phases] == [name for _, name in PHASES]
        assert all(p["seconds"] >= 0 for p in phases)
        for before, after in pairwise(phases):
            assert after["start_s"] == pytest.approx(before["start_s"] + before["seconds"])
        total = sum(p["seconds"] for p in phases)
        assert total <= row["time_to_first_step_s"] + 1e-6
        assert total == pytest.approx(row["time_to_first_step_s"])
        assert list(row["phases"]) == [name for _, name in PHASES]
    # The index loads beside Ray Train's start: the trainers wait at most for all of it (plus
    # one round trip), and the start-up without that wait is reported.
    assert cold["phases"][WAITING_FOR_RETRIEVAL] <= cold["retrieval_ready_s"] + 1.0
    for row in (cold, warm):
        waited = row["runs"][0]["phases"][[name for _, name in PHASES].index(WAITING_FOR_RETRIEVAL)]
        assert row["outside_index_s"] == pytest.approx(row["time_to_first_step_s"] - waited["seconds"])
    assert "### Start-up by phase" in table and f"| {WAITING_FOR_RETRIEVAL} |" in table
    assert "| the same without the wait for the index |" in table

    # The per-step wall clock the figure comes from is in the job's own metrics.json.
    metrics = json.loads((tmp_path / "startup-runs" / "warm" / "out" / "metrics.json").read_text())
    assert metrics["time_to_first_step_s"] == pytest.approx(warm["time_to_first_step_s"])
    assert metrics["history"][0]["time_unix"] > 0
    assert metrics["startup_phases"] == warm["runs"][0]["phases"]
