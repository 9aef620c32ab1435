"""Properties of the second path: whatever a user writes into a RagRetrievalCluster, and into a
RagFinetuneJob that names one (retrievalClusterRef), rendering either gives manifests that
KubeRay's schemas and Kubernetes' pod and NetworkPolicy schemas accept, with every derived name
legal and the user's Affinity and dashboard peers arriving unchanged, or a SpecError naming
fields; never a traceback.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rag_operator.common import names
from rag_operator.common.errors import SpecError
from rag_operator.common.sizing import no_kb_metadata
from rag_operator.finetunejob.render import rayjob_for, render_job_network_policy
from rag_operator.finetunejob.spec import parse_spec
from rag_operator.retrievalcluster.render import cluster_for, render_cluster_network_policy
from rag_operator.retrievalcluster.spec import cluster_from_manifest, parse_rrc_spec
from tests.operator.properties import (
    KUBE_FIELDS,
    TEXT,
    VALUE,
    assert_names_fields,
    check_against_crd_schema,
    check_network_policy,
    check_placement,
    check_pod_template,
    check_rayjob_name,
    get_path,
    set_path,
)
from tests.operator.testlib import REPO, load_kuberay_schema

RRC_CPU = REPO / "examples" / "rag-retrieval-cluster-cpu.yaml"
SHARED_CPU = REPO / "examples" / "rag-finetune-job-shared-cpu.yaml"
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: RagRetrievalCluster fields and values Kubernetes would take (so a good share renders).
RRC_PLAUSIBLE: dict[str, list[Any]] = {
    "metadata.name": ["a", "kb-" + "x" * 26, "wiki-dpr"],
    "spec.image": ["registry.local:5000/a/b:1", "rag@sha256:" + "0" * 64],
    "spec.serviceAccountName": ["ray-jobs"],
    "spec.knowledgeBase": ["/data/kb", "s3://bucket/kb"],
    "spec.actorCpus": [0.25, 2],
    "spec.faissThreads": [1, 2**31 - 1],
    "spec.rayVersion": ["2.60.0", "2.9"],
    "spec.head.cpu": ["250m", 1],
    "spec.head.memory": ["2Gi"],
    "spec.retrieval.replicas": [1, 2],
    "spec.retrieval.shards": [1, 2],
    "spec.retrieval.actorsPerPod": [1, 2],
    "spec.retrieval.cpu": ["1", 4],
    "spec.retrieval.memory": ["8Gi"],
    "spec.retrieval.indexSize": ["1Gi", "100Mi"],
    "spec.retrieval.memoryHeadroom": [1, 2.5],
    "spec.retrieval.nodeSelector": [{"pool": "retrieval"}],
    "spec.trainers.maxReplicas": [1, 8],
    "spec.trainers.gpusPerPod": [0, 2],
    "spec.trainers.workersPerPod": [1, 2],
    "spec.trainers.cpu": ["600m"],
    "spec.trainers.memory": ["4Gi"],
    "spec.trainers.gpuResource": ["amd.com/gpu"],
    "spec.trainers.nodeSelector": [{"example.com/zone": ""}],
    "spec.autoscaler.idleTimeoutSeconds": [0, 600],
    "spec.autoscaler.upscalingMode": ["Aggressive"],
    "spec.storage.pvc.claimName": ["data-1"],
    "spec.secrets": [[{"name": "T", "secretName": "s", "key": "k", "pods": ["retrieval"]}]],
    "spec.env": [[{"name": "X", "value": "`id`"}]],
    "spec.security.runAsUser": [1, 2**31 - 1],
    "spec.security.networkPolicy": [False],
}
#: RagFinetuneJob (with retrievalClusterRef) fields: many must be left to the cluster.
JOB_PLAUSIBLE: dict[str, list[Any]] = {
    "metadata.name": ["a", "rag-" + "x" * 43],
    "spec.image": ["registry.local:5000/a/b:1"],
    "spec.retrievalClusterRef": ["tiny-kb", "a", "wiki-dpr"],
    "spec.trainers.replicas": [1, 2, 3],
    "spec.trainers.gpusPerPod": [0, 2],
    "spec.trainers.workersPerPod": [1],
    "spec.trainers.cpu": ["1"],
    "spec.trainers.nodeSelector": [{"pool": "gpu"}],
    "spec.head.cpu": ["1"],
    "spec.retrieval.replicas": [1],
    "spec.rayJob.submissionMode": ["HTTPMode", "SidecarMode"],
    "spec.rayJob.suspend": [True],
    "spec.rayJob.backoffLimit": [0, 1],
    "spec.rayJob.activeDeadlineSeconds": [60],
    "spec.rayJob.ttlSecondsAfterFinished": [60],
    "spec.job.retrieval.knowledge_base": ["/data/tiny/kb", "/data/kb"],
    "spec.job.retrieval.mode": ["ray", "local"],
    "spec.secrets": [[{"name": "T", "secretName": "s", "key": "k", "pods": ["submitter"]}]],
    "spec.security.hardened": [False],
}
GROUP_SPEC = {"head": "head", "retrieval": "retrieval", "trainer": "trainers"}
PLACED = ["head", "retrieval", "trainers"]


def mutation(plausible: dict[str, list[Any]], kube_paths: list[str]) -> st.SearchStrategy[tuple[str, Any]]:
    """(path, value): a plausible or arbitrary value for a field, or a Kubernetes object for one."""
    return st.one_of(
        st.sampled_from(sorted(plausible)).flatmap(
            lambda path: st.tuples(
                st.just(path),
                # a name comes from the API server, always a string
                st.one_of(st.sampled_from(plausible[path]), TEXT if path == "metadata.name" else VALUE),
            )
        ),
        st.sampled_from(kube_paths).flatmap(
            lambda path: st.tuples(st.just(path), KUBE_FIELDS[path.rsplit(".", 1)[-1]])
        ),
    )


KUBE_PATHS = [f"spec.{group}.{field}" for group in PLACED for field in ("affinity", "tolerations", "pod")]
RRC_MUTATION = mutation(RRC_PLAUSIBLE, [*KUBE_PATHS, "spec.security.dashboardPeers"])
#: A job may not place pods on a shared cluster: one placement path stands for the refused ones.
JOB_MUTATION = mutation(JOB_PLAUSIBLE, ["spec.trainers.tolerations", "spec.security.dashboardPeers"])


@pytest.fixture(scope="module")
def schemas() -> dict[str, dict[str, Any]]:
    return {plural: load_kuberay_schema(plural) for plural in ("rayclusters", "rayjobs")}


def _mutated(path, mutations: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    for field, value in mutations:
        set_path(doc, field, value)
    return doc


def _check_cluster(doc: dict[str, Any], raycluster: dict[str, Any], service: dict[str, Any], schemas) -> None:
    check_against_crd_schema(raycluster, schemas["rayclusters"])
    check_against_crd_schema(service, schemas["rayjobs"])
    name = doc["metadata"]["name"]
    assert raycluster["metadata"]["name"] == names.raycluster_name(name)
    check_rayjob_name(names.raycluster_name(name), names.MAX_RRC_NAME_LENGTH)
    check_rayjob_name(service["metadata"]["name"])
    assert service["spec"]["clusterSelector"] == {
        names.RAY_CLUSTER_SELECTOR_KEY: raycluster["metadata"]["name"]
    }
    spec = raycluster["spec"]
    templates = {"head": spec["headGroupSpec"]["template"]}
    templates.update({group["groupName"]: group["template"] for group in spec["workerGroupSpecs"]})
    assert set(templates) == set(GROUP_SPEC)
    for group, template in templates.items():
        check_pod_template(template)
        check_placement(template, get_path(doc, f"spec.{GROUP_SPEC[group]}"))
    policy = render_cluster_network_policy(name, "ns", parse_rrc_spec(doc["spec"]))
    check_network_policy(policy, get_path(doc, "spec.security.dashboardPeers"))


@SETTINGS
@given(mutations=st.lists(RRC_MUTATION, min_size=1, max_size=3))
def test_any_retrieval_cluster_renders_valid_manifests_or_names_the_fields_to_fix(
    mutations: list[tuple[str, Any]], schemas: dict[str, dict[str, Any]]
) -> None:
    doc = _mutated(RRC_CPU, mutations)
    try:
        raycluster, service, plan = cluster_for(doc, no_kb_metadata)
    except SpecError as err:
        event("refused naming fields")
        assert_names_fields(err)
        return
    event("rendered")
    _check_cluster(doc, raycluster, service, schemas)
    assert plan.actors == plan.shards * plan.actors_per_shard


@SETTINGS
@given(
    job_mutations=st.lists(JOB_MUTATION, max_size=2),
    rrc_mutations=st.lists(RRC_MUTATION, max_size=2),
)
def test_any_job_on_a_retrieval_cluster_renders_a_valid_rayjob_on_it_or_names_the_fields_to_fix(
    job_mutations: list[tuple[str, Any]],
    rrc_mutations: list[tuple[str, Any]],
    schemas: dict[str, dict[str, Any]],
) -> None:
    job, rrc = _mutated(SHARED_CPU, job_mutations), _mutated(RRC_CPU, rrc_mutations)
    try:
        cluster = cluster_from_manifest(rrc)
        rayjob, plan = rayjob_for(job, no_kb_metadata, cluster)
    except SpecError as err:
        event("refused naming fields")
        assert_names_fields(err)
        return
    event("rendered")
    check_against_crd_schema(rayjob, schemas["rayjobs"])
    check_rayjob_name(rayjob["metadata"]["name"])
    spec, (cluster_name, rrc_spec) = rayjob["spec"], cluster
    # it runs on the cluster's RayCluster: none of its own, nothing torn down, never suspended
    assert "rayClusterSpec" not in spec and spec["shutdownAfterJobFinishes"] is False
    assert spec["clusterSelector"] == {names.RAY_CLUSTER_SELECTOR_KEY: names.raycluster_name(cluster_name)}
    assert not spec.get("suspend") and spec["submissionMode"] != "SidecarMode"
    assert rayjob["metadata"]["labels"][names.LABEL_RETRIEVAL_CLUSTER] == cluster_name
    replicas = parse_spec(job["spec"]).trainers.replicas
    assert replicas <= rrc_spec.trainers.max_replicas
    assert plan.trainer_workers == replicas * rrc_spec.trainers.workers
    assert plan.job_config.retrieval.cluster == cluster_name
    assert plan.job_config.retrieval.knowledge_base == rrc_spec.knowledge_base
    # the cluster places the pods: a job that set its own head, retrieval or trainer placement was refused
    # (a null is omitted, as the API server prunes it before the operator sees it)
    assert job["spec"].get("head") is None and job["spec"].get("retrieval") is None
    given = {key for key, value in job["spec"]["trainers"].items() if value is not None}
    assert given <= {"replicas", "gpusPerPod", "workersPerPod"}
    if "submitterPodTemplate" in spec:
        template = spec["submitterPodTemplate"]
        check_pod_template(template)
        check_placement(template, None)
        assert template["metadata"]["labels"][names.LABEL_RETRIEVAL_CLUSTER] == cluster_name
    assert render_job_network_policy(rayjob["metadata"]["name"], "ns", parse_spec(job["spec"])) is None
