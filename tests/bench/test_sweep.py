"""`bench retrieval --sweep` on the suite's Ray cluster: a tiny grid, real FAISS indexes and actors."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_tiny_sweep_measures_every_grid_point_and_caches_its_built_indexes(bench_cluster, tmp_path):
    from rag_job.bench.retrieval import RetrievalBenchConfig, cached_knowledge_base
    from rag_job.bench.sweep import SweepConfig, SweepGrid, cells_in, run_sweep

    grid = SweepGrid(
        passages=(500, 2_000),
        index_types=("flat", "hnsw"),
        workers=(2,),
        replicas=(2,),
        modes=("ray", "local"),
        extra_points=((2_000, "ivfpq"),),
        compare_shards=None,  # tests/bench/test_sweep_memory.py measures the S comparison
    )
    config = SweepConfig(
        grid=grid, grid_name="test", cell=RetrievalBenchConfig(dim=32, calls=4, warmup=1), out_dir=tmp_path
    )
    run_sweep(config)

    result = json.loads((tmp_path / "sweep.json").read_text())
    cells = {
        (r["passages"], r["index_type"], r["shards"], r["workers"], r["label"]): r for r in result["results"]
    }
    labels = ["Ray R=2", "local (in-process floor)"]
    want = {(n, t, 1, 2, label) for n, t, _ in grid.knowledge_bases() for label in labels}
    assert set(cells) == want and len(result["results"]) == cells_in(grid) == 10
    for (_, _, _, workers, label), row in cells.items():
        assert row["calls"] == workers * config.cell.calls
        assert 0 < row["latency_ms_p50"] <= row["latency_ms_p95"]
        if label.startswith("Ray"):  # resident memory of each of the R actors that served the cell
            assert len(row["actor_rss_mb"]) == row["replicas"] and min(row["actor_rss_mb"]) > 0
    kbs = {(kb["passages"], kb["index_type"]): kb for kb in result["knowledge_bases"]}
    assert set(kbs) == {(n, t) for n, t, _ in grid.knowledge_bases()}
    for kb in kbs.values():
        assert kb["build_s"] > 0 and not kb["build_cached"]
        assert kb["actor_rss_mb_max"] > 0 and kb["actor_load_s_max"] > 0 and kb["index_mb"] > 0
    # One fit per series over N: flat and hnsw have two sizes, the lone IVF-PQ point none.
    fits = {(f["index_type"], f["label"]): f for f in result["fits"]}
    assert set(fits) == {(t, label) for t in ("flat", "hnsw", "ivfpq") for label in labels}
    assert all(isinstance(fits[("flat", label)]["exponent_p50"], float) for label in labels)
    assert fits[("ivfpq", "Ray R=2")]["exponent_p50"] is None
    assert "growth" in (tmp_path / "sweep.md").read_text().lower()
    assert (tmp_path / "sweep.png").read_bytes().startswith(b"\x89PNG")

    # Built indexes are kept by their parameters: asked again, the cache answers, with the build
    # time recorded when it was built.
    again = cached_knowledge_base(tmp_path / "cache", 2_000, 32, "ivfpq", 1, config.cell.seed)
    assert again.cached and again.build_s == kbs[(2_000, "ivfpq")]["build_s"]
