"""In-process FAISS search over one shard or a whole knowledge base.

The Ray retrieval actor, the torch.distributed rank-0 baseline and the local
retriever all search through these classes, so the three modes return identical
results by construction and differ only in where the search runs.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from rag_job.knowledge.digest import verify_files
from rag_job.knowledge.layout import (
    KnowledgeBaseLayoutError,
    KnowledgeBaseMeta,
    index_path,
    load_meta,
    passages_path,
)
from rag_job.retrieval.faiss_settings import use_blas_for_batches
from rag_job.retrieval.prefetch import start_prefetch

logger = logging.getLogger(__name__)


def load_passages(kb_dir: str | Path, override: str | Path | None = None):
    """The passages dataset (memory-mapped Arrow), with an error naming the path when unusable."""
    from datasets import load_from_disk

    path = Path(override) if override else passages_path(kb_dir)
    if not path.exists():
        raise KnowledgeBaseLayoutError(f"passages dataset {path} does not exist")
    try:
        dataset = load_from_disk(str(path))
    except Exception as err:  # datasets raises several types for a damaged directory
        raise KnowledgeBaseLayoutError(f"passages dataset {path} is corrupt or unreadable: {err}") from err
    missing = {"title", "text", "embeddings"} - set(dataset.column_names)
    if missing:
        raise KnowledgeBaseLayoutError(
            f"passages dataset {path} lacks the columns {', '.join(sorted(missing))} (needs title, text, embeddings)"
        )
    return dataset


#: How retrieval processes open FAISS index files: `auto` maps the file where FAISS can (and
#: reads it otherwise), `always` refuses an index that would not map, `never` reads it into
#: memory. Set per process (a pod's environment); the default suits every index type.
MMAP_ENV = "RAG_INDEX_MMAP"
MMAP_MODES = ("auto", "always", "never")
_fallbacks_logged: set[str] = set()


def mmap_mode(value: str | None = None) -> str:
    """The load mode: `value`, else $RAG_INDEX_MMAP, else `auto`; an unknown one names the fix."""
    mode = (value or os.environ.get(MMAP_ENV) or "auto").strip().lower()
    if mode not in MMAP_MODES:
        raise ValueError(f"{MMAP_ENV}={mode!r} is not one of {', '.join(MMAP_MODES)}; unset it for auto")
    return mode


def _mappings_of(path: Path) -> int | None:
    """How many regions of this process map `path` (None without procfs)."""
    target = str(path.resolve())
    try:
        with open("/proc/self/maps") as maps:
            return sum(1 for line in maps if line.rstrip("\n").endswith(target))
    except OSError:
        return None


def read_faiss_index(path: Path, mode: str | None = None):
    """The index in `path` (mapped where FAISS can; see `load_faiss_index`)."""
    return load_faiss_index(path, mode)[0]


def load_faiss_index(path: Path, mode: str | None = None) -> tuple[object, bool]:
    """(index, mapped): the index file memory-mapped where FAISS supports it, else read.

    FAISS maps the vectors of flat indexes, HNSW's flat storage (its graph is read) and IVF
    inverted lists with IO_FLAG_MMAP_IFC; mapped, several actors on a node share one copy in
    the page cache instead of each holding its own. Whether the file really is mapped is
    checked in /proc/self/maps; when it is not, the index is read normally and the reason
    logged once per index type.
    """
    import faiss

    if not path.is_file():
        raise KnowledgeBaseLayoutError(f"FAISS index file {path} does not exist")
    mode = mmap_mode(mode)
    flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if hasattr(faiss, "IO_FLAG_MMAP_IFC") else None
    reason = f"faiss {faiss.__version__} has no IO_FLAG_MMAP_IFC" if flags is None else ""
    if mode != "never" and flags is not None:
        before = _mappings_of(path)
        try:
            index = faiss.read_index(str(path), flags)
        except RuntimeError as err:
            reason = f"faiss could not map it ({_first_line(err)})"
        else:
            after = _mappings_of(path)
            if before is None or after > before:  # what FAISS did, not what the flag asked for
                return index, True
            reason = f"faiss {faiss.__version__} reads {type(index).__name__} instead of mapping it"
            del index
    if mode == "always":
        raise KnowledgeBaseLayoutError(
            f"FAISS index file {path} cannot be memory-mapped: {reason}; set {MMAP_ENV}=auto to read it"
        )
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as err:
        raise KnowledgeBaseLayoutError(f"FAISS index file {path} is corrupt: {_first_line(err)}") from err
    if mode == "auto" and reason not in _fallbacks_logged:
        _fallbacks_logged.add(reason)
        logger.info("FAISS index %s read into memory, not mapped: %s", path, reason)
    return index, False


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else "unreadable"


class EmbeddingTable:
    """Rows of the passages' `embeddings` column by global id, as zero-copy views of the Arrow file."""

    def __init__(self, dataset, start: int, end: int, dim: int):
        self.dim = dim
        column = dataset.data.table.column("embeddings") if hasattr(dataset.data, "table") else None
        self._chunk_starts: list[int] = []
        self._chunks: list[np.ndarray] = []
        if column is not None and str(column.type).startswith("fixed_size_list"):
            position = 0
            for chunk in column.chunks:
                rows = len(chunk)
                if position + rows > start and position < end:
                    values = chunk.flatten().to_numpy(zero_copy_only=False)
                    self._chunk_starts.append(position)
                    self._chunks.append(values.reshape(rows, dim))
                position += rows
        else:  # variable-length lists: copy the shard's rows once
            rows = dataset.select(range(start, end)).with_format("numpy")["embeddings"]
            self._chunk_starts = [start]
            self._chunks = [np.asarray(rows, dtype=np.float32).reshape(end - start, dim)]
        self._starts = np.asarray(self._chunk_starts)
        #: True when every row is a view of the memory-mapped Arrow file (nothing copied).
        self.zero_copy = not any(chunk.flags.owndata for chunk in self._chunks)

    def take(self, global_ids: np.ndarray) -> np.ndarray:
        """Embeddings for `global_ids` (any shape); -1 (no result) gives zeros."""
        flat = global_ids.reshape(-1)
        out = np.zeros((flat.size, self.dim), dtype=np.float32)
        valid = flat >= 0
        if len(self._chunks) == 1:
            out[valid] = self._chunks[0][flat[valid] - self._chunk_starts[0]]
        else:
            which = np.searchsorted(self._starts, flat, side="right") - 1
            for chunk_number in np.unique(which[valid]):
                rows = valid & (which == chunk_number)
                out[rows] = self._chunks[chunk_number][flat[rows] - self._chunk_starts[chunk_number]]
        return out.reshape(*global_ids.shape, self.dim)


