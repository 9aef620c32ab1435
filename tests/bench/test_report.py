"""The benchmark's figures: ratios against the same-W baselines, and the published-style tables."""

from __future__ import annotations

import pytest

from rag_job.bench import report


def _rows(latencies: dict[tuple[str, int | None, int], float]) -> list[dict]:
    return [
        report.summarize_run(
            mode, workers, replicas, [ms, ms * 2], wall_s=1.0, trainer_rss_mb=[100], actor_rss_mb=[]
        )
        for (mode, replicas, workers), ms in latencies.items()
    ]


def test_ratios_compare_each_mode_with_the_baselines_at_the_same_w():
    rows = report.add_ratios(
        _rows(
            {
                ("torch", None, 1): 10.0,
                ("ray", 2, 1): 12.0,
                ("local", None, 1): 8.0,
                ("torch", None, 4): 40.0,
                ("ray", 2, 4): 20.0,
                ("local", None, 4): 10.0,
            }
        )
    )
    ray_w4 = next(r for r in rows if r["label"] == "Ray R=2" and r["workers"] == 4)
    assert ray_w4["latency_ms_p50"] == pytest.approx(30.0)  # median of 20 and 40
    assert ray_w4["p50_vs_torch"] == pytest.approx(0.5)
    assert ray_w4["p50_vs_local"] == pytest.approx(2.0)
    ray_w1 = next(r for r in rows if r["label"] == "Ray R=2" and r["workers"] == 1)
    assert ray_w1["p50_vs_torch"] == pytest.approx(1.2)


def test_ratio_is_none_when_the_baseline_was_not_run():
    rows = report.add_ratios(_rows({("ray", 4, 2): 5.0}))
    assert rows[0]["p50_vs_torch"] is None and rows[0]["p50_vs_local"] is None
    assert "n/a" in report.latency_table(rows)


def test_latency_table_has_a_row_per_mode_and_a_column_per_w_like_the_published_one():
    rows = report.add_ratios(
        _rows({("torch", None, 2): 10.0, ("ray", 2, 2): 5.0, ("torch", None, 4): 20.0, ("ray", 2, 4): 5.0})
    )
    lines = report.latency_table(rows).splitlines()
    assert lines[0].endswith("| W=2 | W=4 |")
    assert lines[2] == "| torch.distributed | 15.0 (1.00x) | 30.0 (1.00x) |"
    assert lines[3] == "| Ray R=2 | 7.5 (0.50x) | 7.5 (0.25x) |"
    comparison = report.published_comparison_table(rows)
    assert "3.438 s (1.00x)" in comparison and "1.66 s (0.48x)" in comparison


def test_a_cell_without_calls_is_an_error_naming_it():
    with pytest.raises(ValueError, match="ray with 2 worker"):
        report.summarize_run("ray", 2, 1, [], 1.0, [], [])
