"""A group's `pod` override: what a platform team adds to the Ray pods of one group (labels,
annotations, image pull secrets, priority and runtime class, scheduler, service account,
volumes and mounts, env and envFrom, security contexts). pods.apply_pod_override merges it over
what the operator renders.

Each object is a Kubernetes v1 type with the fields we offer (a subset, unknown keys refused with
an example: common/k8s_objects.KubeObject). Refused, each with its reason in the message: keys
the operator or KubeRay own (labels and annotations, volume names, env names; a pod whose wiring
a user overwrote would fail in ways far from the cause) and hostPath volumes (node filesystem
access). The checks that need the rest of the spec (a mount over the storage mount, root with the
hardened runAsNonRoot) are pods.pod_overrides_problems, which the plans call. Lists are bounded
for the CRD's CEL cost estimate.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from rag_job.config import CONFIG_ENV_VAR, SERVICE_CONFIG_ENV_VAR

from . import names
from .k8s_objects import MAX_LABELS, K8sModel, KubeObject
from .k8s_types import (
    DnsLabel,
    DnsSubdomain,
    EnvVarName,
    Int64,
    LabelValue,
    MountPath,
    QualifiedName,
    SecretKey,
    k8s_string,
)
from .quantities import QUANTITY_PATTERN

MAX_VOLUMES = 32
MAX_ENV = 64
MAX_ENV_FROM = 16
MAX_PULL_SECRETS = 16
MAX_ITEMS = 64
#: Env values and annotation values (Kubernetes caps all annotations together at 256 KiB).
MAX_VALUE_LENGTH = 32768

#: Label keys on every pod the operator renders (names.resource_labels and the group label).
OWNED_LABELS = frozenset(
    {
        names.LABEL_NAME,
        names.LABEL_INSTANCE,
        names.LABEL_COMPONENT,
        names.LABEL_MANAGED_BY,
        names.LABEL_JOB,
        names.LABEL_GROUP,
        names.LABEL_RETRIEVAL_CLUSTER,
    }
)
#: Key prefixes (and their subdomains) of labels and annotations others own: KubeRay selects its
#: pods by `ray.io/` labels and reads `ray.io/` annotations; `rag.finetune.dev/` is ours; Kueue
#: manages its own on the pods it admits.
OWNED_PREFIXES = {
    names.RAY_GROUP: "KubeRay's (it selects and configures its pods by them)",
    names.GROUP: "the rag-finetune operator's",
    "kueue.x-k8s.io": "Kueue's",
}
#: Volumes the pods already have: ours (spec.storage), KubeRay's /dev/shm and its autoscaler's logs.
OWNED_VOLUMES = {
    names.STORAGE_VOLUME: "the operator's volume for spec.storage",
    "shared-mem": "KubeRay's /dev/shm volume",
    "ray-logs": "KubeRay's log volume for the autoscaler",
}
#: Ray's session directory: KubeRay mounts its `ray-logs` volume there when the autoscaler runs.
RAY_SESSION_DIR = "/tmp/ray"
#: Env the job's wiring depends on: our config variables (in the runtime env) and what KubeRay sets
#: on the Ray containers and the submitter (the head address, the start command, the node type).
OWNED_ENV = {
    CONFIG_ENV_VAR: "the operator passes the JobConfig in it",
    SERVICE_CONFIG_ENV_VAR: "the operator passes the retrieval service config in it",
    **dict.fromkeys(
        (
            "RAY_ADDRESS",
            "RAY_IP",
            "FQ_RAY_IP",
            "RAY_PORT",
            "RAY_CLUSTER_NAME",
            "RAY_NODE_TYPE_NAME",
            "RAY_CLOUD_INSTANCE_ID",
            "RAY_DASHBOARD_ADDRESS",
            "RAY_JOB_SUBMISSION_ID",
            "KUBERAY_GEN_RAY_START_CMD",
        ),
        "KubeRay sets it to wire the pod into its Ray cluster",
    ),
}


def _owner_of(key: str) -> str | None:
    """Who owns a label or annotation key a user may not set, or None."""
    if key in OWNED_LABELS:
        return "the rag-finetune operator's (it selects the pods by it)"
    prefix = key.split("/", 1)[0] if "/" in key else ""
    for domain, owner in OWNED_PREFIXES.items():
        if prefix == domain or prefix.endswith("." + domain):
            return owner
    return None


# --- paths and names ------------------------------------------------------------------------------

#: A relative path with no `..` element (Kubernetes' rule for a subPath).
_SEGMENT = r"([^/]|[^./][^/]|\.[^./]|[^/]{3,})"
RELATIVE_PATH = rf"^{_SEGMENT}(/{_SEGMENT})*$"
RelativePath = k8s_string(RELATIVE_PATH, 1024, "a relative path without '..' elements", "models/base")
#: A file a key is projected to: a relative path that also does not start with `..` (Kubernetes'
#: rule for KeyToPath and token paths).
ITEM_PATH = rf"^([^./][^/]*|\.|\.[^./][^/]*)(/{_SEGMENT})*$"
ItemPath = k8s_string(
    ITEM_PATH, 1024, "a relative path not starting with '..', without '..' elements", "conf/a.yaml"
)
#: A Linux capability as a container's securityContext names it (with or without CAP_), or ALL.
Capability = k8s_string(r"^[A-Z][A-Z0-9_]*$", 64, "a capability name (upper case)", "NET_BIND_SERVICE")
#: An emptyDir's size: a Kubernetes quantity, the same grammar as spec.*.memory.
SizeLimit = k8s_string(QUANTITY_PATTERN, 64, "a quantity", "1Gi")
#: File mode bits of a projected file: 0 to 0777.
FileMode = Annotated[int, Field(ge=0, le=0o777, description="Mode bits, 0 to 0777 (511).")]


class LocalObjectReference(KubeObject):
    """An object in the pod's namespace, by name (an image pull Secret)."""

    kube_type = "LocalObjectReference"
    example = "{name: registry-credentials}"

    name: DnsSubdomain


