"""Helpers for the operator tests: the examples, the KubeRay schema, an in-memory Kubernetes API."""

from __future__ import annotations

import copy
import itertools
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = {
    "gpu": REPO / "examples" / "rag-finetune-job.yaml",
    "cpu": REPO / "examples" / "rag-finetune-job-cpu.yaml",
}
#: RagRetrievalCluster example and a job that references it (rendered together).
RRC_EXAMPLE = REPO / "examples" / "rag-retrieval-cluster.yaml"
SHARED_JOB_EXAMPLE = REPO / "examples" / "rag-finetune-job-shared.yaml"
GOLDEN_DIR = Path(__file__).parent / "golden"
DEFAULT_KUBERAY_CRDS = REPO.parent / "shared" / "kuberay" / "v1.7.0" / "crds"


#: An override using every field, each with a value the operator would never set.
POD_OVERRIDE: dict[str, Any] = {
    "labels": {"team": "ml", "example.com/cost-center": "c42"},
    "annotations": {"example.com/owner": "rag team", "prometheus.io/scrape": "true"},
    "imagePullSecrets": [{"name": "registry"}],
    "priorityClassName": "training",
    "serviceAccountName": "trainer-sa",
    "runtimeClassName": "nvidia",
    "schedulerName": "volcano",
    "volumes": [
        {"name": "models", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}},
        {"name": "conf", "configMap": {"name": "ray-conf", "items": [{"key": "a.yaml", "path": "conf/a.yaml"}]}},
        {"name": "tls", "secret": {"secretName": "tls", "defaultMode": 0o400}},
        {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
        {"name": "vault", "csi": {"driver": "secrets-store.csi.k8s.io", "readOnly": True,
                                   "volumeAttributes": {"secretProviderClass": "rag"}}},
        {"name": "token", "projected": {"sources": [
            {"serviceAccountToken": {"audience": "sts.amazonaws.com", "expirationSeconds": 3600, "path": "token"}},
            {"configMap": {"name": "ca"}},
        ]}},
        {"name": "nvme", "ephemeral": {"volumeClaimTemplate": {
            "metadata": {"labels": {"team": "ml"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-nvme",
                     "resources": {"requests": {"storage": "100Gi"}}},
        }}},
    ],
    "volumeMounts": [
        {"name": "models", "mountPath": "/models", "readOnly": True},
        {"name": "conf", "mountPath": "/etc/rag", "subPath": "conf"},
        {"name": "scratch", "mountPath": "/scratch"},
        {"name": "nvme", "mountPath": "/nvme"},
    ],
    "env": [
        {"name": "WANDB_PROJECT", "value": "rag"},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "WANDB_API_KEY", "valueFrom": {"secretKeyRef": {"name": "wandb", "key": "key"}}},
    ],
    "envFrom": [{"configMapRef": {"name": "ray-env"}, "prefix": "RAG_"}, {"secretRef": {"name": "s3"}}],
    "securityContext": {"supplementalGroups": [2000]},
    "containerSecurityContext": {"readOnlyRootFilesystem": True, "capabilities": {"add": ["NET_BIND_SERVICE"]}},
}  # fmt: skip


#: kube-scheduler's message for a pod that fits no node.
NO_FIT = "0/4 nodes are available: 2 Insufficient memory, 2 node(s) had untolerated taint {nvidia.com/gpu: }."


def scheduled_pod(group: str, scheduled: str | None, message: str = "") -> dict[str, Any]:
    """A pod of `group` as the API returns it; scheduled None: the scheduler has not looked yet."""
    from rag_operator.common import names

    conditions = []
    if scheduled is not None:
        conditions.append({"type": "PodScheduled", "status": scheduled, "message": message})
    return {
        "metadata": {"labels": {names.LABEL_GROUP: group}},
        "status": {"phase": "Pending" if scheduled != "True" else "Running", "conditions": conditions},
    }


