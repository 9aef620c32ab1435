"""Every searching process opens its shards with the same FAISS settings, and they keep search exact."""

from __future__ import annotations

import numpy as np


def test_opening_a_shard_sets_the_blas_threshold_and_batches_stay_exact(tmp_path):
    import faiss

    from rag_job.bench.synthetic import query_batches, write_synthetic_knowledge_base
    from rag_job.retrieval.faiss_settings import BLAS_THRESHOLD
    from rag_job.retrieval.searcher import ShardSearcher

    write_synthetic_knowledge_base(tmp_path / "kb", 3000, 32, "flat", 1)
    faiss.cvar.distance_compute_blas_threshold = 128000  # what faiss-cpu 1.15 ships
    searcher = ShardSearcher(tmp_path / "kb", 0)
    assert faiss.cvar.distance_compute_blas_threshold == BLAS_THRESHOLD

    vectors = searcher.index.reconstruct_n(0, searcher.index.ntotal)
    for size in (1, 8, 64):  # below and above the threshold
        queries = query_batches(1, size, 32, seed=size)[0]
        scores, ids, embeds = searcher.search(queries, 5)
        exact = queries @ vectors.T
        want = np.argsort(-exact, axis=1, kind="stable")[:, :5]
        np.testing.assert_array_equal(ids, want)
        np.testing.assert_allclose(scores, np.take_along_axis(exact, want, axis=1), rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(embeds, vectors[want])
