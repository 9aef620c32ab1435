"""The RagFinetuneJob custom resource as pydantic models: one model feeds validation and the CRD.

`spec.job` is `rag_job.config.JobConfig` with its snake_case keys (a researcher pastes a job
YAML into it) minus what the cluster layout decides: `scaling` comes from the trainer group,
`retrieval.actors_per_shard`/`retrieval.shards` from the retrieval group (or the referenced
RagRetrievalCluster) and `retrieval.cluster` from `retrievalClusterRef`. The rest of the spec is
camelCase, Kubernetes style.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from rag_job import config as job_config

from ..common.errors import spec_error
from ..common.k8s_types import Dns1035Label, DnsSubdomain, Int32, RayVersion
from ..common.models import (
    Condition,
    HeadSpec,
    K8sModel,
    RayPodsSpec,
    RetrievalGroupSpec,
    TrainerPodSpec,
)

#: Fields of JobConfig that the cluster layout decides; they are rejected inside `spec.job`.
LAYOUT_JOB_FIELDS = frozenset({"scaling"})
LAYOUT_RETRIEVAL_FIELDS = frozenset({"actors_per_shard", "shards", "cluster"})


def _without(model: type[BaseModel], exclude: frozenset[str], name: str) -> type[BaseModel]:
    """A copy of `model` without `exclude`, built from its own FieldInfos (no copied fields)."""
    fields: dict[str, Any] = {
        key: (info.annotation, info) for key, info in model.model_fields.items() if key not in exclude
    }
    return create_model(  # type: ignore[call-overload]
        name,
        __config__=ConfigDict(extra="forbid", allow_inf_nan=False),
        __doc__=model.__doc__,
        **fields,
    )


#: `retrieval` in `spec.job`: RetrievalConfig minus replicas, shards and cluster.
JobRetrieval = _without(job_config.RetrievalConfig, LAYOUT_RETRIEVAL_FIELDS, "JobRetrieval")


def _job_section() -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for key, info in job_config.JobConfig.model_fields.items():
        if key in LAYOUT_JOB_FIELDS:
            continue
        if key == "retrieval":
            retrieval_info = copy.copy(info)
            retrieval_info.annotation = JobRetrieval
            fields[key] = (JobRetrieval, retrieval_info)
        else:
            fields[key] = (info.annotation, info)
    return create_model(  # type: ignore[call-overload]
        "JobSection",
        __config__=ConfigDict(extra="forbid", allow_inf_nan=False),
        __doc__="The job's JobConfig (snake_case keys) without `scaling`, `retrieval.actors_per_shard`, "
        "`retrieval.shards` and `retrieval.cluster`, which the cluster layout decides.",
        **fields,
    )


JobSection = _job_section()


class TrainerGroupSpec(TrainerPodSpec):
    """GPU pods that run the Ray Train workers; each declares the `rag_trainer` Ray resource."""

    replicas: Int32 = Field(default=1, ge=1, description="Trainer pods.")


class RayJobOptions(K8sModel):
    """Knobs passed through to the KubeRay RayJob."""

    ray_version: RayVersion = Field(default="2.60.0", description="Ray version in the image.")
    submission_mode: Literal["K8sJobMode", "HTTPMode", "SidecarMode"] = Field(
        default="K8sJobMode", description="How KubeRay submits the entrypoint."
    )
    ttl_seconds_after_finished: Int32 = Field(
        default=3600, ge=0, description="Seconds the finished cluster is kept before deletion."
    )
    active_deadline_seconds: Int32 | None = Field(
        default=None, ge=1, description="Fail the job after this many seconds."
    )
    backoff_limit: Int32 = Field(default=0, ge=0, description="Retries of the whole RayJob.")
    suspend: bool = Field(default=False, description="Create suspended, or suspend a running job.")
    queue_name: DnsSubdomain | None = Field(
        default=None,
        description="Kueue LocalQueue (in the job's namespace) that admits the RayJob: it is created "
        "suspended with the kueue.x-k8s.io/queue-name label and Kueue, not the operator, decides "
        "when it runs (phase Queued until then). Not with suspend or retrievalClusterRef.",
    )


class RagFinetuneJobSpec(RayPodsSpec):
    """What a user writes: the job, the image and the cluster layout."""

    job: JobSection = Field(  # type: ignore[valid-type]
        description="The fine-tuning job: rag_job JobConfig keys (snake_case) without scaling, "
        "retrieval.actors_per_shard, retrieval.shards and retrieval.cluster."
    )
    head: HeadSpec = Field(default_factory=HeadSpec)
    trainers: TrainerGroupSpec = Field(default_factory=TrainerGroupSpec)
    retrieval: RetrievalGroupSpec = Field(default_factory=RetrievalGroupSpec)
    ray_job: RayJobOptions = Field(default_factory=RayJobOptions)
    retrieval_cluster_ref: Dns1035Label | None = Field(
        default=None,
        description="Name of a RagRetrievalCluster in the same namespace: the job runs on its "
        "RayCluster (clusterSelector) and uses its loaded retrieval actors instead of starting "
        "its own. head and retrieval must then be omitted.",
    )


Phase = Literal["Pending", "Queued", "Running", "Succeeded", "Failed", "Suspended"]


class TrainingProgress(K8sModel):
    """The last training report, read from the Ray head's metrics while the job runs."""

    step: int | None = Field(default=None, description="Optimizer steps done.")
    max_steps: int | None = Field(default=None, description="Optimizer steps the run will take.")
    loss: float | None = Field(default=None, description="Mean loss over the last reported window.")
    step_seconds: float | None = Field(default=None, description="Mean step time over that window.")
    retrieval_p50_ms: float | None = Field(
        default=None, alias="retrievalP50Ms", description="Median retrieval call over that window (ms)."
    )
    eta_seconds: int | None = Field(default=None, description="Remaining steps x step time.")
    updated_at: str | None = Field(default=None, description="When the job made this report.")