class KeyToPath(KubeObject):
    """One key of a ConfigMap or Secret, as a file under the mount."""

    kube_type = "KeyToPath"
    example = "{key: config.yaml, path: config.yaml}"

    key: SecretKey
    path: ItemPath
    mode: FileMode | None = None


def _items() -> Any:
    """The `items` field of a ConfigMap or Secret source (a new FieldInfo for each model)."""
    return Field(default=None, max_length=MAX_ITEMS, description="Keys to project (all keys when omitted).")


def _one_of_schema(schema: dict[str, Any], cls: type[KubeUnion]) -> None:
    """The CRD's form of a union: exactly one member key present (a pruned unknown source fails it)."""
    schema["oneOf"] = [{"required": [cls.model_fields[name].alias or name]} for name in cls.members]


class KubeUnion(KubeObject):
    """A Kubernetes union (a volume's source, an env var's source): exactly one of `members` set,
    checked here and by the CRD (oneOf)."""

    #: The member fields (Python names), in the order the message lists them.
    members: ClassVar[tuple[str, ...]]
    model_config = ConfigDict(json_schema_extra=_one_of_schema)  # type: ignore[typeddict-item]

    @model_validator(mode="after")
    def _exactly_one(self) -> KubeUnion:
        if sum(getattr(self, name) is not None for name in self.members) != 1:
            keys = ", ".join(type(self).model_fields[name].alias or name for name in self.members)
            raise ValueError(f"set exactly one of {keys}, e.g. {self.example}")
        return self


# --- volumes (v1.Volume, the sources Ray pods need) ----------------------------------------------


class StorageRequest(K8sModel):
    """A claim's resource list: its size only."""

    storage: SizeLimit = Field(description="The size of the volume, e.g. 100Gi.")


