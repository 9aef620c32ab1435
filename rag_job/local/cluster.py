"""A multi-node Ray cluster on one machine that has the Kubernetes layout's shape.

`python -m rag_job train --local` and `make demo` use it: a head that runs only the
driver, trainer nodes that declare `rag_trainer`, retrieval nodes that declare
`rag_retrieval`, exactly as the operator's RayJob declares them on pods.

On Kubernetes those groups are pods on separate machines, each with its own CPUs; here they all
share this machine's. `LocalLayout.trainer_cpu_set` / `retrieval_cpu_set` give each group its own
CPUs (Linux CPU affinity), so what one group burns cannot slow the other: what a benchmark of
"trainers while the retrieval nodes re-encode" must measure to mean what it means on Kubernetes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
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
    #: CPU ids the trainer nodes (their raylets, agents and every worker they start) may run on,
    #: simulating trainer pods on machines of their own; None: any CPU, shared with every group.
    trainer_cpu_set: frozenset[int] | None = None
    #: The same for the retrieval nodes (retrieval and encode actors); may overlap the trainers'.
    retrieval_cpu_set: frozenset[int] | None = None

    def __post_init__(self) -> None:
        """A CPU set is a non-empty set of CPUs this process may use (tuples and sets accepted)."""
        for name in ("trainer_cpu_set", "retrieval_cpu_set"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _usable_cpu_set(name, value))


def usable_cpus() -> frozenset[int]:
    """The CPU ids this process may run on (its affinity: a container's or taskset's limit)."""
    return frozenset(os.sched_getaffinity(0))


def _usable_cpu_set(name: str, cpus: Iterable[int]) -> frozenset[int]:
    available = usable_cpus()
    try:
        chosen = frozenset(int(cpu) for cpu in cpus)
    except (TypeError, ValueError):
        raise ValueError(f"{name} takes CPU ids (integers); got {cpus!r}") from None
    if not chosen or chosen - available:
        raise ValueError(
            f"{name} must name CPUs this process may use, {_cpu_list(available)}; got {_cpu_list(chosen)}"
        )
    return chosen


def _cpu_list(cpus: Iterable[int]) -> str:
    return "{" + ", ".join(str(cpu) for cpu in sorted(cpus)) + "}"


def split_usable_cpus() -> tuple[frozenset[int], frozenset[int]]:
    """This process's CPUs in two halves (the trainers', then the retrieval nodes'; the trainers
    get the smaller half of an odd count): two groups of machines simulated on one."""
    cpus = sorted(usable_cpus())
    if len(cpus) < 2:
        raise ValueError(
            f"splitting the CPUs needs at least 2 usable ones; this process may use {_cpu_list(cpus)}"
        )
    half = len(cpus) // 2
    return frozenset(cpus[:half]), frozenset(cpus[half:])


def _thread_ids() -> set[int]:
    return {int(tid) for tid in os.listdir("/proc/self/task")}


@contextlib.contextmanager
def _children_on(cpus: frozenset[int] | None) -> Iterator[None]:
    """Processes started in this block run on `cpus` only; the caller keeps its own CPUs.

    Affinity is inherited: Ray starts a node's raylet and agents as subprocesses of the calling
    thread, and the raylet forks the node's workers, so setting the calling thread's affinity
    while a node starts pins the whole node. Restored afterwards, also for any thread Ray started
    in this process meanwhile (it inherited the narrow set too).
    """
    if cpus is None:
        yield
        return
    original = os.sched_getaffinity(0)
    threads_before = _thread_ids()
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, original)
        for tid in _thread_ids() - threads_before:
            with contextlib.suppress(OSError):  # a thread that already ended
                os.sched_setaffinity(tid, original)


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
    """Start the nodes and return the `ray.cluster_utils.Cluster` (caller shuts it down).

    The head and this process keep every CPU; each group's nodes run on its CPU set, if any.
    """
    stay_on_loopback()
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "node_ip_address": LOOPBACK})
    for _ in range(layout.trainer_nodes):
        with _children_on(layout.trainer_cpu_set):
            cluster.add_node(
                num_cpus=layout.trainer_cpus,
                resources={TRAINER_RESOURCE: layout.workers_per_trainer_node},
                node_ip_address=LOOPBACK,
            )
    for _ in range(layout.retrieval_nodes):
        with _children_on(layout.retrieval_cpu_set):
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
