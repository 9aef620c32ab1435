"""The retrieval actor: a Ray actor that loads one index shard once and serves every trainer.

Actors need the custom resource `rag_retrieval`, so they run only on retrieval pods
(CPU, high memory). They restart on failure (`max_restarts=-1`) and are named, so
trainers and later jobs find them with `ray.get_actor`.

An actor holds one or more index versions of its shard (`rag_job.knowledge.versions`):
`prepare` loads a new one while the others keep serving, `activate` makes it the default,
`drop` releases an old one once its in-flight calls are done. A call may name the version
it wants, so a client can keep every shard of one call on one version (`rag_job.retrieval.swap`).
A (re)started actor loads the knowledge base's current version.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import ray

from rag_job.config import RETRIEVAL_NAMESPACE, RETRIEVAL_RESOURCE, actor_name
from rag_job.retrieval.answers import ActorTimings, ShardAnswer, VersionNotLoadedError
from rag_job.retrieval.memory import process_memory
from rag_job.retrieval.metrics import ActorMetrics
from rag_job.storage import is_uri

if TYPE_CHECKING:
    from rag_job.retrieval.searcher import ShardSearcher

#: Latency samples kept per actor for p50/p95.
LATENCY_WINDOW = 2048
#: Calls one actor serves at once (threads); calls beyond wait in Ray's queue.
MAX_CONCURRENCY = 8
#: Coalescing: a call that finds the index free waits for as many calls as were in flight during
#: recent searches, at most this share of the last search's time and this many seconds, so one
#: FAISS search serves them all. Without it two trainers on one actor ping-pong: each call arrives
#: during the other's search and then searches alone (measured: 1.00 calls per search at W=2, R=1).
LINGER_SHARE = 0.25
LINGER_MAX_S = 0.02
#: Searches whose concurrency (calls in flight while they ran) sets how many calls to wait for.
CONCURRENCY_HISTORY = 8


@dataclass
class _Request:
    """One `search` call waiting to be served, alone or batched with others."""

    queries: np.ndarray
    k: int
    searcher: ShardSearcher
    with_embeddings: bool = True
    result: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None
    error: BaseException | None = None
    done: bool = False
    #: perf_counter when the FAISS search serving this request started and ended.
    search_started: float = 0.0
    search_ended: float = 0.0
    batch_calls: int = 1


def _batch_key(request: _Request) -> tuple:
    """Calls with the same key can share one FAISS search."""
    return (request.k, request.with_embeddings, id(request.searcher))


class RetrievalActor:
    """Serves `search` for one shard; counts load and calls so tests and status can see them."""

    def __init__(self, kb_dir: str, shard: int, faiss_threads: int | None = None):
        import faiss

        from rag_job.knowledge.layout import load_meta, local_knowledge_base
        from rag_job.knowledge.versions import current_version
        from rag_job.retrieval.searcher import open_shard

        threads = faiss_threads or max(
            1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))
        )
        faiss.omp_set_num_threads(threads)
        self.faiss_threads = threads
        # A knowledge base on an object store is copied once to this node (its kb.json, passages
        # and this shard only); a restarted actor on the same node reuses the copy.
        fetch_started = time.perf_counter()
        local_kb = local_knowledge_base(kb_dir, [shard])
        self.fetch_seconds = time.perf_counter() - fetch_started
        self._local_kb = local_kb
        self._base_meta = load_meta(local_kb)
        # Index versions live beside a local (or shared) knowledge base; one on an object store
        # serves kb.json's index (version 0).
        active = 0 if is_uri(kb_dir) else current_version(local_kb)
        self._versions: dict[int, ShardSearcher] = {active: open_shard(local_kb, shard, active)}
        self._active = active
        self._version_calls: dict[int, int] = {}  # version -> calls being served on it
        self._load_lock = threading.Lock()  # one version loads at a time
        self.kb_dir = kb_dir if is_uri(kb_dir) else str(Path(kb_dir))
        self.shard = shard
        self._lock = threading.Lock()
        self._version_done = threading.Condition(self._lock)
        self._in_flight = 0
        self._calls = 0
        self._queries = 0
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        # Batching: calls that arrive while a search runs wait in `_pending`; the next
        # thread to find the index free searches all of them in one FAISS call.
        self._batch_cond = threading.Condition()
        self._pending: list[_Request] = []
        self._searching = False
        self._searches = 0
        self._concurrency: deque[int] = deque(maxlen=CONCURRENCY_HISTORY)
        self._peak_in_flight = 0  # most calls in flight since the last search started
        self._last_search_s = 0.0
        self._lingered_s = 0.0
        self.started_unix = time.time()
        self.incarnation = ray.get_runtime_context().get_actor_id()
        name = ray.get_runtime_context().get_actor_name() or f"unnamed-shard{shard}"
        self.metrics = ActorMetrics(name.rsplit("-shard", 1)[0], shard, name)
        self.metrics.loaded(self.searcher.end - self.searcher.start, self.searcher.meta.created_unix)

    @property
    def searcher(self) -> ShardSearcher:
        """The active version's searcher."""
        return self._versions[self._active]

    def search(
        self, queries: np.ndarray, k: int, with_embeddings: bool = True, version: int | None = None
    ) -> ShardAnswer:
        """Top-k of this shard from index version `version` (None: the active one).

        `with_embeddings=False` returns None for the embeddings: a client that can read
        them from its own memory-mapped copy of the passages saves their transfer
        (B x k x D floats, the largest part of the answer). A version this actor does not
        hold raises `VersionNotLoadedError` (the client runs the call again on another).

        Concurrent calls (from any client) are batched into one FAISS search: one
        search of many queries costs far less than as many searches of few, and only
        one search at a time uses the actor's FAISS threads, so they match its CPUs.
        """
        arrived = time.perf_counter()
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        with self._lock:
            active = self._active
            served = active if version is None else version
            searcher = self._versions.get(served)
            if searcher is None:
                raise VersionNotLoadedError(served, active, self.shard)
            dim = searcher.meta.dim
            if queries.ndim != 2 or queries.shape[1] != dim:
                raise ValueError(f"queries must have shape [batch, {dim}], got {list(queries.shape)}")
            self._version_calls[served] = self._version_calls.get(served, 0) + 1
            backlog = self._in_flight
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        request = _Request(queries, k, searcher, with_embeddings)
        try:
            scores, ids, embeds = self._timed_search(request, backlog)
        finally:
            with self._lock:
                self._version_calls[served] -= 1
                self._version_done.notify_all()
        timings = ActorTimings(
            arrived, request.search_started, request.search_ended, time.perf_counter(), request.batch_calls
        )
        return ShardAnswer(scores, ids, embeds, backlog, served, active, timings)

    def _timed_search(
        self, request: _Request, backlog: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Serve one counted call (its backlog already taken); record its latency."""
        queries = request.queries
        self.metrics.started(backlog + 1)
        started = time.perf_counter()
        try:
            self._serve_until_done(request)
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self._in_flight -= 1
                self._calls += 1
                self._queries += len(queries)
                self._latencies.append(elapsed)
                in_flight = self._in_flight
            self.metrics.served(len(queries), elapsed * 1000, in_flight)
        if request.error is not None:
            raise request.error
        return request.result

    def _serve_until_done(self, request: _Request) -> None:
        key = _batch_key(request)
        with self._batch_cond:
            self._pending.append(request)
            self._batch_cond.notify_all()  # a call waiting for company counts this one
        while True:
            with self._batch_cond:
                while self._searching and not request.done:
                    self._batch_cond.wait()
                if request.done:
                    return
                self._linger(request, key)
                if request.done or self._searching:  # another thread took the index meanwhile
                    continue
                self._searching = True
                self._peak_in_flight = self._in_flight
                batch = [r for r in self._pending if _batch_key(r) == key]
                self._pending = [r for r in self._pending if _batch_key(r) != key]
            started = time.perf_counter()
            try:
                self._search_batch(batch)
            finally:
                with self._batch_cond:
                    self._searching = False
                    self._searches += 1
                    self._concurrency.append(max(len(batch), self._peak_in_flight))
                    self._last_search_s = time.perf_counter() - started
                    self._batch_cond.notify_all()

    def _linger(self, request: _Request, key: tuple) -> None:
        """With `_batch_cond` held and the index free: wait briefly until as many calls as were in
        flight during recent searches (rounded mean) are pending, so they share one search. A lone
        trainer never waits (one call in flight at a time); the wait is bounded by LINGER_SHARE of
        the last search and LINGER_MAX_S, so a caller that stopped costs little."""
        if not self._concurrency:
            return
        expected = min(MAX_CONCURRENCY, round(sum(self._concurrency) / len(self._concurrency)))
        if expected <= 1:
            return
        started = time.perf_counter()
        self._batch_cond.wait_for(
            lambda: (
                request.done
                or self._searching
                or sum(_batch_key(r) == key for r in self._pending) >= expected
            ),
            timeout=min(LINGER_MAX_S, LINGER_SHARE * self._last_search_s),
        )
        self._lingered_s += time.perf_counter() - started

    def _search_batch(self, batch: list[_Request]) -> None:
        """One FAISS search for every request in `batch`; each gets its own rows (or the error)."""
        import faiss

        try:
            queries = batch[0].queries if len(batch) == 1 else np.concatenate([r.queries for r in batch])
            # OpenMP thread counts are per thread; calls run on the actor's pool threads.
            faiss.omp_set_num_threads(self.faiss_threads)
            search_started = time.perf_counter()
            searcher = batch[0].searcher
            if batch[0].with_embeddings:
                scores, ids, embeds = searcher.search(queries, batch[0].k)
            else:
                scores, local_ids = searcher.index.search(queries, batch[0].k)
                ids, embeds = np.where(local_ids >= 0, local_ids + searcher.start, -1), None
            search_ended = time.perf_counter()
            offset = 0
            for r in batch:
                r.search_started, r.search_ended, r.batch_calls = search_started, search_ended, len(batch)
                rows = slice(offset, offset + len(r.queries))
                r.result = (scores[rows], ids[rows], None if embeds is None else embeds[rows])
                offset += len(r.queries)
        except Exception as err:  # every waiting caller gets the failure, none hangs
            for r in batch:
                r.error = err
        for r in batch:
            r.done = True

    def stats(self) -> dict:
        with self._lock:
            latencies = np.asarray(self._latencies) * 1000 if self._latencies else np.zeros(1)
            return {
                "shard": self.shard,
                "calls": self._calls,
                "queries": self._queries,
                "in_flight": self._in_flight,
                "search_ms_p50": float(np.percentile(latencies, 50)),
                "search_ms_p95": float(np.percentile(latencies, 95)),
                "load_seconds": self.searcher.load_seconds,
                "fetch_seconds": self.fetch_seconds,
                "node_id": ray.get_runtime_context().get_node_id(),
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "faiss_threads": self.faiss_threads,
                "num_passages": self.searcher.end - self.searcher.start,
                "kb_dir": self.kb_dir,
                "kb_num_passages": self._base_meta.num_passages,
                "kb_created_unix": self._base_meta.created_unix,
                "index_version": self._active,
                "loaded_versions": sorted(self._versions),
                "batched_searches": self._searches,
                "lingered_seconds": self._lingered_s,
                # rss/pss/anon/file bytes: mapped index pages are shared, anon memory is not
                **process_memory(),
                "index_mapped": self.searcher.index_mapped,
                **(self.searcher.prefetch.summary() if self.searcher.prefetch else {}),
                "index_bytes": self.searcher.index_bytes,
                "embeddings_bytes": self.searcher.embeddings_bytes,
            }

    def ready(self) -> bool:
        return True

    def versions(self) -> dict:
        """{"active": the default version, "loaded": every version held}."""
        with self._lock:
            return {"active": self._active, "loaded": sorted(self._versions)}

    def prepare(self, version: int) -> float:
        """Load index version `version` of this shard beside the others; returns the load seconds.

        Runs on one of the actor's threads while the others keep serving; a corrupt file raises
        KnowledgeBaseLayoutError naming it, and nothing changes.
        """
        from rag_job.knowledge.layout import KnowledgeBaseLayoutError
        from rag_job.retrieval.searcher import open_shard

        if is_uri(self.kb_dir):
            raise KnowledgeBaseLayoutError(
                f"{self.kb_dir} is on an object store: index versions need a local or shared directory"
            )
        with self._load_lock:
            with self._lock:
                if version in self._versions:
                    return 0.0
            searcher = open_shard(self._local_kb, self.shard, version)
            with self._lock:
                self._versions[version] = searcher
            return searcher.load_seconds

    def activate(self, version: int) -> int:
        """Make `version` the default for calls that name none (loading it first when a restart
        lost it); returns the version active before."""
        self.prepare(version)
        with self._lock:
            previous, self._active = self._active, version
        self.metrics.loaded(self.searcher.end - self.searcher.start, self.searcher.meta.created_unix)
        return previous

    def drop(self, version: int, timeout_s: float = 300.0) -> bool:
        """Release `version` once the calls being served on it finish; later calls naming it get
        VersionNotLoadedError. True when nothing of it is in use here any more."""
        with self._lock:
            if version == self._active:
                raise ValueError(f"shard {self.shard}: version {version} is active; activate another first")
            dropped = self._versions.pop(version, None)
            if dropped is not None:
                dropped.close()
            return self._version_done.wait_for(lambda: self._version_calls.get(version, 0) == 0, timeout_s)


def start_retrieval_actors(
    kb_dir: str,
    shards: int,
    replicas: int,
    name_prefix: str,
    actor_cpus: float = 1.0,
    faiss_threads: int | None = None,
    detached: bool = False,
    namespace: str = RETRIEVAL_NAMESPACE,
) -> list[list[ray.actor.ActorHandle]]:
    """Create (or find, when already running) the named actors: handles[shard][replica].

    Each actor takes one unit of `rag_retrieval`, so a retrieval pod that declares
    `rag_retrieval: N` hosts at most N actors.
    """
    remote_class = ray.remote(RetrievalActor)
    handles = []
    for shard in range(shards):
        row = []
        for replica in range(replicas):
            row.append(
                remote_class.options(
                    name=actor_name(name_prefix, shard, replica),
                    namespace=namespace,
                    get_if_exists=True,
                    lifetime="detached" if detached else None,
                    num_cpus=actor_cpus,
                    resources={RETRIEVAL_RESOURCE: 1},
                    max_restarts=-1,
                    max_task_retries=0,
                    max_concurrency=MAX_CONCURRENCY,
                ).remote(kb_dir, shard, faiss_threads)
            )
        handles.append(row)
    return handles
