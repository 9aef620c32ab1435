"""Builders of the Ray pods and worker groups both resources render. Labels come in as
arguments, so a job's pods and a retrieval cluster's pods are built by the same code."""

from __future__ import annotations

import json
from typing import Any

from pydantic.alias_generators import to_camel

from rag_job.config import RETRIEVAL_RESOURCE, TRAINER_RESOURCE

from .errors import Problems
from .models import HeadSpec, Placement, RayPodsSpec, RetrievalGroupSpec, SecuritySpec, TrainerPodSpec
from .names import LABEL_COMPONENT, LABEL_GROUP, STORAGE_VOLUME
from .network import METRICS_PORT
from .pod_override import PodOverride, deep_merge
from .quantities import quantity_str

HEAD_PORTS = [
    {"containerPort": 6379, "name": "gcs-server"},
    {"containerPort": 8265, "name": "dashboard"},
    {"containerPort": 10001, "name": "client"},
    # Ray's metrics agent (KubeRay's default metrics-export-port): named here so the head Service
    # serves it, where the operator reads a job's training progress and Prometheus scrapes.
    {"containerPort": METRICS_PORT, "name": "metrics"},
]
#: Worker group names: the pods' LABEL_GROUP values and KubeRay's groupName.
HEAD_GROUP, TRAINER_GROUP, RETRIEVAL_GROUP = "head", "trainer", "retrieval"
SUBMITTER_GROUP = "submitter"
#: KubeRay's default submitter container resources (we render the template to harden and label it).
SUBMITTER_CPU, SUBMITTER_MEMORY = "500m", "512Mi"


def ray_resources_param(resources: dict[str, int]) -> str:
    """`rayStartParams.resources` in KubeRay's form: a shell-quoted JSON object.

    KubeRay pastes the value after `ray start --resources=`, so the JSON goes inside double
    quotes with its own quotes escaped: '"{\\"rag_trainer\\": 1}"' in YAML.
    """
    return json.dumps(json.dumps(resources, sort_keys=True))


def _env(spec: RayPodsSpec, group: str) -> list[dict[str, Any]]:
    """Plain env on every pod; a Secret only on the groups it is given to (least exposure)."""
    env: list[dict[str, Any]] = [{"name": var.name, "value": var.value} for var in spec.env]
    env += [
        {"name": ref.name, "valueFrom": {"secretKeyRef": {"name": ref.secret_name, "key": ref.key}}}
        for ref in spec.secrets
        if group in ref.pods
    ]
    return env


def security_contexts(security: SecuritySpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod securityContext, container securityContext) of a hardened Ray pod; ({}, {}) when relaxed."""
    if not security.hardened:
        return {}, {}
    pod: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": security.run_as_user,
        "runAsGroup": security.run_as_group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if security.fs_group is not None:
        # OnRootMismatch: no recursive chown of a large volume (an index PVC) on every start.
        pod.update(fsGroup=security.fs_group, fsGroupChangePolicy="OnRootMismatch")
    container = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True}
    return pod, container


def merged_security_contexts(
    security: SecuritySpec, override: PodOverride | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """security_contexts() with a group's override merged over them field by field."""
    pod_context, container_context = security_contexts(security)
    if override is not None and override.security_context is not None:
        pod_context = deep_merge(pod_context, override.security_context.to_kube())
    if override is not None and override.container_security_context is not None:
        container_context = deep_merge(container_context, override.container_security_context.to_kube())
    return pod_context, container_context


def pod_overrides_problems(spec: RayPodsSpec, groups: dict[str, Placement]) -> Problems:
    """What the groups' overrides (`groups`: spec field -> its Placement) cannot do given the rest
    of the spec, each a pod Kubernetes would take but never run as meant:

    - a mount at spec.storage.pvc's mountPath (two mounts at one path; the CRD refuses it too);
    - root with the hardened runAsNonRoot kept: the kubelet refuses to start the container.
    """
    problems: Problems = []
    pvc = spec.storage.pvc
    for group, placement in groups.items():
        override = placement.pod
        if override is None:
            continue
        path = f"spec.{group}.pod"
        problems += [
            (f"{path}.volumeMounts.{index}.mountPath", f"{mount.mount_path} is where spec.storage.pvc is mounted: choose another path")
            for index, mount in enumerate(override.volume_mounts)
            if pvc is not None and mount.mount_path == pvc.mount_path
        ]  # fmt: skip
        pod_context, container_context = merged_security_contexts(spec.security, override)
        effective = {**pod_context, **container_context}
        if effective.get("runAsUser") == 0 and effective.get("runAsNonRoot"):
            problems.append(
                (
                    f"{path}.containerSecurityContext.runAsNonRoot",
                    "runAsUser 0 (root) with runAsNonRoot true (spec.security's hardened default) never "
                    "starts: the kubelet refuses the container; set runAsNonRoot: false in both "
                    "securityContext and containerSecurityContext, or a non-zero runAsUser",
                )
            )
    return problems