class VolumeResourceRequirements(KubeObject):
    kube_type = "VolumeResourceRequirements"
    example = "{requests: {storage: 100Gi}}"

    requests: StorageRequest


class PersistentVolumeClaimSpec(KubeObject):
    """The claim an ephemeral volume creates with the pod (Filesystem mode: it is mounted)."""

    kube_type = "PersistentVolumeClaimSpec"
    example = "{accessModes: [ReadWriteOnce], storageClassName: local-nvme, resources: {requests: {storage: 100Gi}}}"

    access_modes: list[Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]] = Field(
        min_length=1, max_length=4
    )
    storage_class_name: DnsSubdomain | None = None
    resources: VolumeResourceRequirements

    @field_validator("access_modes")
    @classmethod
    def _once_pod_alone(cls, modes: list[str]) -> list[str]:
        if "ReadWriteOncePod" in modes and len(modes) > 1:
            raise ValueError("ReadWriteOncePod cannot be combined with other access modes (Kubernetes' rule)")
        return modes


class ClaimMetadata(KubeObject):
    """Labels and annotations of the claim an ephemeral volume creates."""

    kube_type = "ObjectMeta"
    example = "{labels: {team: ml}}"

    labels: dict[QualifiedName, LabelValue] | None = Field(default=None, max_length=MAX_LABELS)
    annotations: dict[QualifiedName, Annotated[str, Field(max_length=MAX_VALUE_LENGTH)]] | None = Field(
        default=None, max_length=MAX_LABELS
    )


class PersistentVolumeClaimTemplate(KubeObject):
    kube_type = "PersistentVolumeClaimTemplate"
    example = "{spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 100Gi}}}}"

    metadata: ClaimMetadata | None = None
    spec: PersistentVolumeClaimSpec


class EphemeralVolumeSource(KubeObject):
    """A volume claimed with the pod and deleted with it (scratch space on a local-disk class)."""

    kube_type = "EphemeralVolumeSource"
    example = (
        "{volumeClaimTemplate: {spec: {accessModes: [ReadWriteOnce], storageClassName: local-nvme, "
        "resources: {requests: {storage: 100Gi}}}}}"
    )

    volume_claim_template: PersistentVolumeClaimTemplate


class ConfigMapProjection(KubeObject):
    """A ConfigMap's keys as files (a projected volume's source; with defaultMode, a volume)."""

    kube_type = "ConfigMapProjection"
    example = "{name: ray-config}"

    name: DnsSubdomain
    items: list[KeyToPath] | None = _items()
    optional: bool | None = None


class SecretProjection(ConfigMapProjection):
    """A Secret's keys as files in a projected volume."""

    kube_type = "SecretProjection"
    example = "{name: tls-client}"


class ConfigMapVolumeSource(ConfigMapProjection):
    kube_type = "ConfigMapVolumeSource"

    default_mode: FileMode | None = None


class PersistentVolumeClaimVolumeSource(KubeObject):
    kube_type = "PersistentVolumeClaimVolumeSource"
    example = "{claimName: models}"

    claim_name: DnsSubdomain
    read_only: bool | None = None


class SecretVolumeSource(KubeObject):
    kube_type = "SecretVolumeSource"
    example = "{secretName: tls-client}"

    secret_name: DnsSubdomain
    items: list[KeyToPath] | None = _items()
    default_mode: FileMode | None = None
    optional: bool | None = None


class EmptyDirVolumeSource(KubeObject):
    kube_type = "EmptyDirVolumeSource"
    example = "{medium: Memory, sizeLimit: 1Gi}"

    medium: Literal["", "Memory"] | None = None
    size_limit: SizeLimit | None = None


