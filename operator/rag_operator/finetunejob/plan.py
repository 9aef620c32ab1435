"""From a validated RagFinetuneJob spec to the numbers the layout decides: workers, actors,
memory, and the full JobConfig the job reads. A job with `retrievalClusterRef` takes them from
its RagRetrievalCluster instead.

Pure: kb.json comes through `read_kb` and the referenced cluster as an argument.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel

from rag_job.config import JobConfig

from ..common.defaults import defaults_tree
from ..common.errors import Problems, SpecError
from ..common.pods import pod_overrides_problems
from ..common.quantities import parse_quantity
from ..common.sizing import (
    KbReader,
    check_name,
    check_positive_cpu,
    check_retrieval_actors,
    read_kb_metadata,
    retrieval_memory,
)
from ..retrievalcluster.spec import RagRetrievalClusterSpec
from .spec import RagFinetuneJobSpec

#: (name, spec) of the RagRetrievalCluster a shared job references.
SharedCluster = tuple[str, RagRetrievalClusterSpec]


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


def plan_job(
    name: str,
    spec: RagFinetuneJobSpec,
    read_kb: KbReader = read_kb_metadata,
    cluster: SharedCluster | None = None,
    namespace: str | None = None,
) -> JobPlan:
    """Derive the layout numbers and the full JobConfig; SpecError names every field to fix.

    A job with `retrievalClusterRef` needs the referenced RagRetrievalCluster as `cluster`.
    """
    if spec.retrieval_cluster_ref:
        return plan_shared_job(name, spec, cluster, namespace)
    problems = check_name(name) + check_positive_cpu(spec.trainers.cpu, "spec.trainers.cpu")
    problems += pod_overrides_problems(
        spec, {"head": spec.head, "trainers": spec.trainers, "retrieval": spec.retrieval}
    )
    if spec.ray_job.queue_name and spec.ray_job.suspend:
        problems.append(
            (
                "spec.rayJob.suspend",
                "must be false with spec.rayJob.queueName: Kueue suspends and resumes a queued job "
                "(hold the queue instead, e.g. its ClusterQueue's stopPolicy)",
            )
        )
    trainers, retrieval, job_retrieval = spec.trainers, spec.retrieval, spec.job.retrieval
    workers_per_pod = trainers.workers
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
    elif uses_actors:
        problems += check_retrieval_actors(retrieval, job_retrieval.actor_cpus, "job.retrieval.actor_cpus")
    memory, computed = "", False
    if uses_actors:
        memory, computed, _ = retrieval_memory(retrieval, job_retrieval.knowledge_base, read_kb, problems)
    if problems:
        raise SpecError(problems)
    trainer_workers = trainers.replicas * workers_per_pod
    job_config = job_config_for(
        name,
        spec,
        trainer_workers,
        workers_per_pod,
        parse_quantity(trainers.cpu),
        max(actors, 1),
        namespace=namespace,
    )
    return JobPlan(
        job_config=job_config,
        trainer_workers=trainer_workers,
        workers_per_trainer_pod=workers_per_pod,
        retrieval_pods=retrieval.replicas if uses_actors else 0,
        retrieval_actors=actors if uses_actors else 0,
        retrieval_memory=memory,
        retrieval_memory_computed=computed,
    )


def job_config_for(
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
    namespace: str | None = None,
) -> JobConfig:
    """The full JobConfig; `shards`/`use_gpu`/`cluster` come from a RagRetrievalCluster when shared.

    Default checkpoint and output paths are named after the resource (unique in its namespace,
    and the namespace is part of an object-store path), never after `spec.job.name`, which two
    jobs may share: one job must not resume from, or overwrite, another's files.
    """
    job = spec.job
    data: dict[str, Any] = job.model_dump(mode="json", exclude_none=True)
    job_name = data["name"] if _written(job, "name") else name
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
    if not _written(job, "checkpoint.storage_path"):
        data["checkpoint"]["storage_path"] = (
            f"{_storage_root(spec)}/checkpoints/{_unique(name, namespace, spec)}"
        )
    if not _written(job, "output_dir"):
        data["output_dir"] = f"{_storage_root(spec)}/outputs/{_unique(name, namespace, spec)}"
    problems = [
        problem
        for field_name in ("output_dir", "checkpoint.storage_path")
        if (problem := _ephemeral_output_problem(spec, field_name, _dotted(data, field_name)))
    ]
    if problems:
        raise SpecError(problems)
    try:
        return JobConfig.model_validate(data)
    except ValidationError as err:  # the sub-models already validated: only the derived parts can fail
        raise SpecError(
            [(f"spec.job.{'.'.join(map(str, p['loc']))}", p["msg"]) for p in err.errors()]
        ) from err


#: spec.job fields derived from the resource when omitted -> what they become (for the reference):
#: the CRD gives them no default, so the API server never fills in the model's local-run value.
JOB_FIELDS_DERIVED_WHEN_OMITTED = {
    "name": "the RagFinetuneJob's name",
    "output_dir": "`<storage>/outputs/<name>` (`<namespace>/<name>` on an object store)",
    "checkpoint.storage_path": "`<storage>/checkpoints/<name>` (`<namespace>/<name>` on an object store)",
}


def _written(model: BaseModel, dotted: str) -> bool:
    """Whether the manifest holds the field at `dotted` (one of JOB_FIELDS_DERIVED_WHEN_OMITTED)."""
    for part in dotted.split("."):
        if part not in model.model_fields_set:
            return False
        model = getattr(model, part)
    return True


def _unique(name: str, namespace: str | None, spec: RagFinetuneJobSpec) -> str:
    """A path segment no other job has: the name, prefixed by the namespace on a shared object store."""
    return f"{namespace}/{name}" if namespace and spec.storage.uri else name


def _dotted(data: dict[str, Any], field_name: str) -> str:
    for part in field_name.split("."):
        data = data[part]
    return str(data)


def _ephemeral_output_problem(spec: RagFinetuneJobSpec, field_name: str, path: str) -> tuple[str, str] | None:
    """An output path that would vanish with the pods: not a URI, not on the read-write PVC.

    KubeRay deletes the RayCluster after the job, and with it every pod's own disk, so a model
    written there is lost although the job reports success.
    """
    if "://" in path and not path.startswith("file://"):
        return None
    pvc = spec.storage.pvc
    normal = posixpath.normpath(path.removeprefix("file://"))
    if pvc is not None:
        mount = posixpath.normpath(pvc.mount_path)
        on_pvc = normal == mount or normal.startswith(mount.rstrip("/") + "/")
        if on_pvc and not pvc.read_only:
            return None
        if on_pvc:
            return (
                f"spec.job.{field_name}",
                f"{path} is on storage.pvc, which is mounted read-only: set storage.pvc.readOnly to false, "
                "or write outputs to an object-store URI",
            )
        where = f"under storage.pvc.mountPath ({pvc.mount_path})"
    else:
        where = f"under storage.uri ({spec.storage.uri})"
    return (
        f"spec.job.{field_name}",
        f"{path} is on the pod's own disk, which is deleted with the Ray cluster after the job: "
        f"put it {where} or use an object-store URI, or omit the field for the default",
    )


def _storage_root(spec: RagFinetuneJobSpec) -> str:
    storage = spec.storage
    if storage.pvc is not None:
        return storage.pvc.mount_path.rstrip("/") or ""
    return (storage.uri or "").rstrip("/")


# --- a job on a RagRetrievalCluster ----------------------------------------------------------------

#: Job fields a shared cluster decides; setting them on a job with retrievalClusterRef is an error.
NOT_WITH_REF = {
    "head": "the RagRetrievalCluster's head runs the job",
    "retrieval": "the RagRetrievalCluster's retrieval actors serve the job",
}
TRAINER_FIELDS_NOT_WITH_REF = (
    "cpu",
    "memory",
    "gpu_resource",
    "node_selector",
    "tolerations",
    "affinity",
    "pod",
)
RAYJOB_FIELDS_NOT_WITH_REF = {
    "ray_version": "the RagRetrievalCluster's rayVersion applies",
    "ttl_seconds_after_finished": "a shared RayCluster is never torn down by a job",
    "queue_name": "Kueue cannot admit a RayJob that runs on an existing RayCluster (clusterSelector)",
}
#: Why a shared job cannot train its retriever end to end, and the fix (the plan's check and the
#: CRD's CEL rule both say it).
END_TO_END_NOT_WITH_REF = (
    "the shared actors serve other jobs, and their index must not change under them: remove "
    "spec.job.retrieval.end_to_end, or remove spec.retrievalClusterRef to run the job with its own "
    "retrieval group"
)
#: Trainer fields a shared job may give only equal to its cluster's; omitted, the cluster's apply.
TRAINER_FIELDS_FROM_CLUSTER = ("gpus_per_pod", "workers_per_pod")

#: Fields the CRD gives no default (field names, dotted): omitted, they mean something, so the API
#: server must not fill them. A shared job must omit the first ones (a CEL rule tests `has()` and
#: the plan `model_fields_set`: a filled default would refuse every shared job), takes the
#: cluster's trainer shape, and derives the job's name and paths from the resource.
NO_SCHEMA_DEFAULT = (
    *NOT_WITH_REF,
    *(f"trainers.{key}" for key in (*TRAINER_FIELDS_NOT_WITH_REF, *TRAINER_FIELDS_FROM_CLUSTER)),
    *(f"ray_job.{key}" for key in RAYJOB_FIELDS_NOT_WITH_REF),
    *(f"job.{key}" for key in JOB_FIELDS_DERIVED_WHEN_OMITTED),
)
#: What the API server fills into a RagFinetuneJob's spec (the CRD's defaults).
SPEC_DEFAULTS = defaults_tree(RagFinetuneJobSpec, NO_SCHEMA_DEFAULT)


def shared_job_problems(spec: RagFinetuneJobSpec, cluster_name: str) -> Problems:
    """Fields of a job with `retrievalClusterRef` that no longer apply, each with the fix."""
    ref = f"retrievalClusterRef {cluster_name!r}"
    problems = [
        (f"spec.{key}", f"must be omitted with {ref}: {why}")
        for key, why in NOT_WITH_REF.items()
        if key in spec.model_fields_set
    ]
    for key in TRAINER_FIELDS_NOT_WITH_REF:
        if key in spec.trainers.model_fields_set:
            problems.append(
                (
                    f"spec.trainers.{to_camel(key)}",
                    f"must be omitted with {ref}: the cluster's trainer group decides the pods "
                    "(set spec.trainers.replicas only)",
                )
            )
    for key, why in RAYJOB_FIELDS_NOT_WITH_REF.items():
        if key in spec.ray_job.model_fields_set:
            problems.append((f"spec.rayJob.{to_camel(key)}", f"must be omitted with {ref}: {why}"))
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
    if spec.job.retrieval.end_to_end is not None:
        problems.append(
            ("spec.job.retrieval.end_to_end", f"must be omitted with {ref}: {END_TO_END_NOT_WITH_REF}")
        )
    return problems


def plan_shared_job(
    name: str, spec: RagFinetuneJobSpec, cluster: SharedCluster | None, namespace: str | None = None
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
    pool, trainers = rrc.trainers, spec.trainers
    gpus, workers = TRAINER_FIELDS_FROM_CLUSTER
    if gpus in trainers.model_fields_set and trainers.gpus_per_pod != pool.gpus_per_pod:
        problems.append(
            (
                "spec.trainers.gpusPerPod",
                f"is {trainers.gpus_per_pod} but RagRetrievalCluster {ref!r} has "
                f"{pool.gpus_per_pod} GPUs per trainer pod: omit it or make them equal",
            )
        )
    if workers in trainers.model_fields_set and trainers.workers_per_pod != pool.workers:
        problems.append(
            (
                "spec.trainers.workersPerPod",
                f"is {trainers.workers_per_pod} but RagRetrievalCluster {ref!r} runs {pool.workers} "
                "workers per trainer pod: omit it",
            )
        )
    if trainers.replicas > pool.max_replicas:
        problems.append(
            (
                "spec.trainers.replicas",
                f"{trainers.replicas} trainer pods exceed RagRetrievalCluster {ref!r}'s "
                f"trainers.maxReplicas ({pool.max_replicas})",
            )
        )
    if problems:
        raise SpecError(problems)
    workers = trainers.replicas * pool.workers
    retrieval = rrc.retrieval
    actors = retrieval.replicas * retrieval.actors_per_pod
    job_config = job_config_for(
        name,
        spec,
        workers,
        pool.workers,
        parse_quantity(pool.cpu),
        actors,
        shards=retrieval.shards,
        use_gpu=pool.gpus_per_pod > 0,
        cluster=ref,
        namespace=namespace,
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
