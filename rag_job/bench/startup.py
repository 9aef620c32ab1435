"""`bench startup`: job start-up (submit to first training step) with and without a warm retrieval service.

Cold: `run_training` starts its own retrieval actors, and each loads the index before
the first step can retrieve. Warm: a retrieval service (what a RagRetrievalCluster runs)
loaded the index beforehand; `run_training` with `retrieval.cluster` finds its actors by
name. Everything else (Ray Train start, model load, the first step) is the same job, so
the difference is what the service saves each job of a sweep.

The knowledge base is synthetic (random unit vectors: only loading is measured) at
DPR's 768 dimensions, so the index has the bytes per passage of a real one; the tiny
model is built at the same hidden size, which its query vectors need. A no-op Ray Train
run goes first, so neither timed job pays a fresh cluster's first-run costs (a shared
retrieval cluster has run jobs before); before the cold job the knowledge base's files
are dropped from the page cache, as on a fresh retrieval pod that reads the index from
a volume.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rag_job.bench.train import (
    TrainBenchConfig,
    bench_cluster,
    build_example_models,
    kill_job_actors,
    mode_config,
)
from rag_job.config import JobConfig
from rag_job.train.timeline import WAITING_FOR_RETRIEVAL

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartupBenchConfig:
    passages: int = 200_000
    dim: int = 768
    replicas: int = 2
    workers: int = 1
    steps: int = 1
    batch_size: int = 4
    n_docs: int = 3
    actor_cpus: float = 1.0
    evict_page_cache: bool = True
    #: A no-op Ray Train run before the timed ones (see prime_ray_train); tests skip it to save time.
    prime: bool = True
    #: Warm/cold pairs; the table shows medians.
    repeats: int = 1
    out_dir: Path = Path("out/bench")

    def validate(self) -> None:
        if self.passages < self.n_docs:
            raise ValueError(f"--passages must be at least n_docs ({self.n_docs}), got {self.passages}")
        if self.dim < 8 or self.dim % 2:
            raise ValueError(
                f"--dim must be an even number of at least 8 (the tiny model's width), got {self.dim}"
            )
        if self.replicas < 1:
            raise ValueError("--replicas must be at least 1")
        if self.workers < 1:
            raise ValueError("--workers must be at least 1")
        if self.steps < 1:
            raise ValueError("--steps must be at least 1")
        if self.repeats < 1:
            raise ValueError("--repeats must be at least 1")


def prepare_startup_assets(root: Path, passages: int, dim: int) -> tuple[Path, Path]:
    """A tiny RAG model of hidden size `dim` and a synthetic flat index of `passages` x `dim` (reused)."""
    from rag_job.bench.synthetic import write_synthetic_knowledge_base
    from rag_job.knowledge.layout import KnowledgeBaseLayoutError, load_meta
    from rag_job.local.tiny_models import TinySizes

    models, kb_dir = root / "models", root / f"kb-{passages}x{dim}"
    rag = models / "rag"
    if _model_width(rag) != dim:
        if models.exists():
            shutil.rmtree(models)
        build_example_models(models, TinySizes(hidden=dim))
    try:
        meta = load_meta(kb_dir)
        if meta.num_passages == passages and meta.dim == dim:
            return rag, kb_dir
    except KnowledgeBaseLayoutError:
        pass
    if kb_dir.exists():
        shutil.rmtree(kb_dir)
    started = time.perf_counter()
    write_synthetic_knowledge_base(kb_dir, passages, dim, "flat", shards=1)
    logger.info("wrote %d x %d synthetic passages in %.0fs", passages, dim, time.perf_counter() - started)
    return rag, kb_dir


def _model_width(rag: Path) -> int | None:
    """The saved RAG model's question-encoder width (the index dimension it needs), None when absent."""
    try:
        return json.loads((rag / "config.json").read_text())["question_encoder"]["hidden_size"]
    except (OSError, KeyError, ValueError):
        return None


def evict_from_page_cache(directory: Path) -> int:
    """Drop `directory`'s files from the page cache (POSIX_FADV_DONTNEED); returns the bytes covered."""
    from rag_job.retrieval.prefetch import evict_from_page_cache as evict_file

    return sum(evict_file(path) for path in directory.rglob("*") if path.is_file())


