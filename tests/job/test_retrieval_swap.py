"""Hot index swaps in a real retrieval pool on the multi-node Ray cluster, under load."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.job.helpers import (
    K,
    assert_exact_top_k,
    assert_exact_top_k_in,
    flip_middle_byte,
    permuted,
    stored_embeddings,
)

pytestmark = pytest.mark.ray


class Hammer:
    """Trainer-like threads calling `search_with_version` without pause; every call is recorded."""

    def __init__(self, pool, queries: np.ndarray, threads: int = 4):
        self.pool, self.queries, self.threads = pool, queries, threads
        self.sent = 0
        self.answers: list[tuple[int, object]] = []  # (worker, VersionedAnswer), in arrival order
        self.errors: list[BaseException] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._workers = [threading.Thread(target=self._run, args=(w,)) for w in range(threads)]

    def rows(self, worker: int) -> np.ndarray:
        return self.queries[worker :: self.threads]

    def _run(self, worker: int) -> None:
        while not self._stop.is_set():
            with self._changed:
                self.sent += 1
            try:
                answer = self.pool.search_with_version(self.rows(worker), K)
            except Exception as err:  # recorded, then asserted on
                with self._changed:
                    self.errors.append(err)
                    self._changed.notify_all()
                return
            with self._changed:
                self.answers.append((worker, answer))
                self._changed.notify_all()

    def __enter__(self) -> Hammer:
        for thread in self._workers:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=120)

    def wait_for_answers(self, version: int, count: int, timeout_s: float = 120.0) -> None:
        """Block until `count` answers from `version` have come back (or a call failed)."""

        def enough() -> bool:
            return bool(self.errors) or sum(a.version == version for _, a in self.answers) >= count

        with self._changed:
            assert self._changed.wait_for(enough, timeout_s), f"fewer than {count} answers from v{version}"
        assert self.errors == []


def test_pool_swaps_index_versions_under_load_and_every_answer_comes_from_one_version(
    pool_factory, kb_copy, question_vectors
):
    import ray

    from rag_job.knowledge.reindex import write_index_version
    from rag_job.knowledge.versions import current_version, list_versions, version_dir
    from rag_job.retrieval.swap import swap_index

    tables = {0: stored_embeddings(kb_copy)}
    tables[1] = permuted(tables[0], seed=1)
    tables[2] = permuted(tables[0], seed=2) * 1.5  # other ids and other scores
    # Each version's exact top-k differs from every other's on every query row, so an answer
    # that mixed shards of two versions, or named the wrong one, fails the checks below.
    expected = {v: np.argsort(-(question_vectors @ t.T), axis=1)[:, :K] for v, t in tables.items()}
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert all(set(x) != set(y) for x, y in zip(expected[a], expected[b], strict=True))
    write_index_version(kb_copy, tables[1])
    pool = pool_factory(kb_copy, replicas=2, shards=2)

    with Hammer(pool, question_vectors) as hammer:
        hammer.wait_for_answers(version=0, count=20)
        first = swap_index(pool, kb_copy, 1)
        hammer.wait_for_answers(version=1, count=20)
        write_index_version(kb_copy, tables[2])  # written while version 1 serves
        second = swap_index(pool, kb_copy, 2)
        hammer.wait_for_answers(version=2, count=20)
    print(
        f"swap 0->1: prepare {first.prepare_seconds:.3f}s, activate {first.activate_seconds:.3f}s, "
        f"drain {first.drain_seconds:.3f}s; swap 1->2: prepare {second.prepare_seconds:.3f}s, "
        f"activate {second.activate_seconds:.3f}s, drain {second.drain_seconds:.3f}s; "
        f"{len(hammer.answers)} calls, {pool.version_reruns} re-run on another version"
    )

    assert hammer.errors == []
    assert hammer.sent == len(hammer.answers)  # every call answered
    assert {a.version for _, a in hammer.answers} == {0, 1, 2}
    last_version = dict.fromkeys(range(hammer.threads), 0)
    for worker, answer in hammer.answers:
        assert_exact_top_k_in(tables[answer.version], hammer.rows(worker), answer.ids, answer.embeddings)
        assert answer.version >= last_version[worker], "a client went back to an older version"
        last_version[worker] = answer.version

    # Version 1's files are gone; version 0 (kb.json's index, which export reads) stays.
    assert (first.previous, first.kept, first.deleted) == ([0], [0], [])
    assert (second.previous, second.deleted) == ([1], [str(version_dir(kb_copy, 1))])
    assert not version_dir(kb_copy, 1).exists()
    assert list_versions(kb_copy) == [0, 2]
    assert current_version(kb_copy) == 2
    for stats in pool.actor_stats():
        assert (stats["index_version"], stats["loaded_versions"]) == (2, [2])
    # An actor Ray restarts loads the current version, and the pool keeps answering from it.
    victim = pool._replicas[1][0].handle
    ray.kill(victim, no_restart=False)
    for _ in range(5):
        answer = pool.search_with_version(question_vectors, K)
        assert answer.version == 2
        assert_exact_top_k_in(tables[2], question_vectors, answer.ids, answer.embeddings)
    pool.wait_ready(timeout_s=60)
    assert ray.get(victim.versions.remote()) == {"active": 2, "loaded": [2]}


def test_a_corrupt_new_version_is_refused_naming_the_file_and_the_old_one_keeps_serving(
    pool_factory, kb_copy, question_vectors
):
    from rag_job.knowledge.reindex import write_index_version
    from rag_job.knowledge.versions import current_version, list_versions
    from rag_job.retrieval.swap import IndexSwapError, swap_index

    written = write_index_version(kb_copy, permuted(stored_embeddings(kb_copy), seed=3))
    bad = kb_copy / written.shards[1].file
    flip_middle_byte(bad)
    pool = pool_factory(kb_copy, replicas=2, shards=2)

    with Hammer(pool, question_vectors, threads=2) as hammer:
        hammer.wait_for_answers(version=0, count=5)
        with pytest.raises(IndexSwapError) as err:
            swap_index(pool, kb_copy, written.version)
        served_before = len(hammer.answers)
        hammer.wait_for_answers(version=0, count=served_before + 5)
    message = str(err.value)
    assert "not activated; the pool still serves version 0" in message
    assert f"{bad} does not match its fingerprint in index/v1/manifest.json" in message

    assert hammer.errors == []
    assert {a.version for _, a in hammer.answers} == {0}
    for worker, answer in hammer.answers:
        assert_exact_top_k(kb_copy, hammer.rows(worker), answer.ids, answer.embeddings)
    for stats in pool.actor_stats():
        assert (stats["index_version"], stats["loaded_versions"]) == (0, [0])
    assert current_version(kb_copy) == 0
    assert list_versions(kb_copy) == [0, 1]  # kept for inspection, never deleted by a failed swap


def test_a_version_encoded_on_ray_with_the_same_encoder_reproduces_the_built_index(
    ray_cluster, kb_copy, tiny_assets
):
    from rag_job.knowledge.reindex import encode_index_version
    from rag_job.retrieval.searcher import open_shard

    written = encode_index_version(kb_copy, tiny_assets.ctx_encoder, num_actors=2)
    assert written.version == 1
    assert written.ctx_encoder == str(tiny_assets.ctx_encoder)
    rows = np.concatenate([open_shard(kb_copy, s, 1).embeddings.rows for s in range(len(written.shards))])
    np.testing.assert_allclose(rows, stored_embeddings(kb_copy), rtol=1e-4, atol=1e-5)


def test_a_client_still_asking_for_a_dropped_version_is_answered_wholly_from_the_new_one(
    pool_factory, kb_copy, question_vectors
):
    """Another trainer's pool knows only the old version: every shard refuses it after the swap,
    and its call runs again, whole, on the version the actors now serve."""
    from rag_job.knowledge.reindex import write_index_version
    from rag_job.retrieval.pool import RetrievalPool
    from rag_job.retrieval.swap import swap_index

    table = permuted(stored_embeddings(kb_copy), seed=4)
    write_index_version(kb_copy, table)
    pool = pool_factory(kb_copy, replicas=2, shards=2)
    other = RetrievalPool.connect(pool.spec)
    assert other.search_with_version(question_vectors, K).version == 0
    assert other.version == 0

    swap_index(pool, kb_copy, 1)
    answer = other.search_with_version(question_vectors, K)
    assert answer.version == 1
    assert other.version_reruns == 1
    assert other.version == 1
    assert_exact_top_k_in(table, question_vectors, answer.ids, answer.embeddings)
