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
import shutil
import time
from pathlib import Path

logger = logging.getLogger(__name__)

#: Seconds between progress lines while a slice encodes.
PROGRESS_EVERY_S = 30.0


def announces_after(settings, step: int, done: bool) -> bool:
    """Whether rank 0 announces after optimizer step `step`: a refresh is due, or training ended
    (the final refresh). Both sides compute it, so they meet at the same broadcasts."""
    return done or settings.refresh_due(step)


def parts_dir(kb_dir: str | Path, version: int) -> Path:
    """KB/index/encoders/v<N>/parts: the slices of version N, deleted once it is written."""
    from rag_job.knowledge.parts import PARTS_DIR
    from rag_job.train.refresh import encoder_dir

    return encoder_dir(kb_dir, version) / PARTS_DIR


class TrainerEncoding:
    """One rank's share of trainer-side refreshes (see the module docstring)."""

    def __init__(self, settings, kb_dir: str, rank: int, world: int, tokenizer, device, autocast_dtype=None):
        from rag_job.knowledge.layout import load_meta
        from rag_job.knowledge.parts import writer_slices

        self.settings = settings  # the job's EndToEndConfig: when to listen, the batch size
        self.kb_dir, self.rank, self.world, self.tokenizer = kb_dir, rank, world, tokenizer
        self.batch_size, self.device, self.autocast_dtype = settings.encode_batch_size, device, autocast_dtype
        self.slices = writer_slices(load_meta(kb_dir).num_passages, world)
        self.start, self.end = self.slices[rank] if rank < len(self.slices) else (0, 0)
        self._rows = None  # the passages' titles and texts (memory-mapped), opened on the first refresh

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
    def write_slice(self, model, version: int) -> Path | None:
        """Encode this rank's passages with the context encoder inside `model` (eval mode, no
        gradient, then back to training mode), streaming them into this rank's part of `version`."""
        from rag_job.knowledge.index import encoder_dim, iter_encoded
        from rag_job.knowledge.parts import part_path, write_part
        from rag_job.train.ctx_encoder import trained_ctx_encoder

        if self.end == self.start:
            return None  # more trainers than passages: nothing left for this rank
        encoder = trained_ctx_encoder(model)
        started = time.perf_counter()
        target = part_path(parts_dir(self.kb_dir, version), self.rank, len(self.slices))
        was_training = encoder.training
        encoder.eval()
        try:
            chunks = iter_encoded(
                encoder, self.tokenizer, self._batches(version, started), device=self.device,
                autocast_dtype=self.autocast_dtype,
            )  # fmt: skip
            write_part(target, self.end - self.start, encoder_dim(encoder), chunks)
        finally:
            encoder.train(was_training)
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
    builds the version from the parts they wrote (what the refresh thread runs)."""

    def __init__(self, kb_dir: str, world: int):
        from rag_job.knowledge.layout import load_meta
        from rag_job.knowledge.parts import writer_slices

        self.kb_dir = kb_dir
        self.slices = writer_slices(load_meta(kb_dir).num_passages, world)

    def encode_version(self, encoder_path: str | Path, version: int, parts: str | Path):
        from rag_job.knowledge.parts import write_version_from_parts

        started = time.perf_counter()
        written = write_version_from_parts(self.kb_dir, version, encoder_path, parts, self.slices)
        return written, {"encode_seconds": 0.0, "build_seconds": time.perf_counter() - started}

    def discard(self, version: int) -> None:
        shutil.rmtree(parts_dir(self.kb_dir, version), ignore_errors=True)

    def wait_idle(self, timeout_s: float) -> bool:
        return True  # nothing runs between steps: the trainers encode synchronously

    def close(self) -> None:
        pass
