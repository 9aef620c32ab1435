"""The operator's Prometheus endpoint: reconciles, their latency and errors, resources by phase.

    rag_operator_reconciles_total{resource, handler, result}
                                    result: ok, retry (kopf.TemporaryError), permanent
                                    (kopf.PermanentError), error (anything else)
    rag_operator_reconcile_seconds{resource, handler}  histogram
    rag_operator_resources{resource, phase}           RagFinetuneJobs / RagRetrievalClusters now,
                                                      by status.phase ("" before the first status)

The phases come from kopf's watch stream (`track_phase`, an event handler): every replica of
the operator sees every event, so a standby replica reports the same counts as the active one,
while reconciles are counted only where they run.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

REGISTRY = CollectorRegistry()
RECONCILES = Counter(
    "rag_operator_reconciles",
    "Handler runs, by resource, handler and result.",
    ("resource", "handler", "result"),
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "rag_operator_reconcile_seconds",
    "Handler run time, by resource and handler.",
    ("resource", "handler"),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)


class _Phases:
    """(resource, namespace, name) -> phase, from the watch stream; a collector reads it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phases: dict[tuple[str, str, str], str] = {}

    def seen(self, resource: str, event_type: str | None, body: Any) -> None:
        meta = body.get("metadata") or {}
        key = (resource, meta.get("namespace") or "", meta.get("name") or "")
        with self._lock:
            if event_type == "DELETED":
                self._phases.pop(key, None)
            else:
                self._phases[key] = (body.get("status") or {}).get("phase") or ""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "rag_operator_resources",
            "Resources watched now, by kind and status.phase.",
            labels=("resource", "phase"),
        )
        counts: dict[tuple[str, str], int] = {}
        with self._lock:
            for (resource, _, _), phase in self._phases.items():
                counts[(resource, phase)] = counts.get((resource, phase), 0) + 1
        for (resource, phase), count in sorted(counts.items()):
            family.add_metric([resource, phase], count)
        yield family


PHASES = _Phases()
REGISTRY.register(PHASES)


def measured(resource: str) -> Callable:
    """Count and time a kopf handler (put it under the kopf decorators), by how it ended."""

    def wrap(handler: Callable) -> Callable:
        @functools.wraps(handler)
        def run(*args: Any, **kwargs: Any) -> Any:
            import kopf

            started = time.perf_counter()
            result = "error"
            try:
                value = handler(*args, **kwargs)
                result = "ok"
                return value
            except kopf.TemporaryError:
                result = "retry"
                raise
            except kopf.PermanentError:
                result = "permanent"
                raise
            finally:
                RECONCILES.labels(resource, handler.__name__, result).inc()
                RECONCILE_SECONDS.labels(resource, handler.__name__).observe(time.perf_counter() - started)

        return run

    return wrap


def serve(port: int) -> None:
    """Serve /metrics on 0.0.0.0:port in a thread (0: not at all)."""
    if port:
        start_http_server(port, registry=REGISTRY)