def job_config(
    config: StartupBenchConfig, rag: Path, kb_dir: Path, run_dir: Path, service: str | None
) -> JobConfig:
    """The bench's tiny fine-tune (train bench settings), on its own actors or on the named service."""
    train = TrainBenchConfig(
        workers=config.workers,
        steps=config.steps,
        batch_size=config.batch_size,
        replicas=config.replicas,
        n_docs=config.n_docs,
        actor_cpus=config.actor_cpus,
    )
    job = mode_config(train, "ray", rag, kb_dir, run_dir)
    retrieval = job.retrieval.model_copy(update={"cluster": service})
    name = f"bench-startup-{'warm' if service else 'cold'}-{uuid.uuid4().hex[:6]}"
    return job.model_copy(update={"name": name, "retrieval": retrieval})


def index_loads(actors: list[dict], loaded_before: set[int]) -> int:
    """Actor processes that served the job and were not already loaded before it: one index load each."""
    return len({a["pid"] for a in actors} - loaded_before)


def startup_row(kind: str, summary, loads: int) -> dict:
    """One job's start-up figures from its RunSummary."""
    from rag_job.train.driver import time_to_first_step

    first_step = time_to_first_step(summary)
    if first_step is None or summary.startup_phases is None:
        raise ValueError(f"the {kind} run reported no timed first step")
    return {
        "kind": kind,
        "time_to_first_step_s": first_step,
        "phases": summary.startup_phases,
        "retrieval_ready_s": summary.retrieval_startup_s,
        "index_loads": loads,
        "actor_load_s": [a["load_seconds"] for a in summary.actors],
        # a mapped index's background read into the page cache (None: not mapped or not done)
        "actor_prefetch_s": [a.get("prefetch_seconds") for a in summary.actors],
        "actor_pids": sorted(a["pid"] for a in summary.actors),
        "steps": len(summary.history),
    }


def outside_index_s(row: dict) -> float:
    """A run's start-up less the time its trainers waited for the index: what no index size changes."""
    waited = sum(p["seconds"] for p in row["phases"] if p["phase"] == WAITING_FOR_RETRIEVAL)
    return row["time_to_first_step_s"] - waited


def combine_runs(rows: list[dict]) -> dict:
    """Medians over the repeats (what the table shows); the worst load count; every run under `runs`."""
    return {
        "kind": rows[0]["kind"],
        "time_to_first_step_s": float(np.median([r["time_to_first_step_s"] for r in rows])),
        "phases": {
            phase["phase"]: float(np.median([r["phases"][n]["seconds"] for r in rows]))
            for n, phase in enumerate(rows[0]["phases"])
        },
        "retrieval_ready_s": float(np.median([r["retrieval_ready_s"] for r in rows])),
        "outside_index_s": float(np.median([outside_index_s(r) for r in rows])),
        "index_loads": max(r["index_loads"] for r in rows),
        "actor_load_s_max": max(max(r["actor_load_s"], default=0.0) for r in rows),
        "actor_prefetch_s_max": max(
            (s for r in rows for s in r.get("actor_prefetch_s", []) if s is not None), default=None
        ),
        "runs": rows,
    }


def _run_warm(config: StartupBenchConfig, rag: Path, kb_dir: Path) -> tuple[dict, float]:
    """Start the service (timed apart: paid once per sweep), then time a job that uses it."""
    import ray

    from rag_job.config import ServiceConfig
    from rag_job.retrieval.service import start_service
    from rag_job.train.driver import run_training

    name = f"bench-startup-service-{uuid.uuid4().hex[:6]}"
    started = time.perf_counter()
    service = start_service(
        ServiceConfig(
            name=name,
            knowledge_base=str(kb_dir),
            actors_per_shard=config.replicas,
            actor_cpus=config.actor_cpus,
        )
    )
    service_load_s = time.perf_counter() - started
    loaded_before: set[int] = set()
    try:
        loaded_before = {a["pid"] for a in service.actor_stats()}
        run_dir = _fresh(config.out_dir / "startup-runs" / "warm")
        summary = run_training(job_config(config, rag, kb_dir, run_dir, service=name))
        return startup_row("warm", summary, index_loads(summary.actors, loaded_before)), service_load_s
    finally:
        for _, handle in service.actors():
            ray.kill(handle, no_restart=True)
        # ray.kill returns before the process exits, and pages a live process maps cannot be
        # evicted: the cold job would find the service's index still in memory.
        wait_for_exit(loaded_before)


def wait_for_exit(pids: set[int], timeout_s: float = 60.0) -> None:
    """Wait until none of `pids` runs on this machine (or `timeout_s`, then say which do)."""
    import psutil

    deadline = time.monotonic() + timeout_s
    while (alive := {pid for pid in pids if psutil.pid_exists(pid)}) and time.monotonic() < deadline:
        time.sleep(0.2)
    if alive:
        logger.warning("retrieval service processes %s still run after %.0fs", sorted(alive), timeout_s)


