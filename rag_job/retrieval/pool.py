"""Client side of Ray retrieval: R replicas x S shards behind one `search` call.

A query batch fans out to one replica of every shard and the per-shard top-k are
merged by score. The replica chosen is the least loaded: calls this client has in
flight there plus the backlog the actor reported on its last answer (which counts
every client's calls, so routing spans jobs that share the actors). A call to a dead
actor is retried on another replica, or on the same one once Ray has restarted it,
so a killed actor costs latency, never a query.

Every call is served from one index version on every shard (`rag_job.knowledge.versions`):
the pool names the version it asks for, an actor that no longer (or not yet) holds it says so,
and the whole call runs again on a version all shards hold. An answer never mixes versions,
and `search_with_version` reports the one it came from. `rag_job.retrieval.swap` moves a pool
to a new version.

Answers travel as numpy arrays (queries inline or through the object store, never as
Python lists). Document embeddings, the largest part of an answer, do not travel at
all when this process can open the knowledge base the actors serve (a shared volume,
or the same machine): they are read from its memory-mapped passages by id instead.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError

from rag_job.config import RETRIEVAL_NAMESPACE, actor_name
from rag_job.retrieval.answers import ActorTimings, ShardAnswer, VersionNotLoadedError
from rag_job.retrieval.metrics import ClientMetrics
from rag_job.retrieval.searcher import EmbeddingTable, VersionEmbeddings, merge_top_k

logger = logging.getLogger(__name__)

ACTOR_FAILURES = (RayActorError, ActorDiedError, ActorUnavailableError)


class RetrievalUnavailableError(RuntimeError):
    """No replica of a shard answered within the retry budget."""


class VersionedAnswer(NamedTuple):
    """A merged top-k over every shard, all of it from index version `version`."""

    scores: np.ndarray
    ids: np.ndarray
    embeddings: np.ndarray
    version: int


class CallTrace(NamedTuple):
    """`time.perf_counter()` stamps of one `search` call in the calling thread, and the actor's own
    stamps of the shard that answered last (the call's critical path); `rag_job.bench.profile`
    turns them into the time per phase."""

    started: float
    prepared: float  # queries made contiguous (and put in the object store when large)
    submitted: float  # every shard's call handed to Ray
    answered: float  # the last shard's answer deserialised here
    merged: float  # shards' top-k merged
    embedded: float  # embeddings read from the local copy (or taken from the answers)
    ended: float  # latency recorded
    actor: ActorTimings | None


class _StaleVersion(Exception):
    """The call cannot be answered from one version as sent: run it again on `version`."""

    def __init__(self, version: int, wait: bool):
        super().__init__(version)
        self.version, self.wait = version, wait


#: How long an actor's reported backlog counts in routing (other clients' calls come and go in
#: milliseconds; older reports say little).
BACKLOG_FRESH_S = 0.2


@dataclass
class _ReplicaState:
    handle: ray.actor.ActorHandle
    name: str
    in_flight: int = 0
    reported_backlog: int = 0
    reported_at: float = 0.0
    calls: int = 0
    failures: int = 0
    suspect_until: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class PoolSpec:
    """What a trainer needs to find the actors: picklable, sent in the train loop's config."""

    name_prefix: str
    shards: int
    replicas: int
    namespace: str = RETRIEVAL_NAMESPACE


class RetrievalPool:
    def __init__(
        self, spec: PoolSpec, handles: list[list[ray.actor.ActorHandle]], retry_seconds: float = 120.0
    ):
        self.spec = spec
        self.retry_seconds = retry_seconds
        self._lock = threading.Lock()
        self._replicas = [
            [
                _ReplicaState(handle=h, name=actor_name(spec.name_prefix, shard, replica))
                for replica, h in enumerate(row)
            ]
            for shard, row in enumerate(handles)
        ]
        self.call_latencies_ms: list[float] = []
        #: Shard calls that failed and were sent again (a replica died or restarted).
        self.retries = 0
        #: The index version new calls ask for; None until an answer or `pin` tells.
        self._version: int | None = None
        self._pinned: Counter[int | None] = Counter()  # calls in flight per version asked for
        self._unpinned = threading.Condition(self._lock)
        #: Whole calls run again because a shard no longer (or not yet) held their version.
        self.version_reruns = 0
        self._embeddings: EmbeddingTable | None = None
        self._embeddings_checked = False
        self._served_kb_dir: str | None = None
        #: Index versions > 0: their embeddings opened here (None: not readable, the actors send them).
        self._version_embeddings: dict[int, VersionEmbeddings | None] = {}
        self._metrics = ClientMetrics(spec.name_prefix)
        self._stamps = threading.local()

    def last_trace(self) -> CallTrace | None:
        """Where this thread's last `search` spent its time (None before its first call)."""
        return getattr(self._stamps, "trace", None)

    def __deepcopy__(self, memo: dict) -> RetrievalPool:
        """A pool is a connection to shared actors: copies share it (transformers deep-copies the
        retriever passed to `from_pretrained`, and locks cannot be copied)."""
        return self

    def _local_embeddings(self) -> EmbeddingTable | None:
        """This process's zero-copy view of the served knowledge base's embeddings, when it can open it."""
        if self._embeddings_checked:
            return self._embeddings
        self._embeddings_checked = True
        try:
            served = ray.get(self._replicas[0][0].handle.stats.remote(), timeout=60)
            self._served_kb_dir = served["kb_dir"]
            self._embeddings = open_local_embeddings(
                served["kb_dir"], served["kb_num_passages"], served["kb_created_unix"]
            )
        except Exception as err:  # any failure: fall back to embeddings sent by the actors
            logger.info("embeddings will come from the retrieval actors: %s", err)
            self._embeddings = None
        return self._embeddings

    def _local_embeddings_of(self, version: int) -> EmbeddingTable | VersionEmbeddings | None:
        """This process's view of index version `version`'s embeddings, when it can open them."""
        if version == 0:
            return self._local_embeddings()
        with self._lock:
            if version in self._version_embeddings:
                return self._version_embeddings[version]
        self._local_embeddings()  # learns the served directory
        table = open_local_version_embeddings(self._served_kb_dir, version) if self._served_kb_dir else None
        with self._lock:
            # Only the newest two are kept: an older version's files are deleted after a swap.
            for old in [v for v in self._version_embeddings if v < version - 1]:
                del self._version_embeddings[old]
            self._version_embeddings[version] = table
        return table

    @classmethod
    def connect(cls, spec: PoolSpec, timeout_s: float = 60.0) -> RetrievalPool:
        """Find the named actors (started by the driver or by a retrieval cluster)."""
        deadline = time.monotonic() + timeout_s
        handles = []
        for shard in range(spec.shards):
            row = []
            for replica in range(spec.replicas):
                name = actor_name(spec.name_prefix, shard, replica)
                while True:
                    try:
                        row.append(ray.get_actor(name, namespace=spec.namespace))
                        break
                    except ValueError:
                        if time.monotonic() > deadline:
                            raise RetrievalUnavailableError(
                                f"retrieval actor {name!r} not found in Ray namespace {spec.namespace!r} "
                                f"after {timeout_s:.0f}s; is the retrieval pool running?"
                            ) from None
                        time.sleep(0.5)
            handles.append(row)
        return cls(spec, handles)

    def wait_ready(self, timeout_s: float = 600.0) -> None:
        """Block until every actor has loaded its shard (index loading happens in the constructor).

        An actor Ray is restarting answers "unavailable" for a while: ask it again.
        """
        deadline = time.monotonic() + timeout_s
        pending = {state.name: state.handle for row in self._replicas for state in row}
        while pending:
            refs = {name: handle.ready.remote() for name, handle in pending.items()}
            for name, ref in refs.items():
                try:
                    ray.get(ref, timeout=max(1.0, deadline - time.monotonic()))
                    del pending[name]
                except ACTOR_FAILURES as err:
                    if time.monotonic() > deadline:
                        raise RetrievalUnavailableError(
                            f"retrieval actor {name} not ready after {timeout_s:.0f}s: {err}"
                        ) from err
            if pending:
                time.sleep(0.5)

    def _pick(self, shard: int, exclude: set[int]) -> int:
        now = time.monotonic()
        with self._lock:
            candidates = [i for i in range(len(self._replicas[shard])) if i not in exclude]
            healthy = [i for i in candidates if self._replicas[shard][i].suspect_until <= now] or candidates
            loads = {i: self._load(self._replicas[shard][i], now) for i in healthy}
            best = min(loads.values())
            choice = random.choice([i for i, load in loads.items() if load == best])
            self._replicas[shard][choice].in_flight += 1
            return choice

    @staticmethod
    def _load(state: _ReplicaState, now: float) -> int:
        """Calls this client has in flight there, plus the other clients' backlog the actor
        reported, while that report is fresh. A stale report would make a replica look busy
        for good: it is never picked again, so it never reports anew."""
        fresh = now - state.reported_at <= BACKLOG_FRESH_S
        return state.in_flight + (state.reported_backlog if fresh else 0)

    def _finish(self, shard: int, replica: int, elapsed_ms: float, backlog: int | None) -> None:
        with self._lock:
            state = self._replicas[shard][replica]
            state.in_flight -= 1
            if backlog is None:
                state.failures += 1
                state.suspect_until = time.monotonic() + 5.0
            else:
                state.calls += 1
                state.reported_backlog = backlog
                state.reported_at = time.monotonic()
                state.suspect_until = 0.0
                state.latencies_ms.append(elapsed_ms)

    def _release(self, shard: int, replica: int) -> None:
        """A call that the actor refused for its version: neither a failure nor a latency sample."""
        with self._lock:
            self._replicas[shard][replica].in_flight -= 1

    def _search_shard_submit(
        self, shard: int, queries, k: int, exclude: set[int], with_embeddings: bool, version: int | None
    ):
        replica = self._pick(shard, exclude)
        handle = self._replicas[shard][replica].handle
        ref = handle.search.remote(queries, k, with_embeddings, version)
        return replica, time.perf_counter(), ref

    @property
    def version(self) -> int | None:
        """The index version new calls ask for (None before the first answer)."""
        with self._lock:
            return self._version

    def pin(self, version: int) -> None:
        """Ask for `version` (or a newer one an actor reports) from the next call on."""
        with self._lock:
            self._version = version if self._version is None else max(self._version, version)

    def wait_unpinned(self, version: int, timeout_s: float) -> bool:
        """Wait until no call of this client is in flight on `version`; False on timeout."""
        with self._lock:
            return self._unpinned.wait_for(lambda: self._pinned[version] == 0, timeout_s)

    def take_retries(self) -> int:
        """Retried shard calls since the last call (the training loop drains them each step)."""
        with self._lock:
            taken, self.retries = self.retries, 0
        return taken

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores [B, k], global ids [B, k], embeddings [B, k, D]) over all shards."""
        scores, ids, embeds, _ = self.search_with_version(queries, k)
        return scores, ids, embeds

    def search_with_version(self, queries: np.ndarray, k: int) -> VersionedAnswer:
        """`search`, and the index version every shard of the answer came from."""
        started = time.perf_counter()
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        query_ref = ray.put(queries) if queries.nbytes > 100_000 else queries
        stamps = self._stamps
        stamps.prepared = time.perf_counter()
        deadline = time.monotonic() + self.retry_seconds
        version = self.version
        while True:
            asked = version
            with self._lock:
                self._pinned[asked] += 1
            try:
                answer, active = self._search_version(query_ref, k, asked, deadline)
                break
            except _StaleVersion as stale:
                if time.monotonic() > deadline:
                    raise RetrievalUnavailableError(
                        f"no answer from one index version within {self.retry_seconds:.0f}s "
                        f"(last asked for {asked}, shards hold {stale.version})"
                    ) from None
                with self._lock:
                    self.version_reruns += 1
                version = stale.version
                if stale.wait:  # a restarted actor is loading the version: give it a moment
                    time.sleep(0.05)
            finally:
                with self._lock:
                    self._pinned[asked] -= 1
                    self._unpinned.notify_all()
        self.pin(max(answer.version, active))
        self.call_latencies_ms.append((time.perf_counter() - started) * 1000)
        self._metrics.call(self.call_latencies_ms[-1])
        stamps.trace = CallTrace(
            started, stamps.prepared, stamps.submitted, stamps.answered, stamps.merged, stamps.embedded,
            time.perf_counter(), stamps.actor,
        )  # fmt: skip
        return answer

    def _search_version(
        self, query_ref, k: int, version: int | None, deadline: float
    ) -> tuple[VersionedAnswer, int]:
        """One fan-out asking every shard for `version` (None: each actor's active one).

        Returns the merged answer and the newest active version an actor reported; raises
        _StaleVersion when the shards' answers cannot form one version's answer.
        """
        # Asking for each actor's active version, expect version 0 (the passages' column); the
        # answer is run again if another came back and its embeddings were not sent.
        expected = 0 if version is None else version
        embeddings = self._local_embeddings_of(expected)
        remote_embeds = embeddings is None
        pending = {
            shard: (*self._search_shard_submit(shard, query_ref, k, set(), remote_embeds, version), set())
            for shard in range(self.spec.shards)
        }
        stamps = self._stamps
        stamps.submitted = time.perf_counter()
        results: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        served: set[int] = set()
        active = 0
        refused: _StaleVersion | None = None
        while pending:
            shard, (replica, sent, ref, tried) = next(iter(pending.items()))
            try:
                answer: ShardAnswer = ray.get(ref)
            except ACTOR_FAILURES as err:
                self._finish(shard, replica, 0.0, None)
                tried = tried | {replica}
                if len(tried) >= len(self._replicas[shard]):
                    if time.monotonic() > deadline:
                        raise RetrievalUnavailableError(
                            f"no replica of shard {shard} answered within {self.retry_seconds:.0f}s: {err}"
                        ) from err
                    tried = set()  # all replicas failed once: wait for Ray to restart them
                    time.sleep(0.2)
                with self._lock:
                    self.retries += 1
                self._metrics.retried(shard)
                logger.warning(
                    "retrieval actor %s failed (%s); retrying", self._replicas[shard][replica].name, err
                )
                pending[shard] = (
                    *self._search_shard_submit(shard, query_ref, k, tried, remote_embeds, version),
                    tried,
                )
                continue
            except RayTaskError as err:
                self._release(shard, replica)
                cause = err.cause if isinstance(err.cause, VersionNotLoadedError) else err
                if not isinstance(cause, VersionNotLoadedError):
                    raise
                # Newer active version: move to it. Older: the asked one is still loading there.
                newest = max(cause.version, cause.active)
                if refused is None or newest > refused.version:
                    refused = _StaleVersion(newest, wait=cause.active < cause.version)
                del pending[shard]
                continue
            stamps.answered, stamps.actor = time.perf_counter(), answer.timings
            self._finish(shard, replica, (stamps.answered - sent) * 1000, answer.backlog)
            embeds = answer.embeddings
            if embeds is None:  # merge scores and ids only; embeddings are read locally below
                embeds = np.empty((*answer.ids.shape, 0), dtype=np.float32)
            results[shard] = (answer.scores, answer.ids, embeds)
            served.add(answer.version)
            active = max(active, answer.active)
            del pending[shard]
        if refused is not None:
            raise refused
        if len(served) > 1:  # shards asked for their active version answered from different ones
            raise _StaleVersion(max(served), wait=False)
        (served_version,) = served
        if served_version != expected and not remote_embeds:  # the local embeddings are another version's
            raise _StaleVersion(served_version, wait=False)
        merged = merge_top_k([results[s] for s in range(self.spec.shards)], k)
        stamps.merged = time.perf_counter()
        if not remote_embeds:
            merged = (merged[0], merged[1], embeddings.take(merged[1]))
        stamps.embedded = time.perf_counter()
        return VersionedAnswer(*merged, served_version), active

    def client_stats(self) -> list[dict]:
        """Per-actor counts and latency as seen by this client."""
        with self._lock:
            return [
                {
                    "actor": state.name,
                    "shard": shard,
                    "calls": state.calls,
                    "failures": state.failures,
                    "latency_ms_mean": float(np.mean(state.latencies_ms)) if state.latencies_ms else 0.0,
                    "latency_ms_p95": float(np.percentile(state.latencies_ms, 95))
                    if state.latencies_ms
                    else 0.0,
                }
                for shard, row in enumerate(self._replicas)
                for state in row
            ]

    def actors(self) -> list[tuple[str, ray.actor.ActorHandle]]:
        """(name, handle) of every actor, shard by shard."""
        return [(state.name, state.handle) for row in self._replicas for state in row]

    def actor_stats(self) -> list[dict]:
        """Each actor's own counters (calls from every client, load time, node)."""
        refs = [(state.name, state.handle.stats.remote()) for row in self._replicas for state in row]
        return [{"actor": name, **ray.get(ref)} for name, ref in refs]


def open_local_embeddings(
    kb_dir: str, num_passages: int | None = None, created_unix: int | None = None
) -> EmbeddingTable | None:
    """Every passage's embedding as zero-copy views of the memory-mapped Arrow file, or None.

    None when the directory is not readable here, holds another build of the knowledge
    base than the actors serve (`num_passages`, `created_unix` from their kb.json), or its
    embeddings column would need a copy (variable-length lists), or its passages files do
    not match their fingerprints in kb.json: then the actors, which check their own copy,
    send the embeddings.
    """
    from pathlib import Path

    from rag_job.knowledge.digest import verify_files
    from rag_job.knowledge.layout import load_meta, local_knowledge_base
    from rag_job.retrieval.searcher import load_passages
    from rag_job.storage import is_uri

    if is_uri(kb_dir):  # this node's copy (trainers fetched it already; reused from the cache)
        kb_dir = str(local_knowledge_base(kb_dir, []))
    if not Path(kb_dir).is_dir():
        return None
    meta = load_meta(kb_dir)
    if (num_passages is not None and meta.num_passages != num_passages) or (
        created_unix is not None and meta.created_unix != created_unix
    ):
        return None
    check = verify_files(kb_dir, meta, shards=[], passages=True)
    if not check.ok:
        logger.warning("embeddings come from the retrieval actors: %s", check.message())
        return None
    dataset = load_passages(kb_dir)
    column = dataset.data.table.column("embeddings") if hasattr(dataset.data, "table") else None
    if column is None or not str(column.type).startswith("fixed_size_list"):
        return None
    return EmbeddingTable(dataset, 0, meta.num_passages, meta.dim)


def open_local_version_embeddings(kb_dir: str, version: int) -> VersionEmbeddings | None:
    """Index version `version`'s embeddings memory-mapped here, or None when this process cannot
    read them (an object store, another machine, a file that fails its manifest's check)."""
    from pathlib import Path

    from rag_job.retrieval.searcher import open_version_embeddings
    from rag_job.storage import is_uri

    if is_uri(kb_dir) or not Path(kb_dir).is_dir():
        return None
    try:
        return open_version_embeddings(kb_dir, version)
    except Exception as err:  # any failure: the actors send the embeddings
        logger.warning("embeddings of index version %d come from the retrieval actors: %s", version, err)
        return None
