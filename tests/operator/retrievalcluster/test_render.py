"""RagRetrievalCluster -> RayCluster + service RayJob, and a RagFinetuneJob with retrievalClusterRef
-> a clusterSelector RayJob: golden files, KubeRay v1.7.0 schemas, and the layout rules."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from typing import Any

import jsonschema
import pytest
import yaml

from rag_job.config import (
    CONFIG_ENV_VAR,
    RETRIEVAL_RESOURCE,
    SERVICE_CONFIG_ENV_VAR,
    TRAINER_RESOURCE,
    JobConfig,
    ServiceConfig,
    decode_from_env,
)
from rag_job.knowledge.layout import KnowledgeBaseMeta, ShardInfo
from rag_operator.common import manifests, names
from rag_operator.common.errors import SpecError
from rag_operator.common.sizing import no_kb_metadata
from rag_operator.finetunejob import render
from rag_operator.retrievalcluster import render as render_cluster
from rag_operator.retrievalcluster.plan import plan_retrieval_cluster
from rag_operator.retrievalcluster.spec import cluster_from_manifest, parse_rrc_spec
from tests.operator.testlib import GOLDEN_DIR, REPO, RRC_EXAMPLE, SHARED_JOB_EXAMPLE, load_kuberay_schema

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
GOLDEN_CLUSTER = GOLDEN_DIR / "raycluster-retrieval-cluster.yaml"
GOLDEN_SHARED = GOLDEN_DIR / "rayjob-shared.yaml"


def rrc_doc() -> dict[str, Any]:
    return yaml.safe_load(RRC_EXAMPLE.read_text())


def shared_doc() -> dict[str, Any]:
    return yaml.safe_load(SHARED_JOB_EXAMPLE.read_text())


def rendered_cluster(doc: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    raycluster, service, _ = render_cluster.cluster_for(doc or rrc_doc(), no_kb_metadata)
    return raycluster, service


def rendered_shared(job: dict[str, Any] | None = None, rrc: dict[str, Any] | None = None) -> dict[str, Any]:
    rayjob, _ = render.rayjob_for(
        job or shared_doc(), no_kb_metadata, cluster_from_manifest(rrc or rrc_doc())
    )
    return rayjob


def problems_of(call) -> dict[str, str]:
    with pytest.raises(SpecError) as err:
        call()
    return dict(err.value.problems)


def job_config_of(rayjob: dict[str, Any]) -> JobConfig:
    env = yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"])["env_vars"]
    return JobConfig.model_validate_json(decode_from_env(env[CONFIG_ENV_VAR]))


def groups(raycluster: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["groupName"]: g for g in raycluster["spec"]["workerGroupSpecs"]}


def ray_resources(group: dict[str, Any]) -> dict[str, int]:
    return json.loads(json.loads(group["rayStartParams"]["resources"]))


def check_golden(path, text: str) -> None:
    if UPDATE:
        path.write_text(text)
    assert path.is_file(), f"{path} missing: run `make golden` (UPDATE_GOLDEN=1)"
    assert text == path.read_text(), f"{path.name} changed: review, then `make golden`"


# --- golden files and the CLI -----------------------------------------------------------------------


def test_golden_render_of_the_retrieval_cluster_example_matches() -> None:
    raycluster, service = rendered_cluster()
    check_golden(GOLDEN_CLUSTER, manifests.to_yaml(raycluster) + "---\n" + manifests.to_yaml(service))


def test_golden_render_of_the_shared_job_example_matches() -> None:
    check_golden(GOLDEN_SHARED, manifests.to_yaml(rendered_shared()))


def _cli(*files: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "rag_operator", "render", "--no-kb-metadata"]
    for file in files:
        argv += ["-f", file]
    return subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=60)


def test_cli_render_of_the_retrieval_cluster_prints_the_golden_raycluster_and_service() -> None:
    result = _cli(str(RRC_EXAMPLE))
    assert result.returncode == 0, result.stderr
    doc = rrc_doc()
    policy = render_cluster.render_cluster_network_policy(
        doc["metadata"]["name"], doc["metadata"].get("namespace"), parse_rrc_spec(doc["spec"])
    )
    assert policy is not None and policy["spec"]["podSelector"]["matchLabels"] == {
        names.LABEL_RETRIEVAL_CLUSTER: "wiki-dpr"
    }
    assert result.stdout == GOLDEN_CLUSTER.read_text() + "---\n" + manifests.to_yaml(policy)


def test_cli_render_of_a_shared_job_takes_its_cluster_from_another_file() -> None:
    result = _cli(str(SHARED_JOB_EXAMPLE), str(RRC_EXAMPLE))
    assert result.returncode == 0, result.stderr
    first = result.stdout.split("---\n")[0]
    assert first == GOLDEN_SHARED.read_text()


def test_cli_render_of_a_shared_job_without_its_cluster_names_the_ref_and_the_fix() -> None:
    result = _cli(str(SHARED_JOB_EXAMPLE))
    assert result.returncode == 1 and result.stdout == ""
    assert "spec.retrievalClusterRef" in result.stderr and "-f" in result.stderr


# --- KubeRay schemas ----------------------------------------------------------------------------------


def test_raycluster_validates_against_the_kuberay_raycluster_schema() -> None:
    schema = load_kuberay_schema("rayclusters")
    variants = [rrc_doc()]
    cpu = rrc_doc()
    cpu["spec"]["trainers"] = {"gpusPerPod": 0, "maxReplicas": 2, "cpu": 2, "memory": "4Gi"}
    cpu["spec"]["storage"] = {"uri": "s3://bucket/rag"}
    variants.append(cpu)
    for doc in variants:
        raycluster, _ = rendered_cluster(doc)
        jsonschema.Draft4Validator(schema).validate(raycluster)


def test_service_and_shared_rayjobs_validate_against_the_kuberay_rayjob_schema() -> None:
    schema = load_kuberay_schema("rayjobs")
    _, service = rendered_cluster()
    for rayjob in (service, rendered_shared()):
        jsonschema.Draft4Validator(schema).validate(rayjob)


# --- the RayCluster -------------------------------------------------------------------------------------


def test_raycluster_has_a_driver_only_head_a_fixed_retrieval_group_and_a_trainer_group_from_zero() -> None:
    raycluster, _ = rendered_cluster()
    spec = raycluster["spec"]
    assert raycluster["metadata"]["name"] == "wiki-dpr"
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["autoscalerOptions"]["idleTimeoutSeconds"] == 120
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    by_name = groups(raycluster)
    retrieval, trainer = by_name["retrieval"], by_name["trainer"]
    assert (retrieval["replicas"], retrieval["minReplicas"], retrieval["maxReplicas"]) == (2, 2, 2)
    assert ray_resources(retrieval) == {RETRIEVAL_RESOURCE: 2}
    assert (trainer["replicas"], trainer["minReplicas"], trainer["maxReplicas"]) == (0, 0, 4)
    assert ray_resources(trainer) == {TRAINER_RESOURCE: 4}
    assert trainer["rayStartParams"]["num-gpus"] == "4"
    limits = trainer["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "4"
    # every pod is labelled as the cluster's, not as some job's
    for group in [spec["headGroupSpec"], retrieval, trainer]:
        pod_labels = group["template"]["metadata"]["labels"]
        assert pod_labels[names.LABEL_RETRIEVAL_CLUSTER] == "wiki-dpr"
        assert names.LABEL_JOB not in pod_labels


def test_retrieval_memory_is_computed_from_the_index_size_when_omitted() -> None:
    raycluster, _ = rendered_cluster()
    retrieval = groups(raycluster)["retrieval"]
    memory = retrieval["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"]
    # 2 actors x 64Gi / 4 shards x 1.5 + 2Gi = 50Gi
    assert memory == "50Gi"
    given = rrc_doc()
    given["spec"]["retrieval"]["memory"] = "80Gi"
    raycluster, _ = rendered_cluster(given)
    requests = groups(raycluster)["retrieval"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert requests["memory"] == "80Gi"


def test_index_size_and_memory_come_from_kb_json_when_index_size_is_omitted() -> None:
    doc = rrc_doc()
    del doc["spec"]["retrieval"]["indexSize"]
    gib = 2**30
    meta = KnowledgeBaseMeta(
        num_passages=400,
        dim=768,
        index_type="Flat",
        passages_bytes=1,
        shards=[
            ShardInfo(file=f"index-{i}.faiss", start=100 * i, end=100 * (i + 1), bytes=(10 + i) * gib)
            for i in range(4)
        ],
    )
    spec = parse_rrc_spec(doc["spec"])
    plan = plan_retrieval_cluster("wiki-dpr", spec, lambda _: meta)
    assert plan.index_size == "46Gi"  # 10 + 11 + 12 + 13
    assert plan.memory_per_pod == "41Gi" and plan.memory_computed  # 2 x 13Gi x 1.5 + 2Gi
    problems = problems_of(lambda: plan_retrieval_cluster("wiki-dpr", spec, no_kb_metadata))
    assert "spec.retrieval.indexSize" in problems


def test_service_rayjob_runs_serve_retrieval_on_the_raycluster_with_the_contract_config() -> None:
    _, service = rendered_cluster()
    spec = service["spec"]
    assert service["metadata"]["name"] == "wiki-dpr-retrieval-service"
    assert spec["entrypoint"] == "python -m rag_job serve-retrieval"
    assert spec["clusterSelector"] == {"ray.io/cluster": "wiki-dpr"}
    assert spec["shutdownAfterJobFinishes"] is False and "rayClusterSpec" not in spec
    env = yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]
    config = ServiceConfig.model_validate_json(
        decode_from_env(env[SERVICE_CONFIG_ENV_VAR])
    )  # what serve-retrieval reads
    assert config == ServiceConfig(
        name="wiki-dpr",
        knowledge_base="/data/kb/wiki-dpr-4shards",
        actors_per_shard=1,  # 2 pods x 2 actors / 4 shards
        shards=4,
        actor_cpus=4.0,
    )


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (["retrieval", "actorsPerPod"], 3, "spec.retrieval.actorsPerPod"),
        (["retrieval", "replicas"], 0, "spec.retrieval.replicas"),
        (["retrieval", "cpu"], 1, "spec.retrieval.cpu"),
        (["trainers", "maxReplicas"], 0, "spec.trainers.maxReplicas"),
        (["knowledgeBase"], "", "spec.knowledgeBase"),
    ],
)
def test_invalid_retrieval_cluster_is_rejected_naming_the_field(
    path: list[str], value: Any, field: str
) -> None:
    doc = rrc_doc()
    node = doc["spec"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert field in problems_of(lambda: rendered_cluster(doc))


def test_a_name_too_long_for_the_service_rayjob_is_rejected() -> None:
    doc = rrc_doc()
    doc["metadata"]["name"] = "a" * (names.MAX_RRC_NAME_LENGTH + 1)
    message = problems_of(lambda: rendered_cluster(doc))["metadata.name"]
    assert str(names.MAX_RRC_NAME_LENGTH) in message and "retrieval-service" in message


# --- a job on the shared cluster ------------------------------------------------------------------------


def test_shared_job_selects_the_raycluster_and_embeds_no_cluster() -> None:
    rayjob = rendered_shared()
    spec = rayjob["spec"]
    assert spec["clusterSelector"] == {"ray.io/cluster": "wiki-dpr"}
    assert "rayClusterSpec" not in spec
    assert spec["shutdownAfterJobFinishes"] is False and "ttlSecondsAfterFinished" not in spec
    assert "suspend" not in spec and spec["backoffLimit"] == 0


def test_shared_job_config_points_at_the_cluster_actors_and_sizes_trainers_from_the_pool() -> None:
    config = job_config_of(rendered_shared())
    assert config.retrieval.mode == "ray" and config.retrieval.cluster == "wiki-dpr"
    assert (config.retrieval.shards, config.retrieval.actors_per_shard) == (4, 1)
    # 2 pods of the cluster's trainer group x 4 GPUs; CPUs per worker = 32 / 4
    assert config.scaling.num_workers == 8 and config.scaling.use_gpu
    assert config.scaling.cpus_per_worker == 8.0


def test_two_jobs_on_one_cluster_name_the_same_actors() -> None:
    other = shared_doc()
    other["metadata"]["name"] = "rag-nq-lr1e5"
    other["spec"]["job"]["training"]["learning_rate"] = 1e-5
    first, second = job_config_of(rendered_shared()), job_config_of(rendered_shared(other))
    assert first.retrieval.cluster == second.retrieval.cluster == "wiki-dpr"
    assert (first.retrieval.shards, first.retrieval.actors_per_shard) == (
        second.retrieval.shards,
        second.retrieval.actors_per_shard,
    )
    assert first.training.learning_rate != second.training.learning_rate


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda s: s.update(head={"cpu": 2}), "spec.head"),
        (lambda s: s.update(retrieval={"replicas": 1}), "spec.retrieval"),
        (lambda s: s["trainers"].update(memory="64Gi"), "spec.trainers.memory"),
        (lambda s: s["trainers"].update(nodeSelector={"a": "b"}), "spec.trainers.nodeSelector"),
        (lambda s: s.update(rayJob={"suspend": True}), "spec.rayJob.suspend"),
        (lambda s: s.update(rayJob={"ttlSecondsAfterFinished": 60}), "spec.rayJob.ttlSecondsAfterFinished"),
        (lambda s: s.update(rayJob={"backoffLimit": 2}), "spec.rayJob.backoffLimit"),
        (lambda s: s["job"]["retrieval"].update(mode="local"), "spec.job.retrieval.mode"),
        (
            lambda s: s["job"]["retrieval"].update(end_to_end={"refresh_every_steps": 10}),
            "spec.job.retrieval.end_to_end",
        ),
        (
            lambda s: s["job"]["retrieval"].update(knowledge_base="/other"),
            "spec.job.retrieval.knowledge_base",
        ),
        (lambda s: s["trainers"].update(replicas=5), "spec.trainers.replicas"),
        (lambda s: s["trainers"].update(gpusPerPod=2), "spec.trainers.gpusPerPod"),
    ],
)
def test_fields_that_do_not_apply_with_a_ref_are_rejected_naming_them(change, field: str) -> None:
    job = shared_doc()
    change(job["spec"])
    problems = problems_of(lambda: rendered_shared(job))
    assert field in problems, problems
    assert "wiki-dpr" in problems[field] or "shared" in problems[field]


def test_a_job_whose_ref_does_not_match_the_given_cluster_is_rejected() -> None:
    other = copy.deepcopy(rrc_doc())
    other["metadata"]["name"] = "another"
    problems = problems_of(lambda: rendered_shared(rrc=other))
    assert "spec.retrievalClusterRef" in problems


def test_only_the_autoscaling_head_mounts_a_service_account_token() -> None:
    """KubeRay's autoscaler sidecar scales the trainer pool through the API server with the
    head's token; the retrieval and trainer pods keep going without one."""
    raycluster, _ = rendered_cluster()
    head = raycluster["spec"]["headGroupSpec"]["template"]["spec"]
    assert raycluster["spec"]["enableInTreeAutoscaling"] is True
    assert head["automountServiceAccountToken"] is True
    for group in raycluster["spec"]["workerGroupSpecs"]:
        assert group["template"]["spec"]["automountServiceAccountToken"] is False, group["groupName"]
