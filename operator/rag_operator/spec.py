"""The RagFinetuneJob custom resource as pydantic models: one model feeds validation and the CRD.

`spec.job` is `rag_job.config.JobConfig` with its snake_case keys (a researcher pastes a job
YAML into it) minus what the cluster layout decides: `scaling` comes from the trainer group,
`retrieval.actors_per_shard`/`retrieval.shards` from the retrieval group (or the referenced
RagRetrievalCluster) and `retrieval.cluster` from `retrievalClusterRef`. The rest of the spec is
camelCase, Kubernetes style.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    create_model,
    model_validator,
)
from pydantic.alias_generators import to_camel

from rag_job import config as job_config

from .quantities import QUANTITY_PATTERN, parse_quantity

#: Fields of JobConfig that the cluster layout decides; they are rejected inside `spec.job`.
LAYOUT_JOB_FIELDS = frozenset({"scaling"})
LAYOUT_RETRIEVAL_FIELDS = frozenset({"actors_per_shard", "shards", "cluster"})


class SpecError(ValueError):
    """A RagFinetuneJob that cannot be rendered; `fields` are the dotted paths to fix."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        self.fields = [field for field, _ in problems]
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in problems))


def _without(model: type[BaseModel], exclude: frozenset[str], name: str) -> type[BaseModel]:
    """A copy of `model` without `exclude`, built from its own FieldInfos (no copied fields)."""
    fields: dict[str, Any] = {
        key: (info.annotation, info) for key, info in model.model_fields.items() if key not in exclude
    }
    return create_model(  # type: ignore[call-overload]
        name,
        __config__=ConfigDict(extra="forbid"),
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
        __config__=ConfigDict(extra="forbid"),
        __doc__="The job's JobConfig (snake_case keys) without `scaling`, `retrieval.actors_per_shard`, "
        "`retrieval.shards` and `retrieval.cluster`, which the cluster layout decides.",
        **fields,
    )


JobSection = _job_section()


def _quantity(value: Any) -> str:
    """Numbers become strings; text must parse as a Kubernetes quantity (a clear message if not)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (examples: 4, 500m, 16Gi)")
    parse_quantity(value)  # raises ValueError naming the bad text
    return value


#: Memory and sizes: "16Gi". The pattern is for the CRD; pydantic checks with parse_quantity.
Quantity = Annotated[
    str, BeforeValidator(_quantity), WithJsonSchema({"type": "string", "pattern": QUANTITY_PATTERN})
]
#: CPU may be written as a number (4) or a quantity string ("500m"); stored as a string.
CpuQuantity = Annotated[
    str,
    BeforeValidator(_quantity),
    WithJsonSchema({"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN}),
]
_LOOSE = {"x-kubernetes-preserve-unknown-fields": True}
Toleration = Annotated[dict[str, Any], Field(json_schema_extra=_LOOSE)]
Affinity = Annotated[dict[str, Any], Field(json_schema_extra=_LOOSE)]


class _K8s(BaseModel):
    """camelCase keys, unknown keys rejected (a typo must not be silently dropped)."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class HeadSpec(_K8s):
    """The head pod runs the driver only (`num-cpus: 0`): no training, no retrieval."""

    cpu: CpuQuantity = Field(default="1", description="CPU request and limit of the head pod.")
    memory: Quantity = Field(default="4Gi", description="Memory request and limit of the head pod.")


class _Placement(_K8s):
    node_selector: dict[str, str] = Field(default_factory=dict, description="Pod nodeSelector.")
    tolerations: list[Toleration] = Field(
        default_factory=list, description="Pod tolerations (Kubernetes Toleration objects)."
    )
    affinity: Affinity | None = Field(default=None, description="Pod affinity (Kubernetes Affinity object).")


