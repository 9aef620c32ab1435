"""Sizing and layout checks both resources apply: names, retrieval actors vs shards and CPU, and
the memory of a retrieval pod from the index size (kb.json or spec.retrieval.indexSize).

Pure apart from `read_kb_metadata`, which callers pass in (the controller and the CLI read
kb.json from disk when they can; tests pass a function).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal

from rag_job.knowledge.layout import KnowledgeBaseLayoutError, KnowledgeBaseMeta, load_meta

from .errors import Problems
from .models import RetrievalGroupSpec
from .names import MAX_RAYJOB_NAME_LENGTH
from .quantities import gi_ceil, parse_quantity

KbReader = Callable[[str], "KnowledgeBaseMeta | None"]
_DNS1035 = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"


def read_kb_metadata(knowledge_base: str) -> KnowledgeBaseMeta | None:
    """`<knowledge_base>/kb.json` (written by `rag_job build-index`) when this process can read it.

    The CLI usually can; the controller only when the knowledge base is mounted into its pod.
    """
    try:
        return load_meta(knowledge_base)
    except (KnowledgeBaseLayoutError, OSError):
        return None


def no_kb_metadata(_: str) -> None:
    """A reader for callers that must not touch the filesystem."""
    return None


def check_name(
    name: str, limit: int = MAX_RAYJOB_NAME_LENGTH, why: str = "the RayJob and its RayCluster"
) -> Problems:
    """A problem for `metadata.name` unless it is a DNS-1035 label of at most `limit` characters."""
    if len(name) <= limit and re.fullmatch(_DNS1035, name):
        return []
    return [
        (
            "metadata.name",
            f"{name!r} must be a DNS-1035 label of at most {limit} characters "
            f"(lower case, starts with a letter): {why} are named after it",
        )
    ]


def check_retrieval_actors(
    retrieval: RetrievalGroupSpec, actor_cpus: float, actor_cpus_field: str
) -> Problems:
    """Every shard gets the same number of actors, and a pod's CPU fits its actors.

    `actor_cpus_field` names where the per-actor CPU was set (it differs between the resources).
    """
    problems: Problems = []
    actors = retrieval.replicas * retrieval.actors_per_pod
    if actors % retrieval.shards:
        problems.append(
            (
                "spec.retrieval.actorsPerPod",
                f"replicas x actorsPerPod ({actors}) must be a multiple of shards ({retrieval.shards}) "
                "so every shard gets the same number of actors",
            )
        )
    needed_cpu = Decimal(str(actor_cpus)) * retrieval.actors_per_pod
    if parse_quantity(retrieval.cpu) < needed_cpu:
        problems.append(
            (
                "spec.retrieval.cpu",
                f"{retrieval.cpu} is less than actorsPerPod x {actor_cpus_field} ({needed_cpu}): "
                "the actors could not be scheduled",
            )
        )
    return problems


def check_positive_cpu(cpu: str, field: str) -> Problems:
    """A pod whose CPU request is zero could never run a Ray worker."""
    return [] if parse_quantity(cpu) > 0 else [(field, "must be greater than 0")]


def retrieval_pod_memory_bytes(
    shard_bytes: Decimal, actors_per_pod: int, shards: int, headroom: float, overhead: Decimal
) -> Decimal:
    """min(actorsPerPod, shards) x shard bytes x headroom + overhead.

    Each actor memory-maps its shard's index file, so the actors of one pod that serve the same
    shard share one copy in the page cache; a pod holds at most min(actorsPerPod, shards)
    different shards (which actors land together is Ray's choice). The headroom covers what
    each actor keeps privately (an HNSW graph is read, about a tenth of its index) and the
    second version a swap holds for a moment.
    """
    copies = min(actors_per_pod, shards)
    return Decimal(copies) * shard_bytes * Decimal(str(headroom)) + overhead


def retrieval_memory(
    retrieval: RetrievalGroupSpec, knowledge_base: str, read_kb: KbReader, problems: Problems
) -> tuple[str, bool, str | None]:
    """(memory per retrieval pod, whether computed, total index size if known); appends problems."""
    meta = None if retrieval.index_size and retrieval.memory else read_kb(knowledge_base)
    if meta is not None and len(meta.shards) != retrieval.shards:
        problems.append(
            (
                "spec.retrieval.shards",
                f"is {retrieval.shards} but the knowledge base's kb.json has {len(meta.shards)} shards",
            )
        )
    index_size = retrieval.index_size
    if index_size is None and meta is not None and meta.shards:
        index_size = gi_ceil(sum(shard.bytes for shard in meta.shards))
    if retrieval.memory:
        return retrieval.memory, False, index_size
    if retrieval.index_size:
        shard_bytes = parse_quantity(retrieval.index_size) / retrieval.shards
    elif meta is not None and meta.shards:
        shard_bytes = Decimal(max(shard.bytes for shard in meta.shards))
    else:
        problems.append(
            (
                "spec.retrieval.indexSize",
                "cannot size the retrieval pods: set spec.retrieval.indexSize (e.g. 12Gi) or "
                "spec.retrieval.memory, or make <knowledge_base>/kb.json readable by the operator",
            )
        )
        return "", False, index_size
    total = retrieval_pod_memory_bytes(
        shard_bytes,
        retrieval.actors_per_pod,
        retrieval.shards,
        retrieval.memory_headroom,
        parse_quantity(retrieval.memory_overhead),
    )
    return gi_ceil(total), True, index_size
