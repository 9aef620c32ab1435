"""`bench train`: the tiny RAG fine-tune once per retrieval mode, on the same cluster, side by side.

Each mode runs `rag_job.train.driver.run_training` unchanged; the figures come from the
per-step history it returns (rank 0's steps). The first step is left out of every
figure: it includes loading, connecting and the first allocation.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag_job.config import JobConfig

if TYPE_CHECKING:
    from rag_job.knowledge.ingest import Passage
    from rag_job.local.tiny_models import TinyModelPaths, TinySizes

logger = logging.getLogger(__name__)

EXAMPLE_DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
TRAIN_MODES = ("ray", "torch", "local")


@dataclass(frozen=True)
class TrainBenchConfig:
    workers: int = 2
    steps: int = 12
    batch_size: int = 8
    modes: tuple[str, ...] = ("ray", "torch")
    replicas: int = 2
    n_docs: int = 3
    actor_cpus: float = 1.0
    out_dir: Path = Path("out/bench")

    def validate(self) -> None:
        unknown = [m for m in self.modes if m not in TRAIN_MODES]
        if unknown or not self.modes:
            raise ValueError(
                f"--modes takes some of {', '.join(TRAIN_MODES)}; got {', '.join(self.modes) or 'none'}"
            )
        if self.workers < 1:
            raise ValueError("--workers must be at least 1")
        if self.steps < 2:
            raise ValueError("--steps must be at least 2 (the first step is warm-up and not counted)")
        if self.batch_size < 1:
            raise ValueError("--batch-size must be at least 1")
        if self.replicas < 1:
            raise ValueError("--replicas must be at least 1")


def build_example_models(
    models_dir: Path, sizes: TinySizes | None = None
) -> tuple[list[Passage], TinyModelPaths]:
    """Tiny RAG models whose tokenizers know the shipped example passages and questions."""
    from rag_job.knowledge.ingest import ingest
    from rag_job.local.tiny_models import TinySizes, build_tiny_models
    from rag_job.train.data import read_qa_texts

    report = ingest(EXAMPLE_DATA / "knowledge_base.jsonl")
    corpus = [f"{p.title} {p.text}" for p in report.passages] + read_qa_texts(EXAMPLE_DATA / "qa_train.jsonl")
    return report.passages, build_tiny_models(corpus, models_dir, sizes=sizes or TinySizes())


def prepare_assets(root: Path) -> tuple[Path, Path]:
    """Tiny RAG models and a flat index over the shipped example passages (built once, then reused)."""
    from rag_job.knowledge.index import encode_passages, write_knowledge_base
    from rag_job.knowledge.layout import KnowledgeBaseLayoutError, load_meta

    models, kb_dir = root / "models", root / "kb"
    try:
        load_meta(kb_dir)
        if (models / "rag" / "config.json").is_file():
            return models / "rag", kb_dir
    except KnowledgeBaseLayoutError:
        pass
    if root.exists():
        shutil.rmtree(root)
    passages, paths = build_example_models(models)
    embeddings = encode_passages(passages, paths.ctx_encoder, progress=False)
    write_knowledge_base(passages, embeddings, kb_dir, "flat", shards=1, ctx_encoder=str(paths.ctx_encoder))
    return paths.rag, kb_dir


def mode_config(config: TrainBenchConfig, mode: str, rag: Path, kb_dir: Path, run_dir: Path) -> JobConfig:
    return JobConfig.from_dict(
        {
            "name": f"bench-train-{mode}-{uuid.uuid4().hex[:6]}",
            "model": {"path": str(rag), "type": "rag_token"},
            "retrieval": {
                "knowledge_base": str(kb_dir),
                "mode": mode,
                "actors_per_shard": config.replicas,
                "n_docs": config.n_docs,
                "actor_cpus": config.actor_cpus,
            },
            "data": {"train_path": str(EXAMPLE_DATA / "qa_train.jsonl")},
            "training": {
                "max_steps": config.steps,
                "batch_size": config.batch_size,
                "learning_rate": 2e-3,
                "seed": 0,
                "log_every_steps": config.steps,
            },
            "scaling": {"num_workers": config.workers, "cpus_per_worker": 1},
            "checkpoint": {"storage_path": str(run_dir / "checkpoints"), "every_steps": config.steps},
            "evaluation": {"at_start": False, "at_end": False},
            "output_dir": str(run_dir / "out"),
        },
        source="bench train config",
    )


def summarize_history(mode: str, history: list[dict]) -> dict:
    """Figures over the steps after the first: medians for times, means for shares and rates."""
    steps = history[1:] or history
    if not steps:
        raise ValueError(f"the {mode} run reported no steps")
    return {
        "mode": mode,
        "steps_counted": len(steps),
        "step_time_s_p50": float(np.median([h["step_time_s"] for h in steps])),
        "samples_per_s_mean": float(np.mean([h["samples_per_s"] for h in steps])),
        "retrieval_latency_ms_p50": float(np.median([h["retrieval_latency_ms_p50"] for h in steps])),
        "retrieval_calls_per_step": float(np.mean([h["retrieval_calls"] for h in steps])),
        "retrieval_share_of_step": float(np.mean([h["retrieval_share_of_step"] for h in steps])),
    }


def add_train_ratios(rows: list[dict]) -> list[dict]:
    """samples/s and step time of each mode over the `torch` run's (None when torch was not run)."""
    base = next((r for r in rows if r["mode"] == "torch"), None)
    out = []
    for row in rows:
        row = dict(row)
        row["samples_per_s_vs_torch"] = (
            row["samples_per_s_mean"] / base["samples_per_s_mean"] if base else None
        )
        row["step_time_vs_torch"] = row["step_time_s_p50"] / base["step_time_s_p50"] if base else None
        out.append(row)
    return out


