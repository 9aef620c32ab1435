"""Long-lived Ray actors that re-encode a knowledge base's passages into a new index version.

End-to-end retriever training refreshes the index many times in one job; starting actors (a
Python process importing torch and transformers: seconds on a small machine) on every refresh
would cost more than encoding a small knowledge base. So the actors start once, each owning
one contiguous slice of the passages (`writer_slices`), and each refresh only loads the new
encoder weights and encodes. Each actor streams its slice's embeddings into its own part file
beside the version (`rag_job.knowledge.parts`), and actor 0 builds the version from the parts one
shard at a time (`write_index_version`): neither the caller, nor the object store, nor any actor
ever holds the whole knowledge base's embeddings.

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
import shutil
import time
from pathlib import Path

from rag_job.config import RETRIEVAL_RESOURCE
from rag_job.knowledge.layout import load_meta
from rag_job.knowledge.parts import part_path, write_version_from_parts, writer_slices
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
        self.kb_dir, self.start, self.end = kb_dir, start, end
        self.rows = load_passages(kb_dir).select_columns(["title", "text"])  # memory-mapped Arrow

    def ready(self) -> int:
        return self.end - self.start

    def priority(self) -> int:
        """This process's niceness (what `os.nice` reports)."""
        return os.nice(0)

    def encode(self, encoder_path: str, batch_size: int, target: str) -> int:
        """Encode this slice with the encoder at `encoder_path` into the part file `target`."""
        from transformers import DPRContextEncoder, DPRContextEncoderTokenizerFast

        from rag_job.knowledge.index import encoder_dim, iter_encoded
        from rag_job.knowledge.parts import write_part

        encoder = DPRContextEncoder.from_pretrained(encoder_path).eval()
        tokenizer = DPRContextEncoderTokenizerFast.from_pretrained(encoder_path)
        batches = (
            (rows["title"], rows["text"])
            for rows in (
                self.rows[s : min(s + batch_size, self.end)] for s in range(self.start, self.end, batch_size)
            )
        )
        chunks = iter_encoded(encoder, tokenizer, batches)
        write_part(Path(target), self.end - self.start, encoder_dim(encoder), chunks)
        return self.end - self.start

    def write_version(
        self, version: int, encoder_path: str, parts_dir: str, ranges: list[tuple[int, int]]
    ) -> IndexVersion:
        """Write index `version` from every slice's part, one shard's rows at a time."""
        return write_version_from_parts(self.kb_dir, version, encoder_path, parts_dir, ranges)


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
        self.ranges = writer_slices(num_passages, actors)
        remote = ray.remote(PassageEncoder)
        self.actors = [
            remote.options(max_restarts=1, **options).remote(self.kb_dir, start, end, torch_threads)
            for (start, end), options in zip(
                self.ranges, retrieval_node_options(len(self.ranges)), strict=True
            )
        ]

    def encode_version(
        self, encoder_path: str | Path, version: int, parts_dir: str | Path
    ) -> tuple[IndexVersion, dict[str, float]]:
        """Encode every slice with `encoder_path` into part files in `parts_dir` (on the volume
        every actor sees; deleted afterwards) and write index `version`; (manifest, seconds by phase)."""
        import ray

        started = time.perf_counter()
        count = len(self.actors)
        try:
            ray.get(
                [
                    actor.encode.remote(
                        str(encoder_path), self.batch_size, str(part_path(parts_dir, n, count))
                    )
                    for n, actor in enumerate(self.actors)
                ]
            )
            encoded = time.perf_counter()
            written = ray.get(
                self.actors[0].write_version.remote(version, str(encoder_path), str(parts_dir), self.ranges)
            )
        finally:
            shutil.rmtree(parts_dir, ignore_errors=True)
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
