"""The driver of one fine-tuning run: the RayJob entrypoint's body.

`python -m rag_job train` runs `rag_job.train.preflight.check_before_cluster_work` first
(before `ray.init`); then this module starts (or finds) the retrieval actors on
`rag_retrieval` nodes, runs a Ray Train `TorchTrainer` on `rag_trainer` nodes, then
publishes the final model (`save_pretrained`, loadable by plain transformers),
`metrics.json` and a loss curve.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag_job.config import TRAINER_RESOURCE, JobConfig
from rag_job.knowledge.layout import load_meta
from rag_job.storage import is_uri, publish, ray_storage, staging_dir
from rag_job.train.timeline import RETRIEVAL_READY_MARK, START_MARK, mark, phases_line, startup_phases
from rag_job.train.tracking import log_run

logger = logging.getLogger(__name__)


@dataclass
class RunSummary:
    output_dir: Path
    metrics: dict
    history: list[dict] = field(default_factory=list)
    actors: list[dict] = field(default_factory=list)
    trainer_nodes: list[str] = field(default_factory=list)
    #: Driver time from start to every retrieval actor loaded (near zero on a warm retrieval service);
    #: it overlaps Ray Train's start, so only part of it may delay the first step.
    retrieval_startup_s: float = 0.0
    #: Wall clock when `run_training` began: the submit time start-up is measured from.
    started_unix: float = 0.0
    #: Start-up split into phases (rag_job/train/timeline.py); None when a mark is missing.
    startup_phases: list[dict] | None = None
    #: The object-store URI `output_dir` was uploaded to (None: output_dir is local).
    published_to: str | None = None
    #: Whether output_dir/export was written (`write_export`), and why not.
    export: dict = field(default_factory=dict)


def start_retrieval(config: JobConfig, wait: bool = True):
    """Start this job's retrieval actors, or connect to a running retrieval service.

    `wait=False` returns as soon as the actors exist: they load the index in their constructors
    while the caller goes on (`IndexLoadWatcher` follows them), and calls queue until they are up.
    """
    from rag_job.retrieval.actor import start_retrieval_actors
    from rag_job.retrieval.pool import PoolSpec, RetrievalPool

    kb = config.retrieval.knowledge_base
    meta = load_meta(kb)
    prefix = config.retrieval.cluster or f"{config.name}-retrieval"
    spec = PoolSpec(name_prefix=prefix, shards=len(meta.shards), replicas=config.retrieval.actors_per_shard)
    if config.retrieval.cluster:
        pool = RetrievalPool.connect(spec)
    else:
        handles = start_retrieval_actors(
            kb if is_uri(kb) else str(Path(kb).resolve()),
            spec.shards,
            spec.replicas,
            prefix,
            actor_cpus=config.retrieval.actor_cpus,
            faiss_threads=config.retrieval.faiss_threads,
        )
        pool = RetrievalPool(spec, handles)
    if wait:
        IndexLoadWatcher(pool).join()
    return spec, pool


class IndexLoadWatcher:
    """Waits in a thread for every retrieval actor to load its shard, so the index loads while
    Ray Train starts its workers and they load the model: on separate retrieval pods the two
    overlap fully, and the trainers wait only for what is left (their `retrieval_waited` mark).
    """

    def __init__(self, pool) -> None:
        self.pool = pool
        self.started = time.perf_counter()
        self.ready_unix: float | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._wait, name="index-load-watcher", daemon=True)
        self._thread.start()

    def _wait(self) -> None:
        try:
            self.pool.wait_ready()
        except Exception as err:  # the driver reports it (training fails on the same actors)
            self.error = err
            logger.error("retrieval actors failed to load the index: %s", err)
            return
        self.ready_unix = time.time()
        spec = self.pool.spec
        logger.info(
            "retrieval ready: %d shard(s) x %d replica(s) in %.1fs",
            spec.shards,
            spec.replicas,
            time.perf_counter() - self.started,
        )

    def join(self, timeout_s: float | None = None) -> None:
        """Wait for the outcome; a load that failed raises its error."""
        self._thread.join(timeout_s)
        if self.error is not None:
            raise self.error


def start_encoders(config: JobConfig):
    """End-to-end: the actors that re-encode the passages on each refresh, started now so their
    start-up overlaps the trainers' instead of delaying the first refresh (None when off)."""
    e2e = config.retrieval.end_to_end
    if e2e is None or e2e.encode_on == "trainers":  # the trainers encode their own slices
        return None
    from rag_job.knowledge.encoder_pool import EncoderPool

    return EncoderPool(
        config.retrieval.knowledge_base,
        e2e.encode_actors or 1,
        e2e.encode_threads or 1,
        e2e.encode_batch_size,
    )


