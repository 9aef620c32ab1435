"""Pod-level models both custom resources use: the head, placement, trainer pods, the retrieval
group, storage, env and secrets, conditions. camelCase keys, unknown keys rejected."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from .k8s_objects import MAX_PEERS, Affinity, K8sModel, NetworkPolicyPeer
from .k8s_types import (
    DnsSubdomain,
    EnvVarName,
    ExtendedResourceName,
    ImageReference,
    Int32,
    Int64,
    LabelValue,
    MountPath,
    QualifiedName,
    SecretKey,
)
from .pod_override import PodOverride
from .quantities import QUANTITY_PATTERN, parse_quantity


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


#: null for a list or map of Kubernetes objects means none, as in a pod spec (and the API server
#: prunes a null in our resources before the operator sees it).
_NULL_IS_NO_ITEMS = BeforeValidator(lambda value: [] if value is None else value)
_NULL_IS_NO_KEYS = BeforeValidator(lambda value: {} if value is None else value)


class Toleration(K8sModel):
    """A Kubernetes Toleration (the fields a pod spec accepts)."""

    key: QualifiedName | None = Field(default=None, description="Taint key; empty with Exists matches all.")
    operator: Literal["Exists", "Equal", ""] = Field(default="Equal", description="Empty means Equal.")
    value: LabelValue | None = Field(default=None, description="Taint value (with Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute", ""] | None = Field(
        default=None, description="Empty: every effect."
    )
    toleration_seconds: Int64 | None = Field(default=None, ge=0, description="With NoExecute only.")

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if not self.key and self.operator != "Exists":
            raise ValueError(
                "operator must be Exists when key is empty (that tolerates every taint), "
                "e.g. {operator: Exists} or {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}"
            )
        if self.operator == "Exists" and self.value:
            raise ValueError("value must be empty when operator is Exists")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("tolerationSeconds needs effect NoExecute")
        return self


class Placement(K8sModel):
    """Where a group's pods may run, and what a platform team adds to them (`pod`)."""

    node_selector: Annotated[dict[QualifiedName, LabelValue], _NULL_IS_NO_KEYS] = Field(
        default_factory=dict, max_length=64, description="Pod nodeSelector (label keys and values)."
    )
    tolerations: Annotated[list[Toleration], _NULL_IS_NO_ITEMS] = Field(
        default_factory=list, description="Pod tolerations."
    )
    affinity: Affinity | None = Field(
        default=None,
        description="Pod affinity: a Kubernetes Affinity (nodeAffinity, podAffinity, podAntiAffinity), "
        "checked with the API server's rules.",
    )
    pod: PodOverride | None = Field(
        default=None,
        description="Additions to this group's pods: labels, annotations, imagePullSecrets, "
        "priorityClassName, serviceAccountName, runtimeClassName, schedulerName, volumes and "
        "volumeMounts, env and envFrom, securityContext and containerSecurityContext. Keys the "
        "operator or KubeRay own are refused, and so are hostPath volumes.",
    )


class HeadSpec(Placement):
    """The head pod runs the driver only (`num-cpus: 0`): no training, no retrieval. Its
    placement keeps it off GPU nodes; a K8sJobMode submitter pod runs where the head may."""

    cpu: CpuQuantity = Field(default="1", description="CPU request and limit of the head pod.")
    memory: Quantity = Field(default="4Gi", description="Memory request and limit of the head pod.")


