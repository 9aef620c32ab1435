"""Pure functions: a validated RagFinetuneJob spec -> a KubeRay `ray.io/v1` RayJob manifest.

Same input, same output (no clock, no randomness): names and labels are deterministic, so a
restarted controller finds what it created and golden files can pin the output.
The RagRetrievalCluster renderer (render_cluster.py) reuses `pod_template` and `head_group`.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from rag_job.config import CONFIG_ENV_VAR, RETRIEVAL_RESOURCE, TRAINER_RESOURCE

from . import names
from .plan import JobPlan
from .quantities import quantity_str
from .spec import RagFinetuneJobSpec, TrainerGroupSpec

ENTRYPOINT = "python -m rag_job train"
STORAGE_VOLUME = "rag-storage"
HEAD_PORTS = [
    {"containerPort": 6379, "name": "gcs-server"},
    {"containerPort": 8265, "name": "dashboard"},
    {"containerPort": 10001, "name": "client"},
]


def labels(job_name: str, component: str) -> dict[str, str]:
    """The labels every rendered object carries; LABEL_MANAGED_BY selects our RayJobs."""
    return {
        names.LABEL_NAME: "rag-finetune",
        names.LABEL_INSTANCE: job_name,
        names.LABEL_COMPONENT: component,
        names.LABEL_MANAGED_BY: names.OPERATOR_NAME,
        names.LABEL_JOB: job_name,
    }


def ray_resources_param(resources: dict[str, int]) -> str:
    """`rayStartParams.resources` in KubeRay's form: a shell-quoted JSON object.

    KubeRay pastes the value after `ray start --resources=`, so the JSON goes inside double
    quotes with its own quotes escaped: '"{\\"rag_trainer\\": 1}"' in YAML.
    """
    return json.dumps(json.dumps(resources, sort_keys=True))


def spec_as_written(spec: RagFinetuneJobSpec) -> dict[str, Any]:
    """The fields the user set (no defaults): an operator upgrade that adds a default is no change."""
    return spec.model_dump(mode="json", by_alias=True, exclude_unset=True)


def applied_spec(spec: RagFinetuneJobSpec) -> str:
    """`spec_as_written` as compact JSON: stored on the RayJob to detect later changes."""
    return json.dumps(spec_as_written(spec), sort_keys=True, separators=(",", ":"))


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (runtimeEnvYAML) as literal blocks, so the output stays readable."""


def _str_presenter(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_presenter)


def to_yaml(manifest: dict[str, Any]) -> str:
    """A manifest as YAML in the key order it was built (what `render` prints)."""
    return yaml.dump(manifest, Dumper=_BlockDumper, sort_keys=False, width=100)


def _env(spec: RagFinetuneJobSpec) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": var.name, "value": var.value} for var in spec.env]
    env += [
        {"name": ref.name, "valueFrom": {"secretKeyRef": {"name": ref.secret_name, "key": ref.key}}}
        for ref in spec.secrets
    ]
    return env