class ArrayEmbeddings:
    """One shard's rows of an index version's embeddings (.npy, memory-mapped) by global id."""

    def __init__(self, rows: np.ndarray, start: int):
        self.rows, self.start, self.dim = rows, start, int(rows.shape[1])
        self.zero_copy = isinstance(rows, np.memmap)

    def take(self, global_ids: np.ndarray) -> np.ndarray:
        """Embeddings for `global_ids` (any shape); -1 (no result) gives zeros."""
        flat = global_ids.reshape(-1)
        out = np.zeros((flat.size, self.dim), dtype=np.float32)
        valid = flat >= 0
        out[valid] = self.rows[flat[valid] - self.start]
        return out.reshape(*global_ids.shape, self.dim)


class VersionEmbeddings:
    """A whole index version's embeddings by global id, over its shards' .npy files."""

    def __init__(self, parts: list[ArrayEmbeddings]):
        self.parts = parts
        self.dim = parts[0].dim
        self._starts = np.asarray([part.start for part in parts])

    def take(self, global_ids: np.ndarray) -> np.ndarray:
        """Embeddings for `global_ids` (any shape); -1 (no result) gives zeros."""
        flat = global_ids.reshape(-1)
        out = np.zeros((flat.size, self.dim), dtype=np.float32)
        valid = flat >= 0
        which = np.searchsorted(self._starts, flat, side="right") - 1
        for number in np.unique(which[valid]):
            rows = valid & (which == number)
            part = self.parts[number]
            out[rows] = part.rows[flat[rows] - part.start]
        return out.reshape(*global_ids.shape, self.dim)