class RagFinetuneJobStatus(K8sModel):
    """What the operator reports; mirrors the RayJob's status."""

    phase: Phase | None = None
    job_status: str | None = Field(default=None, description="RayJob status.jobStatus (Ray's job state).")
    job_deployment_status: str | None = Field(default=None, description="RayJob status.jobDeploymentStatus.")
    reason: str | None = None
    message: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    dashboard_url: str | None = Field(default=None, alias="dashboardURL")
    ray_job_name: str | None = None
    ray_cluster_name: str | None = None
    trainers: int | None = Field(default=None, description="Ray Train workers.")
    retrieval_replicas: int | None = Field(default=None, description="Retrieval pods.")
    retrieval_memory: str | None = Field(
        default=None, description="Memory per retrieval pod (computed or given)."
    )
    output_dir: str | None = Field(default=None, description="Where the trained model and metrics go.")
    checkpoint_path: str | None = Field(
        default=None, description="Ray Train storage path of the checkpoints."
    )
    network_policy_name: str | None = Field(
        default=None, description="The NetworkPolicy fencing the Ray pods."
    )
    progress: TrainingProgress | None = Field(
        default=None, description="Training progress while the job runs (kept when it ends)."
    )
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)


def parse_spec(raw: Any) -> RagFinetuneJobSpec:
    """Validate a CR's `spec`; SpecError names each bad field as `spec.<path>`."""
    try:
        return RagFinetuneJobSpec.model_validate(raw)
    except ValidationError as err:
        raise spec_error(err, hints=_LAYOUT_HINTS, model=RagFinetuneJobSpec) from err


#: Keys a job YAML may hold that the cluster layout owns on Kubernetes: say where they went.
_LAYOUT_HINTS = {
    "spec.job.scaling": " (on Kubernetes the trainer group decides it: set spec.trainers)",
    "spec.job.retrieval.actors_per_shard": " (set spec.retrieval.replicas and spec.retrieval.actorsPerPod)",
    "spec.job.retrieval.shards": " (set spec.retrieval.shards)",
    "spec.job.retrieval.cluster": " (set spec.retrievalClusterRef to a RagRetrievalCluster)",
}
