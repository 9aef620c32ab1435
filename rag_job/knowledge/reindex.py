"""Write a new index version of a knowledge base from new passage embeddings.

The shards cover the same kind of contiguous id ranges as build-index's (`shard_ranges`),
built by the same builders; the manifest is written last and atomically, so a version
exists only once every file of it does (see `rag_job.knowledge.versions`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from rag_job.knowledge.digest import digest_file
from rag_job.knowledge.index import build_faiss_index, shard_ranges, write_faiss_index
from rag_job.knowledge.ingest import Passage
from rag_job.knowledge.layout import load_meta, write_atomically
from rag_job.knowledge.versions import (
    MANIFEST_FILE,
    VERSIONS_DIR,
    IndexVersion,
    VersionShardInfo,
    next_version,
    version_dir,
)


def write_index_version(
    kb_dir: str | Path,
    embeddings,
    shards: int | None = None,
    index_type: str | None = None,
    ctx_encoder: str = "",
    version: int | None = None,
) -> IndexVersion:
    """Write version `version` (default: the next number) of the index; returns its manifest.

    `embeddings` holds one row per passage, in the passages' order; shards and index type
    default to kb.json's, so a pool of S shards can swap to it. `embeddings` is an array, or
    anything 2-D sliced by row ranges (`rag_job.knowledge.parts.PartedEmbeddings`): each shard's
    rows are read on their own, so memory holds one shard's, not the knowledge base's.
    """
    kb_dir = Path(kb_dir)
    base = load_meta(kb_dir)
    if isinstance(embeddings, list | tuple):
        embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or len(embeddings) != base.num_passages:
        raise ValueError(
            f"embeddings have shape {list(embeddings.shape)}; {kb_dir} has {base.num_passages} passages"
        )
    version = next_version(kb_dir) if version is None else version
    if version < 1:
        raise ValueError("version 0 is kb.json's index (build-index writes it); new versions start at 1")
    shards = shards or len(base.shards)
    ranges = shard_ranges(base.num_passages, shards)
    index_type = index_type or base.index_type
    out = version_dir(kb_dir, version)
    out.mkdir(parents=True, exist_ok=False)  # never overwrite a version an actor may serve
    prefix = f"{VERSIONS_DIR}/v{version}"
    infos = []
    for number, (start, end) in enumerate(ranges):
        rows = np.ascontiguousarray(embeddings[start:end], dtype=np.float32)
        index_file = f"{prefix}/shard-{number:02d}-of-{shards:02d}.faiss"
        index_digest = write_faiss_index(build_faiss_index(rows, index_type), kb_dir, index_file)
        embeddings_file = f"{prefix}/embeddings-{number:02d}-of-{shards:02d}.npy"
        np.save(kb_dir / embeddings_file, rows)
        del rows
        infos.append(
            VersionShardInfo.written(
                index_digest, start, end, embeddings=digest_file(kb_dir, embeddings_file)
            )
        )
    manifest = IndexVersion(
        version=version,
        num_passages=base.num_passages,
        dim=int(embeddings.shape[1]),
        index_type=index_type,
        shards=infos,
        ctx_encoder=str(ctx_encoder),
        created_unix=int(time.time()),
    )
    write_atomically(out / MANIFEST_FILE, manifest.model_dump_json(indent=2, exclude_none=True) + "\n")
    return manifest


def encode_index_version(
    kb_dir: str | Path,
    ctx_encoder_path: str | Path,
    num_actors: int = 0,
    batch_size: int = 64,
    shards: int | None = None,
) -> IndexVersion:
    """Encode the knowledge base's passages with `ctx_encoder_path` and write them as a new version.

    `num_actors` > 0 spreads encoding over that many Ray actors (`encode_passages_on_ray`);
    0 encodes in this process.
    """
    from rag_job.knowledge.index import encode_passages, encode_passages_on_ray
    from rag_job.retrieval.searcher import load_passages

    dataset = load_passages(kb_dir).select_columns(["title", "text"])
    passages = [
        Passage(source_id=str(i), title=row["title"], text=row["text"]) for i, row in enumerate(dataset)
    ]
    if num_actors > 0:
        embeddings = encode_passages_on_ray(passages, ctx_encoder_path, num_actors, batch_size=batch_size)
    else:
        embeddings = encode_passages(passages, ctx_encoder_path, batch_size=batch_size, progress=False)
    return write_index_version(kb_dir, embeddings, shards=shards, ctx_encoder=str(ctx_encoder_path))