def pod_templates(rayjob: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every pod template of a RayJob by group: head, submitter and each worker group."""
    cluster = rayjob["spec"]["rayClusterSpec"]
    found = {
        "head": cluster["headGroupSpec"]["template"],
        "submitter": rayjob["spec"]["submitterPodTemplate"],
    }
    found.update({group["groupName"]: group["template"] for group in cluster["workerGroupSpecs"]})
    return found


def load_example(which: str) -> dict[str, Any]:
    """One of EXAMPLES by key, or "shared": the job that names RRC_EXAMPLE (it renders only with it)."""
    return yaml.safe_load((SHARED_JOB_EXAMPLE if which == "shared" else EXAMPLES[which]).read_text())


def strict(node: Any) -> Any:
    """Unknown keys become errors (the API server would silently prune them: a typo we must catch)."""
    if isinstance(node, dict):
        node = {key: strict(value) for key, value in node.items()}
        if (
            node.get("type") == "object"
            and "properties" in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in node
        ):
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [strict(value) for value in node]
    return node


def load_rayjob_schema() -> dict[str, Any]:
    """KubeRay v1.7.0's RayJob `ray.io/v1` schema, made strict about unknown fields (skips if absent)."""
    return load_kuberay_schema("rayjobs")


def load_kuberay_schema(plural: str) -> dict[str, Any]:
    """KubeRay v1.7.0's `ray.io/v1` schema of `plural` (rayjobs, rayclusters), strict (skips if absent)."""
    crds_dir = Path(os.environ.get("KUBERAY_CRDS_DIR", DEFAULT_KUBERAY_CRDS))
    path = crds_dir / f"ray.io_{plural}.yaml"
    if not path.is_file():
        pytest.skip(
            f"KubeRay CRDs not found at {crds_dir}: run `make fetch-kuberay-crds` or set KUBERAY_CRDS_DIR"
        )
    crd = yaml.safe_load(path.read_text())
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return strict(v1["schema"]["openAPIV3Schema"])


# --- an in-memory stand-in for the kubernetes client ------------------------------------------------


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch (what the API server does with application/merge-patch+json)."""
    result = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_patch(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


#: The API group of each plural the controllers use, for mapping recorded calls to RBAC rules.
GROUP_OF_PLURAL = {
    "rayjobs": "ray.io",
    "rayclusters": "ray.io",
    "networkpolicies": "networking.k8s.io",
    "ragfinetunejobs": "rag.finetune.dev",
    "ragretrievalclusters": "rag.finetune.dev",
    "workloads": "kueue.x-k8s.io",
}
_VERB = {"get": "get", "create": "create", "patch": "patch", "patch-status": "patch", "list": "list"}


def rbac_calls(calls: list[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every recorded call, as an RBAC rule names it."""
    return {
        (GROUP_OF_PLURAL[plural], plural + ("/status" if verb == "patch-status" else ""), _VERB[verb])
        for verb, plural, _ in calls
    }


class FakeCustomObjectsApi:
    """The subset of kubernetes.client.CustomObjectsApi the controller calls, over a dict.

    No API server runs on these machines, so handler tests use this: same method names,
    same 404/409 ApiExceptions, merge-patch semantics, uids and generations filled in.
    """

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str]] = []
        self._uids = itertools.count(1)

    def _key(self, group: str, plural: str, namespace: str, name: str) -> tuple[str, str, str, str]:
        return (group, plural, namespace, name)

    def put(self, group: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{next(self._uids)}")
        meta.setdefault("generation", 1)
        self.objects[self._key(group, plural, meta["namespace"], meta["name"])] = obj
        return copy.deepcopy(obj)

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        self.calls.append(("get", plural, name))
        try:
            return copy.deepcopy(self.objects[self._key(group, plural, namespace, name)])
        except KeyError:
            raise ApiException(status=404, reason="Not Found") from None

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        self.calls.append(("create", plural, body["metadata"]["name"]))
        if self._key(group, plural, namespace, body["metadata"]["name"]) in self.objects:
            raise ApiException(status=409, reason="AlreadyExists")
        body = copy.deepcopy(body)
        body["metadata"]["namespace"] = namespace
        return self.put(group, plural, body)

    def patch_namespaced_custom_object(self, group, version, namespace, plural, name, body, **kwargs):
        self.calls.append(("patch", plural, name))
        key = self._key(group, plural, namespace, name)
        if key not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        body = {k: v for k, v in body.items() if k != "status"}  # the main resource ignores status
        self.objects[key] = merge_patch(self.objects[key], body)
        return copy.deepcopy(self.objects[key])

    def patch_namespaced_custom_object_status(self, group, version, namespace, plural, name, body, **kwargs):
        self.calls.append(("patch-status", plural, name))
        key = self._key(group, plural, namespace, name)
        if key not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        self.objects[key] = merge_patch(self.objects[key], {"status": body.get("status") or {}})
        return copy.deepcopy(self.objects[key])

    def list_namespaced_custom_object(self, group, version, namespace, plural, **kwargs):
        self.calls.append(("list", plural, ""))
        items = [
            copy.deepcopy(obj)
            for (g, p, ns, _), obj in sorted(self.objects.items())
            if (g, p, ns) == (group, plural, namespace)
        ]
        return {"apiVersion": f"{group}/{version}", "kind": "List", "items": items}

    def delete(self, group: str, plural: str, namespace: str, name: str) -> None:
        del self.objects[self._key(group, plural, namespace, name)]


class FakeCoreV1Api:
    """Records events (the bodies the real client would send) and lists `pods`."""

    def __init__(self) -> None:
        from kubernetes.client import ApiClient

        self.events: list[dict[str, Any]] = []
        self.pods: list[dict[str, Any]] = []
        self.api_client = ApiClient()

    def list_namespaced_pod(self, namespace: str, label_selector: str) -> dict[str, Any]:
        """Equality selectors only (`a=b,c=d`), as the controllers use."""
        wanted = dict(term.split("=", 1) for term in label_selector.split(","))
        return {
            "items": [
                p for p in self.pods
                if all(p["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
            ]
        }  # fmt: skip

    def create_namespaced_event(self, namespace: str, body: Any) -> Any:
        from kubernetes.client import ApiClient

        wire = ApiClient().sanitize_for_serialization(body)  # what would go over HTTP
        assert wire["metadata"]["namespace"] == namespace
        self.events.append(wire)
        return body

    def reasons(self) -> list[str]:
        return [event["reason"] for event in self.events]


class FakeMemo:
    """kopf's memo as the controller sees it after startup."""

    def __init__(self) -> None:
        self.custom = FakeCustomObjectsApi()
        self.core = FakeCoreV1Api()
