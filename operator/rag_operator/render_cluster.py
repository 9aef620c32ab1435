"""Pure functions: a RagRetrievalCluster -> its KubeRay RayCluster and its service RayJob.

The RayCluster: a head that runs drivers only (`num-cpus: 0`), a fixed retrieval group whose
pods declare `rag_retrieval`, and a trainer group that KubeRay's in-tree autoscaler grows from
zero when a job's Ray Train workers ask for `rag_trainer`. The service RayJob runs
`python -m rag_job serve-retrieval` on that RayCluster (clusterSelector): it starts the detached
named actors `<name>-shard{s}-replica{r}` in Ray namespace `rag-retrieval` and stays running as
their health checker.
"""

from __future__ import annotations

from typing import Any

import yaml

from rag_job.config import RETRIEVAL_RESOURCE, SERVICE_CONFIG_ENV_VAR, TRAINER_RESOURCE, ServiceConfig

from . import names
from .render import applied_spec, head_group, pod_template, ray_resources_param
from .rrc_plan import ClusterPlan
from .rrc_spec import RagRetrievalClusterSpec

SERVICE_ENTRYPOINT = "python -m rag_job serve-retrieval"
RETRIEVAL_GROUP = "retrieval"
TRAINER_GROUP = "trainer"


def cluster_labels(name: str, component: str) -> dict[str, str]:
    """Labels on everything a RagRetrievalCluster renders; LABEL_RETRIEVAL_CLUSTER selects them."""
    return {
        names.LABEL_NAME: "rag-retrieval-cluster",
        names.LABEL_INSTANCE: name,
        names.LABEL_COMPONENT: component,
        names.LABEL_MANAGED_BY: names.OPERATOR_NAME,
        names.LABEL_RETRIEVAL_CLUSTER: name,
    }


def _relabel(name: str, group: dict[str, Any], component: str) -> dict[str, Any]:
    """pod_template labels pods as a job's; a shared cluster's pods carry the cluster's labels."""
    group["template"]["metadata"]["labels"] = {
        **cluster_labels(name, component),
        names.LABEL_GROUP: component,
    }
    return group


def retrieval_group(name: str, spec: RagRetrievalClusterSpec, plan: ClusterPlan) -> dict[str, Any]:
    """Fixed-size CPU high-memory pods: `rag_retrieval` = actors per pod, memory sized for the index."""
    retrieval = spec.retrieval
    template = pod_template(
        name,
        spec,
        group=RETRIEVAL_GROUP,
        container_name="ray-worker",
        cpu=retrieval.cpu,
        memory=plan.memory_per_pod,
        placement=retrieval,
    )
    group = {
        "groupName": RETRIEVAL_GROUP,
        "replicas": retrieval.replicas,
        "minReplicas": retrieval.replicas,
        "maxReplicas": retrieval.replicas,
        "rayStartParams": {
            "num-gpus": "0",
            "resources": ray_resources_param({RETRIEVAL_RESOURCE: retrieval.actors_per_pod}),
        },
        "template": template,
    }
    return _relabel(name, group, RETRIEVAL_GROUP)


def trainer_group(name: str, spec: RagRetrievalClusterSpec, plan: ClusterPlan) -> dict[str, Any]:
    """GPU pods from zero to maxReplicas: the autoscaler adds one when `rag_trainer` is requested."""
    trainers = spec.trainers
    gpu_limits = {trainers.gpu_resource: str(trainers.gpus_per_pod)} if trainers.gpus_per_pod else {}
    template = pod_template(
        name,
        spec,
        group=TRAINER_GROUP,
        container_name="ray-worker",
        cpu=trainers.cpu,
        memory=trainers.memory,
        extra_limits=gpu_limits,
        placement=trainers,
    )
    group = {
        "groupName": TRAINER_GROUP,
        "replicas": 0,
        "minReplicas": 0,
        "maxReplicas": trainers.max_replicas,
        "rayStartParams": {
            "num-gpus": str(trainers.gpus_per_pod),
            "resources": ray_resources_param({TRAINER_RESOURCE: plan.trainer_workers_per_pod}),
        },
        "template": template,
    }
    return _relabel(name, group, TRAINER_GROUP)