def _harden(pod_spec: dict[str, Any], security: SecuritySpec, override: PodOverride | None) -> None:
    """The hardened securityContexts, with a group's override merged over them field by field."""
    pod_context, container_context = merged_security_contexts(security, override)
    if pod_context:
        pod_spec["securityContext"] = pod_context
    if container_context:
        for container in pod_spec["containers"]:
            container["securityContext"] = dict(container_context)
    pod_spec["automountServiceAccountToken"] = security.automount_service_account_token


def apply_pod_override(template: dict[str, Any], override: PodOverride) -> dict[str, Any]:
    """A pod template with a group's override merged in (its securityContexts are `_harden`'s).

    Pure: returns a new template. The operator's labels win over the override's (the model
    refuses their keys anyway); env of the same name replaces the resource-wide entry in place,
    so a group can change a value spec.env sets for all; volumes and mounts are appended.
    """
    metadata = dict(template["metadata"])
    metadata["labels"] = {**override.labels, **metadata["labels"]}
    if override.annotations:
        metadata["annotations"] = {**metadata.get("annotations", {}), **override.annotations}
    spec = dict(template["spec"])
    container = dict(spec["containers"][0])
    spec["containers"] = [container, *spec["containers"][1:]]
    for key in ("priority_class_name", "service_account_name", "runtime_class_name", "scheduler_name"):
        if getattr(override, key) is not None:
            spec[to_camel(key)] = getattr(override, key)
    if override.image_pull_secrets:
        spec["imagePullSecrets"] = [secret.to_kube() for secret in override.image_pull_secrets]
    if override.volumes:
        spec["volumes"] = [*spec.get("volumes", []), *(v.to_kube() for v in override.volumes)]
    if override.volume_mounts:
        mounts = [m.to_kube() for m in override.volume_mounts]
        container["volumeMounts"] = [*container.get("volumeMounts", []), *mounts]
    if override.env:
        env = {var["name"]: var for var in container.get("env", [])}
        env.update({var.name: var.to_kube() for var in override.env})
        container["env"] = list(env.values())
    if override.env_from:
        container["envFrom"] = [source.to_kube() for source in override.env_from]
    return {"metadata": metadata, "spec": spec}