def run_training(config: JobConfig, fail_at_step: int | None = None) -> RunSummary:
    """Train on the Ray cluster this process is connected to; returns what was published.

    `fail_at_step` kills rank 0 once at that step (tests and failure drills).
    """
    marks: dict[str, float] = {}  # start-up marks (rag_job/train/timeline.py)
    mark(marks, START_MARK)
    config = _with_end_to_end_paths(config)
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from rag_job.train.loop import CHECKPOINT_MODEL_DIR, CHECKPOINT_STATE_FILE, train_loop_per_worker
    from rag_job.train.progress import ProgressGauges

    # Outputs bound for an object store are written here first and uploaded at the end.
    publish_to = config.output_dir if is_uri(config.output_dir) else None
    output_dir = staging_dir(publish_to) if publish_to else Path(config.output_dir)
    if publish_to and output_dir.exists():
        shutil.rmtree(output_dir)  # an older attempt's files must not be uploaded as this run's
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.json").write_text(config.model_dump_json(indent=2) + "\n")

    spec, pool, index_load = None, None, None
    mark(marks, "retrieval_started")
    if config.retrieval.mode == "ray":
        spec, pool = start_retrieval(config, wait=False)
        index_load = IndexLoadWatcher(pool)
    encoders = start_encoders(config)

    scaling = config.scaling
    storage_path, storage_filesystem = ray_storage(config.checkpoint.storage_path)
    trainer = TorchTrainer(
        train_loop_per_worker,
        torch_config=TorchConfig(timeout_s=config.training.collective_timeout_s),
        train_loop_config={
            "job": config.to_json(),
            "pool": asdict(spec) if spec else None,
            "fail_at_step": fail_at_step,
            "encoders": encoders,
        },
        scaling_config=ray.train.ScalingConfig(
            num_workers=scaling.num_workers,
            use_gpu=scaling.use_gpu,
            resources_per_worker={
                "CPU": scaling.cpus_per_worker,
                TRAINER_RESOURCE: 1,
                **scaling.resources_per_worker,
            }
            | ({"GPU": 1} if scaling.use_gpu else {}),
        ),
        run_config=ray.train.RunConfig(
            name=config.name,
            storage_path=storage_path,
            storage_filesystem=storage_filesystem,
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=config.checkpoint.num_to_keep),
            failure_config=ray.train.FailureConfig(max_failures=config.training.max_failures),
            callbacks=[ProgressGauges(config.name, config.output_dir)],
        ),
    )
    try:
        result = trainer.fit()
    except Exception as err:
        if index_load is not None and index_load.error is not None:
            raise RuntimeError(
                f"training failed because the retrieval actors did not load the index: {index_load.error}"
            ) from err
        raise
    finally:
        if encoders is not None:
            encoders.close()
        if config.retrieval.end_to_end is not None:
            from rag_job.knowledge.lease import release_if_held_by

            if release_if_held_by(config.retrieval.knowledge_base, ray.get_runtime_context().get_job_id()):
                logger.info("end-to-end: released the knowledge base lease this run's rank 0 left")
    if index_load is not None:
        index_load.join()
        marks[RETRIEVAL_READY_MARK] = index_load.ready_unix or marks["retrieval_started"]
    else:
        mark(marks, RETRIEVAL_READY_MARK)
    if result.checkpoint is None:
        raise RuntimeError(
            f"training finished without a checkpoint; see the Ray Train logs of run {config.name!r}"
        )

    import torch

    from rag_job.train.model_io import opened_checkpoint

    with opened_checkpoint(result.checkpoint) as checkpoint_dir:
        state = torch.load(checkpoint_dir / CHECKPOINT_STATE_FILE, map_location="cpu", weights_only=False)
        model_dir = output_dir / "model"
        if model_dir.exists():
            shutil.rmtree(model_dir)
        shutil.copytree(checkpoint_dir / CHECKPOINT_MODEL_DIR, model_dir)
        _copy_ctx_encoder(checkpoint_dir, output_dir)
    _point_config_at_knowledge_base(config, model_dir)
    export = write_export(config, model_dir, output_dir / EXPORT_DIR, state.get("index"))
    _point_config_at_trained_index(config, output_dir, publish_to, export, state.get("index"))

    history = state.get("history", [])
    if history and "time_unix" in history[0]:
        marks["first_step_done"] = history[0]["time_unix"]
    summary = RunSummary(
        output_dir=output_dir,
        metrics=dict(result.metrics or {}),
        history=history,
        actors=pool.actor_stats() if pool else [],
        trainer_nodes=state.get("trainer_nodes", []),
        retrieval_startup_s=marks[RETRIEVAL_READY_MARK] - marks["retrieval_started"],
        started_unix=marks[START_MARK],
        startup_phases=startup_phases({**state.get("startup", {}), **marks}),
    )
    summary.export = export
    if summary.startup_phases:
        logger.info("start-up %.1f s: %s", time_to_first_step(summary), phases_line(summary.startup_phases))
    write_metrics(summary, state)
    log_run(config, output_dir, summary.history, state.get("eval", {}))  # training.report_to
    if publish_to:
        summary.published_to = publish_to
        summary.metrics["publish_seconds"] = publish(output_dir, publish_to)
    return summary