class TrainerPodSpec(_Placement):
    """One GPU trainer pod: shared by a job's own trainer group and a retrieval cluster's pool."""

    gpus_per_pod: int = Field(
        default=1, ge=0, description="GPUs per trainer pod (0: CPU training). Also Ray's num-gpus."
    )
    gpu_resource: str = Field(
        default="nvidia.com/gpu", min_length=1, description="Extended resource name of the GPU limit."
    )
    workers_per_pod: int | None = Field(
        default=None,
        ge=1,
        description="Ray Train workers per pod; defaults to gpusPerPod (one GPU per worker), or 1 on CPU.",
    )
    cpu: CpuQuantity = Field(default="4", description="CPU request and limit per trainer pod.")
    memory: Quantity = Field(default="16Gi", description="Memory request and limit per trainer pod.")

    @model_validator(mode="after")
    def _one_gpu_per_worker(self) -> TrainerPodSpec:
        if self.gpus_per_pod and self.workers_per_pod not in (None, self.gpus_per_pod):
            raise ValueError(
                f"workersPerPod ({self.workers_per_pod}) must equal gpusPerPod ({self.gpus_per_pod}): "
                "each Ray Train worker uses one GPU; omit workersPerPod"
            )
        return self

    @property
    def workers(self) -> int:
        """Ray Train workers per pod."""
        return self.workers_per_pod or self.gpus_per_pod or 1


class TrainerGroupSpec(TrainerPodSpec):
    """GPU pods that run the Ray Train workers; each declares the `rag_trainer` Ray resource."""

    replicas: int = Field(default=1, ge=1, description="Trainer pods.")


class RetrievalGroupSpec(_Placement):
    """CPU high-memory pods that host the retrieval actors; each declares `rag_retrieval`."""

    replicas: int = Field(
        default=1, ge=0, description="Retrieval pods (0 only when job.retrieval.mode is not ray)."
    )
    shards: int = Field(
        default=1, ge=1, description="Index shards in the knowledge base; must match its kb.json."
    )
    actors_per_pod: int = Field(
        default=1, ge=1, description="Retrieval actors per pod; each loads one index shard."
    )
    cpu: CpuQuantity = Field(
        default="2", description="CPU request and limit per retrieval pod (>= actorsPerPod x actor_cpus)."
    )
    memory: Quantity | None = Field(
        default=None,
        description="Memory request and limit per retrieval pod. When omitted it is computed and "
        "shown in status.retrievalMemory: ceil_Gi(actorsPerPod x shardBytes x memoryHeadroom + "
        "memoryOverhead), shardBytes = indexSize / shards, or the largest shard in kb.json.",
    )
    index_size: Quantity | None = Field(
        default=None,
        description="Total size of the FAISS index (all shards), e.g. 60Gi. When omitted the shard "
        "sizes are read from the knowledge base's kb.json if the operator can read it.",
    )
    memory_headroom: float = Field(
        default=1.5, ge=1, description="Multiplier on the index bytes held by one pod."
    )
    memory_overhead: Quantity = Field(
        default="2Gi", description="Fixed memory added per pod (Ray, Python, passages)."
    )


class PvcStorage(_K8s):
    """A PersistentVolumeClaim (ReadWriteMany for several pods) mounted on every pod."""

    claim_name: str = Field(min_length=1, description="Name of an existing PersistentVolumeClaim.")
    mount_path: str = Field(default="/data", pattern=r"^/", description="Mount path on every pod.")
    read_only: bool = Field(default=False)


class StorageSpec(_K8s):
    """Shared storage for model, knowledge base and checkpoints: a PVC or an object-store URI."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["pvc"]}, {"required": ["uri"]}]})

    pvc: PvcStorage | None = Field(default=None, description="Mount this PVC on every pod.")
    uri: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9+.-]*://",
        description="Object-store prefix (s3://, gs://, ...) for checkpoints and outputs.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> StorageSpec:
        if (self.pvc is None) == (self.uri is None):
            raise ValueError("set exactly one of storage.pvc or storage.uri")
        return self


class SecretEnv(_K8s):
    """An environment variable taken from a Secret key on every pod; the value never enters the RayJob."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Environment variable, e.g. HF_TOKEN.")
    secret_name: str = Field(min_length=1, description="Secret in the job's namespace.")
    key: str = Field(min_length=1, description="Key inside the Secret.")