def pod_template(
    job_name: str,
    spec: RagFinetuneJobSpec | Any,
    *,
    group: str,
    container_name: str,
    cpu: str | int,
    memory: str,
    extra_limits: dict[str, str] | None = None,
    placement: TrainerGroupSpec | Any = None,
    ports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One Ray container with requests == limits, the shared storage and the env/secrets."""
    requests = {"cpu": quantity_str(cpu), "memory": memory}
    container: dict[str, Any] = {
        "name": container_name,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "resources": {"requests": dict(requests), "limits": {**requests, **(extra_limits or {})}},
    }
    if ports:
        container["ports"] = ports
    env = _env(spec)
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
    if placement is not None:
        if placement.node_selector:
            pod_spec["nodeSelector"] = dict(placement.node_selector)
        if placement.tolerations:
            pod_spec["tolerations"] = [dict(t) for t in placement.tolerations]
        if placement.affinity:
            pod_spec["affinity"] = dict(placement.affinity)
    pod_labels = {**labels(job_name, group), names.LABEL_GROUP: group}
    return {"metadata": {"labels": pod_labels}, "spec": pod_spec}


def head_group(job_name: str, spec: RagFinetuneJobSpec | Any) -> dict[str, Any]:
    """The head runs the driver only: `num-cpus: 0` keeps every task and actor off it."""
    return {
        "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
        "template": pod_template(
            job_name,
            spec,
            group="head",
            container_name="ray-head",
            cpu=spec.head.cpu,
            memory=spec.head.memory,
            ports=HEAD_PORTS,
        ),
    }


def worker_group(
    name: str, replicas: int, ray_start_params: dict[str, str], template: dict[str, Any]
) -> dict:
    """A fixed-size worker group (no autoscaling: min == max == replicas)."""
    return {
        "groupName": name,
        "replicas": replicas,
        "minReplicas": replicas,
        "maxReplicas": replicas,
        "rayStartParams": ray_start_params,
        "template": template,
    }


def trainer_group(job_name: str, spec: RagFinetuneJobSpec, plan: JobPlan) -> dict[str, Any]:
    """GPU pods: the GPU limit and Ray's num-gpus agree; `rag_trainer` = workers per pod."""
    trainers = spec.trainers
    gpu_limits = {trainers.gpu_resource: str(trainers.gpus_per_pod)} if trainers.gpus_per_pod else {}
    template = pod_template(
        job_name,
        spec,
        group="trainer",
        container_name="ray-worker",
        cpu=trainers.cpu,
        memory=trainers.memory,
        extra_limits=gpu_limits,
        placement=trainers,
    )
    params = {
        "num-gpus": str(trainers.gpus_per_pod),
        "resources": ray_resources_param({TRAINER_RESOURCE: plan.workers_per_trainer_pod}),
    }
    return worker_group("trainer", trainers.replicas, params, template)


def retrieval_group(job_name: str, spec: RagFinetuneJobSpec, plan: JobPlan) -> dict[str, Any]:
    """CPU high-memory pods: `rag_retrieval` = actors per pod, memory sized for the index."""
    retrieval = spec.retrieval
    template = pod_template(
        job_name,
        spec,
        group="retrieval",
        container_name="ray-worker",
        cpu=retrieval.cpu,
        memory=plan.retrieval_memory,
        placement=retrieval,
    )
    params = {
        "num-gpus": "0",
        "resources": ray_resources_param({RETRIEVAL_RESOURCE: retrieval.actors_per_pod}),
    }
    return worker_group("retrieval", retrieval.replicas, params, template)


def runtime_env_yaml(plan: JobPlan) -> str:
    """The JobConfig travels as JSON in RAG_JOB_CONFIG; `python -m rag_job train` reads it."""
    return yaml.safe_dump({"env_vars": {CONFIG_ENV_VAR: plan.job_config.to_json()}}, width=1 << 16)


def render_rayjob(
    job_name: str, namespace: str | None, spec: RagFinetuneJobSpec, plan: JobPlan
) -> dict[str, Any]:
    """The RayJob for one RagFinetuneJob (ownerReferences are added by the controller)."""
    ray_job = spec.ray_job
    metadata: dict[str, Any] = {"name": names.rayjob_name(job_name)}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = labels(job_name, "rayjob")
    metadata["annotations"] = {names.ANNOTATION_APPLIED_SPEC: applied_spec(spec)}
    if spec.retrieval_cluster_ref:
        metadata["labels"][names.LABEL_RETRIEVAL_CLUSTER] = spec.retrieval_cluster_ref
        rayjob_spec = _shared_cluster_rayjob_spec(spec, plan)
    else:
        workers = [trainer_group(job_name, spec, plan)]
        if plan.retrieval_actors:
            workers.append(retrieval_group(job_name, spec, plan))
        rayjob_spec = {
            "entrypoint": ENTRYPOINT,
            "runtimeEnvYAML": runtime_env_yaml(plan),
            "submissionMode": ray_job.submission_mode,
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": ray_job.ttl_seconds_after_finished,
            "backoffLimit": ray_job.backoff_limit,
            "suspend": ray_job.suspend,
            "rayClusterSpec": {
                "rayVersion": ray_job.ray_version,
                "headGroupSpec": head_group(job_name, spec),
                "workerGroupSpecs": workers,
            },
        }
    if ray_job.active_deadline_seconds is not None:
        rayjob_spec["activeDeadlineSeconds"] = ray_job.active_deadline_seconds
    return {
        "apiVersion": f"{names.RAY_GROUP}/{names.RAY_VERSION}",
        "kind": "RayJob",
        "metadata": metadata,
        "spec": rayjob_spec,
    }


def _shared_cluster_rayjob_spec(spec: RagFinetuneJobSpec, plan: JobPlan) -> dict[str, Any]:
    """A RayJob on a RagRetrievalCluster's RayCluster: no cluster of its own, nothing torn down.

    KubeRay's rules for clusterSelector: shutdownAfterJobFinishes false (so no TTL), no suspend,
    no retries, not SidecarMode (plan.shared_job_problems rejects those fields up front).
    """
    selector = {names.RAY_CLUSTER_SELECTOR_KEY: names.raycluster_name(spec.retrieval_cluster_ref or "")}
    out: dict[str, Any] = {
        "entrypoint": ENTRYPOINT,
        "runtimeEnvYAML": runtime_env_yaml(plan),
        "submissionMode": spec.ray_job.submission_mode,
        "shutdownAfterJobFinishes": False,
        "backoffLimit": 0,
        "clusterSelector": selector,
    }
    return out


def rayjob_for(
    body: dict[str, Any], read_kb: Any = None, cluster: Any = None
) -> tuple[dict[str, Any], JobPlan]:
    """A whole RagFinetuneJob manifest -> (RayJob, plan); SpecError names what to fix.

    `cluster` is the (name, RagRetrievalClusterSpec) a job with `retrievalClusterRef` runs on.
    """
    from .plan import plan_job, read_kb_metadata
    from .spec import SpecError, parse_spec

    problems = []
    if body.get("apiVersion") != names.API_VERSION:
        problems.append(("apiVersion", f"must be {names.API_VERSION}, got {body.get('apiVersion')!r}"))
    if body.get("kind") != names.KIND:
        problems.append(("kind", f"must be {names.KIND}, got {body.get('kind')!r}"))
    metadata = body.get("metadata") or {}
    if not metadata.get("name"):
        problems.append(("metadata.name", "is required"))
    if problems:
        raise SpecError(problems)
    spec = parse_spec(body.get("spec"))
    plan = plan_job(metadata["name"], spec, read_kb or read_kb_metadata, cluster)
    return render_rayjob(metadata["name"], metadata.get("namespace"), spec, plan), plan