class CSIVolumeSource(KubeObject):
    kube_type = "CSIVolumeSource"
    example = (
        "{driver: secrets-store.csi.k8s.io, readOnly: true, volumeAttributes: {secretProviderClass: rag}}"
    )

    driver: k8s_string(
        r"^[a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?$", 63, "a CSI driver name", "secrets-store.csi.k8s.io"
    )
    read_only: bool | None = None
    fs_type: str | None = Field(default=None, max_length=63)
    volume_attributes: (
        dict[Annotated[str, Field(max_length=253)], Annotated[str, Field(max_length=4096)]] | None
    ) = Field(default=None, max_length=MAX_ITEMS)
    node_publish_secret_ref: LocalObjectReference | None = None


class ServiceAccountTokenProjection(KubeObject):
    """A bound token for another audience (workload identity to an object store, say)."""

    kube_type = "ServiceAccountTokenProjection"
    example = "{audience: sts.amazonaws.com, expirationSeconds: 3600, path: token}"

    audience: str | None = Field(default=None, max_length=253)
    expiration_seconds: Int64 | None = Field(
        default=None, ge=600, le=2**32, description="600 (10 minutes) to 2^32."
    )
    path: ItemPath


class VolumeProjection(KubeUnion):
    """One source of a projected volume: exactly one of configMap, secret, serviceAccountToken."""

    kube_type = "VolumeProjection"
    example = "{serviceAccountToken: {audience: sts.amazonaws.com, path: token}}"
    members = ("config_map", "secret", "service_account_token")

    config_map: ConfigMapProjection | None = None
    secret: SecretProjection | None = None
    service_account_token: ServiceAccountTokenProjection | None = None


class ProjectedVolumeSource(KubeObject):
    kube_type = "ProjectedVolumeSource"
    example = "{sources: [{serviceAccountToken: {audience: sts.amazonaws.com, path: token}}]}"

    sources: list[VolumeProjection] = Field(min_length=1, max_length=MAX_ITEMS)
    default_mode: FileMode | None = None


class Volume(KubeUnion):
    """A pod volume: a name and exactly one source (hostPath is refused: node filesystem access)."""

    kube_type = "Volume"
    example = "{name: models, persistentVolumeClaim: {claimName: models, readOnly: true}}"
    members = (
        "persistent_volume_claim",
        "config_map",
        "secret",
        "empty_dir",
        "csi",
        "projected",
        "ephemeral",
    )

    name: DnsLabel = Field(description="Volume name, unique in the pod; mounted by volumeMounts[].name.")
    persistent_volume_claim: PersistentVolumeClaimVolumeSource | None = None
    config_map: ConfigMapVolumeSource | None = None
    secret: SecretVolumeSource | None = None
    empty_dir: EmptyDirVolumeSource | None = None
    csi: CSIVolumeSource | None = None
    projected: ProjectedVolumeSource | None = None
    ephemeral: EphemeralVolumeSource | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_host_path(cls, value: Any) -> Any:
        if isinstance(value, dict) and "hostPath" in value:
            raise ValueError(
                "hostPath is refused: it gives the pod the node's filesystem (another tenant's data, the "
                "container runtime's socket); use a persistentVolumeClaim, e.g. "
                "{name: models, persistentVolumeClaim: {claimName: models}}"
            )
        return value

    @field_validator("name")
    @classmethod
    def _not_owned(cls, name: str) -> str:
        return _not_an_owned_volume(name)


def _not_an_owned_volume(name: str) -> str:
    if name in OWNED_VOLUMES:
        raise ValueError(f"{name!r} is {OWNED_VOLUMES[name]}: choose another volume name, e.g. models")
    return name


