"""Prometheus series of the retrieval actors and their clients, through `ray.util.metrics`.

Ray exports them on the metrics port of the node the process runs on
(`ray.nodes()[i]["MetricsExportPort"]`, what a PodMonitor scrapes on a Ray pod), with a `ray_`
prefix and Ray's own labels (node address, worker id) added:

    ray_rag_retrieval_calls_total{pool, shard, actor}          search calls served
    ray_rag_retrieval_queries_total{pool, shard, actor}        questions searched
    ray_rag_retrieval_search_latency_ms_bucket{pool, shard, actor, le}
    ray_rag_retrieval_in_flight{pool, shard, actor}            calls being served now
    ray_rag_retrieval_index_passages{pool, shard, actor}       passages of the shard served
    ray_rag_retrieval_index_created_unix{pool, shard, actor}   the index build served (kb.json)
    ray_rag_retrieval_client_call_latency_ms_bucket{pool, le}  one pool.search, all shards merged
    ray_rag_retrieval_client_retries_total{pool, shard}        calls retried on another replica

Recording never fails a search: a metrics error is logged once and recording stops.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

#: Histogram boundaries (ms): sub-millisecond searches of a small shard to seconds-long calls.
LATENCY_BUCKETS_MS = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]
_ACTOR_TAGS = ("pool", "shard", "actor")


class _Recorder:
    """Metric objects created once per process; every call is guarded."""

    def __init__(self) -> None:
        self._broken = False

    def _guard(self, action, *args: Any, **kwargs: Any) -> None:
        if self._broken:
            return
        try:
            action(*args, **kwargs)
        except Exception as err:  # a metrics backend problem must not fail retrieval
            self._broken = True
            logger.warning("retrieval metrics disabled in this process: %s", err)


class ActorMetrics(_Recorder):
    """What one retrieval actor serves."""

    def __init__(self, pool: str, shard: int, actor: str) -> None:
        super().__init__()
        self.tags = {"pool": pool, "shard": str(shard), "actor": actor}
        try:
            from ray.util.metrics import Counter, Gauge, Histogram

            self.calls = Counter("rag_retrieval_calls", "Search calls served.", tag_keys=_ACTOR_TAGS)
            self.queries = Counter("rag_retrieval_queries", "Questions searched.", tag_keys=_ACTOR_TAGS)
            self.latency = Histogram(
                "rag_retrieval_search_latency_ms",
                "Time from a call's arrival to its answer (batching wait included), ms.",
                boundaries=LATENCY_BUCKETS_MS,
                tag_keys=_ACTOR_TAGS,
            )
            self.in_flight = Gauge("rag_retrieval_in_flight", "Calls being served.", tag_keys=_ACTOR_TAGS)
            self.passages = Gauge(
                "rag_retrieval_index_passages", "Passages in the shard served.", tag_keys=_ACTOR_TAGS
            )
            self.created = Gauge(
                "rag_retrieval_index_created_unix",
                "When the served knowledge base was built (kb.json): its version.",
                tag_keys=_ACTOR_TAGS,
            )
        except Exception as err:
            self._broken = True
            logger.warning("retrieval metrics unavailable: %s", err)

    def loaded(self, passages: int, created_unix: int) -> None:
        self._guard(self.passages.set, passages, tags=self.tags)
        self._guard(self.created.set, created_unix, tags=self.tags)

    def started(self, in_flight: int) -> None:
        self._guard(self.in_flight.set, in_flight, tags=self.tags)

    def served(self, queries: int, latency_ms: float, in_flight: int) -> None:
        self._guard(self.calls.inc, 1, tags=self.tags)
        self._guard(self.queries.inc, queries, tags=self.tags)
        self._guard(self.latency.observe, latency_ms, tags=self.tags)
        self._guard(self.in_flight.set, in_flight, tags=self.tags)


class ClientMetrics(_Recorder):
    """What one process (a trainer) sees of the pool."""

    def __init__(self, pool: str) -> None:
        super().__init__()
        self.pool = pool
        try:
            from ray.util.metrics import Counter, Histogram

            self.latency = Histogram(
                "rag_retrieval_client_call_latency_ms",
                "One pool search over every shard, merged, as the trainer waits for it, ms.",
                boundaries=LATENCY_BUCKETS_MS,
                tag_keys=("pool",),
            )
            self.retries = Counter(
                "rag_retrieval_client_retries",
                "Shard calls retried on another replica after an actor failed.",
                tag_keys=("pool", "shard"),
            )
        except Exception as err:
            self._broken = True
            logger.warning("retrieval client metrics unavailable: %s", err)

    def call(self, latency_ms: float) -> None:
        self._guard(self.latency.observe, latency_ms, tags={"pool": self.pool})

    def retried(self, shard: int) -> None:
        self._guard(self.retries.inc, 1, tags={"pool": self.pool, "shard": str(shard)})
