"""Rerank over-retrieved passages with the context encoder being trained (Atlas's idea).

Between two index refreshes of end-to-end training the index holds embeddings from an older
context encoder. Asking it for k' > n_docs candidates and rescoring them with the current
encoder (no gradient, dropout off) lets the passages the current encoder prefers through,
so staleness costs less; only k' passages per question are encoded, never the whole index.
"""

from __future__ import annotations

import numpy as np


class ContextReranker:
    """Keeps the `n_docs` of the candidates that the current context encoder scores highest."""

    def __init__(self, encoder, tokenizer, index, candidates: int):
        self.encoder, self.tokenizer, self.index, self.candidates = encoder, tokenizer, index, candidates

    def __call__(
        self, queries: np.ndarray, doc_ids: np.ndarray, n_docs: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids [B, n_docs], fresh embeddings [B, n_docs, D]) out of the candidates `doc_ids` [B, k']."""
        import torch

        docs = self.index.get_doc_dicts(doc_ids)
        titles = [title for doc in docs for title in doc["title"]]
        texts = [text for doc in docs for text in doc["text"]]
        device = next(self.encoder.parameters()).device
        inputs = self.tokenizer(titles, texts, truncation=True, padding="longest", return_tensors="pt").to(
            device
        )
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            with torch.no_grad():
                vectors = self.encoder(**inputs).pooler_output.float().cpu().numpy()
        finally:
            self.encoder.train(was_training)
        vectors = vectors.reshape(*doc_ids.shape, -1)
        scores = np.einsum("bd,bkd->bk", queries, vectors)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :n_docs]
        kept = np.take_along_axis(doc_ids, order, axis=1)
        return kept, np.take_along_axis(vectors, order[..., None], axis=1).astype(np.float32)
