"""The sweep's memory figures and S comparison on a real cluster: actors map their index, a
fresh process holding a read index carries it as private memory and a mapped one does not,
and S=2 is compared with S=1 at the largest N."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

DIM = 256
LARGEST = 20_000  # 20 MB of flat index: well above a worker's own noise


def test_sweep_reports_memory_per_shard_bytes_mapped_vs_read_and_s2_against_s1(bench_cluster, tmp_path):
    from rag_job.bench.retrieval import RetrievalBenchConfig
    from rag_job.bench.sweep import SweepConfig, SweepGrid, run_sweep

    grid = SweepGrid(
        passages=(LARGEST,),
        index_types=("flat",),
        workers=(2,),
        replicas=(1,),
        modes=("ray",),
        compare_shards=2,
    )
    config = SweepConfig(
        grid=grid, grid_name="test", cell=RetrievalBenchConfig(dim=DIM, calls=4, warmup=1), out_dir=tmp_path
    )
    run_sweep(config)
    result = json.loads((tmp_path / "sweep.json").read_text())

    points = {(kb["passages"], kb["shards"]): kb for kb in result["knowledge_bases"]}
    assert set(points) == {(LARGEST, 1), (LARGEST, 2)}
    for kb in points.values():
        assert kb["index_mapped"] is True  # every Ray actor mapped its flat index
        assert kb["actor_anon_mb_max"] > 0 and kb["actor_pss_mb_max"] > 0
    big = points[(LARGEST, 1)]
    index_bytes = LARGEST * DIM * 4
    assert big["shard0_bytes"] == pytest.approx(2 * index_bytes, rel=0.01)  # index file + embeddings rows
    probes = {p["mode"]: p for p in big["memory_probes"]}
    mapped, read = probes["auto"], probes["never"]
    assert mapped["index_mapped"] and not read["index_mapped"] and mapped["embeddings_zero_copy"]
    # Read: the index is private memory. Mapped: the scanned pages are resident but file-backed.
    assert read["anon_bytes_delta"] > 0.8 * index_bytes
    assert mapped["anon_bytes_delta"] < 0.3 * index_bytes
    assert mapped["file_bytes_delta"] > 0.8 * index_bytes

    [compared] = result["shard_comparison"]
    assert (compared["passages"], compared["shards"], compared["label"]) == (LARGEST, 2, "Ray R=1")
    assert compared["latency_ratio"] > 0 and compared["rss_ratio"] > 0
    assert compared["shard_rss_ratio"] < 0.8  # half the shard, well under the whole one's pages

    text = (tmp_path / "sweep.md").read_text()
    assert f"### S=2 against S=1 at N={LARGEST:,}" in text
    assert "| probe mapped: RSS / bytes |" in text
    assert result["scale_table"]["rows"] == []  # one N: no line to fit (tests/bench/test_scale_table.py)
