"""Reranking over-retrieved passages with the current context encoder (end-to-end training)."""

from __future__ import annotations

import numpy as np


def test_reranker_keeps_the_candidates_the_current_encoder_scores_highest(tiny_assets, question_vectors):
    import torch
    from transformers import AutoTokenizer, DPRContextEncoder

    from rag_job.knowledge.index import encode_passages
    from rag_job.knowledge.ingest import Passage
    from rag_job.retrieval.rerank import ContextReranker
    from rag_job.retrieval.retrievers import PassagesIndex
    from rag_job.retrieval.searcher import load_passages

    encoder = DPRContextEncoder.from_pretrained(str(tiny_assets.ctx_encoder))
    with torch.no_grad():  # "the current encoder": another encoder than the one the index was built with
        for parameter in encoder.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    encoder.train()
    dataset = load_passages(tiny_assets.kb_flat)
    index = PassagesIndex(dataset)
    rng = np.random.default_rng(0)
    queries = question_vectors[:6]
    candidates = np.stack([rng.choice(len(dataset), size=8, replace=False) for _ in queries])
    reranker = ContextReranker(encoder, AutoTokenizer.from_pretrained(str(tiny_assets.ctx_encoder)), index, 8)

    ids, embeds = reranker(queries, candidates, 3)

    # The ground truth: the same encoder's embeddings of every candidate, one passage at a time.
    saved = tiny_assets.root / "current-ctx"
    encoder.save_pretrained(saved)
    AutoTokenizer.from_pretrained(str(tiny_assets.ctx_encoder)).save_pretrained(saved)
    rows = dataset.select_columns(["title", "text"])
    fresh = np.zeros((len(rows), queries.shape[1]), dtype=np.float32)
    needed = np.unique(candidates).tolist()
    fresh[needed] = encode_passages(
        [Passage(source_id=str(i), title=rows[i]["title"], text=rows[i]["text"]) for i in needed],
        saved,
        batch_size=1,  # no padding: the reranker's batched, padded encoding must agree
        progress=False,
    )
    scores = np.einsum("bd,bkd->bk", queries, fresh[candidates])
    expected = np.take_along_axis(candidates, np.argsort(-scores, axis=1, kind="stable")[:, :3], axis=1)
    all_scores = queries @ fresh.T
    got_scores = np.take_along_axis(all_scores, ids, axis=1)
    want_scores = np.take_along_axis(all_scores, expected, axis=1)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(embeds, fresh[ids], rtol=1e-4, atol=1e-4)
    assert encoder.training, "the encoder goes back to training mode"
    assert all(set(row) <= set(c) for row, c in zip(ids.tolist(), candidates.tolist(), strict=True))