#: output_dir/EXPORT_DIR: the self-contained copy (model, passages, one index) of `write_export`.
EXPORT_DIR = "export"
#: `export_knowledge_base: auto` copies a knowledge base up to this size (index + passages).
AUTO_EXPORT_MAX_BYTES = 2 * 1024**3


def write_export(config: JobConfig, model_dir: Path, target: Path, index: dict | None = None) -> dict:
    """The self-contained export of the final model (see `export_knowledge_base`), or why not.

    End-to-end (`index`: the refresher's checkpointed state) exports the index version the job
    finished on, the one the final evaluation used, not version 0, whose embeddings the trained
    context encoder no longer matches. A refusal (IVF-PQ shards cannot be merged, say) never fails
    a finished training: the model is saved either way, and metrics.json says what was skipped and why.
    """
    from rag_job.knowledge.export import ExportError, export_model
    from rag_job.knowledge.layout import local_knowledge_base

    mode = config.export_knowledge_base
    meta = load_meta(config.retrieval.knowledge_base)
    kb_bytes = meta.index_bytes + meta.passages_bytes
    if mode == "never" or (mode == "auto" and kb_bytes > AUTO_EXPORT_MAX_BYTES):
        why = (
            "export_knowledge_base is never"
            if mode == "never"
            else f"the knowledge base takes {kb_bytes / 1024**3:.1f} GiB, over the 2 GiB of "
            "export_knowledge_base: auto (set always, or run `python -m rag_job export`)"
        )
        logger.info("no self-contained export: %s", why)
        return {"written": False, "reason": why}
    if target.exists():
        shutil.rmtree(target)
    version, provenance = _exported_version(index)
    try:
        kb = local_knowledge_base(config.retrieval.knowledge_base)
        done = export_model(model_dir, kb, target, version, provenance)
    except ExportError as err:
        logger.warning("no self-contained export: %s", err)
        return {"written": False, "reason": str(err)}
    logger.info(
        "self-contained export in %s: %d passages, one %s index (%s) of index version %d",
        target, done.num_passages, done.index_type, done.index_method, version,
    )  # fmt: skip
    return {"written": True, "dir": EXPORT_DIR, "index_method": done.index_method, "index_version": version}


def _exported_version(index: dict | None) -> tuple[int, dict | None]:
    """The index version an end-to-end job finished on, and what export.json says of it; (0, None)
    for a frozen retriever."""
    if not index:
        return 0, None
    final = index.get("final_index") or {}
    provenance = {
        "encoded_at_step": final.get("encoded_at_step", index.get("encoded_at_step")),
        "trained_steps": final.get("step"),
        "refresh_at_end": final.get("refresh_at_end"),
    }
    return int(index.get("version") or 0), {"end_to_end": provenance}


def _with_end_to_end_paths(config: JobConfig) -> JobConfig:
    """End-to-end: the knowledge base and the starting context encoder as absolute paths (the
    trainers write index versions there and load the encoder; their working directory differs)."""
    from rag_job.train.ctx_encoder import resolve_ctx_encoder

    e2e = config.retrieval.end_to_end
    if e2e is None:
        return config
    e2e = e2e.model_copy(update={"ctx_encoder": resolve_ctx_encoder(config)})
    retrieval = config.retrieval.model_copy(
        update={"knowledge_base": str(Path(config.retrieval.knowledge_base).resolve()), "end_to_end": e2e}
    )
    return config.model_copy(update={"retrieval": retrieval})


def _copy_ctx_encoder(checkpoint_dir: Path, output_dir: Path) -> None:
    """End-to-end: output_dir/ctx_encoder, the trained context encoder (re-encode the index with it)."""
    from rag_job.train.ctx_encoder import CTX_ENCODER_DIR

    if (checkpoint_dir / CTX_ENCODER_DIR).is_dir():
        if (output_dir / CTX_ENCODER_DIR).exists():
            shutil.rmtree(output_dir / CTX_ENCODER_DIR)
        shutil.copytree(checkpoint_dir / CTX_ENCODER_DIR, output_dir / CTX_ENCODER_DIR)


