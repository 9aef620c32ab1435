"""The running operator: kopf settings, and every controller, registered by importing it.

One place that shows what runs: the RagFinetuneJob controller (finetunejob/controller.py) and
the RagRetrievalCluster controller (retrievalcluster/controller.py). Imported only by `run`:
kopf and the kubernetes client are not needed to render or to generate the CRDs.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import kopf

from . import metrics
from .common import names
from .common.kube import RFJ, RRC
from .finetunejob import controller as finetunejob_controller
from .retrievalcluster import controller as retrievalcluster_controller

#: The modules whose kopf handlers this operator runs.
CONTROLLERS = (finetunejob_controller, retrievalcluster_controller)

#: `run --log-format` values and the kopf formats they select. kopf's JSON lines (python-json-logger)
#: carry message, severity and timestamp, and the resource a handler logs about under "object".
LOG_FORMATS = {"text": kopf.LogFormat.FULL, "json": kopf.LogFormat.JSON}


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Keep kopf's bookkeeping in our own annotations; connect the kubernetes client."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=names.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=names.GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = names.FINALIZER  # only resources with a delete handler get it
    settings.posting.level = logging.WARNING
    if getattr(memo, "custom", None) is None:
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        memo.custom = client.CustomObjectsApi()
        memo.core = client.CoreV1Api()


@kopf.on.event(*RFJ)
def track_job_phase(event: dict[str, Any], body: Any, **_: Any) -> None:
    """Jobs by phase for /metrics (every replica counts; see rag_operator.metrics)."""
    metrics.PHASES.seen("ragfinetunejob", event.get("type"), body)


@kopf.on.event(*RRC)
def track_cluster_phase(event: dict[str, Any], body: Any, **_: Any) -> None:
    """Retrieval clusters by phase for /metrics."""
    metrics.PHASES.seen("ragretrievalcluster", event.get("type"), body)


def configure_logging(*, debug: bool, quiet: bool, log_format: str = "text") -> None:
    """Route every log record (kopf's, ours, the libraries') through kopf's handler on stderr, as
    text lines or as JSON lines; DEBUG with `debug`, WARNING and above with `quiet`, else INFO."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    kopf.configure(debug=debug, quiet=quiet, log_format=LOG_FORMATS[log_format])


def run(
    namespaces: list[str],
    *,
    standalone: bool,
    peering: str | None,
    priority: int | None,
    liveness_port: int,
    debug: bool,
    quiet: bool,
    metrics_port: int = 0,
    log_format: str = "text",
) -> None:
    """Run every controller until stopped (`python -m rag_operator run`)."""
    configure_logging(debug=debug, quiet=quiet, log_format=log_format)
    metrics.serve(metrics_port)
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=standalone,
        peering_name=None if standalone else (peering or names.OPERATOR_NAME),
        priority=priority if priority is not None else random.randint(1, 2**31 - 1),
        liveness_endpoint=f"http://0.0.0.0:{liveness_port}/healthz",
    )
