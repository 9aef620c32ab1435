"""Suite-wide settings and the one Ray cluster every Ray test shares.

The Ray cluster emulates the Kubernetes layout on one machine with
`ray.cluster_utils.Cluster`: a head with no CPUs (driver only), one node with
`rag_trainer` and two nodes with `rag_retrieval`, all on loopback. One per session:
a process can be the driver of only one Ray cluster at a time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from hypothesis import settings

from rag_job.config import RETRIEVAL_RESOURCE, TRAINER_RESOURCE

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Ray's dashboard token auth is off, as on a KubeRay cluster without authOptions (all on loopback).
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
# Ray's metrics agents export every second (default 10 s): tests that scrape a node's metrics port
# see a series move within a second or two.
os.environ.setdefault("RAY_metrics_report_interval_ms", "1000")

# Property tests draw the same examples on every run, so `make test` passes or fails the same way
# on every machine; HYPOTHESIS_PROFILE=explore draws new ones (what to run when hunting bugs).
settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@dataclass(frozen=True)
class RayNodes:
    address: str
    dashboard_url: str
    trainer_node_ids: frozenset[str]
    retrieval_node_ids: frozenset[str]


@pytest.fixture(scope="session")
def ray_cluster():
    """A real multi-node Ray cluster on this machine (head + 1 trainer node + 2 retrieval nodes)."""
    import ray

    from rag_job.local.cluster import LocalLayout, connect, start_local_cluster

    cluster = start_local_cluster(
        LocalLayout(
            trainer_nodes=1,
            trainer_cpus=4,
            workers_per_trainer_node=4,
            retrieval_nodes=2,
            retrieval_cpus=2,
            actors_per_retrieval_node=2,
        )
    )
    connect(cluster)
    nodes = [node for node in ray.nodes() if node["Alive"]]
    yield RayNodes(
        address=cluster.address,
        dashboard_url=f"http://{cluster.webui_url}" if cluster.webui_url else "",
        trainer_node_ids=frozenset(n["NodeID"] for n in nodes if TRAINER_RESOURCE in n["Resources"]),
        retrieval_node_ids=frozenset(n["NodeID"] for n in nodes if RETRIEVAL_RESOURCE in n["Resources"]),
    )
    ray.shutdown()
    cluster.shutdown()
