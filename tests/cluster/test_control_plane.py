"""The local control plane behaves like a real cluster for what our operator relies on.

Real kube-apiserver, etcd, kube-controller-manager and KubeRay operator; no
nodes, so pods stay Pending (nothing here pretends they run).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.polling import eventually

from .kube import get_json

pytestmark = pytest.mark.cluster

RAY_IMAGE = "rayproject/ray:2.49.0"  # never pulled: there are no nodes


def ray_job(name: str, worker_replicas: Any = 1) -> dict[str, Any]:
    """A minimal valid RayJob: one head, one worker group, a trivial entrypoint."""

    def pod(container: str) -> dict[str, Any]:
        resources = {"cpu": "500m", "memory": "1Gi"}
        return {
            "spec": {
                "containers": [
                    {
                        "name": container,
                        "image": RAY_IMAGE,
                        "resources": {"requests": resources, "limits": resources},
                    }
                ]
            }
        }

    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name},
        "spec": {
            "entrypoint": "python -c 'print(1)'",
            "rayClusterSpec": {
                "headGroupSpec": {"rayStartParams": {}, "template": pod("ray-head")},
                "workerGroupSpecs": [
                    {
                        "groupName": "workers",
                        "replicas": worker_replicas,
                        "minReplicas": 1,
                        "maxReplicas": 1,
                        "rayStartParams": {},
                        "template": pod("ray-worker"),
                    }
                ],
            },
        },
    }


def test_api_server_serves_version_and_namespaces(kubectl, toolchain) -> None:
    version = kubectl("version", "-o", "json")
    assert version.returncode == 0, version.stderr
    server = json.loads(version.stdout)["serverVersion"]["gitVersion"]
    assert server.startswith(toolchain.k8s_version.split("-")[0]), server
    names = {n["metadata"]["name"] for n in get_json(kubectl, "namespaces")["items"]}
    assert {"default", "kube-system"} <= names


def test_kuberay_crds_are_established(kubectl) -> None:
    for crd in ("rayjobs.ray.io", "rayclusters.ray.io"):
        conditions = get_json(kubectl, "crd", crd)["status"]["conditions"]
        assert any(c["type"] == "Established" and c["status"] == "True" for c in conditions), conditions


def test_kuberay_turns_an_applied_rayjob_into_a_raycluster_with_pending_pods(kubectl, namespace) -> None:
    applied = kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(ray_job("hello")))
    assert applied.returncode == 0, applied.stderr

    def owned_cluster() -> dict[str, Any] | None:
        for cluster in get_json(kubectl, "rayclusters", "-n", namespace)["items"]:
            owners = cluster["metadata"].get("ownerReferences", [])
            if any(o["kind"] == "RayJob" and o["name"] == "hello" and o.get("controller") for o in owners):
                return cluster
        return None

    cluster = eventually(owned_cluster, what="a RayCluster owned by RayJob hello")
    name = cluster["metadata"]["name"]

    def cluster_pods() -> list[dict[str, Any]]:
        pods = get_json(kubectl, "pods", "-n", namespace, "-l", f"ray.io/cluster={name}")["items"]
        return pods if len(pods) >= 2 else []

    pods = eventually(cluster_pods, what=f"head and worker pods of RayCluster {name}")
    assert {p["metadata"]["labels"].get("ray.io/node-type") for p in pods} == {"head", "worker"}
    assert {p["status"].get("phase") for p in pods} == {"Pending"}, "no nodes here: pods must stay Pending"


def test_rayjob_with_a_string_replica_count_is_rejected_naming_the_field(kubectl, namespace) -> None:
    bad = yaml.safe_dump(ray_job("bad-replicas", worker_replicas="two"))
    refused = kubectl("apply", "-n", namespace, "-f", "-", stdin=bad)
    assert refused.returncode != 0
    assert "spec.rayClusterSpec.workerGroupSpecs[0].replicas" in refused.stderr, refused.stderr


def test_rayjob_with_an_unknown_field_is_rejected_naming_the_field(kubectl, namespace) -> None:
    manifest = ray_job("bad-field")
    manifest["spec"]["entrypointt"] = "python -c 'print(1)'"
    refused = kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(manifest))
    assert refused.returncode != 0
    assert "entrypointt" in refused.stderr, refused.stderr


def test_deleting_a_rayjob_garbage_collects_its_raycluster_and_owned_objects(kubectl, namespace) -> None:
    """The RayCluster goes with its RayJob; a ConfigMap owned only through an
    ownerReference (as our operator owns its RayJob) goes too, which only
    kube-controller-manager's garbage collector does."""
    applied = kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(ray_job("doomed")))
    assert applied.returncode == 0, applied.stderr
    uid = get_json(kubectl, "rayjob", "doomed", "-n", namespace)["metadata"]["uid"]
    owner = {"apiVersion": "ray.io/v1", "kind": "RayJob", "name": "doomed", "uid": uid}
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "doomed-data", "ownerReferences": [owner]},
        "data": {"k": "v"},
    }
    created = kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(config_map))
    assert created.returncode == 0, created.stderr
    eventually(
        lambda: get_json(kubectl, "rayclusters", "-n", namespace)["items"], what="the RayJob's RayCluster"
    )

    deleted = kubectl("delete", "rayjob", "doomed", "-n", namespace, "--wait=true", "--timeout=60s")
    assert deleted.returncode == 0, deleted.stderr

    def gone() -> bool:
        clusters = get_json(kubectl, "rayclusters", "-n", namespace)["items"]
        maps = get_json(kubectl, "configmaps", "-n", namespace, "--field-selector=metadata.name=doomed-data")
        return not clusters and not maps["items"]

    eventually(gone, what="garbage collection of the RayCluster and the owned ConfigMap")
