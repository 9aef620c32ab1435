"""Layout numbers of a RagRetrievalCluster, and of a RagFinetuneJob that shares one.

Pure: the cluster's spec comes in as an argument (the controller reads it from the API, the
CLI from the files it was given), kb.json through the same `read_kb` hook as `plan.plan_job`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from . import names
from .plan import JobPlan, KbReader, _job_config, check_name, read_kb_metadata, retrieval_memory
from .quantities import parse_quantity
from .rrc_spec import RagRetrievalClusterSpec
from .spec import RagFinetuneJobSpec, SpecError


@dataclass(frozen=True)
class ClusterPlan:
    """What the RayCluster, the service RayJob and the status need."""

    shards: int
    retrieval_pods: int
    actors: int
    actors_per_shard: int
    memory_per_pod: str
    memory_computed: bool
    index_size: str | None
    trainer_workers_per_pod: int


def plan_retrieval_cluster(
    name: str, spec: RagRetrievalClusterSpec, read_kb: KbReader = read_kb_metadata
) -> ClusterPlan:
    """Check the layout and size the retrieval pods; SpecError names every field to fix."""
    problems = check_name(
        name, names.MAX_RRC_NAME_LENGTH, f"the RayCluster and the RayJob {name}{names.SERVICE_SUFFIX}"
    )
    retrieval = spec.retrieval
    actors = retrieval.replicas * retrieval.actors_per_pod
    if retrieval.replicas < 1:
        problems.append(("spec.retrieval.replicas", "must be at least 1: the cluster serves retrieval"))
    elif actors % retrieval.shards:
        problems.append(
            (
                "spec.retrieval.actorsPerPod",
                f"replicas x actorsPerPod ({actors}) must be a multiple of shards ({retrieval.shards}) "
                "so every shard gets the same number of actors",
            )
        )
    needed_cpu = Decimal(str(spec.actor_cpus)) * retrieval.actors_per_pod
    if parse_quantity(retrieval.cpu) < needed_cpu:
        problems.append(
            (
                "spec.retrieval.cpu",
                f"{retrieval.cpu} is less than actorsPerPod x actorCpus ({needed_cpu}): "
                "the actors could not be scheduled",
            )
        )
    if parse_quantity(spec.trainers.cpu) <= 0:
        problems.append(("spec.trainers.cpu", "must be greater than 0"))
    memory, computed, index_size = retrieval_memory(retrieval, spec.knowledge_base, read_kb, problems)
    if problems:
        raise SpecError(problems)
    return ClusterPlan(
        shards=retrieval.shards,
        retrieval_pods=retrieval.replicas,
        actors=actors,
        actors_per_shard=actors // retrieval.shards,
        memory_per_pod=memory,
        memory_computed=computed,
        index_size=index_size,
        trainer_workers_per_pod=spec.trainers.workers,
    )


#: Job fields a shared cluster decides; setting them on a job with retrievalClusterRef is an error.
_NOT_WITH_REF = {
    "head": "the RagRetrievalCluster's head runs the job",
    "retrieval": "the RagRetrievalCluster's retrieval actors serve the job",
}
_TRAINER_FIELDS_NOT_WITH_REF = ("cpu", "memory", "gpu_resource", "node_selector", "tolerations", "affinity")
_RAYJOB_FIELDS_NOT_WITH_REF = {
    "ray_version": "the RagRetrievalCluster's rayVersion applies",
    "ttl_seconds_after_finished": "a shared RayCluster is never torn down by a job",
}


def _camel(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(part.title() for part in rest)


def shared_job_problems(spec: RagFinetuneJobSpec, cluster_name: str) -> list[tuple[str, str]]:
    """Fields of a job with `retrievalClusterRef` that no longer apply, each with the fix."""
    ref = f"retrievalClusterRef {cluster_name!r}"
    problems = [
        (f"spec.{key}", f"must be omitted with {ref}: {why}")
        for key, why in _NOT_WITH_REF.items()
        if key in spec.model_fields_set
    ]
    for key in _TRAINER_FIELDS_NOT_WITH_REF:
        if key in spec.trainers.model_fields_set:
            problems.append(
                (
                    f"spec.trainers.{_camel(key)}",
                    f"must be omitted with {ref}: the cluster's trainer group decides the pods "
                    "(set spec.trainers.replicas only)",
                )
            )
    for key, why in _RAYJOB_FIELDS_NOT_WITH_REF.items():
        if key in spec.ray_job.model_fields_set:
            problems.append((f"spec.rayJob.{_camel(key)}", f"must be omitted with {ref}: {why}"))
    ray_job = spec.ray_job
    if ray_job.suspend:
        problems.append(("spec.rayJob.suspend", "KubeRay cannot suspend a RayJob on a shared RayCluster"))
    if ray_job.submission_mode == "SidecarMode":
        problems.append(("spec.rayJob.submissionMode", "SidecarMode cannot run on a shared RayCluster"))
    if ray_job.backoff_limit:
        problems.append(("spec.rayJob.backoffLimit", "must be 0 on a shared RayCluster (KubeRay rule)"))
    if spec.job.retrieval.mode != "ray":
        problems.append(
            ("spec.job.retrieval.mode", f"must be ray with {ref}: the shared actors are Ray actors")
        )
    return problems


def plan_shared_job(
    name: str, spec: RagFinetuneJobSpec, cluster: tuple[str, RagRetrievalClusterSpec] | None
) -> JobPlan:
    """A job on a RagRetrievalCluster: its trainers run in the cluster's trainer group."""
    ref = spec.retrieval_cluster_ref or ""
    problems = check_name(name) + shared_job_problems(spec, ref)
    if cluster is None or cluster[0] != ref:
        problems.append(
            ("spec.retrievalClusterRef", f"RagRetrievalCluster {ref!r} is needed to render this job")
        )
        raise SpecError(problems)
    _, rrc = cluster
    if spec.job.retrieval.knowledge_base != rrc.knowledge_base:
        problems.append(
            (
                "spec.job.retrieval.knowledge_base",
                f"{spec.job.retrieval.knowledge_base!r} differs from RagRetrievalCluster {ref!r}'s "
                f"knowledgeBase {rrc.knowledge_base!r}: set them equal (the loaded index is that one)",
            )
        )
    pool = rrc.trainers
    trainers = spec.trainers
    if "gpus_per_pod" in trainers.model_fields_set and trainers.gpus_per_pod != pool.gpus_per_pod:
        problems.append(
            (
                "spec.trainers.gpusPerPod",
                f"is {trainers.gpus_per_pod} but RagRetrievalCluster {ref!r} has "
                f"{pool.gpus_per_pod} GPUs per trainer pod: omit it or make them equal",
            )
        )
    if "workers_per_pod" in trainers.model_fields_set and trainers.workers_per_pod != pool.workers:
        problems.append(
            (
                "spec.trainers.workersPerPod",
                f"is {trainers.workers_per_pod} but RagRetrievalCluster {ref!r} runs {pool.workers} "
                "workers per trainer pod: omit it",
            )
        )
    workers = trainers.replicas * pool.workers
    if trainers.replicas > pool.max_replicas:
        problems.append(
            (
                "spec.trainers.replicas",
                f"{trainers.replicas} trainer pods exceed RagRetrievalCluster {ref!r}'s "
                f"trainers.maxReplicas ({pool.max_replicas})",
            )
        )
    retrieval = rrc.retrieval
    actors = retrieval.replicas * retrieval.actors_per_pod
    if problems:
        raise SpecError(problems)
    job_config = _job_config(
        name,
        spec,
        workers,
        pool.workers,
        parse_quantity(pool.cpu),
        actors,
        shards=retrieval.shards,
        use_gpu=pool.gpus_per_pod > 0,
        cluster=ref,
    )
    return JobPlan(
        job_config=job_config,
        trainer_workers=workers,
        workers_per_trainer_pod=pool.workers,
        retrieval_pods=retrieval.replicas,
        retrieval_actors=actors,
        retrieval_memory="",
        retrieval_memory_computed=False,
    )


def cluster_from_manifest(body: dict[str, Any]) -> tuple[str, RagRetrievalClusterSpec]:
    """(name, parsed spec) of a RagRetrievalCluster manifest, as plan_shared_job takes it."""
    from .rrc_spec import parse_rrc_spec

    return body["metadata"]["name"], parse_rrc_spec(body.get("spec"))
