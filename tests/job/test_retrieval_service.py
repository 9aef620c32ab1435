"""A long-lived retrieval service (RagRetrievalCluster's Ray side) serving jobs one after another."""

from __future__ import annotations

import pytest

from tests.job.test_training import make_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_two_jobs_share_one_service_that_loads_the_index_once_and_survives_a_killed_actor(
    ray_cluster, tiny_assets, tmp_path
):
    import ray

    from rag_job.config import ServiceConfig
    from rag_job.retrieval.service import health_report, start_service
    from rag_job.train.driver import run_training

    service = start_service(
        ServiceConfig(
            name="shared-kb",
            knowledge_base=str(tiny_assets.kb_flat_2shards),
            actors_per_shard=2,
            actor_cpus=0.5,
        )
    )
    try:
        loaded = {a["actor"]: a["pid"] for a in service.actor_stats()}
        assert len(loaded) == 4  # 2 shards x 2 replicas, each loaded its shard once

        def job(name: str):
            (tmp_path / name).mkdir()
            return run_training(
                make_config(
                    tiny_assets,
                    tmp_path / name,
                    name,
                    retrieval__cluster="shared-kb",
                    retrieval__actors_per_shard=2,
                )
            )

        first = job("first")
        after_first = {a["actor"]: a for a in service.actor_stats()}
        # The job used the service's actors: same processes, nothing reloaded, calls served.
        assert {name: a["pid"] for name, a in after_first.items()} == loaded
        assert sum(a["calls"] for a in after_first.values()) >= len(first.history) * 2

        victim_name = "shared-kb-shard0-replica0"
        victim = ray.get_actor(victim_name, namespace="rag-retrieval")
        ray.kill(victim, no_restart=False)
        second = job("second")

        assert [h["step"] for h in second.history] == list(range(1, 9))  # no step lost a query
        after_second = {a["actor"]: a for a in service.actor_stats()}
        assert after_second[victim_name]["pid"] != loaded[victim_name]  # restarted: one reload
        assert {n: a["pid"] for n, a in after_second.items() if n != victim_name} == {
            n: pid for n, pid in loaded.items() if n != victim_name
        }
        assert health_report(service)["ready"]
        # How much less a warm start costs is a figure of `bench startup`, not a timed assert here:
        # the second job waits for the killed actor's reload, however slow a busy machine makes it.
    finally:
        for _, handle in service.actors():
            ray.kill(handle, no_restart=True)
