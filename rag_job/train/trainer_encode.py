"""End-to-end refreshes encoded by the trainers themselves (`encode_on: trainers`).

The default puts the re-encoding on Ray actors on the retrieval nodes, off the trainers'
critical path, which suits CPU-only clusters and small knowledge bases. A large knowledge base
re-encoded on CPUs takes hours, though, while the trainers hold GPUs: with `encode_on:
trainers` every trainer encodes one contiguous slice of the passages on its own device with the
encoder as it is after the step (what Hugging Face's rag-end2end-retriever does on spare GPUs),
and writes it to a part file; rank 0 then builds the index version from the parts and swaps to
it in the background, as it does for the actors' embeddings. The trainers pause for the encode
(every rank, the same step), not for the build or the swap.

Every rank must take part in the same refreshes: rank 0 decides (a refresh may be skipped while
the previous one builds) and broadcasts the version to write, or None, at each step a refresh
could start (`announce`); the other ranks listen at exactly those steps (`follow`). Every rank
then reports whether its slice was written, so one rank's failure fails the refresh on all
ranks instead of leaving the others waiting.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: KB/index/encoders/v<N>/PARTS_DIR: the trainers' slices of version N, deleted once it is written.
PARTS_DIR = "parts"
#: Seconds between progress lines while a slice encodes.
PROGRESS_EVERY_S = 30.0


def announces_after(settings, step: int, done: bool) -> bool:
    """Whether rank 0 announces after optimizer step `step`: a refresh is due, or training ended
    (the final refresh). Both sides compute it, so they meet at the same broadcasts."""
    return done or settings.refresh_due(step)


def slice_for(rank: int, world: int, num_passages: int) -> tuple[int, int]:
    """Rank `rank`'s contiguous [start, end) of the passages; empty for ranks beyond the passages."""
    from rag_job.knowledge.index import shard_ranges

    ranges = shard_ranges(num_passages, min(world, num_passages))
    return ranges[rank] if rank < len(ranges) else (num_passages, num_passages)


def parts_dir(kb_dir: str | Path, version: int) -> Path:
    from rag_job.train.refresh import encoder_dir

    return encoder_dir(kb_dir, version) / PARTS_DIR


def part_file(kb_dir: str | Path, version: int, rank: int, world: int) -> Path:
    return parts_dir(kb_dir, version) / f"part-{rank:04d}-of-{world:04d}.npy"


def read_parts(kb_dir: str | Path, version: int, world: int, num_passages: int) -> np.ndarray:
    """Every rank's slice of `version`, in passage order; a missing or misshapen part is an error
    naming the file (a trainer that did not write it, or a volume not shared by every node)."""
    parts = []
    for rank in range(world):
        start, end = slice_for(rank, world, num_passages)
        path = part_file(kb_dir, version, rank, world)
        if not path.is_file():
            raise FileNotFoundError(
                f"trainer rank {rank}'s embeddings {path} are missing: the knowledge base must be on a "
                "volume every trainer and the rank-0 trainer share (a PVC mounted on every pod)"
            )
        rows = np.load(path)
        if len(rows) != end - start:
            raise ValueError(f"{path} has {len(rows)} rows; rank {rank}'s slice is passages {start}-{end}")
        parts.append(rows)
    return np.concatenate(parts)