def kill_job_actors(job: JobConfig) -> None:
    """The driver's retrieval actors outlive `run_training` while this process lives; free their slots."""
    import ray

    from rag_job.config import RETRIEVAL_NAMESPACE, actor_name

    prefix = job.retrieval.cluster or f"{job.name}-retrieval"
    for replica in range(job.retrieval.actors_per_shard):
        with contextlib.suppress(ValueError):  # already gone
            ray.kill(
                ray.get_actor(actor_name(prefix, 0, replica), namespace=RETRIEVAL_NAMESPACE), no_restart=True
            )


def bench_cluster(workers: int, replicas: int, actor_cpus: float) -> contextlib.AbstractContextManager[None]:
    """The Ray cluster this process drives, or a local one sized for the run (shut down afterwards)."""
    from rag_job.local.cluster import LocalLayout, cluster_unless_connected

    per_trainer = math.ceil(workers / 2)
    per_retrieval = math.ceil(replicas / 2)
    return cluster_unless_connected(
        LocalLayout(
            trainer_nodes=2,
            trainer_cpus=per_trainer,
            workers_per_trainer_node=per_trainer,
            retrieval_nodes=2,
            retrieval_cpus=per_retrieval * actor_cpus,
            actors_per_retrieval_node=per_retrieval,
        )
    )


def run_train_bench(config: TrainBenchConfig) -> dict:
    """Train once per mode and write train.json and train.md under out_dir."""
    from rag_job.train.driver import run_training

    config.validate()
    config.out_dir.mkdir(parents=True, exist_ok=True)
    rag, kb_dir = prepare_assets((config.out_dir / "train-assets").resolve())
    rows = []
    load_start = os.getloadavg()
    with bench_cluster(config.workers, config.replicas, config.actor_cpus):
        for mode in config.modes:
            run_dir = (config.out_dir / "train-runs" / mode).resolve()
            if run_dir.exists():
                shutil.rmtree(run_dir)
            job = mode_config(config, mode, rag, kb_dir, run_dir)
            started = time.perf_counter()
            try:
                summary = run_training(job)
            finally:
                if mode == "ray":
                    kill_job_actors(job)
            row = summarize_history(mode, summary.history)
            row["wall_s"] = time.perf_counter() - started
            rows.append(row)
            logger.info(
                "%s: %.1f samples/s, step %.2fs, retrieval p50 %.1f ms (%.0f%% of the step)",
                mode, row["samples_per_s_mean"], row["step_time_s_p50"], row["retrieval_latency_ms_p50"],
                100 * row["retrieval_share_of_step"],
            )  # fmt: skip
    result = {
        "benchmark": "train",
        "settings": {
            "machine": f"{len(os.sched_getaffinity(0))} cores, no GPU used",
            "model": "tiny RAG-token (DPR + BART) built from examples/data; flat index of the example passages",
            "training": (
                f"{config.workers} Ray Train workers x 1 CPU, batch {config.batch_size} per worker, "
                f"{config.steps} steps, first step not counted"
            ),
            "retrieval": f"n_docs {config.n_docs}; ray: {config.replicas} replica actor(s), {config.actor_cpus} CPU each",
            "load_average": f"{' '.join(f'{v:.2f}' for v in load_start)} at start, "
            f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} at end",
        },
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "results": add_train_ratios(rows),
    }
    (config.out_dir / "train.json").write_text(json.dumps(result, indent=2) + "\n")
    (config.out_dir / "train.md").write_text(train_markdown(result) + "\n")
    return result


def train_markdown(result: dict) -> str:
    def ratio(value: float | None) -> str:
        return f"{value:.2f}x" if value is not None else "n/a"

    lines = [
        "## Training: the tiny RAG fine-tune per retrieval mode",
        "",
        "| retrieval | samples/s | step time p50 s | retrieval p50 ms | retrieval share of step "
        "| samples/s vs torch | step time vs torch |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["results"]:
        lines.append(
            f"| {row['mode']} | {row['samples_per_s_mean']:.1f} | {row['step_time_s_p50']:.3f} "
            f"| {row['retrieval_latency_ms_p50']:.1f} | {100 * row['retrieval_share_of_step']:.1f}% "
            f"| {ratio(row['samples_per_s_vs_torch'])} | {ratio(row['step_time_vs_torch'])} |"
        )
    lines += ["", *(f"- {k}: {v}" for k, v in result["settings"].items())]
    return "\n".join(lines)
