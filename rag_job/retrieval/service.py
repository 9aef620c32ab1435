"""The long-lived retrieval service of a RagRetrievalCluster.

Started inside the RayCluster by the operator's supervisor RayJob
(`python -m rag_job serve-retrieval`): it starts detached, named actors that load each
shard once, waits until all are loaded, then stays up as their health checker. Ray
restarts a dead actor (`max_restarts=-1`); jobs find the actors by name
(`RetrievalConfig.cluster`) and load no index.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from rag_job.config import RETRIEVAL_NAMESPACE, ServiceConfig
from rag_job.storage import is_uri

logger = logging.getLogger(__name__)


def start_service(config: ServiceConfig):
    """Start (or find) the detached actors and wait until every shard is loaded; returns the pool."""
    from rag_job.knowledge.digest import verify_files
    from rag_job.knowledge.layout import KnowledgeBaseLayoutError, load_meta
    from rag_job.retrieval.actor import start_retrieval_actors
    from rag_job.retrieval.pool import PoolSpec, RetrievalPool

    meta = load_meta(config.knowledge_base)
    # Each actor checks its own shard too; this names every bad file before any actor starts.
    verify_files(config.knowledge_base, meta).raise_for_problems()
    if config.shards is not None and config.shards != len(meta.shards):
        raise KnowledgeBaseLayoutError(
            f"shards is {config.shards} but {config.knowledge_base} has {len(meta.shards)} index shard(s)"
        )
    spec = PoolSpec(name_prefix=config.name, shards=len(meta.shards), replicas=config.actors_per_shard)
    started = time.perf_counter()
    handles = start_retrieval_actors(
        config.knowledge_base
        if is_uri(config.knowledge_base)
        else str(Path(config.knowledge_base).resolve()),
        spec.shards,
        spec.replicas,
        config.name,
        actor_cpus=config.actor_cpus,
        faiss_threads=config.faiss_threads,
        detached=True,
        namespace=RETRIEVAL_NAMESPACE,
    )
    pool = RetrievalPool(spec, handles)
    pool.wait_ready()
    logger.info(
        "retrieval service %s ready: %d shard(s) x %d replica(s) in %.1fs",
        config.name, spec.shards, spec.replicas, time.perf_counter() - started,
    )  # fmt: skip
    return pool


def health_report(pool, timeout_s: float = 30.0) -> dict:
    """One status line: which actors answer, how many calls each served, their load times."""
    import ray

    actors = []
    for name, handle in pool.actors():
        try:
            actors.append({"actor": name, "alive": True, **ray.get(handle.stats.remote(), timeout=timeout_s)})
        except Exception as err:  # an actor Ray is restarting, or one that is gone
            actors.append({"actor": name, "alive": False, "error": type(err).__name__})
    return {"ready": all(a["alive"] for a in actors), "actors": actors}


def serve_forever(config: ServiceConfig, interval_s: float = 30.0) -> None:
    pool = start_service(config)
    while True:
        print(json.dumps(health_report(pool)), flush=True)
        time.sleep(interval_s)
