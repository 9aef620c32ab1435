"""Loading RAG models, tokenizers and retrievers the way every entry point needs them.

Everything goes through `from_pretrained(path_or_hub_name)`: local directories,
mounted volumes and hub names take the same path.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rag_job.config import JobConfig
from rag_job.knowledge.layout import PASSAGES_DIR, load_meta
from rag_job.retrieval.pool import PoolSpec, RetrievalPool
from rag_job.storage import join

MODEL_CLASSES = {"rag_token": "RagTokenForGeneration", "rag_sequence": "RagSequenceForGeneration"}


@contextlib.contextmanager
def opened_checkpoint(checkpoint) -> Iterator[Path | None]:
    """A Ray Train checkpoint as a local directory while the block runs (None for None).

    On a local or shared volume it is read in place. From an object store each process downloads
    its own copy, deleted when the block ends however it ends. Not Ray's `as_directory`: the
    processes of a node share its temporary copy, and one arriving after the first download
    finished downloads again over the files another is reading (a trainer read an empty
    tokenizer_config.json that way, on a resume from S3); nor `to_directory()`, whose copies
    stay in /tmp for good."""
    if checkpoint is None:
        yield None
        return
    import pyarrow.fs

    if isinstance(checkpoint.filesystem, pyarrow.fs.LocalFileSystem):
        yield Path(checkpoint.path)
        return
    with tempfile.TemporaryDirectory(prefix="rag-checkpoint-") as private:
        yield Path(checkpoint.to_directory(private))


def model_class(model_type: str):
    import transformers

    return getattr(transformers, MODEL_CLASSES[model_type])


def rag_config_for(config: JobConfig, model_path: str | None = None):
    """The checkpoint's RagConfig pointed at this job's knowledge base."""
    from transformers import RagConfig

    rag_config = RagConfig.from_pretrained(model_path or config.model.path)
    meta = load_meta(config.retrieval.knowledge_base)
    rag_config.index_name = "custom"
    rag_config.n_docs = config.retrieval.n_docs
    rag_config.retrieval_vector_size = meta.dim
    kb = config.retrieval.knowledge_base
    rag_config.passages_path = config.retrieval.passages_path or join(kb, PASSAGES_DIR)
    if config.retrieval.index_path:
        rag_config.index_path = config.retrieval.index_path
    elif len(meta.shards) == 1:
        rag_config.index_path = join(kb, meta.shards[0].file)
    else:  # no single file holds it: never keep a path from the checkpoint's own config
        rag_config.index_path = None
    rag_config.label_smoothing = config.training.label_smoothing
    return rag_config


def build_retriever(config: JobConfig, rag_config, tokenizer, pool_spec: PoolSpec | None = None):
    """The retriever for `config.retrieval.mode`; in `ray` mode it connects to the named actors."""
    from rag_job.retrieval.retrievers import LocalRagRetriever, RayRagRetriever, TorchDistributedRagRetriever

    kb = config.retrieval.knowledge_base
    overrides = config.retrieval.passages_path
    mode = config.retrieval.mode
    if mode == "ray":
        if pool_spec is None:
            raise ValueError("ray retrieval needs the retrieval pool's PoolSpec")
        return RayRagRetriever(rag_config, tokenizer, kb, RetrievalPool.connect(pool_spec), overrides)
    if mode == "torch":
        return TorchDistributedRagRetriever(rag_config, tokenizer, kb, overrides)
    return LocalRagRetriever(rag_config, tokenizer, kb, overrides)


def load_model(config: JobConfig, retriever, weights_path: str | Path | None = None):
    """The RAG model from the configured checkpoint (or `weights_path`, e.g. a resumed checkpoint)."""
    source = str(weights_path or config.model.path)
    return model_class(config.model.type).from_pretrained(
        source, config=retriever.config, retriever=retriever
    )
