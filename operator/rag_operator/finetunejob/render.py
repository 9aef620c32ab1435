"""Pure functions: a validated RagFinetuneJob spec -> a KubeRay `ray.io/v1` RayJob manifest.

Same input, same output (no clock, no randomness): names and labels are deterministic, so a
restarted controller finds what it created and golden files can pin the output.
"""

from __future__ import annotations

from typing import Any

from rag_job.config import CONFIG_ENV_VAR, encode_for_env

from ..common import names
from ..common.manifests import applied_spec, check_manifest, runtime_env_yaml
from ..common.network import render_network_policy
from ..common.pods import head_group, retrieval_group, submitter_template, trainer_group
from ..common.sizing import KbReader, read_kb_metadata
from .plan import JobPlan, SharedCluster, plan_job
from .spec import RagFinetuneJobSpec, parse_spec

ENTRYPOINT = "python -m rag_job train"


def labels(job_name: str, component: str) -> dict[str, str]:
    """The labels every object of a job carries; LABEL_MANAGED_BY selects our RayJobs."""
    return names.resource_labels("rag-finetune", job_name, component, names.LABEL_JOB)


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
    runtime_env = runtime_env_yaml(CONFIG_ENV_VAR, encode_for_env(plan.job_config.to_json()))
    if spec.retrieval_cluster_ref:
        metadata["labels"][names.LABEL_RETRIEVAL_CLUSTER] = spec.retrieval_cluster_ref
        rayjob_spec = _shared_cluster_rayjob_spec(spec, runtime_env)
        submitter_labels = {
            **labels(job_name, "pod"),
            names.LABEL_RETRIEVAL_CLUSTER: spec.retrieval_cluster_ref,
        }
    else:
        pods = labels(job_name, "pod")
        workers = [
            trainer_group(pods, spec, spec.trainers, plan.workers_per_trainer_pod, spec.trainers.replicas)
        ]
        if plan.retrieval_actors:
            workers.append(retrieval_group(pods, spec, spec.retrieval, plan.retrieval_memory))
        rayjob_spec = {
            "entrypoint": ENTRYPOINT,
            "runtimeEnvYAML": runtime_env,
            "submissionMode": ray_job.submission_mode,
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": ray_job.ttl_seconds_after_finished,
            "backoffLimit": ray_job.backoff_limit,
            "suspend": ray_job.suspend,
            "rayClusterSpec": {
                "rayVersion": ray_job.ray_version,
                "headGroupSpec": head_group(pods, spec, spec.head),
                "workerGroupSpecs": workers,
            },
        }
        submitter_labels = pods
    if ray_job.submission_mode == "K8sJobMode":
        rayjob_spec["submitterPodTemplate"] = submitter_template(submitter_labels, spec, spec.head)
    if ray_job.active_deadline_seconds is not None:
        rayjob_spec["activeDeadlineSeconds"] = ray_job.active_deadline_seconds
    if ray_job.queue_name:  # Kueue admits it by un-suspending it
        metadata["labels"][names.LABEL_KUEUE_QUEUE] = ray_job.queue_name
        rayjob_spec["suspend"] = True
    return {
        "apiVersion": f"{names.RAY_GROUP}/{names.RAY_VERSION}",
        "kind": "RayJob",
        "metadata": metadata,
        "spec": rayjob_spec,
    }


def render_job_network_policy(
    job_name: str, namespace: str | None, spec: RagFinetuneJobSpec
) -> dict[str, Any] | None:
    """The job's NetworkPolicy; None on a shared cluster (the RagRetrievalCluster's covers it) or when off."""
    if spec.retrieval_cluster_ref:
        return None
    selector = {names.LABEL_JOB: job_name}
    return render_network_policy(
        job_name, namespace, labels(job_name, "network-policy"), selector, spec.security
    )


def _shared_cluster_rayjob_spec(spec: RagFinetuneJobSpec, runtime_env: str) -> dict[str, Any]:
    """A RayJob on a RagRetrievalCluster's RayCluster: no cluster of its own, nothing torn down.

    KubeRay's rules for clusterSelector: shutdownAfterJobFinishes false (so no TTL), no suspend,
    no retries, not SidecarMode (plan.shared_job_problems rejects those fields up front).
    """
    selector = {names.RAY_CLUSTER_SELECTOR_KEY: names.raycluster_name(spec.retrieval_cluster_ref or "")}
    return {
        "entrypoint": ENTRYPOINT,
        "runtimeEnvYAML": runtime_env,
        "submissionMode": spec.ray_job.submission_mode,
        "shutdownAfterJobFinishes": False,
        "backoffLimit": 0,
        "clusterSelector": selector,
    }


def rayjob_for(
    body: dict[str, Any], read_kb: KbReader | None = None, cluster: SharedCluster | None = None
) -> tuple[dict[str, Any], JobPlan]:
    """A whole RagFinetuneJob manifest -> (RayJob, plan); SpecError names what to fix.

    `cluster` is the (name, RagRetrievalClusterSpec) a job with `retrievalClusterRef` runs on.
    """
    name, namespace = check_manifest(body, names.KIND)
    spec = parse_spec(body.get("spec"))
    plan = plan_job(name, spec, read_kb or read_kb_metadata, cluster, namespace)
    return render_rayjob(name, namespace, spec, plan), plan
