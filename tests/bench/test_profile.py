"""The Ray call profiler (`rag_job.bench.profile`) on a tiny index and a real local Ray cluster."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from rag_job.bench import profile
from rag_job.retrieval.answers import ActorTimings
from rag_job.retrieval.pool import CallTrace

pytestmark = [pytest.mark.ray, pytest.mark.slow]

DIM = 64


@pytest.fixture(scope="module")
def tiny_kb(tmp_path_factory):
    """One flat shard of 20,000 x 64."""
    from rag_job.bench.synthetic import write_synthetic_knowledge_base

    kb = tmp_path_factory.mktemp("profile") / "kb"
    write_synthetic_knowledge_base(kb, 20_000, DIM, "flat", 1)
    return kb


@pytest.fixture
def tiny_pool(bench_cluster, tiny_kb):
    """A fresh actor serving `tiny_kb` (no batching history), its pool, and the directory."""
    import ray

    from rag_job.retrieval.actor import start_retrieval_actors
    from rag_job.retrieval.pool import PoolSpec, RetrievalPool

    kb = tiny_kb
    spec = PoolSpec(name_prefix=f"profile-{np.random.randint(1 << 30)}", shards=1, replicas=1)
    handles = start_retrieval_actors(str(kb), 1, 1, spec.name_prefix)
    pool = RetrievalPool(spec, handles)
    pool.wait_ready()
    yield pool, kb
    ray.kill(handles[0][0], no_restart=True)


def test_profiled_phases_add_up_to_the_call_time_the_caller_measures(tiny_pool):
    from rag_job.bench.synthetic import query_batches

    pool, _ = tiny_pool
    assert pool.last_trace() is None
    traces, outside_ms = [], []
    for batch in query_batches(12, 8, DIM, seed=5):
        started = time.perf_counter()
        pool.search(batch, 5)
        outside_ms.append((time.perf_counter() - started) * 1000)
        traces.append(pool.last_trace())

    for trace, outside in zip(traces, outside_ms, strict=True):
        phases = profile.phases_ms(trace)
        assert [name for name, _ in profile.PHASES] == list(phases)
        # Caller and actor share this machine's monotonic clock: no phase runs backwards.
        assert min(phases.values()) >= 0, phases
        assert phases["FAISS search"] > 0
        total = sum(phases.values())
        assert total == pytest.approx((trace.ended - trace.started) * 1000)
        # Only the function call itself lies outside the first and last stamps.
        assert total <= outside
        assert outside - total < max(2.0, 0.2 * outside), (outside, total)
    result = profile.breakdown(traces)
    assert result["calls"] == 12
    assert result["call_ms_mean"] == pytest.approx(sum(result["phases_ms"].values()))
    assert result["calls_per_search"] == 1.0  # one caller, calls one at a time: nothing to batch with
    # ... and nothing to wait for: a lone trainer's calls never linger for company.
    assert pool.actor_stats()[0]["lingered_seconds"] == 0.0
    table = profile.breakdown_table([{"label": "Ray R=1", "workers": 1, "profile": result}])
    assert "| FAISS search |" in table and "| **sum of phases** |" in table


def test_calls_from_several_callers_at_once_share_searches_and_each_gets_its_own_answer(tiny_pool):
    from rag_job.bench.synthetic import query_batches
    from rag_job.retrieval.searcher import KnowledgeBaseSearcher

    pool, kb = tiny_pool
    callers = 4
    batches = query_batches(callers * 10, 8, DIM, seed=11).reshape(callers, 10, 8, DIM)
    answers: dict[int, list] = {c: [] for c in range(callers)}
    traces: list[CallTrace] = []
    lock = threading.Lock()

    def call(caller: int) -> None:
        for batch in batches[caller]:
            scores, ids, embeds = pool.search(batch, 5)
            with lock:
                answers[caller].append((scores, ids, embeds))
                traces.append(pool.last_trace())

    threads = [threading.Thread(target=call, args=(c,)) for c in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    local = KnowledgeBaseSearcher(kb)
    for caller in range(callers):
        for batch, (scores, ids, embeds) in zip(batches[caller], answers[caller], strict=True):
            want_scores, want_ids, want_embeds = local.search(batch, 5)
            np.testing.assert_array_equal(ids, want_ids)
            np.testing.assert_allclose(scores, want_scores, rtol=1e-5)
            np.testing.assert_array_equal(embeds, want_embeds)
    # Each thread keeps its own trace; several callers in flight at once share FAISS searches.
    assert len({id(t) for t in traces}) == callers * 10
    assert profile.breakdown(traces)["calls_per_search"] > 1.0
    stats = pool.actor_stats()[0]
    assert stats["calls"] == callers * 10 and stats["batched_searches"] < callers * 10


def test_a_trace_without_actor_timings_is_refused_with_the_reason():
    trace = CallTrace(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, None)
    with pytest.raises(ValueError, match="older code"):
        profile.phases_ms(trace)
    with pytest.raises(ValueError, match="no traced calls"):
        profile.breakdown([])
    timed = trace._replace(actor=ActorTimings(0.21, 0.22, 0.25, 0.26, 3))
    assert sum(profile.phases_ms(timed).values()) == pytest.approx(600.0)
    assert profile.breakdown([timed])["calls_per_search"] == 3.0


def test_unknown_bench_modes_are_rejected_naming_the_choices():
    from rag_job.bench.retrieval import RetrievalBenchConfig

    with pytest.raises(ValueError, match="modes must be some of torch, ray, local"):
        RetrievalBenchConfig(modes=("ray", "grpc")).validate()
    RetrievalBenchConfig(modes=("ray", "local")).validate()


def test_an_actor_that_starts_before_remote_returns_counts_the_overlap_once_in_submit():
    """Ray can run the actor's side before `.remote()` returns in the caller (seen in CI: the
    actor arrived 1.3 ms before the caller's `submitted` stamp). The overlap goes to `submit`,
    `to actor` is 0, and the phases still add up to the call."""
    from rag_job.retrieval.answers import ActorTimings
    from rag_job.retrieval.pool import CallTrace

    actor = ActorTimings(arrived=10.0010, search_started=10.0011, search_ended=10.0031, returned=10.0032)
    trace = CallTrace(
        started=10.0, prepared=10.0001, submitted=10.0023, answered=10.0040, merged=10.0041,
        embedded=10.0043, ended=10.0044, actor=actor,
    )  # fmt: skip

    phases = profile.phases_ms(trace)

    assert phases["submit"] == pytest.approx(0.9)  # prepared -> the actor's arrival
    assert phases["to actor"] == 0.0
    assert phases["batching wait"] == pytest.approx(0.1)
    assert phases["FAISS search"] == pytest.approx(2.0)
    assert min(phases.values()) >= 0
    assert sum(phases.values()) == pytest.approx(4.4)
