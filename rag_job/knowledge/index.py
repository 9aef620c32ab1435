"""Encode passages with a DPR context encoder and write the knowledge-base directory.

The directory is what transformers' `RagRetriever(index_name="custom", passages_path=...,
index_path=...)` reads, plus shard files and a `kb.json` that the retrieval actors and
the operator (memory sizing) read:

    DIR/passages/                       datasets `save_to_disk`: id, title, text, embeddings
    DIR/index.faiss                     the FAISS index (one shard)
    DIR/index-shard-00-of-04.faiss      ... or S shard files over disjoint, contiguous id ranges
    DIR/kb.json                         metadata: sizes, dimension, index type, shard ranges, and
                                        per file the size, SHA-256 and fingerprint (`digest`)

kb.json is written last and atomically: a directory without it is an unfinished build.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from rag_job.knowledge.digest import HashingWriter, digest_file, passages_digests
from rag_job.knowledge.ingest import Passage
from rag_job.knowledge.layout import (
    KB_META_FILE,
    PASSAGES_DIR,
    KnowledgeBaseMeta,
    ShardInfo,
    shard_file_name,
    write_atomically,
)

logger = logging.getLogger(__name__)

INDEX_TYPES = ("flat", "hnsw", "ivfpq")


def encode_passages(
    passages: Sequence[Passage],
    ctx_encoder_path: str | Path,
    batch_size: int = 64,
    max_length: int = 256,
    progress: bool = True,
) -> np.ndarray:
    """DPR context embeddings (pooler output) of `title [SEP] text`, float32 [N, D]."""
    from tqdm.auto import tqdm
    from transformers import DPRContextEncoder, DPRContextEncoderTokenizerFast

    encoder = DPRContextEncoder.from_pretrained(str(ctx_encoder_path)).eval()
    tokenizer = DPRContextEncoderTokenizerFast.from_pretrained(str(ctx_encoder_path))
    starts = tqdm(
        range(0, len(passages), batch_size), desc="encoding passages", unit="batch", disable=not progress
    )
    batches = (
        ([p.title for p in passages[s : s + batch_size]], [p.text for p in passages[s : s + batch_size]])
        for s in starts
    )
    chunks = list(iter_encoded(encoder, tokenizer, batches, max_length=max_length))
    if not chunks:
        return np.zeros((0, encoder_dim(encoder)), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)


def encoder_dim(encoder) -> int:
    """The size of a DPR encoder's embeddings (its projection, else its hidden size)."""
    return encoder.config.projection_dim or encoder.config.hidden_size


def iter_encoded(
    encoder,
    tokenizer,
    batches: Iterable[tuple[list[str], list[str]]],
    max_length: int = 256,
    device=None,
    autocast_dtype=None,
) -> Iterator[np.ndarray]:
    """One float32 [n, D] array per (titles, texts) batch, so a caller can stream them to disk.

    The one encoding rule every path shares (build-index, the encode actors, trainers encoding
    their own slice), so an index's embeddings never depend on which of them wrote it.
    `device` (default: the encoder's) and `autocast_dtype` (CUDA only) serve trainers on GPUs.
    """
    import torch

    device = device or next(encoder.parameters()).device
    use_autocast = autocast_dtype is not None and torch.device(device).type == "cuda"
    with torch.inference_mode():
        for titles, texts in batches:
            inputs = tokenizer(
                titles, texts, truncation=True, max_length=max_length, padding="longest", return_tensors="pt"
            ).to(device)
            with torch.autocast("cuda", dtype=autocast_dtype, enabled=use_autocast):
                pooled = encoder(**inputs).pooler_output
            yield pooled.float().cpu().numpy()


def encode_passages_on_ray(
    passages: Sequence[Passage], ctx_encoder_path: str | Path, num_actors: int, batch_size: int = 64
) -> np.ndarray:
    """Spread encoding over `num_actors` Ray actors (large knowledge bases); order is kept."""
    import ray

    @ray.remote(num_cpus=1)
    class _Encoder:
        def encode(self, part: list[Passage]) -> np.ndarray:
            return encode_passages(part, ctx_encoder_path, batch_size=batch_size, progress=False)

    actors = [_Encoder.remote() for _ in range(num_actors)]
    chunk = max(batch_size, math.ceil(len(passages) / (num_actors * 4)))
    parts = [list(passages[i : i + chunk]) for i in range(0, len(passages), chunk)]
    refs = [actors[i % num_actors].encode.remote(part) for i, part in enumerate(parts)]
    return np.concatenate(ray.get(refs))


def build_faiss_index(embeddings: np.ndarray, index_type: str, hnsw_m: int = 32):
    """An inner-product FAISS index over `embeddings` (DPR scores are dot products)."""
    import faiss

    n, dim = embeddings.shape
    if index_type == "flat":
        index = faiss.IndexFlatIP(dim)
    elif index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 200
        index.hnsw.efSearch = 128
    elif index_type == "ivfpq":
        index = _ivfpq_for(n, dim)
        index.train(embeddings)
    else:
        raise ValueError(f"index type {index_type!r} is not one of {', '.join(INDEX_TYPES)}")
    index.add(embeddings)
    return index