class VolumeMount(KubeObject):
    """Where the Ray container mounts one of the override's volumes."""

    kube_type = "VolumeMount"
    example = "{name: models, mountPath: /models, readOnly: true}"

    name: DnsLabel = Field(description="A volume of this override's volumes.")
    mount_path: MountPath = Field(description="Absolute path in the container; not spec.storage's.")
    read_only: bool | None = None
    sub_path: RelativePath | None = Field(default=None, description="A path inside the volume to mount.")

    @field_validator("name")
    @classmethod
    def _not_owned(cls, name: str) -> str:
        return _not_an_owned_volume(name)

    @field_validator("mount_path")
    @classmethod
    def _not_rays_session_dir(cls, path: str) -> str:
        if path == RAY_SESSION_DIR:
            raise ValueError(
                f"{path} is Ray's session directory, where KubeRay mounts its own log volume beside "
                "the autoscaler: mount somewhere else, e.g. /scratch"
            )
        return path


# --- env (v1.EnvVar with secret, ConfigMap and field references; v1.EnvFromSource) -----------------


class KeySelector(KubeObject):
    """A key of a Secret or ConfigMap in the pod's namespace."""

    kube_type = "SecretKeySelector"
    example = "{name: hf, key: token}"

    name: DnsSubdomain
    key: SecretKey
    optional: bool | None = None


class ObjectFieldSelector(KubeObject):
    """A field of the pod itself (its name, namespace, node, IP)."""

    kube_type = "ObjectFieldSelector"
    example = "{fieldPath: status.podIP}"

    field_path: Literal[
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "spec.nodeName",
        "spec.serviceAccountName",
        "status.hostIP",
        "status.hostIPs",
        "status.podIP",
        "status.podIPs",
    ]
    api_version: Literal["v1"] | None = None


class EnvVarSource(KubeUnion):
    """Exactly one of secretKeyRef, configMapKeyRef, fieldRef."""

    kube_type = "EnvVarSource"
    example = "{secretKeyRef: {name: hf, key: token}}"
    members = ("secret_key_ref", "config_map_key_ref", "field_ref")

    secret_key_ref: KeySelector | None = None
    config_map_key_ref: KeySelector | None = None
    field_ref: ObjectFieldSelector | None = None


class PodEnvVar(KubeObject):
    """An environment variable of the group's Ray container: a value or a valueFrom."""

    kube_type = "EnvVar"
    example = "{name: WANDB_PROJECT, value: rag}"

    name: EnvVarName
    value: str | None = Field(default=None, max_length=MAX_VALUE_LENGTH)
    value_from: EnvVarSource | None = None

    @field_validator("name")
    @classmethod
    def _not_owned(cls, name: str) -> str:
        if name in OWNED_ENV:
            raise ValueError(
                f"{name} is set by the operator or KubeRay ({OWNED_ENV[name]}): choose another name"
            )
        return name

    @model_validator(mode="after")
    def _value_or_source(self) -> PodEnvVar:
        if self.value is not None and self.value_from is not None:
            raise ValueError(f"set value or valueFrom, not both, e.g. {self.example}")
        return self


class EnvFromReference(KubeObject):
    """A ConfigMap or Secret whose every key becomes an environment variable."""

    kube_type = "ConfigMapEnvSource"
    example = "{name: ray-env}"

    name: DnsSubdomain
    optional: bool | None = None


class EnvFromSource(KubeUnion):
    """Exactly one of configMapRef, secretRef; keys may be given a prefix. Explicit env wins over it."""

    kube_type = "EnvFromSource"
    example = "{configMapRef: {name: ray-env}, prefix: RAG_}"
    members = ("config_map_ref", "secret_ref")

    config_map_ref: EnvFromReference | None = None
    secret_ref: EnvFromReference | None = None
    prefix: EnvVarName | None = None


# --- security contexts (v1.PodSecurityContext, v1.SecurityContext) ---------------------------------


class SeccompProfile(KubeObject):
    kube_type = "SeccompProfile"
    example = "{type: RuntimeDefault}"

    type: Literal["RuntimeDefault", "Localhost", "Unconfined"]
    localhost_profile: str | None = Field(default=None, min_length=1, max_length=4096)

    @model_validator(mode="after")
    def _profile_with_localhost(self) -> SeccompProfile:
        if (self.type == "Localhost") != (self.localhost_profile is not None):
            raise ValueError(
                "localhostProfile is required with type Localhost and not allowed otherwise, e.g. "
                "{type: Localhost, localhostProfile: profiles/ray.json}"
            )
        return self


