"""From a validated spec to the numbers the cluster layout decides: workers, actors, memory, JobConfig.

Pure apart from `read_kb_metadata`, which callers pass in (the controller and the CLI read
kb.json from disk when they can; tests pass a dict).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from rag_job.config import JobConfig
from rag_job.knowledge.layout import KnowledgeBaseLayoutError, KnowledgeBaseMeta, load_meta

from .names import MAX_RAYJOB_NAME_LENGTH
from .quantities import gi_ceil, parse_quantity
from .spec import RagFinetuneJobSpec, RetrievalGroupSpec, SpecError

KbReader = Callable[[str], "KnowledgeBaseMeta | None"]
#: (name, RagRetrievalClusterSpec) of the cluster a shared job references.
SharedCluster = tuple[str, Any]
_DNS1035 = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"


@dataclass(frozen=True)
class JobPlan:
    """Everything derived from the spec that the RayJob and the status need."""

    job_config: JobConfig
    trainer_workers: int
    workers_per_trainer_pod: int
    retrieval_pods: int
    retrieval_actors: int
    retrieval_memory: str
    retrieval_memory_computed: bool


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


def plan_job(
    name: str,
    spec: RagFinetuneJobSpec,
    read_kb: KbReader = read_kb_metadata,
    cluster: SharedCluster | None = None,
) -> JobPlan:
    """Derive the layout numbers and the full JobConfig; SpecError names every field to fix.

    A job with `retrievalClusterRef` needs the referenced RagRetrievalCluster as `cluster`.
    """
    if spec.retrieval_cluster_ref:
        from .rrc_plan import plan_shared_job

        return plan_shared_job(name, spec, cluster)
    problems: list[tuple[str, str]] = check_name(name)
    trainers = spec.trainers
    workers_per_pod = trainers.workers
    trainer_workers = trainers.replicas * workers_per_pod
    trainer_cpu = parse_quantity(trainers.cpu)
    if trainer_cpu <= 0:
        problems.append(("spec.trainers.cpu", "must be greater than 0"))

    retrieval = spec.retrieval
    job_retrieval = spec.job.retrieval
    uses_actors = job_retrieval.mode == "ray"
    actors = retrieval.replicas * retrieval.actors_per_pod
    if uses_actors and retrieval.replicas < 1:
        problems.append(("spec.retrieval.replicas", "must be at least 1 when job.retrieval.mode is ray"))
    elif not uses_actors and retrieval.replicas:
        problems.append(
            (
                "spec.retrieval.replicas",
                f"must be 0 when job.retrieval.mode is {job_retrieval.mode}: no retrieval actors run",
            )
        )
    elif uses_actors and actors % retrieval.shards:
        problems.append(
            (
                "spec.retrieval.actorsPerPod",
                f"replicas x actorsPerPod ({actors}) must be a multiple of shards ({retrieval.shards}) "
                "so every shard gets the same number of actors",
            )
        )
    needed_cpu = Decimal(str(job_retrieval.actor_cpus)) * retrieval.actors_per_pod
    if uses_actors and parse_quantity(retrieval.cpu) < needed_cpu:
        problems.append(
            (
                "spec.retrieval.cpu",
                f"{retrieval.cpu} is less than actorsPerPod x job.retrieval.actor_cpus ({needed_cpu}): "
                "the actors could not be scheduled",
            )
        )

    memory, computed = _retrieval_memory(spec, read_kb, problems) if uses_actors else ("", False)
    if problems:
        raise SpecError(problems)

    job_config = _job_config(name, spec, trainer_workers, workers_per_pod, trainer_cpu, max(actors, 1))
    return JobPlan(
        job_config=job_config,
        trainer_workers=trainer_workers,
        workers_per_trainer_pod=workers_per_pod,
        retrieval_pods=retrieval.replicas if uses_actors else 0,
        retrieval_actors=actors if uses_actors else 0,
        retrieval_memory=memory,
        retrieval_memory_computed=computed,
    )


def check_name(
    name: str, limit: int = MAX_RAYJOB_NAME_LENGTH, why: str = "the RayJob and its RayCluster"
) -> list[tuple[str, str]]:
    """A problem for `metadata.name` unless it is a DNS-1035 label of at most `limit` characters."""
    if len(name) <= limit and re.match(_DNS1035, name):
        return []
    return [
        (
            "metadata.name",
            f"{name!r} must be a DNS-1035 label of at most {limit} characters "
            f"(lower case, starts with a letter): {why} are named after it",
        )
    ]


def retrieval_pod_memory_bytes(
    shard_bytes: Decimal, actors_per_pod: int, headroom: float, overhead: Decimal
) -> Decimal:
    """Each actor holds one shard in RAM: actorsPerPod x shard bytes x headroom + overhead."""
    return Decimal(actors_per_pod) * shard_bytes * Decimal(str(headroom)) + overhead


def _retrieval_memory(
    spec: RagFinetuneJobSpec, read_kb: KbReader, problems: list[tuple[str, str]]
) -> tuple[str, bool]:
    memory, computed, _ = retrieval_memory(
        spec.retrieval, spec.job.retrieval.knowledge_base, read_kb, problems
    )
    return memory, computed


def retrieval_memory(
    retrieval: RetrievalGroupSpec,
    knowledge_base: str,
    read_kb: KbReader,
    problems: list[tuple[str, str]],
) -> tuple[str, bool, str | None]:
    """(memory per retrieval pod, whether computed, total index size if known); appends problems.

    Shared by RagFinetuneJob and RagRetrievalCluster: both name the group `spec.retrieval`.
    """
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
        retrieval.memory_headroom,
        parse_quantity(retrieval.memory_overhead),
    )
    return gi_ceil(total), True, index_size


def _job_config(
    name: str,
    spec: RagFinetuneJobSpec,
    trainer_workers: int,
    workers_per_pod: int,
    trainer_cpu: Decimal,
    actors: int,
    *,
    shards: int | None = None,
    use_gpu: bool | None = None,
    cluster: str | None = None,
) -> JobConfig:
    """The full JobConfig; `shards`/`use_gpu`/`cluster` come from a RagRetrievalCluster when shared."""
    job = spec.job
    data: dict[str, Any] = job.model_dump(mode="json", exclude_none=True)
    job_name = data["name"] if "name" in job.model_fields_set else name
    data["name"] = job_name
    shards = shards or spec.retrieval.shards
    data["retrieval"]["shards"] = shards
    data["retrieval"]["actors_per_shard"] = max(1, actors // shards)
    if cluster:
        data["retrieval"]["cluster"] = cluster
    data["scaling"] = {
        "num_workers": trainer_workers,
        "use_gpu": spec.trainers.gpus_per_pod > 0 if use_gpu is None else use_gpu,
        "cpus_per_worker": float(trainer_cpu / workers_per_pod),
        "resources_per_worker": {},
    }
    checkpoint_set = (
        "checkpoint" in job.model_fields_set and "storage_path" in job.checkpoint.model_fields_set
    )
    if not checkpoint_set:
        data["checkpoint"]["storage_path"] = f"{_storage_root(spec)}/checkpoints/{job_name}"
    if "output_dir" not in job.model_fields_set and spec.storage.pvc is not None:
        data["output_dir"] = f"{_storage_root(spec)}/outputs/{job_name}"
    try:
        return JobConfig.model_validate(data)
    except ValidationError as err:  # the sub-models already validated: only the derived parts can fail
        raise SpecError(
            [(f"spec.job.{'.'.join(map(str, p['loc']))}", p["msg"]) for p in err.errors()]
        ) from err


def _storage_root(spec: RagFinetuneJobSpec) -> str:
    storage = spec.storage
    if storage.pvc is not None:
        return storage.pvc.mount_path.rstrip("/") or ""
    return (storage.uri or "").rstrip("/")