def _ivfpq_for(n: int, dim: int):
    """IVF-PQ sized for `n` vectors: ~sqrt(n) lists, codebooks no larger than the data can train."""
    import faiss

    nlist = max(1, min(int(math.sqrt(n)), n // 39))
    sub_quantizers = next(m for m in (dim // 4, dim // 8, 16, 8, 4, 2, 1) if m >= 1 and dim % m == 0)
    nbits = max(1, min(8, int(math.log2(max(n, 2)))))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(quantizer, dim, nlist, sub_quantizers, nbits, faiss.METRIC_INNER_PRODUCT)
    index.nprobe = min(nlist, 16)
    return index


def shard_ranges(num_passages: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous, disjoint [start, end) ranges covering all passages, sizes differing by at most one."""
    if shards < 1:
        raise ValueError("shards must be at least 1")
    if shards > num_passages:
        raise ValueError(f"cannot split {num_passages} passages into {shards} shards")
    bounds = np.linspace(0, num_passages, shards + 1).round().astype(int)
    return [(int(bounds[i]), int(bounds[i + 1])) for i in range(shards)]


def write_knowledge_base(
    passages: Sequence[Passage],
    embeddings: np.ndarray,
    out_dir: str | Path,
    index_type: str = "flat",
    shards: int = 1,
    ctx_encoder: str = "",
) -> KnowledgeBaseMeta:
    """Save passages, the FAISS shard files and kb.json; return the metadata written."""
    if len(passages) != len(embeddings):
        raise ValueError(f"{len(passages)} passages but {len(embeddings)} embeddings")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dim = int(embeddings.shape[1])
    passages_dataset(passages, embeddings).save_to_disk(str(out_dir / PASSAGES_DIR))
    passages_files = passages_digests(out_dir)

    shard_infos = []
    for number, (start, end) in enumerate(shard_ranges(len(passages), shards)):
        index = build_faiss_index(embeddings[start:end], index_type)
        file_name = shard_file_name(number, shards)
        shard_infos.append(ShardInfo.written(write_faiss_index(index, out_dir, file_name), start, end))
    meta = KnowledgeBaseMeta(
        num_passages=len(passages),
        dim=dim,
        index_type=index_type,
        shards=shard_infos,
        passages_bytes=sum(d.bytes for d in passages_files),
        passages_files=passages_files,
        ctx_encoder=str(ctx_encoder),
        created_unix=int(time.time()),
    )
    write_atomically(out_dir / KB_META_FILE, meta.model_dump_json(indent=2, exclude_none=True) + "\n")
    return meta


def passages_dataset(passages: Sequence[Passage], embeddings: np.ndarray):
    """The passages dataset (id, title, text, embeddings) over the embedding matrix's own buffer.

    `Dataset.from_dict` on the 2-D array converts it row by row through Python objects and then
    hashes a pickled copy for its fingerprint: 15 GB of peak memory for 1M x 768 (3 GB). Here the
    embeddings column is a zero-copy Arrow view and the fingerprint a hash of the Arrow buffers,
    so building the dataset adds almost nothing to the matrix itself.
    """
    import pyarrow as pa
    from datasets import Value

    columns = {
        "id": pa.array([p.source_id for p in passages], pa.string()),
        "title": pa.array([p.title for p in passages], pa.string()),
        "text": pa.array([p.text for p in passages], pa.string()),
    }
    return _dataset_with_embeddings(columns, dict.fromkeys(columns, Value("string")), embeddings)


def with_embeddings(dataset, embeddings: np.ndarray):
    """A passages dataset's other columns (Arrow, no copy) with `embeddings` as its embeddings
    column: an index version's passages (`rag_job.knowledge.export`)."""
    if len(embeddings) != len(dataset):
        raise ValueError(f"{len(embeddings)} embeddings for {len(dataset)} passages")
    names = [name for name in dataset.column_names if name != "embeddings"]
    table = dataset.flatten_indices().data
    columns = {name: table.column(name) for name in names}
    return _dataset_with_embeddings(columns, {name: dataset.features[name] for name in names}, embeddings)


def _dataset_with_embeddings(columns: dict, features: dict, embeddings: np.ndarray):
    """A datasets Dataset of `columns` plus the float32 embeddings column over the matrix's buffer."""
    import pyarrow as pa
    from datasets import Dataset, DatasetInfo, Features, Value
    from datasets import Sequence as ListOf
    from datasets.table import InMemoryTable

    matrix = np.ascontiguousarray(embeddings, dtype=np.float32)
    dim = int(matrix.shape[1])
    table = pa.table(
        {**columns, "embeddings": pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), dim)}
    )
    features = Features({**features, "embeddings": ListOf(Value("float32"), length=dim)})
    return Dataset(
        InMemoryTable(table), info=DatasetInfo(features=features), fingerprint=_arrow_fingerprint(table)
    )


def _arrow_fingerprint(table) -> str:
    """A content hash of an Arrow table's buffers (no copy): the same passages, the same fingerprint."""
    digest = hashlib.blake2b(digest_size=16)
    for column in table.columns:
        for chunk in column.chunks:
            for buffer in chunk.buffers():
                if buffer is not None:
                    digest.update(memoryview(buffer))
    return digest.hexdigest()


def write_faiss_index(index, out_dir: Path, file_name: str):
    """Write one index file, hashing the bytes as FAISS writes them (no second read of a large file).

    The bytes go to a hidden file that then replaces `file_name` in one rename: a retrieval actor
    that memory-maps the old file keeps its pages (rewriting it in place would change them under
    the actor, or end them in a SIGBUS), and a crash mid-write leaves the old index whole.
    """
    import faiss

    target = out_dir / file_name
    staged = target.with_name(f".{target.name}.partial")
    try:
        with staged.open("wb") as handle:
            writer = HashingWriter(handle)
            faiss.write_index(index, faiss.PyCallbackIOWriter(writer.write))
        staged.replace(target)
    finally:
        staged.unlink(missing_ok=True)
    return digest_file(out_dir, file_name, sha256=writer.hexdigest())
