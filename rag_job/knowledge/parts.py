"""A new index version's embeddings as part files, so no process ever holds all of them.

A refresh re-encodes every passage. At wiki_dpr's size (21M x 768 float32: 64 GB) gathering the
embeddings in one process, or passing them through Ray's object store, would need a machine
sized for the whole index, while the retrieval pods are sized for their shards. So each encoder
(an encode actor, or a trainer) streams its contiguous slice into its own `.npy` part on the
shared knowledge-base volume, and the builder reads them one shard's rows at a time
(`PartedEmbeddings`): its memory is one shard's, whatever the knowledge base's size.

One file per writer, not one shared file: writers on different nodes writing disjoint rows of
one file over NFS can lose each other's writes where rows share a page.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

#: The parts' directory, inside the directory of the encoder that wrote them.
PARTS_DIR = "parts"


def writer_slices(num_passages: int, writers: int) -> list[tuple[int, int]]:
    """The writers' contiguous [start, end) slices of the passages, one part each, in order;
    writers beyond the last slice (more writers than passages) write none."""
    from rag_job.knowledge.index import shard_ranges

    return shard_ranges(num_passages, min(writers, num_passages))


def write_version_from_parts(
    kb_dir: str | Path,
    version: int,
    encoder_path: str | Path,
    parts_dir: str | Path,
    ranges: list[tuple[int, int]],
):
    """Write index `version` (an `IndexVersion`) from the parts covering `ranges`, one shard's rows at a
    time; the parts are deleted whether or not it succeeds (a failed refresh leaves nothing)."""
    from rag_job.knowledge.reindex import write_index_version

    try:
        embeddings = PartedEmbeddings(parts_dir, ranges)
        return write_index_version(kb_dir, embeddings, ctx_encoder=str(encoder_path), version=version)
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)


def part_path(parts_dir: str | Path, number: int, count: int) -> Path:
    return Path(parts_dir) / f"part-{number:04d}-of-{count:04d}.npy"


def write_part(target: Path, rows: int, dim: int, chunks: Iterable[np.ndarray]) -> Path:
    """Stream `chunks` (float32 [n, dim], `rows` in all) into the part `target`; it appears whole
    or not at all (written under a temporary name, then renamed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(rows, dim))
    try:
        written = 0
        for chunk in chunks:
            if written + len(chunk) > rows:
                raise ValueError(f"{target}: more than the {rows} rows of this slice were encoded")
            out[written : written + len(chunk)] = chunk
            written += len(chunk)
        if written != rows:
            raise ValueError(f"{target}: {written} rows encoded, the slice has {rows}")
        out.flush()
    except BaseException:
        del out
        partial.unlink(missing_ok=True)
        raise
    del out
    partial.replace(target)
    return target


class PartedEmbeddings:
    """Parts covering rows [0, N) in order, read as one [N, dim] array a slice at a time."""

    def __init__(self, parts_dir: str | Path, ranges: list[tuple[int, int]]):
        self.ranges = ranges
        self.parts = []
        for number, (start, end) in enumerate(ranges):
            path = part_path(parts_dir, number, len(ranges))
            if not path.is_file():
                raise FileNotFoundError(
                    f"the embeddings of passages {start}-{end} ({path}) are missing: the writer failed, or "
                    "the knowledge base is not on a volume every trainer and retrieval pod shares"
                )
            try:
                rows = np.load(path, mmap_mode="r")  # reads the header only
            except (OSError, ValueError) as err:  # a truncated file, or no .npy at all
                raise ValueError(f"{path} is no readable .npy part (cut short?): {err}") from err
            if rows.ndim != 2 or len(rows) != end - start or rows.dtype != np.float32:
                raise ValueError(
                    f"{path} holds {rows.dtype} {list(rows.shape)}; it should hold float32 rows of passages "
                    f"{start}-{end}"
                )
            self.parts.append((path, rows.offset, rows.shape[1]))
            del rows
        dims = {dim for _, _, dim in self.parts}
        if len(dims) > 1:
            raise ValueError(f"the parts in {parts_dir} disagree on the embedding size: {sorted(dims)}")
        self.shape = (ranges[-1][1] if ranges else 0, dims.pop() if dims else 0)
        self.ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        """Rows `rows` (a plain slice), read from the parts that hold them straight into one new
        array: plain reads, not a mapping, so the parts' pages never count as this process's."""
        start, stop, step = rows.indices(len(self))
        if step != 1:
            raise ValueError("PartedEmbeddings reads contiguous row ranges only")
        out = np.empty((max(0, stop - start), self.shape[1]), dtype=np.float32)
        row_bytes = self.shape[1] * 4
        for (lo, hi), (path, offset, _) in zip(self.ranges, self.parts, strict=True):
            first, last = max(start, lo), min(stop, hi)
            if first >= last:
                continue
            target = memoryview(out[first - start : last - start]).cast("B")
            with open(path, "rb") as part:
                part.seek(offset + (first - lo) * row_bytes)
                if part.readinto(target) != len(target):
                    raise ValueError(f"{path} ended early: it is shorter than its header says")
        return out