class ShardSearcher:
    """One index shard: top-k by inner product, returned with global ids and exact embeddings.

    Before it serves, the shard file's fingerprint is checked against kb.json (and the passages
    files' when it loads them itself): a truncated, replaced or swapped file is refused, never
    served with wrong ids. The fingerprint reads three 1 MiB blocks, so checking a mapped index
    does not read it into memory. `mmap` is the index load mode (`read_faiss_index`).
    """

    def __init__(
        self,
        kb_dir: str | Path,
        shard: int,
        meta: KnowledgeBaseMeta | None = None,
        dataset=None,
        verified: bool = False,
        embeddings: ArrayEmbeddings | None = None,
        mmap: str | None = None,
    ):
        started = time.perf_counter()
        self.kb_dir = Path(kb_dir)
        self.meta = meta or load_meta(kb_dir)
        if not 0 <= shard < len(self.meta.shards):
            raise KnowledgeBaseLayoutError(
                f"{self.kb_dir} has {len(self.meta.shards)} index shards; shard {shard} does not exist"
            )
        self.shard = shard
        info = self.meta.shards[shard]
        self.start, self.end = info.start, info.end
        if not verified:
            verify_files(
                kb_dir, self.meta, shards=[shard], passages=dataset is None and embeddings is None
            ).raise_for_problems()
        path = index_path(kb_dir, self.meta, shard)
        self.index, self.index_mapped = load_faiss_index(path, mmap)
        self.index_bytes = path.stat().st_size
        # mapped: read the file into the page cache now, not page by page in the first searches
        self.prefetch = start_prefetch(path) if self.index_mapped else None
        use_blas_for_batches()
        if self.index.d != self.meta.dim or self.index.ntotal != info.end - info.start:
            raise KnowledgeBaseLayoutError(
                f"FAISS index file {path} does not match kb.json: dimension {self.index.d} "
                f"(expected {self.meta.dim}), {self.index.ntotal} vectors (expected {info.end - info.start})"
            )
        if embeddings is not None:
            self.embeddings: EmbeddingTable | ArrayEmbeddings = embeddings
        else:
            dataset = dataset if dataset is not None else load_passages(kb_dir)
            if len(dataset) != self.meta.num_passages:
                raise KnowledgeBaseLayoutError(
                    f"passages dataset in {self.kb_dir} has {len(dataset)} rows, kb.json says {self.meta.num_passages}"
                )
            self.embeddings = EmbeddingTable(dataset, self.start, self.end, self.meta.dim)
        self.version = 0
        self.embeddings_bytes = (self.end - self.start) * self.meta.dim * 4  # float32 rows
        self.load_seconds = time.perf_counter() - started

    def close(self) -> None:
        """Stop the background prefetch (the searcher is being dropped)."""
        if self.prefetch is not None:
            self.prefetch.stop()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores [B, k], global ids [B, k], embeddings [B, k, D]); missing hits are -1 / zeros."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.meta.dim:
            raise ValueError(f"queries must have shape [batch, {self.meta.dim}], got {list(queries.shape)}")
        scores, local_ids = self.index.search(queries, k)
        global_ids = np.where(local_ids >= 0, local_ids + self.start, -1)
        return scores, global_ids, self.embeddings.take(global_ids)