def render_raycluster(
    name: str, namespace: str | None, spec: RagRetrievalClusterSpec, plan: ClusterPlan
) -> dict[str, Any]:
    """The RayCluster of one RagRetrievalCluster (ownerReferences are added by the controller)."""
    metadata: dict[str, Any] = {"name": names.raycluster_name(name)}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = cluster_labels(name, "raycluster")
    metadata["annotations"] = {names.ANNOTATION_APPLIED_SPEC: applied_spec(spec)}
    return {
        "apiVersion": f"{names.RAY_GROUP}/{names.RAY_VERSION}",
        "kind": "RayCluster",
        "metadata": metadata,
        "spec": {
            "rayVersion": spec.ray_version,
            "enableInTreeAutoscaling": True,
            "autoscalerOptions": {
                "upscalingMode": spec.autoscaler.upscaling_mode,
                "idleTimeoutSeconds": spec.autoscaler.idle_timeout_seconds,
            },
            "headGroupSpec": _relabel(name, head_group(name, spec), "head"),
            "workerGroupSpecs": [retrieval_group(name, spec, plan), trainer_group(name, spec, plan)],
        },
    }


def service_config(name: str, spec: RagRetrievalClusterSpec, plan: ClusterPlan) -> ServiceConfig:
    """What `python -m rag_job serve-retrieval` reads: actors `<name>-shard{s}-replica{r}`."""
    return ServiceConfig(
        name=name,
        knowledge_base=spec.knowledge_base,
        actors_per_shard=plan.actors_per_shard,
        shards=plan.shards,
        actor_cpus=spec.actor_cpus,
        faiss_threads=spec.faiss_threads,
    )


def render_service_rayjob(
    name: str, namespace: str | None, spec: RagRetrievalClusterSpec, plan: ClusterPlan
) -> dict[str, Any]:
    """The supervisor RayJob on the RayCluster; it never finishes on its own.

    HTTPMode: KubeRay submits it through the dashboard, so no submitter pod sits beside a
    job that runs for the cluster's lifetime.
    """
    metadata: dict[str, Any] = {"name": names.service_rayjob_name(name)}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = cluster_labels(name, "retrieval-service")
    config = service_config(name, spec, plan).to_json()
    runtime_env = yaml.safe_dump({"env_vars": {SERVICE_CONFIG_ENV_VAR: config}}, width=1 << 16)
    return {
        "apiVersion": f"{names.RAY_GROUP}/{names.RAY_VERSION}",
        "kind": "RayJob",
        "metadata": metadata,
        "spec": {
            "entrypoint": SERVICE_ENTRYPOINT,
            "runtimeEnvYAML": runtime_env,
            "submissionMode": "HTTPMode",
            "shutdownAfterJobFinishes": False,
            "backoffLimit": 0,
            "clusterSelector": {names.RAY_CLUSTER_SELECTOR_KEY: names.raycluster_name(name)},
        },
    }


def cluster_for(
    body: dict[str, Any], read_kb: Any = None
) -> tuple[dict[str, Any], dict[str, Any], ClusterPlan]:
    """A whole RagRetrievalCluster manifest -> (RayCluster, service RayJob, plan)."""
    from .plan import read_kb_metadata
    from .rrc_plan import plan_retrieval_cluster
    from .rrc_spec import parse_rrc_spec
    from .spec import SpecError

    problems = []
    if body.get("apiVersion") != names.API_VERSION:
        problems.append(("apiVersion", f"must be {names.API_VERSION}, got {body.get('apiVersion')!r}"))
    if body.get("kind") != names.RRC_KIND:
        problems.append(("kind", f"must be {names.RRC_KIND}, got {body.get('kind')!r}"))
    metadata = body.get("metadata") or {}
    if not metadata.get("name"):
        problems.append(("metadata.name", "is required"))
    if problems:
        raise SpecError(problems)
    name, namespace = metadata["name"], metadata.get("namespace")
    spec = parse_rrc_spec(body.get("spec"))
    plan = plan_retrieval_cluster(name, spec, read_kb or read_kb_metadata)
    return (
        render_raycluster(name, namespace, spec, plan),
        render_service_rayjob(name, namespace, spec, plan),
        plan,
    )
