"""A job's inputs on this machine: remote model, knowledge base and data copied to local disk.

The driver, every trainer and every retrieval actor call this for what they read themselves
(each on its own node, so a URI works whether or not the pods share a volume); local paths
pass through unchanged. See `rag_job.storage` for the cache.
"""

from __future__ import annotations

from rag_job.config import JobConfig
from rag_job.knowledge.layout import local_knowledge_base
from rag_job.storage import fetch, is_uri


def with_local_data(config: JobConfig) -> JobConfig:
    """`config` with remote training and evaluation data fetched (small files: the driver checks them)."""
    data = config.data.model_copy(
        update={
            "train_path": str(fetch(config.data.train_path, what="data.train_path").path),
            "eval_path": (
                str(fetch(config.data.eval_path, what="data.eval_path").path)
                if config.data.eval_path
                else None
            ),
        }
    )
    return config.model_copy(update={"data": data})


def with_local_inputs(config: JobConfig, index_shards: list[int] | None = None) -> JobConfig:
    """`config` with every remote input fetched: model, data, knowledge base (kb.json, passages and
    `index_shards`: none for trainers served by retrieval actors, all when None)."""
    config = with_local_data(config)
    retrieval = config.retrieval
    model = config.model
    if is_uri(model.path):
        model = model.model_copy(update={"path": str(fetch(model.path, what="model.path").path)})
    retrieval = retrieval.model_copy(
        update={
            "knowledge_base": str(local_knowledge_base(retrieval.knowledge_base, index_shards)),
            "passages_path": (
                str(fetch(retrieval.passages_path, what="retrieval.passages_path").path)
                if retrieval.passages_path
                else None
            ),
            "index_path": (
                str(fetch(retrieval.index_path, what="retrieval.index_path").path)
                if retrieval.index_path
                else None
            ),
        }
    )
    return config.model_copy(update={"model": model, "retrieval": retrieval})