def open_shard(kb_dir: str | Path, shard: int, version: int = 0, mmap: str | None = None) -> ShardSearcher:
    """Shard `shard` of index version `version`; its files are checked against the version's
    manifest first, so a corrupt new version is refused with the file named, never served."""
    from rag_job.knowledge.versions import load_version, verify_version

    if version == 0:
        return ShardSearcher(kb_dir, shard, mmap=mmap)
    base = load_meta(kb_dir)
    index_version = load_version(kb_dir, version, base)
    if not 0 <= shard < len(index_version.shards):
        raise KnowledgeBaseLayoutError(
            f"index version {version} of {kb_dir} has {len(index_version.shards)} shards; "
            f"shard {shard} does not exist"
        )
    verify_version(kb_dir, index_version, [shard]).raise_for_problems()
    searcher = ShardSearcher(
        kb_dir,
        shard,
        index_version.as_meta(base),
        verified=True,
        embeddings=_shard_embeddings(kb_dir, index_version, shard),
        mmap=mmap,
    )
    searcher.version = version
    return searcher


def open_version_embeddings(kb_dir: str | Path, version: int) -> VersionEmbeddings:
    """Every shard's embeddings of index version `version` > 0, checked against its manifest."""
    from rag_job.knowledge.versions import load_version, verify_version

    index_version = load_version(kb_dir, version)
    verify_version(kb_dir, index_version).raise_for_problems()
    return VersionEmbeddings(
        [_shard_embeddings(kb_dir, index_version, s) for s in range(len(index_version.shards))]
    )


def _shard_embeddings(kb_dir: str | Path, index_version, shard: int) -> ArrayEmbeddings:
    """A version's shard embeddings, memory-mapped; the shape and type must match the manifest."""
    info = index_version.shards[shard]
    path = Path(kb_dir) / info.embeddings.file
    try:
        rows = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise KnowledgeBaseLayoutError(f"embeddings file {path} is corrupt: {err}") from err
    if rows.shape != (info.end - info.start, index_version.dim) or rows.dtype != np.float32:
        raise KnowledgeBaseLayoutError(
            f"embeddings file {path} holds {rows.dtype} {list(rows.shape)}, "
            f"expected float32 [{info.end - info.start}, {index_version.dim}]"
        )
    return ArrayEmbeddings(rows, info.start)


def merge_top_k(
    results: list[tuple[np.ndarray, np.ndarray, np.ndarray]], k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge per-shard (scores, ids, embeddings) into the global top-k by score, best first."""
    if len(results) == 1:
        scores, ids, embeds = results[0]
        return scores[:, :k], ids[:, :k], embeds[:, :k]
    scores = np.concatenate([r[0] for r in results], axis=1)
    ids = np.concatenate([r[1] for r in results], axis=1)
    embeds = np.concatenate([r[2] for r in results], axis=1)
    scores = np.where(ids >= 0, scores, -np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    rows = np.arange(scores.shape[0])[:, None]
    return scores[rows, order], ids[rows, order], embeds[rows, order]


class KnowledgeBaseSearcher:
    """Every shard in this process: the `local` mode and the torch.distributed rank 0.

    `version` > 0 opens that index version's shards (end-to-end training in local mode), each
    checked against the version's manifest first."""

    def __init__(self, kb_dir: str | Path, mmap: str | None = None, version: int = 0):
        self.meta = load_meta(kb_dir)
        self.version = version
        if version:
            self.shards = [open_shard(kb_dir, s, version, mmap) for s in range(len(self.meta.shards))]
            return
        verify_files(kb_dir, self.meta, "fingerprint").raise_for_problems()
        dataset = load_passages(kb_dir)
        self.shards = [
            ShardSearcher(kb_dir, s, self.meta, dataset, verified=True, mmap=mmap)
            for s in range(len(self.meta.shards))
        ]

    def close(self) -> None:
        for shard in self.shards:
            shard.close()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return merge_top_k([shard.search(queries, k) for shard in self.shards], k)
