"""`bench train` on a real local Ray cluster: the tiny fine-tune per mode gives sane, consistent figures."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_tiny_train_bench_compares_ray_with_torch(bench_cluster, tmp_path):
    from rag_job.bench.train import TrainBenchConfig, run_train_bench

    config = TrainBenchConfig(
        workers=2, steps=2, batch_size=4, modes=("ray", "torch"), replicas=1, out_dir=tmp_path
    )
    run_train_bench(config)

    result = json.loads((tmp_path / "train.json").read_text())
    rows = {r["mode"]: r for r in result["results"]}
    assert set(rows) == {"ray", "torch"}
    for row in rows.values():
        assert row["steps_counted"] == config.steps - 1
        assert row["samples_per_s_mean"] > 0 and row["step_time_s_p50"] > 0
        assert row["retrieval_latency_ms_p50"] > 0
        assert 0 < row["retrieval_share_of_step"] < 1
        assert row["retrieval_calls_per_step"] >= 1
        assert row["samples_per_s_vs_torch"] == pytest.approx(
            row["samples_per_s_mean"] / rows["torch"]["samples_per_s_mean"]
        )
    assert rows["torch"]["step_time_vs_torch"] == pytest.approx(1.0)
    table = (tmp_path / "train.md").read_text()
    assert "| ray |" in table and "| torch |" in table and "retrieval share of step" in table