class EnvVar(_K8s):
    """A plain environment variable on every pod."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    value: str = Field(default="")


class RayJobOptions(_K8s):
    """Knobs passed through to the KubeRay RayJob."""

    ray_version: str = Field(default="2.60.0", description="Ray version in the image.")
    submission_mode: Literal["K8sJobMode", "HTTPMode", "SidecarMode"] = Field(
        default="K8sJobMode", description="How KubeRay submits the entrypoint."
    )
    ttl_seconds_after_finished: int = Field(
        default=3600, ge=0, description="Seconds the finished cluster is kept before deletion."
    )
    active_deadline_seconds: int | None = Field(
        default=None, ge=1, description="Fail the job after this many seconds."
    )
    backoff_limit: int = Field(default=0, ge=0, description="Retries of the whole RayJob.")
    suspend: bool = Field(default=False, description="Create suspended, or suspend a running job.")


class RagFinetuneJobSpec(_K8s):
    """What a user writes: the job, the image and the cluster layout."""

    image: str = Field(min_length=1, description="Job image (rag_job and Ray), same on every pod.")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(default="IfNotPresent")
    service_account_name: str | None = Field(default=None, description="Service account of the Ray pods.")
    job: JobSection = Field(  # type: ignore[valid-type]
        description="The fine-tuning job: rag_job JobConfig keys (snake_case) without scaling, "
        "retrieval.actors_per_shard, retrieval.shards and retrieval.cluster."
    )
    head: HeadSpec = Field(default_factory=HeadSpec)
    trainers: TrainerGroupSpec = Field(default_factory=TrainerGroupSpec)
    retrieval: RetrievalGroupSpec = Field(default_factory=RetrievalGroupSpec)
    storage: StorageSpec
    secrets: list[SecretEnv] = Field(default_factory=list)
    env: list[EnvVar] = Field(default_factory=list)
    ray_job: RayJobOptions = Field(default_factory=RayJobOptions)
    retrieval_cluster_ref: str | None = Field(
        default=None,
        pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
        description="Name of a RagRetrievalCluster in the same namespace: the job runs on its "
        "RayCluster (clusterSelector) and uses its loaded retrieval actors instead of starting "
        "its own. head and retrieval must then be omitted.",
    )


Phase = Literal["Pending", "Running", "Succeeded", "Failed", "Suspended"]


class Condition(_K8s):
    """A Kubernetes-style condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = None


class RagFinetuneJobStatus(_K8s):
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
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)


def parse_spec(raw: Any) -> RagFinetuneJobSpec:
    """Validate a CR's `spec`; SpecError names each bad field as `spec.<path>`."""
    try:
        return RagFinetuneJobSpec.model_validate(raw)
    except ValidationError as err:
        problems = []
        for problem in err.errors():
            path = ".".join(["spec", *(str(part) for part in problem["loc"])])
            problems.append((path, problem["msg"] + _LAYOUT_HINTS.get(path, "")))
        raise SpecError(problems) from err


#: Keys a job YAML may hold that the cluster layout owns on Kubernetes: say where they went.
_LAYOUT_HINTS = {
    "spec.job.scaling": " (on Kubernetes the trainer group decides it: set spec.trainers)",
    "spec.job.retrieval.actors_per_shard": " (set spec.retrieval.replicas and spec.retrieval.actorsPerPod)",
    "spec.job.retrieval.shards": " (set spec.retrieval.shards)",
    "spec.job.retrieval.cluster": " (set spec.retrievalClusterRef to a RagRetrievalCluster)",
}
