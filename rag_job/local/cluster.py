"""A multi-node Ray cluster on one machine that has the Kubernetes layout's shape.

`python -m rag_job train --local` and `make demo` use it: a head that runs only the
driver, trainer nodes that declare `rag_trainer`, retrieval nodes that declare
`rag_retrieval`, exactly as the operator's RayJob declares them on pods.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from rag_job.config import RETRIEVAL_RESOURCE, TRAINER_RESOURCE

#: Every node binds to loopback: a laptop run opens no port on the network.
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class LocalLayout:
    trainer_nodes: int = 2
    trainer_cpus: float = 1
    #: `rag_trainer` units per trainer node: how many trainer workers it hosts.
    workers_per_trainer_node: int = 1
    retrieval_nodes: int = 2
    retrieval_cpus: float = 1
    actors_per_retrieval_node: int = 1


def stay_on_loopback() -> None:
    """Make Ray resolve "this node" to 127.0.0.1 instead of the machine's network address.

    Ray rewrites a loopback bootstrap address to the host's outward-facing IP on Linux
    unless multi-node clustering is marked unsupported, which is the laptop behaviour we
    want. Set in the environment for the raylets and workers this process spawns, and in
    the already-imported constant for this process.
    """
    import os

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def start_local_cluster(layout: LocalLayout = LocalLayout()):
    """Start the nodes and return the `ray.cluster_utils.Cluster` (caller shuts it down)."""
    stay_on_loopback()
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "node_ip_address": LOOPBACK})
    for _ in range(layout.trainer_nodes):
        cluster.add_node(
            num_cpus=layout.trainer_cpus,
            resources={TRAINER_RESOURCE: layout.workers_per_trainer_node},
            node_ip_address=LOOPBACK,
        )
    for _ in range(layout.retrieval_nodes):
        cluster.add_node(
            num_cpus=layout.retrieval_cpus,
            resources={RETRIEVAL_RESOURCE: layout.actors_per_retrieval_node},
            node_ip_address=LOOPBACK,
        )
    cluster.wait_for_nodes()
    return cluster


def connect(cluster, log_to_driver: bool = False) -> None:
    """Attach this process to the local cluster as its driver (`log_to_driver` shows workers' logs)."""
    import ray

    ray.init(address=cluster.address, _node_ip_address=LOOPBACK, log_to_driver=log_to_driver)


@contextlib.contextmanager
def ray_session(local: bool, layout: LocalLayout | None = None) -> Iterator[None]:
    """A local multi-node cluster shaped like `layout` (`--local`), or the cluster this pod is in."""
    import ray

    cluster = None
    if local:
        cluster = start_local_cluster(layout or LocalLayout())
        connect(cluster, log_to_driver=True)
    else:
        ray.init(address="auto")
    try:
        yield
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()


@contextlib.contextmanager
def cluster_unless_connected(layout: LocalLayout) -> Iterator[None]:
    """The Ray cluster this process already drives (a test suite's, say), or a local one shaped
    like `layout`, shut down afterwards: the benchmarks run either way."""
    import ray

    if ray.is_initialized():
        yield
        return
    cluster = start_local_cluster(layout)
    connect(cluster)
    try:
        yield
    finally:
        ray.shutdown()
        cluster.shutdown()
