"""Training progress as Prometheus gauges on the driver's node: what `kubectl get rfj` shows.

Ray Train calls a `UserCallback` in its controller after every `ray.train.report` (every
`log_every_steps` steps and at checkpoints); Ray places the controller on the driver's node,
which on Kubernetes is the head pod. The gauges set there are exported by that node's metrics
agent (KubeRay's metrics port, 8080) with a `ray_` prefix, one series per run, told apart by
`output_dir` (unique per RagFinetuneJob, also when several jobs share a retrieval cluster):

    ray_rag_train_step{job, output_dir}              optimizer steps done
    ray_rag_train_max_steps{job, output_dir}         steps the run will take
    ray_rag_train_loss{job, output_dir}              mean loss over the last reported window
    ray_rag_train_step_seconds{job, output_dir}      mean step time over that window
    ray_rag_train_retrieval_p50_ms{job, output_dir}  median retrieval call over that window
    ray_rag_train_eta_seconds{job, output_dir}       (max_steps - step) x step time
    ray_rag_train_updated_unix{job, output_dir}      when this report arrived

The operator reads them into `status.progress`; Prometheus can scrape the same port. Recording
never fails training: a metrics error is logged once and recording stops.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import ray.train

logger = logging.getLogger(__name__)

TAGS = ("job", "output_dir")
#: gauge name -> (description, how it is read from rank 0's reported metrics)
GAUGES = {
    "rag_train_step": "Optimizer steps done.",
    "rag_train_max_steps": "Optimizer steps the run will take.",
    "rag_train_loss": "Mean training loss over the last reported window.",
    "rag_train_step_seconds": "Mean optimizer step time over the last reported window, seconds.",
    "rag_train_retrieval_p50_ms": "Median retrieval call over the last reported window, ms.",
    "rag_train_eta_seconds": "Estimated seconds to the last step: remaining steps x step time.",
    "rag_train_updated_unix": "Unix time of the last report.",
}


def progress_values(reported: dict[str, Any], now: float) -> dict[str, float] | None:
    """The gauge values for one report of rank 0 (None when it carries no step)."""
    if "step" not in reported or "max_steps" not in reported:
        return None
    step, max_steps = int(reported["step"]), int(reported["max_steps"])
    step_seconds = float(reported.get("step_time_s", 0.0))
    return {
        "rag_train_step": step,
        "rag_train_max_steps": max_steps,
        "rag_train_loss": float(reported.get("loss", float("nan"))),
        "rag_train_step_seconds": step_seconds,
        "rag_train_retrieval_p50_ms": float(reported.get("retrieval_latency_ms_p50", 0.0)),
        "rag_train_eta_seconds": max(max_steps - step, 0) * step_seconds,
        "rag_train_updated_unix": now,
    }


class ProgressGauges(ray.train.UserCallback):
    """Sets the gauges from rank 0's report; created in the driver, run in the Train controller."""

    def __init__(self, job: str, output_dir: str) -> None:
        self.tags = {"job": job, "output_dir": output_dir}
        self._gauges: dict[str, Any] | None = None
        self._broken = False

    def __getstate__(self) -> dict[str, Any]:  # the gauges are made where the callback runs
        return {**self.__dict__, "_gauges": None}

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        if self._broken or not metrics:
            return
        values = progress_values(metrics[0], time.time())
        if values is None:
            return
        try:
            if self._gauges is None:
                from ray.util.metrics import Gauge

                self._gauges = {name: Gauge(name, text, tag_keys=TAGS) for name, text in GAUGES.items()}
            for name, value in values.items():
                self._gauges[name].set(value, tags=self.tags)
        except Exception as err:  # a metrics backend problem must not fail training
            self._broken = True
            logger.warning("training progress metrics disabled: %s", err)