class Capabilities(KubeObject):
    kube_type = "Capabilities"
    example = "{add: [NET_BIND_SERVICE]}"

    add: list[Capability] | None = Field(default=None, max_length=MAX_ITEMS)
    drop: list[Capability] | None = Field(default=None, max_length=MAX_ITEMS)


Id = Annotated[Int64, Field(ge=0)]
_RELAXES = (
    "Merged field by field over the hardened defaults of spec.security (a field set here replaces "
    "the default's; capabilities.add joins the default drop of ALL): setting runAsUser 0, "
    "runAsNonRoot false or adding capabilities relaxes that hardening for this group."
)


class PodSecurityContext(KubeObject):
    """The pod-level securityContext fields offered."""

    kube_type = "PodSecurityContext"
    example = "{runAsUser: 1001, fsGroup: 1001}"

    run_as_user: Id | None = None
    run_as_group: Id | None = None
    run_as_non_root: bool | None = None
    fs_group: Id | None = None
    fs_group_change_policy: Literal["OnRootMismatch", "Always"] | None = None
    supplemental_groups: list[Id] | None = Field(default=None, max_length=MAX_ITEMS)
    seccomp_profile: SeccompProfile | None = None


class SecurityContext(KubeObject):
    """The container-level securityContext fields offered (no privileged: no Ray pod needs it)."""

    kube_type = "SecurityContext"
    example = "{readOnlyRootFilesystem: true}"

    run_as_user: Id | None = None
    run_as_group: Id | None = None
    run_as_non_root: bool | None = None
    allow_privilege_escalation: bool | None = None
    capabilities: Capabilities | None = None
    read_only_root_filesystem: bool | None = None
    seccomp_profile: SeccompProfile | None = None

    @model_validator(mode="after")
    def _sys_admin_needs_escalation(self) -> SecurityContext:
        added = (
            {cap.removeprefix("CAP_") for cap in (self.capabilities.add or [])}
            if self.capabilities
            else set()
        )
        if "SYS_ADMIN" in added and self.allow_privilege_escalation is not True:
            raise ValueError(
                "SYS_ADMIN needs allowPrivilegeEscalation: true set here (Kubernetes refuses it with the "
                "hardened default false)"
            )
        return self


# --- the override -------------------------------------------------------------------------------------


def _owned_keys_refused(values: dict[str, str]) -> dict[str, str]:
    for key in values:
        owner = _owner_of(key)
        if owner is not None:
            raise ValueError(f"key {key!r} is {owner}: choose another key, e.g. team: ml")
    return values


def _unique(items: list[Any], attribute: str, what: str) -> list[Any]:
    seen: set[str] = set()
    for index, item in enumerate(items):
        value = getattr(item, attribute)
        if value in seen:
            raise ValueError(f"item {index}: {what} {value!r} appears twice")
        seen.add(value)
    return items


AnnotationValue = Annotated[str, Field(max_length=MAX_VALUE_LENGTH)]


