"""The emulated trainer process of the retrieval benchmark: a Ray actor on a `rag_trainer` node.

Each worker issues the same retrieval calls in every mode; only the path differs:
`local` searches an in-process copy, `ray` goes through `RetrievalPool` to the actors,
`torch` runs the product's own gather -> rank-0 search -> scatter over a gloo group.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

import numpy as np


def resident_mb(pid: int | None = None) -> float:
    """Resident set size of a process (this one by default), in MiB."""
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 now (for the gloo rendezvous)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BenchWorker:
    """One trainer process: set up one retrieval mode, then time `calls` retrieval calls."""

    def __init__(self, rank: int, faiss_threads: int):
        import faiss
        import torch

        faiss.omp_set_num_threads(faiss_threads)
        torch.set_num_threads(faiss_threads)
        self.rank = rank
        self._search = None
        self._torch = False
        self._pool = None  # the Ray pool, whose per-call traces `run` returns

    def setup_local(self, kb_dir: str) -> None:
        from rag_job.retrieval.searcher import KnowledgeBaseSearcher

        searcher = KnowledgeBaseSearcher(kb_dir)
        self._search = searcher.search

    def setup_ray(self, spec) -> None:
        from rag_job.retrieval.pool import RetrievalPool

        pool = RetrievalPool.connect(spec)
        self._pool = pool

        def search(queries: np.ndarray, k: int):
            return pool.search(queries, k)

        self._search = search

    def setup_torch(self, kb_dir: str, world: int, port: int) -> None:
        """Join a gloo group on loopback and use the product's `TorchDistributedRagRetriever._search`.

        The retriever is built without `RagRetriever.__init__` (which needs tokenizers and
        the passages dataset): the benchmark times exactly the exchange code that training
        runs, and nothing that training would not run per call.
        """
        import torch.distributed as dist

        from rag_job.retrieval.retrievers import TorchDistributedRagRetriever
        from rag_job.retrieval.searcher import KnowledgeBaseSearcher

        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        dist.init_process_group(
            backend="gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=self.rank,
            world_size=world,
            timeout=timedelta(seconds=120),
        )
        self._torch = True
        retriever = TorchDistributedRagRetriever.__new__(TorchDistributedRagRetriever)
        retriever.group = dist.group.WORLD
        retriever.rank = self.rank
        retriever.world_size = world
        retriever.searcher = KnowledgeBaseSearcher(kb_dir) if self.rank == 0 else None

        def search(queries: np.ndarray, k: int):
            ids, embeds = retriever._search(queries, k)
            return None, ids, embeds

        self._search = search

    def ready(self) -> bool:
        return True

    def run(self, queries: np.ndarray, k: int, warmup: int, pause_s: float, start_at: float) -> dict:
        """Time each call after `warmup` unmeasured ones; all workers start at wall clock `start_at`."""
        if self._search is None:
            raise RuntimeError("call a setup_* method before run")
        delay = start_at - time.time()
        if delay > 0:
            time.sleep(delay)
        latencies_ms = []
        traces = []
        measured_from = time.time()
        for number, batch in enumerate(queries):
            if number == warmup:
                measured_from = time.time()
            started = time.perf_counter()
            _, ids, embeds = self._search(batch, k)
            elapsed = (time.perf_counter() - started) * 1000
            if ids.shape != (len(batch), k) or embeds.shape != (len(batch), k, batch.shape[1]):
                raise RuntimeError(f"retrieval returned ids {ids.shape} and embeddings {embeds.shape}")
            if number >= warmup:
                latencies_ms.append(elapsed)
                if self._pool is not None:
                    traces.append(self._pool.last_trace())
            if pause_s > 0:
                time.sleep(pause_s)
        ended = time.time()
        if self._torch:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()
            self._torch = False
        return {
            "latencies_ms": latencies_ms,
            "traces": traces,
            "measured_from": measured_from,
            "ended": ended,
            "rss_mb": resident_mb(),
            "pid": os.getpid(),
        }
