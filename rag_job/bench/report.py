"""Turn raw per-call latencies into the benchmark's figures, tables and plot (pure, except the PNG).

Figures that compare modes are ratios of medians measured in the same run on the same
index, so they carry over between machines far better than the absolute milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: Seconds per retrieval call from the Hugging Face / Anyscale "RAG with Ray" blog post
#: (columns: training GPUs = trainer processes; per-GPU batch size 8).
PUBLISHED = {
    "source": "https://huggingface.co/blog/ray-rag",
    "unit": "seconds per retrieval call",
    "workers": [2, 3, 4],
    "rows": {
        "torch.distributed": [2.12, 2.62, 3.438],
        "Ray R=2": [1.49, 1.539, 2.029],
        "Ray R=4": [1.145, 1.484, 1.66],
    },
}


def mode_label(mode: str, replicas: int | None) -> str:
    """The row name the published table uses."""
    if mode == "torch":
        return "torch.distributed"
    if mode == "ray":
        return f"Ray R={replicas}"
    return "local (in-process floor)"


def summarize_run(
    mode: str,
    workers: int,
    replicas: int | None,
    latencies_ms: Sequence[float],
    wall_s: float,
    trainer_rss_mb: Sequence[float],
    actor_rss_mb: Sequence[float],
) -> dict:
    """One (mode, W) cell: latency percentiles over every call of every worker, throughput, memory."""
    if not latencies_ms:
        raise ValueError(f"{mode} with {workers} worker(s) measured no calls")
    latencies = np.asarray(latencies_ms, dtype=float)
    return {
        "mode": mode,
        "label": mode_label(mode, replicas),
        "replicas": replicas,
        "workers": workers,
        "calls": int(latencies.size),
        "latency_ms_p50": float(np.percentile(latencies, 50)),
        "latency_ms_p95": float(np.percentile(latencies, 95)),
        "latency_ms_mean": float(latencies.mean()),
        "calls_per_s": float(latencies.size / wall_s) if wall_s > 0 else 0.0,
        "trainer_rss_mb_max": float(max(trainer_rss_mb)) if trainer_rss_mb else 0.0,
        "trainer_rss_mb_total": float(sum(trainer_rss_mb)),
        "actor_rss_mb_total": float(sum(actor_rss_mb)),
        "actor_rss_mb": [float(v) for v in actor_rss_mb],
    }


def add_ratios(rows: list[dict]) -> list[dict]:
    """Each row's p50 latency and calls/s over the `torch` and `local` rows with the same W."""
    baselines = {(row["mode"], row["workers"]): row for row in rows if row["mode"] in ("torch", "local")}
    out = []
    for row in rows:
        row = dict(row)
        for name in ("torch", "local"):
            base = baselines.get((name, row["workers"]))
            row[f"p50_vs_{name}"] = row["latency_ms_p50"] / base["latency_ms_p50"] if base else None
            row[f"calls_per_s_vs_{name}"] = (
                row["calls_per_s"] / base["calls_per_s"] if base and base["calls_per_s"] else None
            )
        out.append(row)
    return out


def _cell(rows: list[dict], label: str, workers: int) -> dict | None:
    return next((r for r in rows if r["label"] == label and r["workers"] == workers), None)


def _labels(rows: list[dict]) -> list[str]:
    seen: list[str] = []
    for row in rows:
        if row["label"] not in seen:
            seen.append(row["label"])
    return seen


def _ratio(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "n/a"


def latency_table(rows: list[dict]) -> str:
    """Rows = modes, columns = W, like the published table: p50 ms per call (ratio to torch)."""
    workers = sorted({r["workers"] for r in rows})
    lines = [
        "| p50 ms per retrieval call (x torch) | " + " | ".join(f"W={w}" for w in workers) + " |",
        "|---|" + "---:|" * len(workers),
    ]
    for label in _labels(rows):
        cells = []
        for w in workers:
            row = _cell(rows, label, w)
            cells.append(f"{row['latency_ms_p50']:.1f} ({_ratio(row['p50_vs_torch'])})" if row else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detail_table(rows: list[dict]) -> str:
    """Every measured cell: p50, p95, calls/s, ratios and resident memory."""
    lines = [
        "| mode | W | calls | p50 ms | p95 ms | calls/s | p50 / torch | p50 / local "
        "| trainer RSS max MB | actors RSS total MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in sorted(rows, key=lambda r: (r["workers"], _labels(rows).index(r["label"]))):
        lines.append(
            f"| {row['label']} | {row['workers']} | {row['calls']} | {row['latency_ms_p50']:.1f} "
            f"| {row['latency_ms_p95']:.1f} | {row['calls_per_s']:.1f} | {_ratio(row['p50_vs_torch'])} "
            f"| {_ratio(row['p50_vs_local'])} | {row['trainer_rss_mb_max']:.0f} | {row['actor_rss_mb_total']:.0f} |"
        )
    return "\n".join(lines)


def published_comparison_table(rows: list[dict]) -> str:
    """The published seconds next to ours, each with its ratio to torch.distributed at the same W."""
    published_workers = PUBLISHED["workers"]
    ours_workers = sorted({r["workers"] for r in rows})
    columns = [w for w in published_workers if w in ours_workers]
    header = " | ".join(f"published {w} GPUs | this run W={w}" for w in columns)
    lines = ["| per retrieval call | " + header + " |", "|---|" + "---:|---:|" * len(columns)]
    for label, published in PUBLISHED["rows"].items():
        cells = []
        for w in columns:
            seconds = published[published_workers.index(w)]
            torch_seconds = PUBLISHED["rows"]["torch.distributed"][published_workers.index(w)]
            ours = _cell(rows, label, w)
            cells.append(f"{seconds:g} s ({seconds / torch_seconds:.2f}x)")
            cells.append(f"{ours['latency_ms_p50']:.1f} ms ({_ratio(ours['p50_vs_torch'])})" if ours else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def settings_lines(settings: dict) -> str:
    """The settings every mode ran under, as a markdown list (stated next to the figures)."""
    return "\n".join(f"- {key}: {value}" for key, value in settings.items())


def plot_latency(rows: list[dict], path: Path) -> None:
    """p50 latency (bars: p95) against W, one line per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4))
    labels = _labels(rows)
    for number, label in enumerate(labels):
        mine = sorted((r for r in rows if r["label"] == label), key=lambda r: r["workers"])
        nudge = 0.04 * (number - (len(labels) - 1) / 2)  # keep overlapping bars apart
        x = [r["workers"] * (1 + nudge) for r in mine]
        p50 = np.array([r["latency_ms_p50"] for r in mine])
        p95 = np.array([r["latency_ms_p95"] for r in mine])
        axis.errorbar(x, p50, yerr=[np.zeros_like(p50), p95 - p50], marker="o", capsize=3, label=label)
    axis.set_xlabel("trainer processes W")
    axis.set_xticks(sorted({r["workers"] for r in rows}))
    axis.set_ylabel("ms per retrieval call (p50, bar to p95)")
    axis.set_title("Retrieval latency against the number of trainers")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
