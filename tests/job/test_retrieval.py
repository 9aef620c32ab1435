"""Retrieval on a real multi-node Ray cluster, checked against exact brute-force search."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.job.helpers import K, assert_exact_top_k, exact_top_k

pytestmark = pytest.mark.ray


def test_retrieval_actors_run_only_on_retrieval_nodes(pool_factory, tiny_assets, ray_cluster):
    pool = pool_factory(tiny_assets.kb_flat_2shards, replicas=2, shards=2)
    nodes = {stats["node_id"] for stats in pool.actor_stats()}
    assert nodes <= ray_cluster.retrieval_node_ids
    assert not nodes & ray_cluster.trainer_node_ids


@pytest.mark.parametrize(("replicas", "shards"), [(1, 1), (2, 1), (1, 2), (2, 2)])
def test_ray_pool_returns_exact_flat_search_results(
    pool_factory, tiny_assets, question_vectors, replicas, shards
):
    kb = tiny_assets.kb_flat if shards == 1 else tiny_assets.kb_flat_2shards
    pool = pool_factory(kb, replicas=replicas, shards=shards)
    for _ in range(3):  # several calls, so both replicas serve some
        _, ids, embeds = pool.search(question_vectors, K)
        assert_exact_top_k(kb, question_vectors, ids, embeds)
    assert sum(s["calls"] for s in pool.client_stats()) == 3 * shards


def test_local_searcher_returns_exact_flat_search_results(tiny_assets, question_vectors):
    from rag_job.retrieval.searcher import KnowledgeBaseSearcher

    for kb in (tiny_assets.kb_flat, tiny_assets.kb_flat_2shards):
        _, ids, embeds = KnowledgeBaseSearcher(kb).search(question_vectors, K)
        assert_exact_top_k(kb, question_vectors, ids, embeds)


def test_hnsw_recall_at_5_against_exact_search_is_above_095(tiny_assets, question_vectors):
    from rag_job.retrieval.searcher import KnowledgeBaseSearcher

    _, ids, _ = KnowledgeBaseSearcher(tiny_assets.kb_hnsw).search(question_vectors, K)
    expected_ids, _ = exact_top_k(tiny_assets.kb_hnsw, question_vectors, K)
    recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(ids, expected_ids, strict=True)])
    print(f"hnsw recall@{K} against exact search: {recall:.3f}")
    assert recall > 0.95


def test_killed_retrieval_actor_loses_no_query(pool_factory, tiny_assets, question_vectors):
    import ray

    pool = pool_factory(tiny_assets.kb_flat, replicas=2, shards=1)
    results, errors = [], []
    stop = threading.Event()

    def trainer(worker: int) -> None:
        try:
            while not stop.is_set():
                _, ids, embeds = pool.search(question_vectors[worker::2], K)
                results.append((worker, ids, embeds))
        except Exception as err:  # recorded, then asserted on
            errors.append(err)

    threads = [threading.Thread(target=trainer, args=(w,)) for w in range(2)]
    for thread in threads:
        thread.start()
    while len(results) < 10:
        threading.Event().wait(0.05)
    victim = pool._replicas[0][0].handle
    pid_before = ray.get(victim.stats.remote())["pid"]
    ray.kill(victim, no_restart=False)
    calls_at_kill = len(results)
    while len(results) < calls_at_kill + 40:
        threading.Event().wait(0.05)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    for worker, ids, embeds in results:
        assert_exact_top_k(tiny_assets.kb_flat, question_vectors[worker::2], ids, embeds)
    # The killed actor comes back (max_restarts) as a new process and serves again; while Ray
    # restarts it, it answers "unavailable", which wait_ready rides out.
    pool.wait_ready(timeout_s=60)
    assert ray.get(victim.stats.remote())["pid"] != pid_before


def test_encoding_spread_over_ray_actors_equals_encoding_in_process(ray_cluster, tiny_assets):
    from rag_job.knowledge.index import encode_passages, encode_passages_on_ray
    from rag_job.knowledge.ingest import ingest
    from tests.job.conftest import EXAMPLE_KB

    passages = ingest(EXAMPLE_KB).passages[:150]
    on_ray = encode_passages_on_ray(passages, str(tiny_assets.ctx_encoder), num_actors=2, batch_size=16)
    in_process = encode_passages(passages, tiny_assets.ctx_encoder, batch_size=16, progress=False)
    assert on_ray.shape == in_process.shape
    np.testing.assert_allclose(on_ray, in_process, rtol=1e-4, atol=1e-5)
