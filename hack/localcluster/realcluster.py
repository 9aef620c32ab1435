"""A whole cluster with real nodes: network, control plane on the underlay, scheduler, nodes,
and the examples' `rag-data` volume filled by the same Job kind uses (kind/rag-data.yaml).

The pytest fixture (tests/nodes) and `make cluster-up REAL_NODES=N` both start it from here.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import network
from .controlplane import Api, ControlPlane, PlaneOptions, StartupError, start_control_plane, start_scheduler
from .network import NetworkPlan
from .realnodes import RealNodes, node_pools, start_real_nodes, teardown
from .toolchain import REPO, Toolchain

DATA_JOB = REPO / "kind" / "rag-data.yaml"
#: The claim the examples mount at /data.
DATA_CLAIM = "rag-data"


@dataclass
class RealCluster:
    """The control plane and the nodes, stopped together (nodes first)."""

    plane: ControlPlane
    nodes: RealNodes
    timings: dict[str, float] = field(default_factory=dict)

    def stop(self) -> list[str]:
        """Tear the nodes down, then the control plane; returns what was left behind."""
        problems = teardown(self.nodes)
        self.plane.stop()
        return problems

    def state(self) -> dict[str, Any]:
        network_state = self.nodes.network
        return {
            **self.plane.state(),
            "real_nodes": {
                **self.nodes.state(),
                "mounted_netns_dir": bool(network_state and network_state.mounted_netns_dir),
            },
        }


def start_real_cluster(toolchain: Toolchain, directory: Path, plan: NetworkPlan) -> RealCluster:
    """Everything up and every node Ready; on failure whatever started is torn down again."""
    started = time.monotonic()
    net = network.create(plan)
    nodes = RealNodes(plan=plan, directory=directory / "nodes", network=net)
    try:
        plane = start_control_plane(
            toolchain, directory / "plane", PlaneOptions(address=plan.host_ip, workloads=True)
        )
    except BaseException:
        net.remove()
        raise
    try:
        start_scheduler(plane, toolchain)
        start_real_nodes(plane, toolchain, nodes)
    except BaseException:
        plane.stop()
        net.remove()
        raise
    cluster = RealCluster(plane=plane, nodes=nodes)
    cluster.timings = {**plane.timings, **nodes.timings, "total": time.monotonic() - started}
    return cluster


def plan_for(prefix: str, octet: int, count: int) -> NetworkPlan:
    """The network of a cluster of count nodes (trainer, retrieval, then general ones)."""
    return NetworkPlan(prefix=prefix, octet=octet, node_names=tuple(node_pools(count)))


def data_volume(api: Api, namespace: str, host_dir: Path, claim: str = DATA_CLAIM) -> None:
    """A hostPath PersistentVolume on host_dir reserved for `claim` in namespace, and the claim.

    Every node sees the same host directory, so the volume behaves like the NFS or CSI
    ReadWriteMany volume a real cluster would give; the volume binder binds the pair. The
    directory belongs to the job image's user (1000:100), as a provisioner would arrange.
    """
    host_dir.mkdir(parents=True, exist_ok=True)
    os.chown(host_dir, 1000, 100)
    volume = f"{namespace}-{claim}"
    size = "10Gi"
    for path, body in (
        (
            "/api/v1/persistentvolumes",
            {
                "metadata": {"name": volume},
                "spec": {
                    "capacity": {"storage": size},
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": "",
                    "persistentVolumeReclaimPolicy": "Retain",
                    "hostPath": {"path": str(host_dir), "type": "Directory"},
                    "claimRef": {"namespace": namespace, "name": claim},
                },
            },
        ),
        (
            f"/api/v1/namespaces/{namespace}/persistentvolumeclaims",
            {
                "metadata": {"name": claim},
                "spec": {
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": "",
                    "volumeName": volume,
                    "resources": {"requests": {"storage": size}},
                },
            },
        ),
    ):
        status, answer = api.request("POST", path, body)
        if status not in (201, 409):
            raise StartupError(f"creating {path} failed ({status}): {answer}")


def data_job() -> dict[str, Any]:
    """The Job of kind/rag-data.yaml that fills the volume (its claim comes from data_volume)."""
    docs = [d for d in yaml.safe_load_all(DATA_JOB.read_text()) if d and d.get("kind") == "Job"]
    return docs[0]


def fill_data_volume(api: Api, namespace: str, timeout: float = 600.0) -> float:
    """Run the data Job in namespace and wait for it; returns its seconds. Raises with the
    Job's conditions when it fails or times out."""
    job = data_job()
    name = job["metadata"]["name"]
    started = time.monotonic()
    status, answer = api.request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", job)
    if status not in (201, 409):
        raise StartupError(f"creating the data Job failed ({status}): {answer}")
    while time.monotonic() - started < timeout:
        status, body = api.request("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")
        conditions = (body.get("status") or {}).get("conditions") or [] if status == 200 else []
        for condition in conditions:
            if condition.get("status") == "True" and condition.get("type") == "Complete":
                return time.monotonic() - started
            if condition.get("status") == "True" and condition.get("type") == "Failed":
                raise StartupError(f"the data Job failed: {condition.get('message')}")
        time.sleep(1)
    raise StartupError(f"the data Job did not complete within {timeout:.0f} s")