def _point_config_at_knowledge_base(config: JobConfig, model_dir: Path) -> None:
    """Save the model's RagConfig with this knowledge base, so `RagRetriever.from_pretrained(model_dir)` works."""
    from rag_job.train.model_io import rag_config_for

    rag_config_for(config, str(model_dir)).save_pretrained(model_dir)


def _point_config_at_trained_index(
    config: JobConfig, output_dir: Path, publish_to: str | None, export: dict, index: dict | None
) -> None:
    """End-to-end on index version N > 0: the model's question encoder was trained against N, not
    against kb.json's version 0, so model/config.json names the export's passages and index (N's
    vectors, one file) when there is an export; without one it keeps version 0 and says how to
    export N. Paths are where the outputs end up: the bucket when `output_dir` is one."""
    version = int((index or {}).get("version") or 0)
    if version == 0:
        return
    final_home = publish_to.rstrip("/") if publish_to else str(output_dir.resolve())
    if not export.get("written"):
        export["model_config_index"] = "version 0"
        command = shlex.join(
            [
                "python", "-m", "rag_job", "export", "--model", f"{final_home}/model",
                "--kb", config.retrieval.knowledge_base, "--out", f"{final_home}/{EXPORT_DIR}",
                "--index-version", str(version),
            ]
        )  # fmt: skip
        logger.warning(
            "model/config.json names the knowledge base's index version 0, which the trained context "
            "encoder no longer matches (no export: %s). To retrieve with index version %d, run: %s",
            export.get("reason"), version, command,
        )  # fmt: skip
        return
    from transformers import RagConfig

    from rag_job.knowledge.export import EXPORT_INDEX_FILE
    from rag_job.knowledge.layout import PASSAGES_DIR

    model_dir = output_dir / "model"
    rag_config = RagConfig.from_pretrained(model_dir)
    rag_config.passages_path = f"{final_home}/{EXPORT_DIR}/{PASSAGES_DIR}"
    rag_config.index_path = f"{final_home}/{EXPORT_DIR}/{EXPORT_INDEX_FILE}"
    rag_config.save_pretrained(model_dir)
    export["model_config_index"] = f"version {version} (the export's)"


def write_metrics(summary: RunSummary, state: dict) -> None:
    from rag_job.train.refresh import refresh_summary

    history = summary.history
    metrics = {
        "steps": history[-1]["step"] if history else 0,
        "loss_start": history[0]["loss"] if history else None,
        "loss_end": history[-1]["loss"] if history else None,
        "resumed_from_step": state.get("resumed_from_step"),
        # Worker-group restarts from a checkpoint, and retried retrieval calls: a query whose
        # every retry failed fails its step, which forces a restart, so restarts == 0 with
        # retries > 0 means every query was answered.
        "restarts": state.get("restarts", 0),
        "retrieval_retries": sum(h.get("retrieval_retries", 0) for h in history),
        "eval_before": state.get("eval", {}).get("before"),
        "eval_after": state.get("eval", {}).get("after"),
        "retrieval_latency_ms_p50": _percentile([h["retrieval_latency_ms_p50"] for h in history], 50),
        "retrieval_latency_ms_p95": _percentile([h["retrieval_latency_ms_p95"] for h in history], 95),
        "samples_per_s_mean": _mean([h["samples_per_s"] for h in history[1:] or history]),
        "retrieval_startup_s": summary.retrieval_startup_s,
        "time_to_first_step_s": time_to_first_step(summary),
        "startup_phases": summary.startup_phases,
        "trainer_nodes": summary.trainer_nodes,
        "retrieval_actors": summary.actors,
        "export": summary.export,
        "end_to_end": refresh_summary(state.get("index"), history),
        "history": history,
    }
    (summary.output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    summary.metrics = {**summary.metrics, **{k: v for k, v in metrics.items() if k != "history"}}
    _plot_loss(history, summary.output_dir / "loss.png")


def time_to_first_step(summary: RunSummary) -> float | None:
    """Seconds from `run_training` starting to the end of the first optimizer step (job start-up)."""
    history = summary.history
    if not history or "time_unix" not in history[0] or not summary.started_unix:
        return None
    return history[0]["time_unix"] - summary.started_unix


def _percentile(values: list[float], q: float) -> float | None:
    import numpy as np

    return float(np.percentile(values, q)) if values else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _plot_loss(history: list[dict], path: Path) -> None:
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot([h["step"] for h in history], [h["loss"] for h in history], color="tab:blue")
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("training loss (RAG NLL)")
    axis.set_title("RAG fine-tuning loss")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