def pod_template(
    labels: dict[str, str],
    spec: RayPodsSpec,
    *,
    group: str,
    container_name: str,
    cpu: str | int,
    memory: str,
    extra_limits: dict[str, str] | None = None,
    placement: Placement | None = None,
    ports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One Ray container with requests == limits, the shared storage and the env/secrets.

    `labels` are the owner's (a job's or a retrieval cluster's); the component and LABEL_GROUP
    labels name the group. The placement's `pod` override is merged in last.
    """
    requests = {"cpu": quantity_str(cpu), "memory": memory}
    container: dict[str, Any] = {
        "name": container_name,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "resources": {"requests": dict(requests), "limits": {**requests, **(extra_limits or {})}},
    }
    if ports:
        container["ports"] = ports
    env = _env(spec, group)
    if env:
        container["env"] = env
    pod_spec: dict[str, Any] = {"containers": [container]}
    pvc = spec.storage.pvc
    if pvc is not None:
        container["volumeMounts"] = [
            {"name": STORAGE_VOLUME, "mountPath": pvc.mount_path, "readOnly": pvc.read_only}
        ]
        pod_spec["volumes"] = [
            {
                "name": STORAGE_VOLUME,
                "persistentVolumeClaim": {"claimName": pvc.claim_name, "readOnly": pvc.read_only},
            }
        ]
    if spec.service_account_name:
        pod_spec["serviceAccountName"] = spec.service_account_name
    override = placement.pod if placement is not None else None
    _harden(pod_spec, spec.security, override)
    if placement is not None:
        if placement.node_selector:
            pod_spec["nodeSelector"] = dict(placement.node_selector)
        if placement.tolerations:
            pod_spec["tolerations"] = [
                t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in placement.tolerations
            ]
        affinity = placement.affinity.to_kube() if placement.affinity is not None else {}
        if affinity:
            pod_spec["affinity"] = affinity
    pod_labels = {**labels, LABEL_COMPONENT: group, LABEL_GROUP: group}
    template = {"metadata": {"labels": pod_labels}, "spec": pod_spec}
    return template if override is None else apply_pod_override(template, override)


def head_group(labels: dict[str, str], spec: RayPodsSpec, head: HeadSpec) -> dict[str, Any]:
    """The head runs the driver only: `num-cpus: 0` keeps every task and actor off it."""
    return {
        "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
        "template": pod_template(
            labels,
            spec,
            group=HEAD_GROUP,
            container_name="ray-head",
            cpu=head.cpu,
            memory=head.memory,
            placement=head,
            ports=HEAD_PORTS,
        ),
    }


def worker_group(
    name: str,
    replicas: int,
    ray_start_params: dict[str, str],
    template: dict[str, Any],
    min_replicas: int | None = None,
    max_replicas: int | None = None,
) -> dict[str, Any]:
    """A worker group; fixed size (min == max == replicas) unless bounds are given."""
    return {
        "groupName": name,
        "replicas": replicas,
        "minReplicas": replicas if min_replicas is None else min_replicas,
        "maxReplicas": replicas if max_replicas is None else max_replicas,
        "rayStartParams": ray_start_params,
        "template": template,
    }


def trainer_group(
    labels: dict[str, str],
    spec: RayPodsSpec,
    trainers: TrainerPodSpec,
    workers_per_pod: int,
    replicas: int,
    max_replicas: int | None = None,
) -> dict[str, Any]:
    """Trainer pods: the GPU limit and Ray's num-gpus agree; `rag_trainer` = workers per pod."""
    gpu_limits = {trainers.gpu_resource: str(trainers.gpus_per_pod)} if trainers.gpus_per_pod else {}
    template = pod_template(
        labels,
        spec,
        group=TRAINER_GROUP,
        container_name="ray-worker",
        cpu=trainers.cpu,
        memory=trainers.memory,
        extra_limits=gpu_limits,
        placement=trainers,
    )
    params = {
        "num-gpus": str(trainers.gpus_per_pod),
        "resources": ray_resources_param({TRAINER_RESOURCE: workers_per_pod}),
    }
    return worker_group(TRAINER_GROUP, replicas, params, template, max_replicas=max_replicas)


def retrieval_group(
    labels: dict[str, str], spec: RayPodsSpec, retrieval: RetrievalGroupSpec, memory: str
) -> dict[str, Any]:
    """Fixed-size CPU high-memory pods: `rag_retrieval` = actors per pod, memory sized for the index."""
    template = pod_template(
        labels,
        spec,
        group=RETRIEVAL_GROUP,
        container_name="ray-worker",
        cpu=retrieval.cpu,
        memory=memory,
        placement=retrieval,
    )
    params = {
        "num-gpus": "0",
        "resources": ray_resources_param({RETRIEVAL_RESOURCE: retrieval.actors_per_pod}),
    }
    return worker_group(RETRIEVAL_GROUP, retrieval.replicas, params, template)


def submitter_template(labels: dict[str, str], spec: RayPodsSpec, head: HeadSpec) -> dict[str, Any]:
    """The K8sJobMode submitter pod (`ray job submit`): hardened and labelled like the Ray pods.

    KubeRay fills in the command when the container has none. Rendered so the submitter carries
    our labels (the NetworkPolicy admits it to the dashboard), no service account token and the
    same securityContext as the Ray pods; it may run where the head may (not on GPU nodes). It
    runs the head's image, so it takes the head's pod override but its volumes and env
    (PodOverride.for_submitter): pull secrets, labels, priority, service account included.
    """
    if head.pod is not None:
        head = head.model_copy(update={"pod": head.pod.for_submitter()})
    template = pod_template(
        labels, spec, group=SUBMITTER_GROUP, container_name="ray-job-submitter", cpu=SUBMITTER_CPU,
        memory=SUBMITTER_MEMORY, placement=head,
    )  # fmt: skip
    container = template["spec"]["containers"][0]
    container["resources"]["requests"] = {"cpu": SUBMITTER_CPU, "memory": "200Mi"}
    container.pop("volumeMounts", None)  # `ray job submit` reads nothing from storage
    template["spec"].pop("volumes", None)
    template["spec"]["restartPolicy"] = "Never"
    return template
