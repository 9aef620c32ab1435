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

from rag_job.config import SERVICE_CONFIG_ENV_VAR, ServiceConfig, encode_for_env

from ..common import names
from ..common.manifests import applied_spec, check_manifest, runtime_env_yaml
from ..common.network import render_network_policy
from ..common.pods import head_group, retrieval_group, trainer_group
from ..common.sizing import KbReader, read_kb_metadata
from .plan import ClusterPlan, plan_retrieval_cluster
from .spec import RagRetrievalClusterSpec, parse_rrc_spec

SERVICE_ENTRYPOINT = "python -m rag_job serve-retrieval"


def cluster_labels(name: str, component: str) -> dict[str, str]:
    """Labels on everything a RagRetrievalCluster renders; LABEL_RETRIEVAL_CLUSTER selects them."""
    return names.resource_labels("rag-retrieval-cluster", name, component, names.LABEL_RETRIEVAL_CLUSTER)


def render_raycluster(
    name: str, namespace: str | None, spec: RagRetrievalClusterSpec, plan: ClusterPlan
) -> dict[str, Any]:
    """The RayCluster of one RagRetrievalCluster (ownerReferences are added by the controller)."""
    metadata: dict[str, Any] = {"name": names.raycluster_name(name)}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = cluster_labels(name, "raycluster")
    metadata["annotations"] = {names.ANNOTATION_APPLIED_SPEC: applied_spec(spec)}
    pods = cluster_labels(name, "pod")
    trainers = trainer_group(
        pods,
        spec,
        spec.trainers,
        plan.trainer_workers_per_pod,
        replicas=0,
        max_replicas=spec.trainers.max_replicas,
    )
    head = head_group(pods, spec, spec.head)
    # KubeRay's autoscaler runs as a sidecar of the head and scales the trainer group through
    # the API server with the head's service account (KubeRay makes one, with a Role, when
    # none is named): the head needs its token even when the other pods go without.
    head["template"]["spec"]["automountServiceAccountToken"] = True
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
            "headGroupSpec": head,
            "workerGroupSpecs": [retrieval_group(pods, spec, spec.retrieval, plan.memory_per_pod), trainers],
        },
    }


def render_cluster_network_policy(
    name: str, namespace: str | None, spec: RagRetrievalClusterSpec
) -> dict[str, Any] | None:
    """The cluster's NetworkPolicy: its pods and the submitters of the jobs on it carry its label."""
    selector = {names.LABEL_RETRIEVAL_CLUSTER: name}
    return render_network_policy(
        name, namespace, cluster_labels(name, "network-policy"), selector, spec.security
    )


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
    return {
        "apiVersion": f"{names.RAY_GROUP}/{names.RAY_VERSION}",
        "kind": "RayJob",
        "metadata": metadata,
        "spec": {
            "entrypoint": SERVICE_ENTRYPOINT,
            "runtimeEnvYAML": runtime_env_yaml(
                SERVICE_CONFIG_ENV_VAR, encode_for_env(service_config(name, spec, plan).to_json())
            ),
            "submissionMode": "HTTPMode",
            "shutdownAfterJobFinishes": False,
            "backoffLimit": 0,
            "clusterSelector": {names.RAY_CLUSTER_SELECTOR_KEY: names.raycluster_name(name)},
        },
    }


def cluster_for(
    body: dict[str, Any], read_kb: KbReader | None = None
) -> tuple[dict[str, Any], dict[str, Any], ClusterPlan]:
    """A whole RagRetrievalCluster manifest -> (RayCluster, service RayJob, plan)."""
    name, namespace = check_manifest(body, names.RRC_KIND)
    spec = parse_rrc_spec(body.get("spec"))
    plan = plan_retrieval_cluster(name, spec, read_kb or read_kb_metadata)
    return (
        render_raycluster(name, namespace, spec, plan),
        render_service_rayjob(name, namespace, spec, plan),
        plan,
    )