def resident_share(kb_dir: Path) -> float | None:
    """Share of the knowledge base's index bytes in the page cache (None where unknown)."""
    from rag_job.knowledge.layout import load_meta
    from rag_job.retrieval.prefetch import resident_fraction

    meta = load_meta(kb_dir)
    total = sum(shard.bytes for shard in meta.shards)
    fractions = [resident_fraction(kb_dir / shard.file) for shard in meta.shards]
    if not total or any(f is None for f in fractions):
        return None
    return sum(f * shard.bytes for f, shard in zip(fractions, meta.shards, strict=True)) / total


def _run_cold(config: StartupBenchConfig, rag: Path, kb_dir: Path) -> dict:
    from rag_job.train.driver import run_training

    evicted = evict_from_page_cache(kb_dir) if config.evict_page_cache else 0
    resident = resident_share(kb_dir)
    job = job_config(config, rag, kb_dir, _fresh(config.out_dir / "startup-runs" / "cold"), service=None)
    try:
        summary = run_training(job)
    finally:
        kill_job_actors(job)
    return startup_row("cold", summary, index_loads(summary.actors, set())) | {
        "evicted_mib": evicted / 2**20,
        "index_resident_at_start": resident,
    }


def prime_ray_train(workers: int, storage: Path) -> None:
    """One no-op Ray Train run, so neither timed job pays a fresh cluster's first-run costs.

    A shared retrieval cluster has run jobs before the one being timed; so has this one.
    """
    import ray.train
    from ray.train.torch import TorchTrainer

    from rag_job.config import TRAINER_RESOURCE

    TorchTrainer(
        lambda: None,
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers, resources_per_worker={"CPU": 1, TRAINER_RESOURCE: 1}
        ),
        run_config=ray.train.RunConfig(name="prime", storage_path=str(_fresh(storage))),
    ).fit()


def _fresh(run_dir: Path) -> Path:
    run_dir = run_dir.resolve()
    if run_dir.exists():
        shutil.rmtree(run_dir)
    return run_dir


def run_startup_bench(config: StartupBenchConfig) -> dict:
    """Time a warm and a cold job start-up on the same cluster; write startup.json and startup.md."""
    import ray.train.torch  # noqa: F401  # imported before timing: the driver's import is no part of either

    from rag_job.knowledge.layout import load_meta

    config.validate()
    config.out_dir.mkdir(parents=True, exist_ok=True)
    rag, kb_dir = prepare_startup_assets(
        (config.out_dir / "startup-assets").resolve(), config.passages, config.dim
    )
    meta = load_meta(kb_dir)
    load_start = os.getloadavg()
    warm_runs, cold_runs, service_loads = [], [], []
    cluster_started = time.perf_counter()
    with bench_cluster(config.workers, config.replicas, config.actor_cpus):
        cluster_start_s = time.perf_counter() - cluster_started
        if config.prime:
            prime_ray_train(config.workers, config.out_dir / "startup-runs" / "prime")
        for _ in range(config.repeats):
            warm, service_load_s = _run_warm(config, rag, kb_dir)
            warm_runs.append(warm)
            service_loads.append(service_load_s)
            cold_runs.append(_run_cold(config, rag, kb_dir))
    warm, cold = combine_runs(warm_runs), combine_runs(cold_runs)
    index_mb = sum(s.bytes for s in meta.shards) / 2**20
    result = {
        "benchmark": "startup",
        "settings": {
            "machine": f"{len(os.sched_getaffinity(0))} cores, no GPU used",
            "knowledge_base": (
                f"{meta.num_passages:,} synthetic passages x {meta.dim} dims, flat index "
                f"{index_mb:.0f} MiB + passages {meta.passages_bytes / 2**20:.0f} MiB"
            ),
            "model": f"tiny RAG-token built at hidden size {config.dim} (the index's dimension)",
            "job": (
                f"{config.workers} Ray Train worker(s), batch {config.batch_size}, {config.steps} step(s); "
                f"{config.replicas} retrieval replica(s) x {config.actor_cpus} CPU"
            ),
            "start-up": "run_training called -> end of the first optimizer step (wall clock)",
            "order": f"a no-op Ray Train run first (neither job is the cluster's first), then warm, then "
            f"cold; {config.repeats} pair(s), medians shown",
            "page cache": _page_cache_note(config, cold_runs),
            "load_average": f"{' '.join(f'{v:.2f}' for v in load_start)} at start, "
            f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} at end",
        },
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "index_mb": index_mb,
        "cluster_start_s": cluster_start_s,
        "service_load_s": float(np.median(service_loads)),
        "cold_actor_read_mib_per_s": index_mb / cold["actor_load_s_max"]
        if cold["actor_load_s_max"]
        else None,
        "cold": cold,
        "warm": warm,
        "warm_over_cold": warm["time_to_first_step_s"] / cold["time_to_first_step_s"],
        "saved_s": cold["time_to_first_step_s"] - warm["time_to_first_step_s"],
    }
    (config.out_dir / "startup.json").write_text(json.dumps(result, indent=2) + "\n")
    (config.out_dir / "startup.md").write_text(startup_markdown(result) + "\n")
    return result


