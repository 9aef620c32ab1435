"""One real multi-node Ray cluster on loopback for the benchmark tests (trainer and retrieval nodes)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def bench_cluster():
    """Head (driver only), one trainer node (2 workers) and one retrieval node (2 actors)."""
    import ray

    from rag_job.local_cluster import LocalLayout, connect, start_local_cluster

    cluster = start_local_cluster(
        LocalLayout(
            trainer_nodes=1,
            trainer_cpus=2,
            workers_per_trainer_node=2,
            retrieval_nodes=1,
            retrieval_cpus=2,
            actors_per_retrieval_node=2,
        )
    )
    connect(cluster)
    yield cluster
    ray.shutdown()
    cluster.shutdown()
