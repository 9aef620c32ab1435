"""RagFinetuneJob -> RayJob: golden files, KubeRay v1.7.0 schema, and the layout rules."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
import yaml

from rag_job.config import CONFIG_ENV_VAR, JobConfig, decode_from_env
from rag_job.knowledge.layout import KB_META_FILE, KnowledgeBaseMeta, ShardInfo
from rag_operator.common import manifests
from rag_operator.common.errors import SpecError
from rag_operator.common.quantities import GI, parse_quantity
from rag_operator.common.sizing import no_kb_metadata, read_kb_metadata, retrieval_pod_memory_bytes
from rag_operator.finetunejob import render
from rag_operator.finetunejob.plan import plan_job
from rag_operator.finetunejob.spec import parse_spec
from tests.operator.testlib import EXAMPLES, GOLDEN_DIR, REPO, load_example

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def rendered(doc: dict[str, Any]) -> dict[str, Any]:
    rayjob, _ = render.rayjob_for(doc, no_kb_metadata)
    return rayjob


def groups(rayjob: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["groupName"]: g for g in rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"]}


def job_config_of(rayjob: dict[str, Any]) -> JobConfig:
    env = yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"])["env_vars"]
    return JobConfig.model_validate_json(decode_from_env(env[CONFIG_ENV_VAR]))


def validate_rayjob(schema: dict[str, Any], rayjob: dict[str, Any]) -> None:
    jsonschema.Draft4Validator(schema).validate(rayjob)


# --- golden files -----------------------------------------------------------------------------------


def test_golden_render_of_each_example_matches(example_name: str) -> None:
    text = manifests.to_yaml(rendered(load_example(example_name)))
    golden = GOLDEN_DIR / f"rayjob-{example_name}.yaml"
    if UPDATE:
        golden.write_text(text)
    assert golden.is_file(), f"{golden} missing: run `make golden` (UPDATE_GOLDEN=1)"
    assert text == golden.read_text(), (
        f"render of {EXAMPLES[example_name].name} changed: review, then `make golden`"
    )


def test_cli_render_prints_the_golden_rayjob(example_name: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rag_operator",
            "render",
            "-f",
            str(EXAMPLES[example_name]),
            "--no-kb-metadata",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rayjob, policy = result.stdout.split("---\n")
    assert rayjob == (GOLDEN_DIR / f"rayjob-{example_name}.yaml").read_text()
    policy = yaml.safe_load(policy)
    name = load_example(example_name)["metadata"]["name"]
    assert policy["kind"] == "NetworkPolicy" and policy["metadata"]["name"] == f"{name}-ray"
    assert policy["spec"]["podSelector"]["matchLabels"] == {"rag.finetune.dev/job": name}


def test_cli_render_of_a_bad_file_fails_naming_the_field(tmp_path) -> None:
    doc = load_example("cpu")
    doc["spec"]["trainers"]["replicas"] = 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    result = subprocess.run(
        [sys.executable, "-m", "rag_operator", "render", "-f", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "spec.trainers.replicas" in result.stderr and result.stdout == ""


def test_render_is_deterministic_whatever_the_key_order() -> None:
    doc = load_example("gpu")
    shuffled = json.loads(json.dumps(doc))
    shuffled["spec"] = dict(reversed(list(shuffled["spec"].items())))
    assert manifests.to_yaml(rendered(doc)) == manifests.to_yaml(rendered(shuffled))


# --- KubeRay schema ---------------------------------------------------------------------------------


def _variants() -> list[tuple[str, dict[str, Any]]]:
    out = [(name, load_example(name)) for name in sorted(EXAMPLES)]
    uri = load_example("gpu")
    uri["spec"]["storage"] = {"uri": "s3://bucket/rag"}
    out.append(("object-store", uri))
    torch_mode = load_example("cpu")
    torch_mode["spec"]["job"]["retrieval"]["mode"] = "torch"
    torch_mode["spec"]["retrieval"] = {"replicas": 0}
    out.append(("no-retrieval-group", torch_mode))
    suspended = load_example("cpu")
    suspended["spec"]["rayJob"] = {"suspend": True, "submissionMode": "HTTPMode"}
    suspended["spec"]["serviceAccountName"] = "rag-runner"
    suspended["spec"]["trainers"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}]
            }
        }
    }
    out.append(("suspended-affinity", suspended))
    return out


@pytest.mark.parametrize(("label", "doc"), _variants(), ids=[label for label, _ in _variants()])
def test_every_rendered_rayjob_validates_against_the_kuberay_schema(
    rayjob_schema: dict[str, Any], label: str, doc: dict[str, Any]
) -> None:
    validate_rayjob(rayjob_schema, rendered(doc))


def test_schema_check_would_catch_a_misspelt_field(rayjob_schema: dict[str, Any]) -> None:
    rayjob = rendered(load_example("cpu"))
    rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParam"] = {}
    with pytest.raises(jsonschema.ValidationError, match="rayStartParam"):
        validate_rayjob(rayjob_schema, rayjob)


# --- layout rules -----------------------------------------------------------------------------------


def test_head_runs_the_driver_only() -> None:
    head = rendered(load_example("gpu"))["spec"]["rayClusterSpec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert "resources" not in head["rayStartParams"]


def test_trainer_gpu_limits_agree_with_num_gpus_and_declare_rag_trainer() -> None:
    doc = load_example("gpu")
    trainer = groups(rendered(doc))["trainer"]
    (container,) = trainer["template"]["spec"]["containers"]
    gpus = doc["spec"]["trainers"]["gpusPerPod"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == str(gpus)
    assert trainer["rayStartParams"]["num-gpus"] == str(gpus)
    assert (
        trainer["replicas"]
        == trainer["minReplicas"]
        == trainer["maxReplicas"]
        == doc["spec"]["trainers"]["replicas"]
    )
    assert trainer["template"]["spec"]["tolerations"] == doc["spec"]["trainers"]["tolerations"]


def test_custom_gpu_resource_name_is_used_for_the_limit() -> None:
    doc = load_example("gpu")
    doc["spec"]["trainers"]["gpuResource"] = "amd.com/gpu"
    (container,) = groups(rendered(doc))["trainer"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["amd.com/gpu"] == "4"
    assert "nvidia.com/gpu" not in container["resources"]["limits"]


def test_cpu_trainers_request_no_gpu() -> None:
    trainer = groups(rendered(load_example("cpu")))["trainer"]
    (container,) = trainer["template"]["spec"]["containers"]
    assert not any(key.endswith("gpu") for key in container["resources"]["limits"])
    assert trainer["rayStartParams"]["num-gpus"] == "0"


def _ray_start_resources(param: str) -> dict[str, Any]:
    """What `ray start --resources=<param>` receives after bash parses KubeRay's command line."""
    result = subprocess.run(
        ["bash", "-c", f"printf '%s' --resources={param}"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("--resources=")
    return json.loads(result.stdout.removeprefix("--resources="))


def test_custom_ray_resources_survive_the_shell_that_runs_ray_start() -> None:
    rayjob = rendered(load_example("gpu"))
    assert _ray_start_resources(groups(rayjob)["trainer"]["rayStartParams"]["resources"]) == {
        "rag_trainer": 4
    }
    assert _ray_start_resources(groups(rayjob)["retrieval"]["rayStartParams"]["resources"]) == {
        "rag_retrieval": 2
    }


def test_job_config_travels_in_the_runtime_env_with_the_layout_filled_in() -> None:
    doc = load_example("gpu")
    rayjob = rendered(doc)
    assert rayjob["spec"]["entrypoint"] == "python -m rag_job train"
    assert rayjob["spec"]["shutdownAfterJobFinishes"] is True
    config = job_config_of(rayjob)
    assert config.name == doc["metadata"]["name"]
    assert config.scaling.num_workers == 2 * 4 and config.scaling.use_gpu
    assert config.scaling.cpus_per_worker == 32 / 4
    # 2 pods x 2 actors over 4 shards: one actor per shard.
    assert (config.retrieval.shards, config.retrieval.actors_per_shard) == (4, 1)
    assert config.training.learning_rate == doc["spec"]["job"]["training"]["learning_rate"]
    assert config.checkpoint.storage_path == "/data/checkpoints/rag-nq-finetune"


def test_the_end_to_end_example_renders_with_its_refresh_settings(rayjob_schema: dict[str, Any]) -> None:
    """examples/rag-finetune-job-end-to-end.yaml: the CRD accepts it, the RayJob validates, and
    the job config carries the refresh schedule, the trainers' encoding and the longer timeout."""
    from tests.operator.finetunejob.test_crd import api_server_accepts

    doc = yaml.safe_load((REPO / "examples" / "rag-finetune-job-end-to-end.yaml").read_text())
    assert api_server_accepts(doc) == []
    rayjob = rendered(doc)
    validate_rayjob(rayjob_schema, rayjob)
    config = job_config_of(rayjob)
    e2e = config.retrieval.end_to_end
    assert (
        e2e is not None
        and e2e.encode_on == "trainers"
        and e2e.refresh_at_steps == [500, 1000, 2000, 4000, 8000]
    )
    assert e2e.encode_actors is None and config.training.collective_timeout_s == 7200
    assert config.scaling.num_workers == 8 and config.scaling.use_gpu


def test_object_store_uri_becomes_the_checkpoint_storage() -> None:
    doc = load_example("gpu")
    doc["spec"]["storage"] = {"uri": "s3://bucket/rag/"}
    rayjob = rendered(doc)
    assert job_config_of(rayjob).checkpoint.storage_path == "s3://bucket/rag/checkpoints/ml/rag-nq-finetune"
    head_pod = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert "volumes" not in head_pod


def test_with_an_object_store_the_outputs_go_under_its_uri_too() -> None:
    doc = load_example("gpu")
    doc["spec"]["storage"] = {"uri": "s3://bucket/rag/"}
    doc["spec"]["job"].pop("output_dir", None)
    assert job_config_of(rendered(doc)).output_dir == "s3://bucket/rag/outputs/ml/rag-nq-finetune"


@pytest.mark.parametrize(
    ("storage", "field", "path", "fix"),
    [
        ({"uri": "s3://bucket/rag"}, "output_dir", "out/run", "under storage.uri (s3://bucket/rag)"),
        ({"pvc": {"claimName": "d", "mountPath": "/data"}}, "output_dir", "/tmp/run", "/data"),
        # ".." leaves the volume although the text starts with its mount path
        ({"pvc": {"claimName": "d", "mountPath": "/data"}}, "output_dir", "/data/../tmp/run", "/data"),
        ({"pvc": {"claimName": "d", "mountPath": "/data"}}, "checkpoint.storage_path", "/data2/ck", "/data"),
        (
            {"pvc": {"claimName": "d", "mountPath": "/data", "readOnly": True}},
            "output_dir",
            "/data/o",
            "read-only",
        ),
    ],
)
def test_outputs_that_would_vanish_with_the_pods_are_refused_naming_the_field(
    storage: dict[str, Any], field: str, path: str, fix: str
) -> None:
    """KubeRay deletes the cluster after the job: a model on a pod's own disk would be lost."""
    doc = load_example("gpu")
    doc["spec"]["storage"] = storage
    section, _, key = field.rpartition(".")
    (doc["spec"]["job"].setdefault(section, {}) if section else doc["spec"]["job"])[key] = path
    with pytest.raises(SpecError) as raised:
        rendered(doc)
    ((_, message),) = [p for p in raised.value.problems if p[0] == f"spec.job.{field}"]
    assert path in message and fix in message


def test_outputs_on_the_volume_or_a_uri_render() -> None:
    doc = load_example("gpu")
    doc["spec"]["storage"] = {"pvc": {"claimName": "d", "mountPath": "/data"}}
    doc["spec"]["job"]["output_dir"] = "/data/runs/one"
    doc["spec"]["job"].setdefault("checkpoint", {})["storage_path"] = "gs://elsewhere/ck"
    config = job_config_of(rendered(doc))
    assert (config.output_dir, config.checkpoint.storage_path) == ("/data/runs/one", "gs://elsewhere/ck")


def test_pvc_is_mounted_at_the_same_path_on_every_pod() -> None:
    rayjob = rendered(load_example("cpu"))
    cluster = rayjob["spec"]["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    assert len(pods) == 3
    for pod in pods:
        (container,) = pod["spec"]["containers"]
        assert container["volumeMounts"][0]["mountPath"] == "/data"
        assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "rag-data"


def test_secrets_are_referenced_never_copied() -> None:
    rayjob = rendered(load_example("gpu"))
    (container,) = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"]
    assert {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf-hub", "key": "token"}},
    } in container["env"]


def test_names_and_labels_are_deterministic() -> None:
    rayjob = rendered(load_example("gpu"))
    assert rayjob["metadata"]["name"] == "rag-nq-finetune"
    assert rayjob["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "rag-finetune-operator"
    assert rayjob["metadata"]["labels"]["rag.finetune.dev/job"] == "rag-nq-finetune"
    assert (
        groups(rayjob)["retrieval"]["template"]["metadata"]["labels"]["rag.finetune.dev/group"] == "retrieval"
    )


# --- retrieval memory -------------------------------------------------------------------------------


def test_retrieval_memory_is_computed_from_the_index_size() -> None:
    doc = load_example("gpu")  # 64Gi index, 4 shards, 2 actors per pod, headroom 1.5, overhead 2Gi
    _, plan = render.rayjob_for(doc, no_kb_metadata)
    expected = retrieval_pod_memory_bytes(parse_quantity("64Gi") / 4, 2, 4, 1.5, parse_quantity("2Gi"))
    assert expected == Decimal(50 * GI)
    assert plan.retrieval_memory == "50Gi" and plan.retrieval_memory_computed
    (container,) = groups(render.rayjob_for(doc, no_kb_metadata)[0])["retrieval"]["template"]["spec"][
        "containers"
    ]
    assert (
        container["resources"]["limits"]["memory"] == container["resources"]["requests"]["memory"] == "50Gi"
    )


def test_retrieval_memory_rounds_up_to_whole_gi() -> None:
    spec = parse_spec(
        {**load_example("cpu")["spec"], "retrieval": {"replicas": 1, "indexSize": "100Mi", "cpu": 1}}
    )
    plan = plan_job("x", spec, no_kb_metadata)
    assert plan.retrieval_memory == "3Gi"  # 150Mi + 2Gi -> 3Gi


def test_actors_of_a_pod_that_serve_one_shard_share_its_memory() -> None:
    """Four replicas of one mapped shard on a pod need one copy of it, not four; with more
    shards than actors per pod, every actor may hold a different one."""
    base = {"replicas": 1, "indexSize": "10Gi", "cpu": 4, "actorsPerPod": 4}
    one_shard = plan_job("x", parse_spec({**load_example("cpu")["spec"], "retrieval": base}), no_kb_metadata)
    assert one_shard.retrieval_memory == "17Gi"  # 10Gi x 1.5 + 2Gi
    eight = {**base, "shards": 8, "replicas": 2}  # 8 actors, one per shard, 4 on a pod
    many = plan_job("x", parse_spec({**load_example("cpu")["spec"], "retrieval": eight}), no_kb_metadata)
    assert many.retrieval_memory == "10Gi"  # 4 x 10Gi/8 x 1.5 + 2Gi = 9.5Gi -> 10Gi


def test_given_retrieval_memory_is_used_as_is() -> None:
    doc = load_example("gpu")
    doc["spec"]["retrieval"]["memory"] = "100Gi"
    _, plan = render.rayjob_for(doc, no_kb_metadata)
    assert plan.retrieval_memory == "100Gi" and not plan.retrieval_memory_computed


def write_kb_json(directory, shard_bytes: list[int]) -> None:
    """kb.json as `rag_job build-index` writes it (the job's own model, not a copy of its format)."""
    shards = [
        ShardInfo(file=f"s{i}.faiss", start=i * 10, end=i * 10 + 10, bytes=b)
        for i, b in enumerate(shard_bytes)
    ]
    meta = KnowledgeBaseMeta(
        num_passages=10 * len(shards), dim=8, index_type="Flat", shards=shards, passages_bytes=1000
    )
    (directory / KB_META_FILE).write_text(meta.model_dump_json())


def test_index_size_is_read_from_the_knowledge_base_metadata(tmp_path) -> None:
    write_kb_json(tmp_path, [4 * GI, 3 * GI])
    doc = load_example("cpu")
    doc["spec"]["job"]["retrieval"]["knowledge_base"] = str(tmp_path)
    doc["spec"]["retrieval"] = {"replicas": 2, "shards": 2, "actorsPerPod": 1, "cpu": 1}
    _, plan = render.rayjob_for(doc, read_kb_metadata)
    assert plan.retrieval_memory == "8Gi"  # 1 actor x the largest shard (4Gi) x 1.5 + 2Gi


def test_shard_count_that_disagrees_with_kb_json_names_the_field(tmp_path) -> None:
    write_kb_json(tmp_path, [GI, GI, GI])
    doc = load_example("cpu")
    doc["spec"]["job"]["retrieval"]["knowledge_base"] = str(tmp_path)
    with pytest.raises(SpecError) as err:
        render.rayjob_for(doc, read_kb_metadata)
    assert err.value.fields == ["spec.retrieval.shards"]


def test_unknown_index_size_is_rejected_naming_index_size() -> None:
    doc = load_example("cpu")
    del doc["spec"]["retrieval"]["indexSize"]
    with pytest.raises(SpecError) as err:
        render.rayjob_for(doc, no_kb_metadata)
    assert err.value.fields == ["spec.retrieval.indexSize"]
    assert "spec.retrieval.memory" in str(err.value)


# --- invalid specs ----------------------------------------------------------------------------------


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    *parents, leaf = path.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    if value is _DELETE:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("spec.trainers.replicas", 0, "spec.trainers.replicas"),
        ("spec.trainers.workersPerPod", 2, "spec.trainers"),
        ("spec.trainers.cpu", "lots", "spec.trainers.cpu"),
        ("spec.retrieval.actorsPerPod", 3, "spec.retrieval.actorsPerPod"),
        ("spec.retrieval.cpu", "1", "spec.retrieval.cpu"),
        ("spec.job.scaling", {"num_workers": 4}, "spec.job.scaling"),
        ("spec.job.retrieval.actors_per_shard", 2, "spec.job.retrieval.actors_per_shard"),
        ("spec.job.training.learning_rate", 0, "spec.job.training.learning_rate"),
        ("spec.job.model", _DELETE, "spec.job.model"),
        ("spec.storage", {}, "spec.storage"),
        ("spec.rayJob.submissionMode", "InteractiveMode", "spec.rayJob.submissionMode"),
        ("spec.imagePullPolicy", "Sometimes", "spec.imagePullPolicy"),
        ("metadata.name", "Rag_Job", "metadata.name"),
        ("metadata.name", "r" * 48, "metadata.name"),
        (
            "spec.trainers.tolerations",
            [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2**63}],
            "spec.trainers.tolerations.0.tolerationSeconds",
        ),
    ],
)
def test_invalid_spec_is_rejected_naming_the_field(path: str, value: Any, field: str) -> None:
    doc = _set(load_example("gpu"), path, value)
    with pytest.raises(SpecError) as err:
        render.rayjob_for(doc, no_kb_metadata)
    assert field in err.value.fields, str(err.value)


def test_scaling_in_the_job_section_says_where_it_moved() -> None:
    doc = _set(load_example("gpu"), "spec.job.scaling", {"num_workers": 4})
    with pytest.raises(SpecError, match=r"spec\.trainers"):
        render.rayjob_for(doc, no_kb_metadata)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"- a\n- b\n", "document 1 is a list"),
        (b"just words\n", "document 1 is a str"),
        (b"key: [unclosed\n", "is not valid YAML"),
        (bytes(range(256)), "is not UTF-8 text"),
        (
            b"apiVersion: rag.finetune.dev/v1alpha1\nkind: RagFinetuneJob\nmetadata: 7\nspec: 3\n",
            "metadata: must be a mapping",
        ),
        (
            b"apiVersion: rag.finetune.dev/v1alpha1\nkind: RagFinetuneJob\nmetadata: {name: x}\nspec: [1]\n",
            "spec: Input should be",
        ),
    ],
)
def test_cli_render_of_a_file_that_is_no_manifest_says_so_without_a_traceback(
    tmp_path, content, says
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(content)
    result = subprocess.run(
        [sys.executable, "-m", "rag_operator", "render", "-f", str(bad), "--no-kb-metadata"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""
    assert says in result.stderr and "Traceback" not in result.stderr, result.stderr
