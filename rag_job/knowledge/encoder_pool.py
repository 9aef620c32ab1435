"""Long-lived Ray actors that re-encode a knowledge base's passages into a new index version.

End-to-end retriever training refreshes the index many times in one job; starting actors (a
Python process importing torch and transformers: seconds on a small machine) on every refresh
would cost more than encoding a small knowledge base. So the actors start once, each holding
one contiguous slice of the passages (`shard_ranges`), and each refresh only loads the new
encoder weights and encodes. The slices' embeddings go from actor to actor through the object
store, never through the caller, and actor 0 writes the version (`write_index_version`).

Placement, and why: the retrieval pods declare exactly as many `rag_retrieval` units as they
host retrieval actors (the operator's retrieval group sets it to `actorsPerPod`; the local
cluster's nodes happen to have spare), so requesting that resource would leave these actors
pending on Kubernetes, and requesting CPUs would too when the retrieval actors reserve every
CPU of their pods. So the encode actors reserve nothing (num_cpus=0), are pinned softly to the
nodes that declare `rag_retrieval` (anywhere when there are none), and run `torch_threads`
threads each: a refresh borrows the retrieval nodes' CPU time in bursts, not the trainers'.
They also run at the lowest CPU priority (niceness `RAG_ENCODE_NICE`, 19 by default; Ray starts
every worker at 15): the retrieval actors' searches, and the trainers where they share a
machine, go first, and a refresh takes the CPU time they leave.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from rag_job.config import RETRIEVAL_RESOURCE
from rag_job.knowledge.index import encode_passages, shard_ranges
from rag_job.knowledge.ingest import Passage
from rag_job.knowledge.layout import load_meta
from rag_job.knowledge.versions import IndexVersion

NICE_ENV = "RAG_ENCODE_NICE"
DEFAULT_NICE = 19


def encode_niceness() -> int:
    """The niceness to run at: $RAG_ENCODE_NICE (0-19; 19 by default); a wrong value names the fix."""
    raw = os.environ.get(NICE_ENV, str(DEFAULT_NICE)).strip()
    if not raw.isdigit() or int(raw) > 19:
        raise ValueError(
            f"{NICE_ENV}={raw!r} must be a whole number from 0 to 19; unset it for {DEFAULT_NICE}"
        )
    return int(raw)


class PassageEncoder:
    """One slice of the passages; encodes it with whichever encoder a refresh names."""

    def __init__(self, kb_dir: str, start: int, end: int, torch_threads: int):
        import torch

        # Imported now, while the trainers start, rather than on the first refresh (seconds here).
        from transformers import DPRContextEncoder, DPRContextEncoderTokenizerFast  # noqa: F401

        from rag_job.retrieval.searcher import load_passages

        torch.set_num_threads(torch_threads)
        # background work: searches and trainers first (a process can only lower its priority)
        self.niceness = os.nice(max(0, encode_niceness() - os.nice(0)))
        self.kb_dir = kb_dir
        rows = load_passages(kb_dir).select_columns(["title", "text"]).select(range(start, end))
        self.passages = [
            Passage(source_id=str(start + i), title=row["title"], text=row["text"])
            for i, row in enumerate(rows)
        ]

    def ready(self) -> int:
        return len(self.passages)

    def priority(self) -> int:
        """This process's niceness (what `os.nice` reports)."""
        return os.nice(0)

    def encode(self, encoder_path: str, batch_size: int) -> np.ndarray:
        return encode_passages(self.passages, encoder_path, batch_size=batch_size, progress=False)

    def write_version(self, version: int, encoder_path: str, *parts: np.ndarray) -> IndexVersion:
        """Write index `version` from every slice's embeddings (Ray resolves the refs in `parts`)."""
        from rag_job.knowledge.reindex import write_index_version

        return write_index_version(
            self.kb_dir, np.concatenate(parts), ctx_encoder=encoder_path, version=version
        )


def retrieval_node_options(count: int) -> list[dict]:
    """Ray options of `count` actors: nothing reserved, softly pinned to retrieval nodes in turn."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"] and RETRIEVAL_RESOURCE in n["Resources"])
    return [
        {
            "num_cpus": 0,
            **(
                {"scheduling_strategy": NodeAffinitySchedulingStrategy(nodes[i % len(nodes)], soft=True)}
                if nodes
                else {}
            ),
        }
        for i in range(count)
    ]


class EncoderPool:
    """`actors` PassageEncoders over one knowledge base; `encode_version` writes a new version."""

    def __init__(self, kb_dir: str | Path, actors: int, torch_threads: int = 1, batch_size: int = 64):
        import ray

        self.kb_dir = str(kb_dir)
        self.batch_size = batch_size
        num_passages = load_meta(kb_dir).num_passages
        ranges = shard_ranges(num_passages, min(actors, num_passages))
        remote = ray.remote(PassageEncoder)
        self.actors = [
            remote.options(max_restarts=1, **options).remote(self.kb_dir, start, end, torch_threads)
            for (start, end), options in zip(ranges, retrieval_node_options(len(ranges)), strict=True)
        ]

    def encode_version(self, encoder_path: str | Path, version: int) -> tuple[IndexVersion, dict[str, float]]:
        """Encode every slice with `encoder_path` and write index `version`; (manifest, seconds by phase)."""
        import ray

        started = time.perf_counter()
        parts = [actor.encode.remote(str(encoder_path), self.batch_size) for actor in self.actors]
        ray.wait(parts, num_returns=len(parts), fetch_local=False)
        encoded = time.perf_counter()
        written = ray.get(self.actors[0].write_version.remote(version, str(encoder_path), *parts))
        return written, {"encode_seconds": encoded - started, "build_seconds": time.perf_counter() - encoded}

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every actor has finished what it was doing (a resumed rank 0 calls this: its
        dead predecessor may have left a version being written); False on timeout."""
        import ray

        pending = [actor.ready.remote() for actor in self.actors]  # each runs after the actor's current task
        done, _ = ray.wait(pending, num_returns=len(pending), timeout=timeout_s, fetch_local=False)
        return len(done) == len(pending)

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
