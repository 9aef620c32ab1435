"""A group's `pod` override reaches that group's pods where Kubernetes reads each field, keeps the
hardened defaults it does not name, and is refused, naming the field, where it would take over
what the operator or KubeRay own (or the node's filesystem). Rendered through whole resources, so
KubeRay's schema and Kubernetes' pod schema judge the result."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel

from rag_operator.common import pod_override
from rag_operator.common.errors import SpecError
from rag_operator.common.names import LABEL_GROUP, LABEL_JOB, STORAGE_VOLUME
from rag_operator.common.pod_override import KubeUnion, PodOverride, deep_merge
from rag_operator.common.sizing import no_kb_metadata
from rag_operator.finetunejob import render
from rag_operator.retrievalcluster.render import cluster_for
from rag_operator.retrievalcluster.spec import cluster_from_manifest
from tests.operator.properties import check_against_crd_schema, check_pod_template
from tests.operator.testlib import POD_OVERRIDE, RRC_EXAMPLE, load_example, load_kuberay_schema, pod_templates

K8S_SCHEMAS = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / "v1.34.0-local-strict"

FULL = POD_OVERRIDE


def job_with(**groups: Any) -> dict[str, Any]:
    """The cpu example with `pod` overrides on the named groups (head, trainers, retrieval)."""
    doc = copy.deepcopy(load_example("cpu"))
    for group, override in groups.items():
        doc["spec"].setdefault(group, {})["pod"] = override
    return doc


kuberay_schema = functools.cache(load_kuberay_schema)


def rendered_templates(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rayjob, _ = render.rayjob_for(doc, no_kb_metadata)
    check_against_crd_schema(rayjob, kuberay_schema("rayjobs"))
    found = pod_templates(rayjob)
    for template in found.values():
        check_pod_template(template)
    return found


def refused(doc: dict[str, Any]) -> SpecError:
    with pytest.raises(SpecError) as caught:
        render.rayjob_for(doc, no_kb_metadata)
    return caught.value


# --- where each field lands -------------------------------------------------------------------------


def test_every_field_lands_where_kubernetes_reads_it_and_kuberay_takes_the_rayjob() -> None:
    trainer = rendered_templates(job_with(trainers=FULL))["trainer"]
    meta, pod = trainer["metadata"], trainer["spec"]
    (container,) = pod["containers"]
    assert meta["labels"]["team"] == "ml" and meta["labels"]["example.com/cost-center"] == "c42"
    assert meta["labels"][LABEL_GROUP] == "trainer" and meta["labels"][LABEL_JOB] == "rag-tiny-cpu"
    assert meta["annotations"] == FULL["annotations"]
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    assert (pod["priorityClassName"], pod["serviceAccountName"]) == ("training", "trainer-sa")
    assert (pod["runtimeClassName"], pod["schedulerName"]) == ("nvidia", "volcano")
    assert [v["name"] for v in pod["volumes"]] == [
        STORAGE_VOLUME,
        "models",
        "conf",
        "tls",
        "scratch",
        "vault",
        "token",
        "nvme",
    ]
    assert pod["volumes"][1:] == FULL["volumes"]
    assert container["volumeMounts"][0]["name"] == STORAGE_VOLUME
    assert container["volumeMounts"][1:] == FULL["volumeMounts"]
    assert container["env"] == FULL["env"]
    assert container["envFrom"] == FULL["envFrom"]
    assert pod["securityContext"]["supplementalGroups"] == [2000]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_an_override_reaches_its_group_only() -> None:
    found = rendered_templates(
        job_with(retrieval={"labels": {"tier": "memory"}, "priorityClassName": "index"})
    )
    assert found["retrieval"]["metadata"]["labels"]["tier"] == "memory"
    assert found["retrieval"]["spec"]["priorityClassName"] == "index"
    for group in ("head", "trainer", "submitter"):
        assert "tier" not in found[group]["metadata"]["labels"], group
        assert "priorityClassName" not in found[group]["spec"], group


def test_the_submitter_takes_the_heads_pull_secrets_and_labels_but_not_its_volumes_or_env() -> None:
    found = rendered_templates(job_with(head=FULL))
    submitter = found["submitter"]["spec"]
    assert submitter["imagePullSecrets"] == [{"name": "registry"}]
    assert found["submitter"]["metadata"]["labels"]["team"] == "ml"
    assert submitter["serviceAccountName"] == "trainer-sa" and submitter["priorityClassName"] == "training"
    assert "volumes" not in submitter
    assert not {"env", "envFrom", "volumeMounts"} & set(submitter["containers"][0])
    assert found["head"]["spec"]["volumes"][1:] == FULL["volumes"]


def test_a_groups_service_account_replaces_the_resource_wide_one_for_that_group() -> None:
    doc = job_with(trainers={"serviceAccountName": "gpu-sa"})
    doc["spec"]["serviceAccountName"] = "ray-sa"
    found = rendered_templates(doc)
    assert {g: t["spec"]["serviceAccountName"] for g, t in found.items()} == {
        "head": "ray-sa", "trainer": "gpu-sa", "retrieval": "ray-sa", "submitter": "ray-sa",
    }  # fmt: skip


def test_a_groups_env_replaces_a_resource_wide_variable_of_the_same_name_in_place() -> None:
    doc = job_with(
        trainers={"env": [{"name": "LOG_LEVEL", "value": "debug"}, {"name": "EXTRA", "value": "1"}]}
    )
    doc["spec"]["env"] = [{"name": "LOG_LEVEL", "value": "info"}, {"name": "OTHER", "value": "x"}]
    doc["spec"]["secrets"] = [{"name": "HF_TOKEN", "secretName": "hf", "key": "token"}]
    found = rendered_templates(doc)
    trainer_env = found["trainer"]["spec"]["containers"][0]["env"]
    assert [(e["name"], e.get("value")) for e in trainer_env] == [
        ("LOG_LEVEL", "debug"), ("OTHER", "x"), ("HF_TOKEN", None), ("EXTRA", "1"),
    ]  # fmt: skip
    assert found["head"]["spec"]["containers"][0]["env"][0] == {"name": "LOG_LEVEL", "value": "info"}


def test_a_retrieval_clusters_groups_take_their_overrides_and_kuberay_takes_the_raycluster() -> None:
    doc = yaml.safe_load(RRC_EXAMPLE.read_text())
    doc["spec"].setdefault("retrieval", {})["pod"] = {
        "labels": {"tier": "memory"},
        "volumes": FULL["volumes"][:1],
    }
    doc["spec"].setdefault("trainers", {})["pod"] = {"priorityClassName": "training"}
    doc["spec"].setdefault("head", {})["pod"] = {"imagePullSecrets": [{"name": "registry"}]}
    raycluster, _, _ = cluster_for(doc, no_kb_metadata)
    check_against_crd_schema(raycluster, kuberay_schema("rayclusters"))
    spec = raycluster["spec"]
    groups = {g["groupName"]: g["template"] for g in spec["workerGroupSpecs"]}
    for template in [spec["headGroupSpec"]["template"], *groups.values()]:
        check_pod_template(template)
    assert groups["retrieval"]["metadata"]["labels"]["tier"] == "memory"
    assert groups["retrieval"]["spec"]["volumes"][-1]["name"] == "models"
    assert groups["trainer"]["spec"]["priorityClassName"] == "training"
    head = spec["headGroupSpec"]["template"]["spec"]
    assert head["imagePullSecrets"] == [{"name": "registry"}]
    assert head["automountServiceAccountToken"] is True  # the autoscaler still gets its token


# --- security contexts: merged over the hardened defaults -----------------------------------------------


def test_hardened_defaults_stay_unless_a_field_is_set_explicitly() -> None:
    override = {
        "securityContext": {"runAsUser": 0, "runAsNonRoot": False},
        "containerSecurityContext": {"runAsNonRoot": False, "capabilities": {"add": ["CHOWN"]}},
    }
    found = rendered_templates(job_with(trainers=override))
    pod = found["trainer"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": False, "runAsUser": 0, "runAsGroup": 100, "seccompProfile": {"type": "RuntimeDefault"},
        "fsGroup": 100, "fsGroupChangePolicy": "OnRootMismatch",
    }  # fmt: skip
    assert pod["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}, "runAsNonRoot": False,
    }  # fmt: skip
    # the other groups keep every default
    assert found["head"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert found["head"]["spec"]["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_without_hardening_a_pod_has_only_the_security_fields_the_override_sets() -> None:
    doc = job_with(trainers={"containerSecurityContext": {"readOnlyRootFilesystem": True}})
    doc["spec"]["security"] = {"hardened": False}
    found = rendered_templates(doc)
    assert "securityContext" not in found["trainer"]["spec"]
    assert found["trainer"]["spec"]["containers"][0]["securityContext"] == {"readOnlyRootFilesystem": True}
    assert "securityContext" not in found["head"]["spec"]["containers"][0]


def test_deep_merge_merges_mappings_field_by_field_and_replaces_the_rest() -> None:
    base = {"a": 1, "caps": {"drop": ["ALL"]}, "seccomp": {"type": "RuntimeDefault"}}
    over = {"caps": {"add": ["X"]}, "seccomp": {"type": "Localhost", "localhostProfile": "p"}, "b": [2]}
    assert deep_merge(base, over) == {
        "a": 1, "caps": {"drop": ["ALL"], "add": ["X"]}, "seccomp": {"type": "Localhost", "localhostProfile": "p"},
        "b": [2],
    }  # fmt: skip
    assert base["caps"] == {"drop": ["ALL"]}, "the hardened defaults are not changed in place"


# --- refused, naming the field ------------------------------------------------------------------------

REFUSED = [
    # (what, group, override, field named, words of the message)
    ("our label", "trainers", {"labels": {"app.kubernetes.io/managed-by": "me"}}, "spec.trainers.pod.labels", "rag-finetune operator's"),
    ("our group label", "head", {"labels": {"rag.finetune.dev/group": "x"}}, "spec.head.pod.labels", "choose another key"),
    ("a KubeRay label", "retrieval", {"labels": {"ray.io/node-type": "worker"}}, "spec.retrieval.pod.labels", "KubeRay's"),
    ("a KubeRay annotation", "trainers", {"annotations": {"ray.io/overwrite-container-cmd": "true"}}, "spec.trainers.pod.annotations", "KubeRay's"),
    ("a Kueue label", "trainers", {"labels": {"kueue.x-k8s.io/queue-name": "q"}}, "spec.trainers.pod.labels", "Kueue's"),
    ("our volume name", "head", {"volumes": [{"name": STORAGE_VOLUME, "emptyDir": {}}]}, "spec.head.pod.volumes.0.name", "spec.storage"),
    ("KubeRay's shm volume", "trainers", {"volumes": [{"name": "shared-mem", "emptyDir": {}}]}, "spec.trainers.pod.volumes.0.name", "/dev/shm"),
    ("mount of our volume", "trainers", {"volumeMounts": [{"name": STORAGE_VOLUME, "mountPath": "/x"}]}, "spec.trainers.pod.volumeMounts.0.name", "spec.storage"),
    ("hostPath", "trainers", {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, "spec.trainers.pod.volumes.0", "node's filesystem"),
    ("an unknown source", "trainers", {"volumes": [{"name": "n", "nfs": {"server": "s", "path": "/"}}]}, "spec.trainers.pod.volumes.0", "unknown keys ['nfs']"),
    ("no source", "trainers", {"volumes": [{"name": "n"}]}, "spec.trainers.pod.volumes.0", "set exactly one of persistentVolumeClaim"),
    ("two sources", "trainers", {"volumes": [{"name": "n", "emptyDir": {}, "secret": {"secretName": "s"}}]}, "spec.trainers.pod.volumes.0", "set exactly one of"),
    ("a mount of no volume", "trainers", {"volumeMounts": [{"name": "models", "mountPath": "/m"}]}, "spec.trainers.pod.volumeMounts", "not one of this pod override's volumes"),
    ("a mount over the storage", "trainers", {"volumes": [{"name": "m", "emptyDir": {}}], "volumeMounts": [{"name": "m", "mountPath": "/data"}]}, "spec.trainers.pod.volumeMounts.0.mountPath", "where spec.storage.pvc is mounted"),
    ("a key projected above the volume", "trainers", {"volumes": [{"name": "c", "configMap": {"name": "c", "items": [{"key": "k", "path": "..k"}]}}]}, "spec.trainers.pod.volumes.0.configMap.items.0.path", "not starting with '..'"),
    ("ReadWriteOncePod with another mode", "trainers", {"volumes": [{"name": "e", "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOncePod", "ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}}}]}, "spec.trainers.pod.volumes.0.ephemeral.volumeClaimTemplate.spec.accessModes", "cannot be combined"),
    ("a mount at Ray's session dir", "head", {"volumes": [{"name": "m", "emptyDir": {}}], "volumeMounts": [{"name": "m", "mountPath": "/tmp/ray"}]}, "spec.head.pod.volumeMounts.0.mountPath", "KubeRay mounts its own log volume"),
    ("a subPath out of the volume", "trainers", {"volumes": [{"name": "m", "emptyDir": {}}], "volumeMounts": [{"name": "m", "mountPath": "/m", "subPath": "a/../.."}]}, "spec.trainers.pod.volumeMounts.0.subPath", "without '..'"),
    ("the job config env", "head", {"env": [{"name": "RAG_JOB_CONFIG", "value": "{}"}]}, "spec.head.pod.env.0.name", "passes the JobConfig"),
    ("KubeRay's env", "retrieval", {"env": [{"name": "RAY_ADDRESS", "value": "x:6379"}]}, "spec.retrieval.pod.env.0.name", "KubeRay sets it"),
    ("value and valueFrom", "trainers", {"env": [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}, "spec.trainers.pod.env.0", "not both"),
    ("envFrom of both", "trainers", {"envFrom": [{"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}]}, "spec.trainers.pod.envFrom.0", "set exactly one of configMapRef, secretRef"),
    ("privileged", "trainers", {"containerSecurityContext": {"privileged": True}}, "spec.trainers.pod.containerSecurityContext", "unknown keys ['privileged']"),
    ("SYS_ADMIN without escalation", "trainers", {"containerSecurityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}, "spec.trainers.pod.containerSecurityContext", "allowPrivilegeEscalation: true"),
    ("root with the hardened runAsNonRoot", "trainers", {"securityContext": {"runAsUser": 0}}, "spec.trainers.pod.containerSecurityContext.runAsNonRoot", "kubelet refuses"),
    ("root, non-root only in the pod", "head", {"securityContext": {"runAsUser": 0, "runAsNonRoot": False}}, "spec.head.pod.containerSecurityContext.runAsNonRoot", "in both"),
    ("an unknown key", "trainers", {"nodeName": "n1"}, "spec.trainers.pod", "unknown keys ['nodeName']"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("group", "override", "field", "words"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_an_override_of_what_others_own_is_refused_naming_the_field(
    group: str, override: dict[str, Any], field: str, words: str
) -> None:
    problems = refused(job_with(**{group: override})).problems
    assert any(named == field and words in message for named, message in problems), problems


def test_trainer_pods_of_a_shared_cluster_take_no_override_from_a_job() -> None:
    """They belong to the RagRetrievalCluster (its trainers.pod), shared by every job on it."""
    doc = copy.deepcopy(load_example("shared"))
    doc["spec"].setdefault("trainers", {})["pod"] = {"labels": {"team": "ml"}}
    cluster = cluster_from_manifest(yaml.safe_load(RRC_EXAMPLE.read_text()))
    with pytest.raises(SpecError) as caught:
        render.rayjob_for(doc, no_kb_metadata, cluster)
    assert any(
        field == "spec.trainers.pod" and "must be omitted with retrievalClusterRef" in message
        for field, message in caught.value.problems
    ), caught.value.problems


# --- the models against Kubernetes' own types ---------------------------------------------------------


def _kube_objects() -> list[type[BaseModel]]:
    return [
        cls for cls in vars(pod_override).values()
        if isinstance(cls, type) and issubclass(cls, pod_override.KubeObject)
        and cls not in (pod_override.KubeObject, KubeUnion, PodOverride)
    ]  # fmt: skip


#: Our models whose kube_type names another Kubernetes type's schema file.
_SCHEMA_FILE = {
    "EnvFromReference": "configmapenvsource-v1",
    "KeySelector": "secretkeyselector-v1",
    "ClaimMetadata": "objectmeta-meta-v1",
}


@pytest.mark.parametrize("model", _kube_objects(), ids=lambda m: m.__name__)
def test_each_model_offers_only_fields_of_its_kubernetes_type(model: type[pod_override.KubeObject]) -> None:
    """A subset: every key we accept means the same in Kubernetes (nothing we render is pruned)."""
    name = _SCHEMA_FILE.get(model.__name__, f"{model.kube_type.lower()}-v1")
    schema = json.loads((K8S_SCHEMAS / f"{name}.json").read_text())
    offered = {field.alias or key for key, field in model.model_fields.items()}
    assert offered <= set(schema["properties"]), offered - set(schema["properties"])
    model.model_validate(yaml.safe_load(model.example))  # the example each message shows is valid