def startup_markdown(result: dict) -> str:
    cold, warm = result["cold"], result["warm"]

    def runs(row: dict) -> str:
        each = ", ".join(f"{r['time_to_first_step_s']:.1f}" for r in row["runs"])
        return f"{row['time_to_first_step_s']:.1f} s" + (f" ({each})" if len(row["runs"]) > 1 else "")

    lines = [
        "## Job start-up: own retrieval actors (cold) vs a warm retrieval service",
        "",
        "| start-up | cold: own actors load the index | warm: retrieval service | warm / cold |",
        "|---|---:|---:|---:|",
        f"| submit to first training step | {runs(cold)} | {runs(warm)} | {result['warm_over_cold']:.2f}x |",
        f"| retrieval ready (driver) | {cold['retrieval_ready_s']:.1f} s | {warm['retrieval_ready_s']:.2f} s "
        f"| {warm['retrieval_ready_s'] / cold['retrieval_ready_s']:.2f}x |",
        f"| index loads during the job | {cold['index_loads']} | {warm['index_loads']} | |",
        "",
        f"Each cold actor loaded the {result['index_mb']:.0f} MiB index in {cold['actor_load_s_max']:.1f} s "
        f"at most{_prefetch_note(cold)}; the service loaded it once beforehand in {result['service_load_s']:.1f} s, and each "
        f"job of a sweep on it starts {result['saved_s']:.1f} s sooner.",
        "",
        phases_table(result),
        "",
        *(f"- {k}: {v}" for k, v in result["settings"].items()),
    ]
    return "\n".join(lines)


def _page_cache_note(config: StartupBenchConfig, cold_runs: list[dict]) -> str:
    if not config.evict_page_cache:
        return "not evicted (the cold job may read the index from memory)"
    shares = [r["index_resident_at_start"] for r in cold_runs if r.get("index_resident_at_start") is not None]
    left = f" ({max(shares):.0%} of the index still in memory when it started)" if shares else ""
    return f"knowledge base evicted before the cold job{left}"


def _prefetch_note(row: dict) -> str:
    seconds = row.get("actor_prefetch_s_max")
    return (
        "" if seconds is None else f" (mapped; read into the page cache in the background in {seconds:.1f} s)"
    )


def phases_table(result: dict) -> str:
    """Where the start-up goes: each phase's seconds and share of the start-up, cold and warm."""
    cold, warm = result["cold"], result["warm"]
    lines = [
        "### Start-up by phase (run_training to the end of the first optimizer step; medians)",
        "",
        "| phase | cold s | cold share | warm s | warm share |",
        "|---|---:|---:|---:|---:|",
    ]
    for phase, cold_s in cold["phases"].items():
        warm_s = warm["phases"][phase]
        lines.append(
            f"| {phase} | {cold_s:.2f} | {cold_s / cold['time_to_first_step_s']:.0%} "
            f"| {warm_s:.2f} | {warm_s / warm['time_to_first_step_s']:.0%} |"
        )
    lines += [
        f"| **submit to first step** | **{cold['time_to_first_step_s']:.2f}** | 100% "
        f"| **{warm['time_to_first_step_s']:.2f}** | 100% |",
        f"| the same without the wait for the index | {cold['outside_index_s']:.2f} | "
        f"{cold['outside_index_s'] / cold['time_to_first_step_s']:.0%} | {warm['outside_index_s']:.2f} | "
        f"{warm['outside_index_s'] / warm['time_to_first_step_s']:.0%} |",
        f"| index load, beside the phases above (driver) | {cold['retrieval_ready_s']:.2f} | | "
        f"{warm['retrieval_ready_s']:.2f} | |",
        "",
        f"Before `run_training` (not in the figures above): the local Ray cluster's start and "
        f"`ray.init` took {result['cluster_start_s']:.1f} s (0 when the bench drove a running cluster).",
    ]
    return "\n".join(lines)
