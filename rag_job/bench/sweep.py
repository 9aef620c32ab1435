"""`bench retrieval --sweep`: retrieval latency and memory over a grid of knowledge-base sizes.

For every knowledge base of the grid (N passages x index type x S shards, synthetic, built
once and cached by its parameters under `out/bench/cache`) the retrieval actors are started
and every (W, mode) cell is timed exactly as `bench retrieval` times one knowledge base
(`measure_knowledge_base`). The figures: p50/p95 per call, resident memory of every actor
(what it costs to hold the index), the index build and load times; and per mode the growth
exponent of latency in N (least squares on log-log), which says whether a mode stays usable
at the sizes users run.

Memory is reported against what an actor holds (its shard's index file + embeddings rows):
each knowledge base's shard 0 is also loaded in a fresh process mapped and read
(`rag_job.bench.memory`), and at the largest N the grid's `compare_shards` (S=2) is compared
with S=1 (latency and RSS per actor). The wiki_dpr table (`rag_job.bench.scale`) is built from
the measured bytes and fitted curves.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from rag_job.bench import report
from rag_job.bench.memory import probe_shard_memory
from rag_job.bench.retrieval import (
    RETRIEVAL_MODES,
    RetrievalBenchConfig,
    bench_layout,
    cached_knowledge_base,
    machine_settings,
    measure_knowledge_base,
)
from rag_job.bench.scale import scale_table_or_reason
from rag_job.bench.synthetic import query_batches
from rag_job.knowledge.index import INDEX_TYPES

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepGrid:
    """The knowledge bases (N x index type x S, plus extra points) and the cells (W x mode x R) on each."""

    passages: tuple[int, ...]
    index_types: tuple[str, ...]
    workers: tuple[int, ...]
    replicas: tuple[int, ...]
    shards: tuple[int, ...] = (1,)
    modes: tuple[str, ...] = ("ray", "local")
    #: (N, index type) beyond the product: a compressed index at a size flat and HNSW cannot hold.
    extra_points: tuple[tuple[int, str], ...] = ()
    #: S measured against S=1 at the largest N of `passages`, per index type (None: no comparison).
    compare_shards: int | None = 2

    def knowledge_bases(self) -> list[tuple[int, str, int]]:
        """Every (N, index type, S) to build and measure, smallest first."""
        points = {(n, t) for n in self.passages for t in self.index_types} | set(self.extra_points)
        kbs = {(n, t, s) for n, t in points for s in self.shards}
        if self.compare_shards:
            kbs |= {(max(self.passages), t, s) for t in self.index_types for s in (1, self.compare_shards)}
        return sorted(kbs)

    def validate(self) -> None:
        checks = [
            (all(n >= 1 for n in self.passages) and bool(self.passages), "passages must be at least 1"),
            (set(self.index_types) <= set(INDEX_TYPES), f"index types must be of {', '.join(INDEX_TYPES)}"),
            (set(t for _, t in self.extra_points) <= set(INDEX_TYPES), "extra points name an unknown index"),
            (bool(self.workers) and min(self.workers) >= 1, "--workers needs values of at least 1"),
            (bool(self.replicas) and min(self.replicas) >= 1, "--replicas needs values of at least 1"),
            (bool(self.shards) and min(self.shards) >= 1, "shards must be at least 1"),
            (self.compare_shards is None or self.compare_shards >= 2, "compare_shards must be 2 or more"),
            (bool(self.modes) and set(self.modes) <= set(RETRIEVAL_MODES), "modes are torch, ray, local"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


#: `--grid`: `small` runs in a few minutes on 2 cores; `full` is the issue's grid, for a machine with
#: the cores and memory (1M x 768 is 3 GiB per index copy; the 4M IVF-PQ point builds from 12 GiB of
#: vectors, once, then comes from the cache).
GRIDS = {
    "small": SweepGrid(
        passages=(2_000, 8_000, 32_000),
        index_types=INDEX_TYPES,
        workers=(2,),
        replicas=(1, 2),
    ),
    "full": SweepGrid(
        passages=(20_000, 200_000, 1_000_000),
        index_types=INDEX_TYPES,
        workers=(1, 2, 4, 8),
        replicas=(1, 2, 4),
        shards=(1, 4),
        modes=RETRIEVAL_MODES,
        extra_points=((4_000_000, "ivfpq"),),
    ),
}


@dataclass(frozen=True)
class SweepConfig:
    grid: SweepGrid = GRIDS["small"]
    grid_name: str = "small"
    #: Per-call settings, as in `bench retrieval` (its passages, index type and shards are the grid's).
    cell: RetrievalBenchConfig = field(default_factory=RetrievalBenchConfig)
    out_dir: Path = Path("out/bench")
    #: Built knowledge bases, keyed by their parameters (default: out_dir/cache).
    cache_dir: Path | None = None

    def validate(self) -> None:
        self.grid.validate()
        replace(self.cell, workers=self.grid.workers, replicas=self.grid.replicas).validate()
        smallest = min(n // s for n, _, s in self.grid.knowledge_bases())
        if self.cell.k > smallest:
            raise ValueError(f"--k ({self.cell.k}) exceeds the {smallest} passages of the smallest shard")


def run_sweep(config: SweepConfig) -> dict:
    """Build (or reuse) every knowledge base of the grid, measure it, write sweep.json, .md and .png."""
    from rag_job.local.cluster import cluster_unless_connected

    config.validate()
    config.out_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = config.cache_dir or config.out_dir / "cache"
    grid = config.grid
    cell = replace(config.cell, workers=grid.workers, replicas=grid.replicas, out_dir=config.out_dir)
    points, rows, settings = [], [], None
    probe_queries = query_batches(cell.calls, cell.batch, cell.dim, cell.seed + 1)
    with cluster_unless_connected(sweep_layout(grid, cell)):
        for passages, index_type, shards in grid.knowledge_bases():
            built = cached_knowledge_base(cache_dir, passages, cell.dim, index_type, shards, cell.seed)
            point_config = replace(cell, passages=passages, index_type=index_type, shards=shards)
            settings = settings or machine_settings(point_config, built.meta)
            point_rows, actor_stats = measure_knowledge_base(
                point_config, built.kb_dir, built.meta, grid.modes
            )
            probes = probe_shard_memory(str(built.kb_dir), probe_queries, cell.k, cell.faiss_threads)
            point = {
                "passages": passages,
                "index_type": index_type,
                "shards": shards,
                "dim": cell.dim,
                "build_s": built.build_s,
                "build_cached": built.cached,
                "index_mb": built.meta.index_bytes / 2**20,
                "actor_load_s_max": max((a["load_seconds"] for a in actor_stats), default=None),
                "actor_rss_mb_max": max((a["rss_bytes"] / 2**20 for a in actor_stats), default=None),
                **report.actor_memory(actor_stats),
                "shard0_bytes": probes[0]["index_bytes"] + probes[0]["embeddings_bytes"],
                "memory_probes": probes,
            }
            points.append(point)
            rows += [
                {**row, **{k: point[k] for k in ("passages", "index_type", "shards")}} for row in point_rows
            ]
            logger.info(
                "N=%d %s S=%d: index %.0f MiB, built in %s", passages, index_type, shards,
                point["index_mb"], "(cached)" if built.cached else f"{built.build_s:.1f}s",
            )  # fmt: skip
    settings = {
        **(settings or {}),
        "index": f"synthetic unit vectors x {cell.dim} dims, one knowledge base per grid point (table above)",
        "load_average_at_end": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "grid": config.grid_name,
    }
    result = {
        "benchmark": "retrieval-sweep",
        "settings": settings,
        "grid": asdict(grid),
        "config": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in asdict(cell).items()
            if k in ("dim", "batch", "k", "calls", "warmup", "pause_ms", "faiss_threads", "seed")
        },
        "knowledge_bases": points,
        "results": rows,
        "fits": report.fit_growth(rows),
    }
    result["shard_comparison"] = report.shard_comparison(result)
    result["scale_table"] = scale_table_or_reason(result)
    write_sweep(result, config.out_dir)
    return result


def sweep_layout(grid: SweepGrid, cell: RetrievalBenchConfig):
    """The local cluster for the whole grid: room for max(R) actors of every shard of its most
    sharded knowledge base (the S comparison's included)."""
    return bench_layout(cell, max(shards for _, _, shards in grid.knowledge_bases()))


def write_sweep(result: dict, out_dir: Path) -> None:
    """sweep.json, sweep.md and the log-log plot sweep.png."""
    (out_dir / "sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "sweep.md").write_text(report.sweep_markdown(result) + "\n")
    report.plot_sweep(result["results"], result["fits"], out_dir / "sweep.png")


def cells_in(grid: SweepGrid) -> int:
    """How many (knowledge base, W, mode, R) cells the grid times (for the log and the tests)."""
    per_w = sum(len(grid.replicas) if mode == "ray" else 1 for mode in grid.modes)
    return len(grid.knowledge_bases()) * len(grid.workers) * per_w
