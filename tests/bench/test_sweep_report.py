"""The sweep's pure parts: the growth-exponent fit, the series it fits, and the files it writes."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from rag_job.bench import report
from rag_job.bench.sweep import GRIDS, SweepGrid, cells_in, sweep_layout, write_sweep


def test_exponent_of_an_exact_power_law_is_its_power():
    sizes = [1_000, 10_000, 100_000]
    assert report.growth_exponent(sizes, [0.003 * n**0.9 for n in sizes]) == pytest.approx(0.9)
    assert report.growth_exponent(sizes, [5.0, 5.0, 5.0]) == pytest.approx(0.0, abs=1e-12)


def test_exponent_is_the_least_squares_slope_on_log_log_axes():
    sizes, latencies = [2_000, 8_000, 32_000, 128_000], [1.0, 1.5, 4.0, 15.0]
    want = np.polyfit(np.log(sizes), np.log(latencies), 1)[0]
    assert report.growth_exponent(sizes, latencies) == pytest.approx(want)


def test_no_exponent_without_two_sizes_and_bad_input_is_refused():
    assert report.growth_exponent([20_000, 20_000], [3.0, 4.0]) is None
    with pytest.raises(ValueError, match="positive"):
        report.growth_exponent([10, 100], [0.0, 1.0])
    with pytest.raises(ValueError, match="2 sizes but 1 latencies"):
        report.growth_exponent([10, 100], [1.0])


def _row(passages: int, index_type: str, mode: str, replicas: int | None, workers: int, ms: float) -> dict:
    row = report.summarize_run(
        mode, workers, replicas, [ms, ms * 1.5], 1.0, [200.0], [50.0] * (replicas or 0)
    )
    return row | {"passages": passages, "index_type": index_type, "shards": 1}


def _result() -> dict:
    rows = [
        _row(n, index_type, mode, replicas, 2, base * (n / 1_000) ** power)
        for index_type, power in (("flat", 1.0), ("hnsw", 0.25))
        for mode, replicas, base in (("ray", 2, 2.0), ("local", None, 0.5))
        for n in (1_000, 4_000, 16_000)
    ]
    knowledge_bases = [
        {
            "passages": n, "index_type": t, "shards": 1, "dim": 64, "build_s": 1.5, "build_cached": n == 1_000,
            "index_mb": n * 64 * 4 / 2**20, "actor_load_s_max": 0.1, "actor_rss_mb_max": 300.0,
        }
        for n in (1_000, 4_000, 16_000)
        for t in ("flat", "hnsw")
    ]  # fmt: skip
    return {
        "benchmark": "retrieval-sweep",
        "settings": {"machine": "2 cores"},
        "knowledge_bases": knowledge_bases,
        "results": rows,
        "fits": report.fit_growth(rows),
    }


def test_one_fit_per_index_type_and_mode_recovers_each_series_power():
    fits = {(f["index_type"], f["label"]): f for f in report.fit_growth(_result()["results"])}
    assert set(fits) == {
        (t, label) for t in ("flat", "hnsw") for label in ("Ray R=2", "local (in-process floor)")
    }
    for (index_type, _), fit in fits.items():
        power = 1.0 if index_type == "flat" else 0.25
        assert fit["passages"] == [1_000, 4_000, 16_000]
        assert fit["exponent_p50"] == pytest.approx(power)
        assert fit["exponent_p95"] == pytest.approx(power)


def test_sweep_writer_writes_json_tables_and_a_log_log_plot(tmp_path):
    result = _result()
    write_sweep(result, tmp_path)

    assert json.loads((tmp_path / "sweep.json").read_text()) == result
    table = (tmp_path / "sweep.md").read_text()
    assert "| flat | Ray R=2 | 2 | 1 | 1,000, 4,000, 16,000 | 1.00 | 1.00 |" in table
    assert "| hnsw | local (in-process floor) | 2 | 1 | 1,000, 4,000, 16,000 | 0.25 | 0.25 |" in table
    assert "| 1,000 | flat | 1 | 0.2 | 1.5 (cached) | 0.10 | 300 |" in table
    cells = [line for line in table.splitlines() if line.startswith("| 16,000 |")]
    assert len(cells) == 4 + 2  # four cells, and the two knowledge-base rows of that size
    assert "| - |" in next(line for line in cells if "local" in line)  # no actors in local mode
    png = (tmp_path / "sweep.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_grids_list_every_knowledge_base_once_and_the_full_grid_is_the_issues():
    small, full = GRIDS["small"], GRIDS["full"]
    for grid in (small, full):
        grid.validate()
        points = grid.knowledge_bases()
        assert len(points) == len(set(points))
    assert {n for n, _, _ in full.knowledge_bases()} == {20_000, 200_000, 1_000_000, 4_000_000}
    assert {t for n, t, _ in full.knowledge_bases() if n == 4_000_000} == {"ivfpq"}
    # S=2 beside S=1 at the largest N, for every index type (the shard comparison).
    assert {(t, s) for n, t, s in small.knowledge_bases() if n == 32_000} == {
        (t, s) for t in small.index_types for s in (1, 2)
    }
    grid = SweepGrid(passages=(100, 200), index_types=("flat",), workers=(1, 2), replicas=(1, 2, 4))
    assert cells_in(grid) == 3 * 2 * (3 + 1)  # (2 N + the S=2 point) x W x (ray R=1,2,4 + local)
    assert cells_in(replace(grid, compare_shards=None)) == 2 * 2 * (3 + 1)
    with pytest.raises(ValueError, match="index types"):
        SweepGrid(passages=(100,), index_types=("lsh",), workers=(1,), replicas=(1,)).validate()


def test_the_sweeps_cluster_has_room_for_every_actor_of_its_most_sharded_point():
    from rag_job.bench.retrieval import RetrievalBenchConfig

    grid = GRIDS["small"]  # S=1 only, plus the S=2 comparison at its largest N
    layout = sweep_layout(grid, RetrievalBenchConfig(workers=grid.workers, replicas=grid.replicas))
    slots = layout.retrieval_nodes * layout.actors_per_retrieval_node
    assert slots >= max(grid.replicas) * 2
