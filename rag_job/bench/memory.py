"""What one index shard costs a retrieval process in memory, mapped against read.

An actor's RSS mixes what the shard costs with what every Ray worker costs (Python, FAISS,
Arrow), so the sweep also loads shard 0 of each knowledge base in a fresh process per load
mode, measures the process after its imports, then after loading and searching the shard,
and reports the growth against the shard's bytes (index file + its rows of embeddings). With
the index mapped the growth is file pages (shared through the page cache by every actor on
the node); read, it is private anonymous memory, one copy per actor.
"""

from __future__ import annotations

import numpy as np

from rag_job.config import RETRIEVAL_RESOURCE
from rag_job.retrieval.memory import process_memory

#: The load modes the probe compares: `auto` maps what FAISS can, `never` reads every index.
PROBE_MODES = ("auto", "never")


class ShardMemoryProbe:
    """A fresh process that loads one shard and reports its memory before and after."""

    def __init__(self) -> None:
        import datasets  # noqa: F401  (the imports an actor has before it loads anything)
        import faiss  # noqa: F401

        import rag_job.retrieval.searcher  # noqa: F401

        self.baseline = process_memory()

    def measure(self, kb_dir: str, shard: int, mode: str, queries: np.ndarray, k: int) -> dict:
        """Load `shard` with index load mode `mode`, run every query batch, report the growth."""
        from rag_job.retrieval.searcher import open_shard

        searcher = open_shard(kb_dir, shard, mmap=mode)
        for batch in queries:
            searcher.search(batch, k)
        after = process_memory()
        grown = {
            f"{name}_delta": (after[name] - self.baseline[name]) if after[name] is not None else None
            for name in ("rss_bytes", "pss_bytes", "anon_bytes", "file_bytes")
        }
        return {
            "mode": mode,
            "index_mapped": searcher.index_mapped,
            "embeddings_zero_copy": searcher.embeddings.zero_copy,
            "index_bytes": searcher.index_bytes,
            "embeddings_bytes": searcher.embeddings_bytes,
            **grown,
        }


def probe_shard_memory(kb_dir: str, queries: np.ndarray, k: int, cpus: float = 1.0) -> list[dict]:
    """Shard 0 of `kb_dir` in one fresh actor per load mode (on retrieval nodes, as actors run)."""
    import ray

    remote = ray.remote(ShardMemoryProbe).options(num_cpus=cpus, resources={RETRIEVAL_RESOURCE: 1})
    probes = [remote.remote() for _ in PROBE_MODES]
    try:
        return ray.get(
            [
                probe.measure.remote(kb_dir, 0, mode, queries, k)
                for probe, mode in zip(probes, PROBE_MODES, strict=True)
            ]
        )
    finally:
        for probe in probes:
            ray.kill(probe, no_restart=True)
