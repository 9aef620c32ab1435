"""Synthetic knowledge bases and query batches for the retrieval benchmark.

The retrieval benchmark measures where the search runs, not what it finds, so random
unit vectors written through the product's own `write_knowledge_base` are enough; no
encoder is needed and any N and D can be benchmarked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rag_job.knowledge.layout import KnowledgeBaseMeta

#: Vectors generated per chunk, so millions of passages never need two copies in memory.
CHUNK_ROWS = 100_000


def synthetic_vectors(num: int, dim: int, seed: int) -> np.ndarray:
    """`num` random unit vectors of dimension `dim` (float32), reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    out = np.empty((num, dim), dtype=np.float32)
    for start in range(0, num, CHUNK_ROWS):
        end = min(num, start + CHUNK_ROWS)
        chunk = rng.standard_normal((end - start, dim), dtype=np.float32)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        out[start:end] = chunk
    return out


def write_synthetic_knowledge_base(
    out_dir: Path, num_passages: int, dim: int, index_type: str, shards: int, seed: int = 0
) -> KnowledgeBaseMeta:
    """A knowledge base of `num_passages` synthetic passages in the product's on-disk layout."""
    from rag_job.knowledge.index import write_knowledge_base
    from rag_job.knowledge.ingest import Passage

    if num_passages < 1:
        raise ValueError(f"--passages must be at least 1, got {num_passages}")
    if dim < 1:
        raise ValueError(f"--dim must be at least 1, got {dim}")
    embeddings = synthetic_vectors(num_passages, dim, seed)
    passages = [Passage(source_id=str(i), title=f"synthetic {i}", text="") for i in range(num_passages)]
    return write_knowledge_base(passages, embeddings, out_dir, index_type=index_type, shards=shards)


def query_batches(calls: int, batch: int, dim: int, seed: int) -> np.ndarray:
    """[calls, batch, dim] query vectors: one batch per retrieval call."""
    return synthetic_vectors(calls * batch, dim, seed).reshape(calls, batch, dim)