class TrainerEncoding:
    """One rank's share of trainer-side refreshes (see the module docstring)."""

    def __init__(self, settings, kb_dir: str, rank: int, world: int, tokenizer, device, autocast_dtype=None):
        from rag_job.knowledge.layout import load_meta

        self.settings = settings  # the job's EndToEndConfig: when to listen, the batch size
        self.kb_dir, self.rank, self.world, self.tokenizer = kb_dir, rank, world, tokenizer
        self.batch_size, self.device, self.autocast_dtype = settings.encode_batch_size, device, autocast_dtype
        self.num_passages = load_meta(kb_dir).num_passages
        self.start, self.end = slice_for(rank, world, self.num_passages)
        self._rows = None  # the slice's titles and texts, opened on the first refresh

    # -- the collective protocol ---------------------------------------------------------------
    def announce(self, version: int | None, model) -> list[str]:
        """Rank 0: tell every rank whether this step encodes `version`, and encode with them.
        Returns the ranks' errors (empty: every slice is written)."""
        self._broadcast(version)
        return self._encode_all(model, version) if version is not None else []

    def follow(self, model) -> int | None:
        """Other ranks, at each point rank 0 announces at (`announces_after`, and once at the
        start): encode the announced version, if any."""
        version = self._broadcast(None)
        if version is not None:
            self._encode_all(model, version)
        return version

    def _broadcast(self, version: int | None) -> int | None:
        if self.world == 1:
            return version
        import torch.distributed as dist

        box = [version]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def _encode_all(self, model, version: int) -> list[str]:
        error = None
        try:
            self.write_slice(model, version)
        except Exception as err:  # every rank learns of it below; rank 0 records the failure
            logger.exception("rank %d: encoding its slice of index v%d failed", self.rank, version)
            error = f"rank {self.rank}: {type(err).__name__}: {err}"
        errors = [error]
        if self.world > 1:
            import torch.distributed as dist

            errors = [None] * self.world
            dist.all_gather_object(errors, error)
        return [e for e in errors if e]

    # -- the work ---------------------------------------------------------------------------
    def write_slice(self, model, version: int) -> Path:
        """Encode this rank's passages with the context encoder inside `model` (eval mode, no
        gradient, then back to training mode) and write them as this rank's part of `version`."""
        from rag_job.knowledge.index import encode_text_batches
        from rag_job.train.ctx_encoder import trained_ctx_encoder

        encoder = trained_ctx_encoder(model)
        started = time.perf_counter()
        was_training = encoder.training
        encoder.eval()
        try:
            embeddings = encode_text_batches(
                encoder, self.tokenizer, self._batches(version, started), device=self.device,
                autocast_dtype=self.autocast_dtype,
            )  # fmt: skip
        finally:
            encoder.train(was_training)
        target = part_file(self.kb_dir, version, self.rank, self.world)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        with open(partial, "wb") as out:
            np.save(out, embeddings)
        partial.replace(target)  # a reader never sees half a part
        seconds = time.perf_counter() - started
        logger.info(
            "rank %d: encoded passages %d-%d for index v%d in %.1fs (%.0f passages/s on %s)",
            self.rank, self.start, self.end, version, seconds, (self.end - self.start) / max(seconds, 1e-9),
            self.device,
        )  # fmt: skip
        return target

    def _batches(self, version: int, started: float):
        if self._rows is None:
            from rag_job.retrieval.searcher import load_passages

            self._rows = load_passages(self.kb_dir).select_columns(["title", "text"])
        last_log = started
        for start in range(self.start, self.end, self.batch_size):
            rows = self._rows[start : min(start + self.batch_size, self.end)]
            yield rows["title"], rows["text"]
            if time.perf_counter() - last_log >= PROGRESS_EVERY_S:
                last_log = time.perf_counter()
                done = start + len(rows["title"]) - self.start
                logger.info(
                    "rank %d: index v%d: %d/%d passages encoded",
                    self.rank,
                    version,
                    done,
                    self.end - self.start,
                )


class TrainerParts:
    """Rank 0's stand-in for the encode actors when the trainers encode: `encode_version` only
    assembles the parts they wrote and writes the version (what the refresh thread runs)."""

    def __init__(self, kb_dir: str, world: int):
        from rag_job.knowledge.layout import load_meta

        self.kb_dir, self.world = kb_dir, world
        self.num_passages = load_meta(kb_dir).num_passages

    def encode_version(self, encoder_path: str | Path, version: int):
        from rag_job.knowledge.reindex import write_index_version

        started = time.perf_counter()
        embeddings = read_parts(self.kb_dir, version, self.world, self.num_passages)
        written = write_index_version(self.kb_dir, embeddings, ctx_encoder=str(encoder_path), version=version)
        shutil.rmtree(parts_dir(self.kb_dir, version), ignore_errors=True)
        return written, {"encode_seconds": 0.0, "build_seconds": time.perf_counter() - started}

    def discard(self, version: int) -> None:
        shutil.rmtree(parts_dir(self.kb_dir, version), ignore_errors=True)

    def wait_idle(self, timeout_s: float) -> bool:
        return True  # nothing runs between steps: the trainers encode synchronously

    def close(self) -> None:
        pass