class TrainerPodSpec(Placement):
    """One GPU trainer pod: shared by a job's own trainer group and a retrieval cluster's pool."""

    gpus_per_pod: Int32 = Field(
        default=1, ge=0, description="GPUs per trainer pod (0: CPU training). Also Ray's num-gpus."
    )
    gpu_resource: ExtendedResourceName = Field(
        default="nvidia.com/gpu",
        description="Extended resource name of the GPU limit (what the device plugin advertises).",
    )
    workers_per_pod: Int32 | None = Field(
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


class RetrievalGroupSpec(Placement):
    """CPU high-memory pods that host the retrieval actors; each declares `rag_retrieval`."""

    replicas: Int32 = Field(
        default=1, ge=0, description="Retrieval pods (0 only when job.retrieval.mode is not ray)."
    )
    shards: Int32 = Field(
        default=1, ge=1, description="Index shards in the knowledge base; must match its kb.json."
    )
    actors_per_pod: Int32 = Field(
        default=1, ge=1, description="Retrieval actors per pod; each loads one index shard."
    )
    cpu: CpuQuantity = Field(
        default="2", description="CPU request and limit per retrieval pod (>= actorsPerPod x actor_cpus)."
    )
    memory: Quantity | None = Field(
        default=None,
        description="Memory request and limit per retrieval pod. When omitted it is computed and "
        "shown in status.retrievalMemory: ceil_Gi(min(actorsPerPod, shards) x shardBytes x "
        "memoryHeadroom + memoryOverhead), shardBytes = indexSize / shards, or the largest shard "
        "in kb.json (actors map their shard, so those serving the same shard on a pod share it).",
    )
    index_size: Quantity | None = Field(
        default=None,
        description="Total size of the FAISS index (all shards), e.g. 60Gi. When omitted the shard "
        "sizes are read from the knowledge base's kb.json if the operator can read it.",
    )
    memory_headroom: float = Field(
        default=1.5,
        ge=1,
        le=100,
        description="Multiplier on the index bytes held by one pod (covers each actor's private "
        "memory, e.g. an HNSW graph, and a second index version during a swap).",
    )
    memory_overhead: Quantity = Field(
        default="2Gi", description="Fixed memory added per pod (Ray, Python, passages)."
    )


class PvcStorage(K8sModel):
    """A PersistentVolumeClaim (ReadWriteMany for several pods) mounted on every pod."""

    claim_name: DnsSubdomain = Field(description="Name of an existing PersistentVolumeClaim.")
    mount_path: MountPath = Field(default="/data", description="Mount path on every pod.")
    read_only: bool = Field(default=False)


class StorageSpec(K8sModel):
    """Shared storage for model, knowledge base and checkpoints: a PVC or an object-store URI."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["pvc"]}, {"required": ["uri"]}]})

    pvc: PvcStorage | None = Field(default=None, description="Mount this PVC on every pod.")
    uri: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9+.-]*://[^\s]+$",
        description="Object-store prefix (s3://, gs://, ...) for checkpoints and outputs.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> StorageSpec:
        if (self.pvc is None) == (self.uri is None):
            raise ValueError("set exactly one of storage.pvc or storage.uri")
        return self


#: The pod groups a Secret can be given to.
PodGroup = Literal["head", "trainer", "retrieval", "submitter"]


class SecretEnv(K8sModel):
    """An environment variable taken from a Secret key; the value never enters the RayJob."""

    name: EnvVarName = Field(description="Environment variable, e.g. HF_TOKEN.")
    secret_name: DnsSubdomain = Field(description="Secret in the job's namespace.")
    key: SecretKey = Field(description="Key inside the Secret.")
    pods: list[PodGroup] = Field(
        default_factory=lambda: ["head", "trainer"],
        min_length=1,
        description="Pod groups that get it: the driver (head) and the trainers by default; add "
        "retrieval (e.g. object-store credentials for the index) or submitter when they need it.",
    )


class SecuritySpec(K8sModel):
    """How locked down the Ray pods are. Hardened by default; every relaxation is explicit."""

    hardened: bool = Field(
        default=True,
        description="Non-root, no privilege escalation, all capabilities dropped, seccomp RuntimeDefault. "
        "false: no securityContext at all (an image that must run as root).",
    )
    run_as_user: Int32 = Field(
        default=1000,
        ge=1,
        description="UID of the Ray processes (1000: the ray user of rayproject/ray images).",
    )
    run_as_group: Int32 = Field(default=100, ge=0, description="GID of the Ray processes.")
    fs_group: Int32 | None = Field(
        default=100, ge=0, description="Group that owns mounted volumes (changed only when the root differs)."
    )
    automount_service_account_token: bool = Field(
        default=False,
        description="Mount the service account token into the Ray pods (only Ray code that calls the Kubernetes API needs it).",
    )
    network_policy: bool = Field(
        default=True,
        description="Create a NetworkPolicy that admits only the job's own pods to its Ray ports, and the "
        "KubeRay and rag-finetune operators to the dashboard (8265).",
    )
    dashboard_peers: Annotated[list[NetworkPolicyPeer], _NULL_IS_NO_ITEMS] = Field(
        default_factory=list,
        max_length=MAX_PEERS,
        description="Extra NetworkPolicy peers (podSelector / namespaceSelector / ipBlock) allowed to reach the "
        "dashboard, e.g. a monitoring namespace.",
    )


class EnvVar(K8sModel):
    """A plain environment variable on every pod."""

    name: EnvVarName
    value: str = Field(default="")


class RayPodsSpec(K8sModel):
    """What every Ray pod of a resource shares: the image, its service account, storage and env."""

    image: ImageReference = Field(description="Job image (rag_job and Ray), same on every pod.")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(default="IfNotPresent")
    service_account_name: DnsSubdomain | None = Field(
        default=None,
        description="Service account of the Ray pods (its token is mounted only with security.automountServiceAccountToken).",
    )
    storage: StorageSpec
    secrets: list[SecretEnv] = Field(default_factory=list)
    env: list[EnvVar] = Field(default_factory=list)
    security: SecuritySpec = Field(default_factory=SecuritySpec)


class Condition(K8sModel):
    """A Kubernetes-style condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = None
