"""`bench retrieval` on a real local Ray cluster: a tiny run writes sane, self-consistent figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_tiny_retrieval_bench_writes_consistent_json_table_and_plot(bench_cluster, tmp_path):
    from rag_job.bench.retrieval import RetrievalBenchConfig, run_retrieval_bench

    config = RetrievalBenchConfig(
        passages=3000, dim=32, workers=(1, 2), replicas=(2,), calls=6, warmup=1, out_dir=tmp_path
    )
    run_retrieval_bench(config)

    result = json.loads((tmp_path / "retrieval.json").read_text())
    rows = {(r["label"], r["workers"]): r for r in result["results"]}
    labels = ["torch.distributed", "Ray R=2", "local (in-process floor)"]
    assert set(rows) == {(label, w) for label in labels for w in (1, 2)}
    for (label, workers), row in rows.items():
        assert row["calls"] == workers * config.calls
        assert 0 < row["latency_ms_p50"] <= row["latency_ms_p95"]
        assert row["calls_per_s"] > 0
        assert row["trainer_rss_mb_max"] > 0
        torch_row, local_row = (
            rows[("torch.distributed", workers)],
            rows[("local (in-process floor)", workers)],
        )
        assert row["p50_vs_torch"] == pytest.approx(row["latency_ms_p50"] / torch_row["latency_ms_p50"])
        assert row["p50_vs_local"] == pytest.approx(row["latency_ms_p50"] / local_row["latency_ms_p50"])
        if label.startswith("Ray"):
            assert len(row["actor_rss_mb"]) == row["replicas"] and min(row["actor_rss_mb"]) > 0
        else:
            assert row["actor_rss_mb"] == []
    assert rows[("torch.distributed", 2)]["p50_vs_torch"] == pytest.approx(1.0)
    assert "faiss_threads" in result["settings"] and "cpu_budget" in result["settings"]
    # Every timed Ray call reached an actor: W trainers x calls x 8 queries, for each W and each R.
    timed_ray_queries = sum(w * config.calls * config.batch for w in config.workers) * len(config.replicas)
    assert sum(s["queries"] for s in result["actor_stats"]) >= timed_ray_queries

    table = (tmp_path / "retrieval.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| p50 ms per retrieval call"))
    assert header.endswith("| W=1 | W=2 |")
    torch_line = next(line for line in table.splitlines() if line.startswith("| torch.distributed |"))
    assert f"{rows[('torch.distributed', 1)]['latency_ms_p50']:.1f} (1.00x)" in torch_line
    assert "published 2 GPUs" in table
    png = (tmp_path / "retrieval.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_concurrent_calls_to_one_actor_are_batched_and_each_gets_its_own_rows(bench_cluster, tmp_path):
    import ray

    from rag_job.bench.synthetic import query_batches, write_synthetic_knowledge_base
    from rag_job.retrieval.actor import start_retrieval_actors
    from rag_job.retrieval.searcher import ShardSearcher

    write_synthetic_knowledge_base(tmp_path / "kb", 20_000, 128, "flat", 1)
    handles = start_retrieval_actors(str(tmp_path / "kb"), 1, 1, f"batch-{np.random.randint(1 << 30)}")
    actor = handles[0][0]
    try:
        ray.get(actor.ready.remote())
        batches = query_batches(32, 4, 128, seed=7)
        refs = [actor.search.remote(batch, 5) for batch in batches]
        answers = ray.get(refs)
        stats = ray.get(actor.stats.remote())
    finally:
        ray.kill(actor, no_restart=True)

    local = ShardSearcher(tmp_path / "kb", 0)
    for batch, answer in zip(batches, answers, strict=True):
        want_scores, want_ids, want_embeds = local.search(batch, 5)
        np.testing.assert_array_equal(answer.ids, want_ids)
        np.testing.assert_allclose(answer.scores, want_scores, rtol=1e-5)
        np.testing.assert_array_equal(answer.embeddings, want_embeds)
        assert (answer.version, answer.active) == (0, 0)
    assert stats["calls"] == 32
    assert stats["batched_searches"] < 32, "concurrent calls should share FAISS searches"
    assert stats["rss_bytes"] > 0


def test_pool_reading_embeddings_locally_matches_in_process_search_over_two_shards(bench_cluster, tmp_path):
    import ray

    from rag_job.bench.synthetic import query_batches, write_synthetic_knowledge_base
    from rag_job.retrieval.actor import start_retrieval_actors
    from rag_job.retrieval.pool import PoolSpec, RetrievalPool, open_local_embeddings
    from rag_job.retrieval.searcher import KnowledgeBaseSearcher

    kb = tmp_path / "kb"
    write_synthetic_knowledge_base(kb, 5000, 64, "flat", 2)
    spec = PoolSpec(name_prefix=f"local-embeds-{np.random.randint(1 << 30)}", shards=2, replicas=1)
    handles = start_retrieval_actors(str(kb), 2, 1, spec.name_prefix)
    try:
        pool = RetrievalPool(spec, handles)
        pool.wait_ready()
        queries = query_batches(1, 16, 64, seed=3)[0]
        scores, ids, embeds = pool.search(queries, 5)
        assert pool._local_embeddings() is not None, (
            "the pool should read embeddings from the shared directory"
        )
    finally:
        for row in handles:
            ray.kill(row[0], no_restart=True)
    want_scores, want_ids, want_embeds = KnowledgeBaseSearcher(kb).search(queries, 5)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5)
    np.testing.assert_array_equal(embeds, want_embeds)
    assert open_local_embeddings(str(tmp_path / "not-here")) is None
    # A different build of the knowledge base at the same path: the actors must send the embeddings.
    assert open_local_embeddings(str(kb), num_passages=5000, created_unix=1) is None
    assert open_local_embeddings(str(kb), num_passages=4999) is None
