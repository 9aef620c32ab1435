"""Two fine-tuning jobs at the same time on one retrieval service (a RagRetrievalCluster's sweep).

Both jobs run from this driver in two threads, on the session's multi-node Ray cluster,
each with one Ray Train worker (the trainer node has 4 CPUs; the two jobs need 2).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.job.test_training import make_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]

#: Long enough (a few seconds of steps) that the two jobs' training overlaps despite start-up jitter.
STEPS = 40


def test_two_concurrent_jobs_share_one_index_load_and_their_calls_spread_over_both_replicas(
    ray_cluster, tiny_assets, tmp_path
):
    import ray

    from rag_job.config import ServiceConfig
    from rag_job.retrieval.service import health_report, start_service
    from rag_job.train.driver import run_training

    service = start_service(
        ServiceConfig(
            name="sweep-kb", knowledge_base=str(tiny_assets.kb_flat), actors_per_shard=2, actor_cpus=0.5
        )
    )
    try:
        loaded = {a["actor"]: a["pid"] for a in service.actor_stats()}
        assert len(loaded) == 2  # 1 shard x 2 replicas, each loaded it once

        def config(name: str, learning_rate: float):
            (tmp_path / name).mkdir()
            return make_config(
                tiny_assets,
                tmp_path / name,
                name,
                retrieval__knowledge_base=str(tiny_assets.kb_flat),
                retrieval__cluster="sweep-kb",
                retrieval__actors_per_shard=2,
                scaling__num_workers=1,
                evaluation__at_start=False,
                training__max_steps=STEPS,
                training__learning_rate=learning_rate,
                checkpoint__every_steps=STEPS,
            )

        jobs = [config("sweep-lr-a", 2e-3), config("sweep-lr-b", 5e-4)]
        with ThreadPoolExecutor(max_workers=2) as threads:
            summaries = list(threads.map(run_training, jobs))

        for summary in summaries:
            assert [h["step"] for h in summary.history] == list(range(1, STEPS + 1))
        # They really overlapped: each job's first step ended before the other's last one.
        a, b = ([h["time_unix"] for h in s.history] for s in summaries)
        assert a[0] < b[-1] and b[0] < a[-1], "the two jobs ran one after the other, not at once"

        after = {s["actor"]: s for s in service.actor_stats()}
        assert {name: s["pid"] for name, s in after.items()} == loaded  # the index was loaded once
        job_calls = [sum(h["retrieval_calls"] for h in s.history) for s in summaries]
        assert all(calls >= STEPS for calls in job_calls)
        # Every call of both jobs went to the shared actors, and both replicas served them.
        assert sum(s["calls"] for s in after.values()) == sum(job_calls)
        served = sorted(s["calls"] for s in after.values())
        assert served[0] >= sum(job_calls) // 4, f"one replica served almost everything: {served}"
        assert health_report(service)["ready"]
    finally:
        for _, handle in service.actors():
            ray.kill(handle, no_restart=True)
