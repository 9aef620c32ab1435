"""FAISS process settings that every searching process (actor, local retriever, torch rank 0) shares.

faiss-cpu 1.15 ships `distance_compute_blas_threshold` = 128000, which keeps a flat search of a
training batch (8 to a few hundred queries) off the blocked BLAS path: measured on this project's
2-core machine with one OpenMP thread, 8 queries over 200,000 x 768 took 348 ms at the shipped
value and 109 ms at 20 (FAISS's long-standing default), 32 queries 1379 ms and 143 ms, with
identical ids; a single query went the other way (47 ms against 97 ms), but training calls
carry a batch. Every mode sets it (it is set where a shard searcher opens), so the benchmark's
comparisons stay like for like.
"""

from __future__ import annotations

#: FAISS's default before 1.15 (see above for what it buys).
BLAS_THRESHOLD = 20


def use_blas_for_batches() -> None:
    """Set this process's FAISS BLAS threshold (idempotent, process-wide)."""
    import faiss

    faiss.cvar.distance_compute_blas_threshold = BLAS_THRESHOLD
