"""`bench retrieval`: torch, ray (R replicas x S shards) and local retrieval, side by side on one index.

Every (mode, W) cell runs on fresh trainer processes (Ray actors on `rag_trainer`
nodes of a local multi-node cluster), so one mode's index copy never inflates another
mode's memory figure. The retrieval actors are started once with the largest R and
each Ray row uses the first R replicas of every shard.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rag_job.bench import profile, report
from rag_job.bench.synthetic import query_batches, write_synthetic_knowledge_base
from rag_job.config import TRAINER_RESOURCE
from rag_job.knowledge.index import INDEX_TYPES
from rag_job.knowledge.layout import KnowledgeBaseLayoutError, KnowledgeBaseMeta, load_meta

logger = logging.getLogger(__name__)

#: The retrieval paths, in the order every table shows them.
RETRIEVAL_MODES = ("torch", "ray", "local")


@dataclass(frozen=True)
class RetrievalBenchConfig:
    passages: int = 20_000
    dim: int = 768
    index_type: str = "flat"
    shards: int = 1
    #: A real knowledge base to search instead of synthetic vectors (its N and D win).
    kb_dir: Path | None = None
    workers: tuple[int, ...] = (1, 2, 4)
    replicas: tuple[int, ...] = (1, 2, 4)
    batch: int = 8
    k: int = 5
    calls: int = 30
    warmup: int = 3
    pause_ms: float = 0.0
    faiss_threads: int = 1
    seed: int = 0
    #: The retrieval paths to time (`--profile`: ray and local only).
    modes: tuple[str, ...] = RETRIEVAL_MODES
    out_dir: Path = Path("out/bench")
    extra_settings: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Reject bad input before any cluster work, naming the option and the fix."""
        checks = [
            (self.passages >= 1, "--passages must be at least 1"),
            (self.dim >= 1, "--dim must be at least 1"),
            (self.index_type in INDEX_TYPES, f"--index-type must be one of {', '.join(INDEX_TYPES)}"),
            (self.shards >= 1, "--shards must be at least 1"),
            (bool(self.workers) and min(self.workers) >= 1, "--workers needs values of at least 1"),
            (bool(self.replicas) and min(self.replicas) >= 1, "--replicas needs values of at least 1"),
            (self.batch >= 1, "--batch-size must be at least 1"),
            (self.k >= 1, "--k must be at least 1"),
            (self.calls >= 1, "--calls must be at least 1"),
            (self.warmup >= 0, "--warmup must be 0 or more"),
            (self.pause_ms >= 0, "--pause-ms must be 0 or more"),
            (self.faiss_threads >= 1, "--faiss-threads must be at least 1"),
            (
                bool(self.modes) and set(self.modes) <= set(RETRIEVAL_MODES),
                f"modes must be some of {', '.join(RETRIEVAL_MODES)}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if self.kb_dir is None and self.k > math.ceil(self.passages / self.shards):
            raise ValueError(f"--k ({self.k}) exceeds the passages per shard; lower --k or --shards")


@dataclass(frozen=True)
class BuiltKnowledgeBase:
    kb_dir: Path
    meta: KnowledgeBaseMeta
    #: Seconds the build took (vectors, passages dataset, index, digests), when it was built.
    build_s: float | None
    #: Whether an earlier run's build was reused.
    cached: bool


def cached_knowledge_base(
    cache_dir: Path, passages: int, dim: int, index_type: str, shards: int, seed: int = 0
) -> BuiltKnowledgeBase:
    """A synthetic knowledge base keyed by its parameters under `cache_dir`: built once, then reused.

    The build time is kept beside it (`<dir>.build.json`), so a reused index still reports what
    building it cost.
    """
    kb_dir = (cache_dir / f"kb-{passages}x{dim}-{index_type}-{shards}shards-seed{seed}").resolve()
    record = kb_dir.with_name(kb_dir.name + ".build.json")
    try:
        meta = load_meta(kb_dir)
        if (meta.num_passages, meta.dim, meta.index_type, len(meta.shards)) == (
            passages, dim, index_type, shards,
        ):  # fmt: skip
            build_s = json.loads(record.read_text())["build_s"] if record.is_file() else None
            return BuiltKnowledgeBase(kb_dir, meta, build_s, cached=True)
    except KnowledgeBaseLayoutError:
        pass
    if kb_dir.exists():
        shutil.rmtree(kb_dir)  # an unfinished or different build under this name
    started = time.perf_counter()
    meta = write_synthetic_knowledge_base(kb_dir, passages, dim, index_type, shards, seed)
    build_s = time.perf_counter() - started
    record.write_text(json.dumps({"build_s": build_s, "cores": len(os.sched_getaffinity(0))}) + "\n")
    logger.info("wrote synthetic knowledge base %s in %.1fs", kb_dir, build_s)
    return BuiltKnowledgeBase(kb_dir, meta, build_s, cached=False)


def prepare_knowledge_base(config: RetrievalBenchConfig) -> tuple[Path, KnowledgeBaseMeta]:
    """The index to benchmark: the given knowledge base, or a synthetic one (reused when already built)."""
    if config.kb_dir is not None:
        return Path(config.kb_dir).resolve(), load_meta(config.kb_dir)
    built = cached_knowledge_base(
        config.out_dir / "cache", config.passages, config.dim, config.index_type, config.shards, config.seed
    )
    return built.kb_dir, built.meta


def machine_settings(config: RetrievalBenchConfig, meta: KnowledgeBaseMeta) -> dict:
    """What the figures were measured under, stated in the output next to them."""
    import faiss
    import ray
    import torch

    cores = len(os.sched_getaffinity(0))
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    return {
        "machine": f"{cores} cores ({model}), {_memory_gib():.0f} GiB memory, no GPU used",
        "cpu_budget": (
            f"every mode shares the same {cores} cores; each trainer process requests 1 CPU, "
            f"each retrieval actor requests {config.faiss_threads} CPU"
        ),
        "faiss_threads": (
            f"{config.faiss_threads} OpenMP thread(s) in every process that searches "
            "(local: each trainer; torch: rank 0; ray: each actor, matched to its CPU request)"
        ),
        "index": (
            f"{meta.num_passages} passages x {meta.dim} dims, {meta.index_type}, {len(meta.shards)} shard(s), "
            f"{meta.index_bytes / 2**20:.0f} MiB"
        ),
        "calls": (
            f"{config.calls} timed calls per trainer after {config.warmup} warm-up calls; "
            f"{config.batch} queries x k={config.k} docs per call; pause between calls {config.pause_ms:g} ms"
        ),
        "load_average_at_start": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "versions": f"faiss {faiss.__version__}, ray {ray.__version__}, torch {torch.__version__}",
        **config.extra_settings,
    }


def _memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def bench_layout(config: RetrievalBenchConfig, shards: int):
    """Two trainer nodes and two retrieval nodes, sized for the largest W and R x S."""
    from rag_job.local.cluster import LocalLayout

    per_trainer = math.ceil(max(config.workers) / 2)
    per_retrieval = math.ceil(max(config.replicas) * shards / 2)
    return LocalLayout(
        trainer_nodes=2,
        trainer_cpus=per_trainer,
        workers_per_trainer_node=per_trainer,
        retrieval_nodes=2,
        retrieval_cpus=per_retrieval * config.faiss_threads,
        actors_per_retrieval_node=per_retrieval,
    )


def _run_cell(mode: str, workers: int, kb_dir: Path, spec, queries: np.ndarray, config) -> tuple[list, float]:
    """Start W fresh trainers, set them up for `mode`, time the calls; (per-worker results, wall seconds)."""
    import ray

    from rag_job.bench.workers import BenchWorker, free_loopback_port

    remote = ray.remote(BenchWorker).options(num_cpus=1, resources={TRAINER_RESOURCE: 1})
    actors = [remote.remote(rank, config.faiss_threads) for rank in range(workers)]
    try:
        ray.get([a.ready.remote() for a in actors])
        if mode == "torch":
            port = free_loopback_port()
            ray.get([a.setup_torch.remote(str(kb_dir), workers, port) for a in actors])
        elif mode == "ray":
            ray.get([a.setup_ray.remote(spec) for a in actors])
        else:
            ray.get([a.setup_local.remote(str(kb_dir)) for a in actors])
        start_at = time.time() + 0.3
        pause_s = config.pause_ms / 1000
        results = ray.get(
            [
                a.run.remote(queries[rank], config.k, config.warmup, pause_s, start_at)
                for rank, a in enumerate(actors)
            ]
        )
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)
    wall = max(r["ended"] for r in results) - min(r["measured_from"] for r in results)
    return results, wall


def run_retrieval_bench(config: RetrievalBenchConfig) -> dict:
    """Run every (mode, W) cell and write retrieval.json, retrieval.md and retrieval.png under out_dir."""
    from rag_job.local.cluster import cluster_unless_connected

    config.validate()
    config.out_dir.mkdir(parents=True, exist_ok=True)
    kb_dir, meta = prepare_knowledge_base(config)
    if config.k > min(s.end - s.start for s in meta.shards):
        raise ValueError(f"--k ({config.k}) exceeds the passages in the smallest shard of {kb_dir}")
    settings = machine_settings(config, meta)
    with cluster_unless_connected(bench_layout(config, len(meta.shards))):
        rows, actor_stats = measure_knowledge_base(config, kb_dir, meta, config.modes)
    settings["load_average_at_end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    rows = report.add_ratios(rows)
    result = {
        "benchmark": "retrieval",
        "settings": settings,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "published": report.PUBLISHED,
        "results": rows,
        "actor_stats": [
            {
                k: s[k]
                for k in ("shard", "calls", "queries", "search_ms_p50", "search_ms_p95", "faiss_threads")
            }
            | {"batched_searches": s.get("batched_searches")}
            for s in actor_stats
        ],
    }
    write_outputs(result, config.out_dir)
    return result


def measure_knowledge_base(
    config: RetrievalBenchConfig, kb_dir: Path, meta: KnowledgeBaseMeta, modes: tuple[str, ...]
) -> tuple[list[dict], list[dict]]:
    """Every (W, mode) cell on one knowledge base: (rows, the actors' final stats).

    Starts max(R) replicas of every shard on the connected cluster (each Ray row uses the first
    R of them) and kills them afterwards; each row's `actor_rss_mb` is read from those R x S
    actors right after its cell.
    """
    import ray

    from rag_job.retrieval.actor import start_retrieval_actors
    from rag_job.retrieval.pool import PoolSpec, RetrievalPool

    shards = len(meta.shards)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    replicas = max(config.replicas) if "ray" in modes else 0
    handles: list = []
    rows = []
    try:
        if replicas:
            handles = start_retrieval_actors(
                str(kb_dir),
                shards,
                replicas,
                prefix,
                actor_cpus=config.faiss_threads,
                faiss_threads=config.faiss_threads,
            )
            RetrievalPool(PoolSpec(prefix, shards, replicas), handles).wait_ready()
        all_queries = query_batches(
            max(config.workers) * (config.calls + config.warmup), config.batch, meta.dim, config.seed + 1
        ).reshape(max(config.workers), config.calls + config.warmup, config.batch, meta.dim)
        cells = [
            (mode, r)
            for mode in RETRIEVAL_MODES
            if mode in modes
            for r in (sorted(config.replicas) if mode == "ray" else [None])
        ]
        for workers in sorted(config.workers):
            for mode, r in cells:
                spec = PoolSpec(prefix, shards, r) if r else None
                results, wall = _run_cell(mode, workers, kb_dir, spec, all_queries, config)
                row = report.summarize_run(
                    mode,
                    workers,
                    r,
                    [lat for res in results for lat in res["latencies_ms"]],
                    wall,
                    [res["rss_mb"] for res in results],
                    _actor_rss(handles, r) if r else [],
                )
                traces = [trace for res in results for trace in res["traces"]]
                if traces:
                    row["profile"] = profile.breakdown(traces)
                    logger.info(
                        "W=%d %-26s mean %.1f ms: batching wait %.1f, FAISS search %.1f, the rest %.1f "
                        "(%.2f calls per search)",
                        workers, row["label"], row["profile"]["call_ms_mean"],
                        row["profile"]["phases_ms"]["batching wait"], row["profile"]["phases_ms"]["FAISS search"],
                        profile.overhead_ms(row["profile"]), row["profile"]["calls_per_search"],
                    )  # fmt: skip
                rows.append(row)
                logger.info(
                    "W=%d %-26s p50 %.1f ms p95 %.1f ms %.1f calls/s",
                    workers, row["label"], row["latency_ms_p50"], row["latency_ms_p95"], row["calls_per_s"],
                )  # fmt: skip
        actor_stats = [ray.get(h.stats.remote()) for row_ in handles for h in row_]
    finally:
        for row_ in handles:
            for handle in row_:
                ray.kill(handle, no_restart=True)
    return rows, actor_stats


def _actor_rss(handles: list, replicas: int) -> list[float]:
    import ray

    stats = ray.get([row[r].stats.remote() for row in handles for r in range(replicas)])
    return [s.get("rss_bytes", 0) / 2**20 for s in stats]


def markdown(result: dict) -> str:
    rows = result["results"]
    return "\n\n".join(
        [
            "## Retrieval: time per call, side by side (same index, same run)",
            report.latency_table(rows),
            "### Against the published figures (ratio to torch.distributed at the same W)",
            report.published_comparison_table(rows),
            "### Every cell",
            report.detail_table(rows),
            "### Where a Ray call's time goes (mean ms per phase, from timestamps; `rag_job.bench.profile`)",
            profile.breakdown_table(rows),
            "### Settings",
            report.settings_lines(result["settings"]),
        ]
    )


def write_outputs(result: dict, out_dir: Path) -> None:
    (out_dir / "retrieval.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "retrieval.md").write_text(markdown(result) + "\n")
    report.plot_latency(result["results"], out_dir / "retrieval.png")