class PodOverride(KubeObject):
    """Per-group additions to the Ray pods, merged over what the operator renders (see pods.py)."""

    kube_type = "pod override"
    example = "{labels: {team: ml}, priorityClassName: training, imagePullSecrets: [{name: registry}]}"

    labels: Annotated[dict[QualifiedName, LabelValue], AfterValidator(_owned_keys_refused)] = Field(
        default_factory=dict,
        max_length=MAX_LABELS,
        description="Pod labels, added to the operator's (app.kubernetes.io/name, instance, component, "
        "managed-by, rag.finetune.dev/*, ray.io/* and kueue.x-k8s.io/* keys are refused).",
    )
    annotations: Annotated[dict[QualifiedName, AnnotationValue], AfterValidator(_owned_keys_refused)] = Field(
        default_factory=dict,
        max_length=MAX_LABELS,
        description="Pod annotations (rag.finetune.dev/*, ray.io/* and kueue.x-k8s.io/* keys are refused).",
    )
    image_pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list,
        max_length=MAX_PULL_SECRETS,
        description="Secrets to pull spec.image with. The head's also go to the K8sJobMode submitter "
        "pod, which runs the same image.",
    )
    priority_class_name: DnsSubdomain | None = Field(default=None, description="PriorityClass of the pods.")
    service_account_name: DnsSubdomain | None = Field(
        default=None, description="Service account of this group's pods; replaces spec.serviceAccountName."
    )
    runtime_class_name: DnsSubdomain | None = Field(
        default=None, description="RuntimeClass of the pods (e.g. nvidia, gvisor)."
    )
    scheduler_name: DnsSubdomain | None = Field(
        default=None,
        description="Scheduler of the pods (e.g. a gang scheduler); default-scheduler when omitted.",
    )
    volumes: list[Volume] = Field(
        default_factory=list,
        max_length=MAX_VOLUMES,
        description="Extra volumes: persistentVolumeClaim, configMap, secret, emptyDir, csi, projected or "
        "ephemeral "
        "(hostPath is refused: it exposes the node's filesystem).",
    )
    volume_mounts: list[VolumeMount] = Field(
        default_factory=list,
        max_length=MAX_VOLUMES,
        validate_default=True,
        description="Mounts of those volumes in the Ray container (not at spec.storage's mountPath).",
    )
    env: list[PodEnvVar] = Field(
        default_factory=list,
        max_length=MAX_ENV,
        description="Env of this group's Ray container; a name also in spec.env or spec.secrets replaces "
        "it for this group. Names the operator or KubeRay set (RAY_ADDRESS, RAG_JOB_CONFIG, ...) are refused.",
    )
    env_from: list[EnvFromSource] = Field(
        default_factory=list,
        max_length=MAX_ENV_FROM,
        description="ConfigMaps and Secrets whose keys become env (explicit env, the operator's and "
        "KubeRay's included, wins over them).",
    )
    security_context: PodSecurityContext | None = Field(
        default=None, description=f"Pod securityContext. {_RELAXES}"
    )
    container_security_context: SecurityContext | None = Field(
        default=None, description=f"The Ray container's securityContext. {_RELAXES}"
    )

    @field_validator("volumes")
    @classmethod
    def _unique_volumes(cls, volumes: list[Volume]) -> list[Volume]:
        return _unique(volumes, "name", "volume name")

    @field_validator("env")
    @classmethod
    def _unique_env(cls, env: list[PodEnvVar]) -> list[PodEnvVar]:
        return _unique(env, "name", "env name")

    @field_validator("volume_mounts")
    @classmethod
    def _mounts_of_our_volumes(cls, mounts: list[VolumeMount], info: ValidationInfo) -> list[VolumeMount]:
        volumes = {volume.name for volume in info.data.get("volumes") or []}
        for index, mount in enumerate(mounts):
            if mount.name not in volumes:
                raise ValueError(
                    f"item {index}: {mount.name!r} is not one of this pod override's volumes "
                    f"({', '.join(sorted(volumes)) or 'none'}): add it to volumes, e.g. "
                    "{volumes: [{name: models, persistentVolumeClaim: {claimName: models}}], "
                    "volumeMounts: [{name: models, mountPath: /models}]}"
                )
        return _unique(mounts, "mount_path", "mountPath")

    def for_submitter(self) -> PodOverride:
        """What the head's override gives the K8sJobMode submitter pod: all but volumes and env
        (`ray job submit` reads no storage, and each Secret reaches only the pods that need it)."""
        return self.model_copy(update={"volumes": [], "volume_mounts": [], "env": [], "env_from": []})


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged into a copy of `base`: nested mappings field by field, anything else replaced."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
