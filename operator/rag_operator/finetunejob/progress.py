"""A running job's training progress, read from its Ray head's metrics port into `status.progress`.

The job sets `ray_rag_train_*` gauges in Ray Train's controller on the head (rag_job/train/
progress.py); the head's metrics agent serves them on KubeRay's metrics port. We pick the series
of this job by `output_dir` (a shared retrieval cluster's head serves every job on it) and, when a
restarted controller left an older series beside the new one, the most recently updated. Only
`fetch_metrics` touches the network.
"""

from __future__ import annotations

import math
import urllib.request
from datetime import UTC, datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from ..common.network import METRICS_PORT

PREFIX = "ray_rag_train_"
#: gauge suffix -> status.progress key, and whether the value is a count
FIELDS = {
    "step": ("step", True),
    "max_steps": ("maxSteps", True),
    "loss": ("loss", False),
    "step_seconds": ("stepSeconds", False),
    "retrieval_p50_ms": ("retrievalP50Ms", False),
    "eta_seconds": ("etaSeconds", True),
}


class MetricsUnavailable(RuntimeError):
    """The head's metrics port could not be read."""


def metrics_url(ray_cluster: str, namespace: str) -> str:
    """The head service's metrics port inside the cluster (KubeRay names it `<cluster>-head-svc`)."""
    return f"http://{ray_cluster}-head-svc.{namespace}.svc:{METRICS_PORT}/metrics"


def fetch_metrics(url: str, timeout: float = 5.0) -> str:
    """The Prometheus text of the head; MetricsUnavailable when it cannot be read."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read().decode("utf-8", errors="replace")
    except OSError as err:
        raise MetricsUnavailable(f"GET {url}: {err}") from err


def parse_progress(text: str, output_dir: str) -> dict[str, Any] | None:
    """status.progress from the metrics text (None when the job has reported nothing yet)."""
    series: dict[frozenset[tuple[str, str]], dict[str, float]] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if not sample.name.startswith(PREFIX) or sample.labels.get("output_dir") != output_dir:
                    continue
                key = frozenset(sample.labels.items())
                series.setdefault(key, {})[sample.name.removeprefix(PREFIX)] = sample.value
    except ValueError:
        return None  # not Prometheus text: nothing to report (the next poll tries again)
    complete = [
        values for values in series.values() if {"step", "max_steps", "updated_unix"} <= values.keys()
    ]
    if not complete:
        return None
    latest = max(complete, key=lambda values: values["updated_unix"])
    progress: dict[str, Any] = {}
    for suffix, (key, is_count) in FIELDS.items():
        value = latest.get(suffix)
        if value is None or not math.isfinite(value):
            continue
        progress[key] = round(value) if is_count else round(value, 4)
    progress["updatedAt"] = (
        datetime.fromtimestamp(latest["updated_unix"], UTC)
        .replace(microsecond=0)
        .isoformat()
        .replace("+00:00", "Z")
    )
    return progress
