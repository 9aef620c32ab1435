"""The RagRetrievalCluster custom resource: a long-lived RayCluster that keeps one index loaded.

Many RagFinetuneJobs (a learning-rate sweep over one knowledge base) point at it with
`retrievalClusterRef` and share its retrieval actors instead of each loading the index. The
pod-level models (head, retrieval group, storage, env, secrets) are the RagFinetuneJob's, so
the two resources read the same and render through the same pod template.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError

from ..common.defaults import defaults_tree
from ..common.errors import spec_error
from ..common.k8s_types import Int32, RayVersion
from ..common.models import Condition, HeadSpec, K8sModel, RayPodsSpec, RetrievalGroupSpec, TrainerPodSpec


class TrainerPoolSpec(TrainerPodSpec):
    """GPU pods for the jobs' Ray Train workers: autoscaled from zero, each declares `rag_trainer`."""

    max_replicas: Int32 = Field(default=4, ge=1, description="Most trainer pods the autoscaler may start.")


class AutoscalerSpec(K8sModel):
    """KubeRay's in-tree autoscaler, which adds trainer pods when a job asks for `rag_trainer`."""

    idle_timeout_seconds: Int32 = Field(
        default=60, ge=0, description="Seconds an idle trainer pod is kept before it is removed."
    )
    upscaling_mode: Literal["Default", "Aggressive", "Conservative"] = Field(default="Default")


class RagRetrievalClusterSpec(RayPodsSpec):
    """What a user writes: the index, its retrieval pods and the trainer pool the jobs run on."""

    knowledge_base: str = Field(
        min_length=1,
        description="Directory written by `python -m rag_job build-index` (FAISS shards and kb.json), "
        "as seen from the pods; the same path as job.retrieval.knowledge_base in the jobs.",
    )
    actor_cpus: float = Field(
        default=1.0, gt=0, le=1024, description="CPUs reserved by each retrieval actor."
    )
    faiss_threads: Int32 | None = Field(
        default=None, ge=1, description="OpenMP threads per retrieval actor; defaults to its CPU request."
    )
    head: HeadSpec = Field(default_factory=HeadSpec)
    retrieval: RetrievalGroupSpec = Field(
        default_factory=RetrievalGroupSpec,
        description="The retrieval pods: replicas (pods), shards, actorsPerPod, cpu, memory or indexSize.",
    )
    trainers: TrainerPoolSpec = Field(default_factory=TrainerPoolSpec)
    autoscaler: AutoscalerSpec = Field(default_factory=AutoscalerSpec)
    ray_version: RayVersion = Field(default="2.60.0", description="Ray version in the image.")


#: What the API server fills into a RagRetrievalCluster's spec (the CRD's defaults): every model
#: default, since no field's omission means more than its default (memory and faissThreads,
#: computed when omitted, default to None and so get none).
SPEC_DEFAULTS = defaults_tree(RagRetrievalClusterSpec)


class RagRetrievalClusterStatus(K8sModel):
    """What the operator reports: the RayCluster, the service RayJob and the loaded actors."""

    ray_cluster_name: str | None = None
    service_ray_job_name: str | None = None
    state: str | None = Field(default=None, description="The RayCluster's status.state (ready, ...).")
    shards: int | None = Field(default=None, description="Index shards.")
    replicas: int | None = Field(default=None, description="Retrieval pods.")
    ready_replicas: int | None = Field(
        default=None, description="Complete replicas: the fewest ALIVE actors any shard has."
    )
    actors_per_shard: int | None = Field(default=None, description="Retrieval actors per shard.")
    actors_alive: int | None = None
    shards_loaded: int | None = Field(default=None, description="Shards with at least one ALIVE actor.")
    ready_worker_pods: int | None = Field(default=None, description="RayCluster readyWorkerReplicas.")
    index_size: str | None = Field(default=None, description="Total index size (given or from kb.json).")
    memory_per_pod: str | None = Field(default=None, description="Memory per retrieval pod.")
    memory_computed: bool | None = None
    service_job_status: str | None = Field(default=None, description="The service RayJob's jobStatus.")
    load_started: str | None = Field(default=None, description="When the service RayJob started.")
    loaded_at: str | None = Field(default=None, description="When every actor was first seen ALIVE.")
    load_seconds: int | None = Field(default=None, description="loadedAt - loadStarted.")
    in_use_by: list[str] = Field(
        default_factory=list, description="Unfinished RagFinetuneJobs that reference this cluster."
    )
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)


def parse_rrc_spec(raw: object) -> RagRetrievalClusterSpec:
    """Validate a RagRetrievalCluster's `spec`; SpecError names each bad field as `spec.<path>`."""
    try:
        return RagRetrievalClusterSpec.model_validate(raw)
    except ValidationError as err:
        raise spec_error(err, model=RagRetrievalClusterSpec) from err


def cluster_from_manifest(body: dict[str, Any]) -> tuple[str, RagRetrievalClusterSpec]:
    """(name, parsed spec) of a RagRetrievalCluster manifest, as a shared job's plan takes it."""
    return body["metadata"]["name"], parse_rrc_spec(body.get("spec"))
