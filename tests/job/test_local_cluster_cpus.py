"""The local cluster can give trainer and retrieval nodes CPUs of their own, as separate pods have.

One small cluster of its own (trainers on one CPU, retrieval on another). Its probe driver runs
in a subprocess: this process may already drive the suite's cluster, and a process drives one.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

import pytest

from rag_job.config import RETRIEVAL_RESOURCE, TRAINER_RESOURCE
from rag_job.local.cluster import LocalLayout, start_local_cluster, usable_cpus

pytestmark = pytest.mark.ray

#: Driver of the probe: one actor on each group's resource reports its node and CPU affinity.
PROBE = f"""
import json, os, sys
import ray

ray.init(address=sys.argv[1], _node_ip_address="127.0.0.1", log_to_driver=False)


@ray.remote(num_cpus=0)
class Probe:
    def where(self):
        return {{"node": ray.get_runtime_context().get_node_id(), "cpus": sorted(os.sched_getaffinity(0))}}


groups = {{"trainer": {TRAINER_RESOURCE!r}, "retrieval": {RETRIEVAL_RESOURCE!r}}}
probes = {{g: Probe.options(resources={{r: 1}}).remote() for g, r in groups.items()}}
nodes = {{g: sorted(n["NodeID"] for n in ray.nodes() if n["Alive"] and r in n["Resources"]) for g, r in groups.items()}}
print(json.dumps({{"probes": {{g: ray.get(p.where.remote(), timeout=120) for g, p in probes.items()}}, "nodes": nodes}}))
"""


def _thread_affinities() -> dict[int, frozenset[int]]:
    affinities = {}
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            affinities[int(tid)] = frozenset(os.sched_getaffinity(int(tid)))
    return affinities


def test_each_node_group_runs_its_workers_on_its_own_cpus_and_the_driver_keeps_its_own():
    cpus = sorted(usable_cpus())
    if len(cpus) < 2:
        pytest.skip(f"a CPU split needs 2 usable CPUs; this process may use only {cpus}")
    trainer_cpus, retrieval_cpus = frozenset(cpus[:1]), frozenset(cpus[1:2])
    layout = LocalLayout(
        trainer_nodes=1,
        retrieval_nodes=1,
        trainer_cpu_set=trainer_cpus,
        retrieval_cpu_set=retrieval_cpus,
    )
    before = frozenset(os.sched_getaffinity(0))
    cluster = start_local_cluster(layout)
    try:
        assert frozenset(os.sched_getaffinity(0)) == before
        assert set(_thread_affinities().values()) == {before}, "a thread Ray started kept a node's CPUs"
        probe = subprocess.run(
            [sys.executable, "-c", PROBE, cluster.address], capture_output=True, text=True, timeout=240
        )
        assert probe.returncode == 0, probe.stderr[-4000:]
        seen = json.loads(probe.stdout.strip().splitlines()[-1])
    finally:
        cluster.shutdown()
    for group, expected in (("trainer", trainer_cpus), ("retrieval", retrieval_cpus)):
        assert seen["probes"][group]["node"] in seen["nodes"][group]
        assert seen["probes"][group]["cpus"] == sorted(expected), group


def test_a_cpu_set_with_cpus_this_process_may_not_use_names_the_field_and_the_usable_cpus():
    usable = sorted(usable_cpus())
    with pytest.raises(ValueError, match="retrieval_cpu_set") as raised:
        LocalLayout(retrieval_cpu_set=(max(usable) + 1,))
    assert "{" + ", ".join(map(str, usable)) + "}" in str(raised.value)
    with pytest.raises(ValueError, match="trainer_cpu_set"):
        LocalLayout(trainer_cpu_set=())


def test_cpu_sets_default_to_none_and_take_any_iterable_of_cpu_ids():
    layout = LocalLayout(trainer_cpu_set=[min(usable_cpus())])
    assert layout.trainer_cpu_set == frozenset({min(usable_cpus())})
    assert LocalLayout().trainer_cpu_set is None and LocalLayout().retrieval_cpu_set is None
