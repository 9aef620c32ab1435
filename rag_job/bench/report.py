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


def growth_exponent(passages: Sequence[float], latencies_ms: Sequence[float]) -> float | None:
    """b in latency ~ N^b: the least-squares slope of log(latency) on log(N).

    About 1 for a search that scans every vector (flat), well under 1 for HNSW and IVF;
    near 0 when a fixed cost (the call, the transfer) dominates. None with fewer than two
    distinct N: there is no slope to fit.
    """
    if len(passages) != len(latencies_ms):
        raise ValueError(f"{len(passages)} sizes but {len(latencies_ms)} latencies")
    if len(set(passages)) < 2:
        return None
    if min(passages) <= 0 or min(latencies_ms) <= 0:
        raise ValueError("sizes and latencies must be positive to fit on log-log axes")
    slope, _ = np.polyfit(np.log(np.asarray(passages, float)), np.log(np.asarray(latencies_ms, float)), 1)
    return float(slope)


def _series_key(row: dict) -> tuple:
    """A sweep series: one mode on one index type at fixed W and S, over N."""
    return (row["index_type"], row["label"], row["workers"], row["shards"])


def fit_growth(rows: list[dict]) -> list[dict]:
    """Per series (index type, mode, W, S): the growth exponent of p50 and p95 latency in N."""
    series: dict[tuple, list[dict]] = {}
    for row in rows:
        series.setdefault(_series_key(row), []).append(row)
    fits = []
    for (index_type, label, workers, shards), members in series.items():
        members = sorted(members, key=lambda r: r["passages"])
        sizes = [r["passages"] for r in members]
        fits.append(
            {
                "index_type": index_type,
                "label": label,
                "mode": members[0]["mode"],
                "replicas": members[0]["replicas"],
                "workers": workers,
                "shards": shards,
                "passages": sizes,
                "exponent_p50": growth_exponent(sizes, [r["latency_ms_p50"] for r in members]),
                "exponent_p95": growth_exponent(sizes, [r["latency_ms_p95"] for r in members]),
            }
        )
    return fits


def _exponent(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "n/a"


def sweep_markdown(result: dict) -> str:
    """The sweep's tables: growth exponents, knowledge bases (build, load, memory), every cell."""
    fits = sorted(result["fits"], key=lambda f: (f["index_type"], f["workers"], f["shards"], f["label"]))
    lines = [
        "## Retrieval sweep: latency and memory against the knowledge base's size",
        "",
        "### Growth of latency in N (least squares on log-log: latency ~ N^b)",
        "",
        "| index | mode | W | S | N | b (p50) | b (p95) |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for fit in fits:
        sizes = ", ".join(f"{n:,}" for n in fit["passages"])
        lines.append(
            f"| {fit['index_type']} | {fit['label']} | {fit['workers']} | {fit['shards']} | {sizes} "
            f"| {_exponent(fit['exponent_p50'])} | {_exponent(fit['exponent_p95'])} |"
        )
    lines += [
        "",
        "### Knowledge bases",
        "",
        "| N | index | S | index MiB | build s | actor load s (max) | RSS per actor MiB (max) |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for kb in result["knowledge_bases"]:
        build = "n/a" if kb["build_s"] is None else f"{kb['build_s']:.1f}"
        lines.append(
            f"| {kb['passages']:,} | {kb['index_type']} | {kb['shards']} | {kb['index_mb']:.1f} "
            f"| {build}{' (cached)' if kb['build_cached'] else ''} | {_optional(kb['actor_load_s_max'], 2)} "
            f"| {_optional(kb['actor_rss_mb_max'], 0)} |"
        )
    lines += [
        "",
        "### Every cell",
        "",
        "| N | index | S | W | mode | calls | p50 ms | p95 ms | calls/s | RSS per actor MiB | trainer RSS max MiB |",
        "|---:|---|---:|---:|---|---:|---:|---:|---:|---|---:|",
    ]
    for row in sorted(result["results"], key=_series_key_sized):
        per_actor = ", ".join(f"{v:.0f}" for v in row["actor_rss_mb"]) or "-"
        lines.append(
            f"| {row['passages']:,} | {row['index_type']} | {row['shards']} | {row['workers']} | {row['label']} "
            f"| {row['calls']} | {row['latency_ms_p50']:.2f} | {row['latency_ms_p95']:.2f} "
            f"| {row['calls_per_s']:.1f} | {per_actor} | {row['trainer_rss_mb_max']:.0f} |"
        )
    lines += ["", *memory_lines(result.get("knowledge_bases", []))]
    lines += ["", *shard_comparison_lines(result.get("shard_comparison", []))]
    if (result.get("scale_table") or {}).get("rows"):
        from rag_job.bench.scale import scale_markdown

        lines += ["", scale_markdown(result["scale_table"])]
    lines += ["", "### Settings", "", settings_lines(result["settings"])]
    return "\n".join(lines)


def _series_key_sized(row: dict) -> tuple:
    return (row["index_type"], row["shards"], row["workers"], row["label"], row["passages"])


def _optional(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def plot_sweep(rows: list[dict], fits: list[dict], path: Path) -> None:
    """Log-log p50 latency against N, one panel per index type, one line per mode at the largest W
    (bars to p95); the legend carries each line's fitted exponent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    index_types = sorted({r["index_type"] for r in rows})
    widest = max(r["workers"] for r in rows)
    exponents = {(f["index_type"], f["label"], f["workers"], f["shards"]): f["exponent_p50"] for f in fits}
    figure, axes = plt.subplots(
        1, len(index_types), figsize=(4.2 * len(index_types), 3.8), squeeze=False, sharey=True
    )
    for axis, index_type in zip(axes[0], index_types, strict=True):
        mine = [r for r in rows if r["index_type"] == index_type and r["workers"] == widest]
        for key in sorted({_series_key(r) for r in mine}, key=lambda k: (k[3], k[1])):
            line = sorted((r for r in mine if _series_key(r) == key), key=lambda r: r["passages"])
            p50 = np.array([r["latency_ms_p50"] for r in line])
            p95 = np.array([r["latency_ms_p95"] for r in line])
            shards = f" S={key[3]}" if len({r["shards"] for r in rows}) > 1 else ""
            axis.errorbar(
                [r["passages"] for r in line], p50, yerr=[np.zeros_like(p50), p95 - p50], marker="o",
                capsize=3, label=f"{key[1]}{shards}: b={_exponent(exponents.get(key))}",
            )  # fmt: skip
        axis.set_xscale("log")
        axis.set_yscale("log")
        sizes = sorted({r["passages"] for r in mine})
        axis.set_xticks(sizes, [f"{n:,}" for n in sizes])
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_title(f"{index_type}, W={widest}")
        axis.set_xlabel("passages N")
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=7)
    axes[0][0].set_ylabel("ms per retrieval call (p50, bar to p95)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _mb(value: float | None) -> float | None:
    return None if value is None else value / 2**20


def actor_memory(actor_stats: list[dict]) -> dict:
    """A knowledge base's retrieval actors after every cell: mean RSS, the most private (anon) and
    proportional (PSS) memory of one, and whether every one mapped its index."""
    if not actor_stats:
        return {"actor_rss_mb_mean": None, "actor_anon_mb_max": None, "actor_pss_mb_max": None,
                "index_mapped": None}  # fmt: skip
    anon = [a.get("anon_bytes") for a in actor_stats]
    pss = [a.get("pss_bytes") for a in actor_stats]
    return {
        "actor_rss_mb_mean": float(np.mean([a["rss_bytes"] for a in actor_stats])) / 2**20,
        "actor_anon_mb_max": None if None in anon else _mb(max(anon)),
        "actor_pss_mb_max": None if None in pss else _mb(max(pss)),
        "index_mapped": all(a.get("index_mapped") for a in actor_stats),
    }


def _per_bytes(value: float | None, total: float) -> str:
    return "n/a" if value is None or not total else f"{value / total:.2f}"


def memory_lines(points: list[dict]) -> list[str]:
    """RSS per actor against its shard's bytes (index file + its rows of embeddings), and what one
    shard adds to a fresh process when its index is mapped against read."""
    probed = [kb for kb in points if kb.get("memory_probes")]
    if not probed:
        return []
    lines = [
        "### Memory per actor against its shard's bytes (index file + embeddings rows of shard 0)",
        "",
        "RSS counts the pages of mapped files a process touched, though the page cache holds them once "
        "for every actor on the node; anon is the private memory that does not share. Actors: the Ray "
        "actors after every cell (whole process: Ray worker, Python, FAISS). Probe: what loading shard 0 "
        "and running the cell's queries added to a fresh process, per index load mode.",
        "",
        "| N | index | S | shard MiB | actor RSS / shard bytes | actor anon / shard bytes | actors mapped "
        "| probe mapped: RSS / bytes | anon / bytes | probe read: RSS / bytes | anon / bytes |",
        "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for kb in probed:
        total = kb["shard0_bytes"]
        probes = {p["mode"]: p for p in kb["memory_probes"]}
        mapped, read = probes.get("auto", {}), probes.get("never", {})
        mapped_note = "" if mapped.get("index_mapped", True) else " (read: FAISS did not map it)"
        actor_rss = None if kb.get("actor_rss_mb_mean") is None else kb["actor_rss_mb_mean"] * 2**20
        actor_anon = None if kb.get("actor_anon_mb_max") is None else kb["actor_anon_mb_max"] * 2**20
        lines.append(
            f"| {kb['passages']:,} | {kb['index_type']} | {kb['shards']} | {total / 2**20:.1f} "
            f"| {_per_bytes(actor_rss, total)} | {_per_bytes(actor_anon, total)} "
            f"| {'n/a' if kb.get('index_mapped') is None else ('yes' if kb['index_mapped'] else 'no')} "
            f"| {_per_bytes(mapped.get('rss_bytes_delta'), total)}{mapped_note} "
            f"| {_per_bytes(mapped.get('anon_bytes_delta'), total)} "
            f"| {_per_bytes(read.get('rss_bytes_delta'), total)} | {_per_bytes(read.get('anon_bytes_delta'), total)} |"
        )
    return lines


#: Targets of the S comparison (issue 19): sharding halves what an actor holds at little latency.
SHARD_LATENCY_TARGET = 1.3
SHARD_MEMORY_TARGET = 0.5


def shard_comparison(result: dict) -> list[dict]:
    """S=2 (the grid's `compare_shards`) against S=1 at the largest N, per index type and Ray cell:
    p50 latency ratio, RSS per actor ratio (whole actors) and the ratio of what shard 0 adds to a
    fresh process with its index mapped (the part of an actor that sharding divides)."""
    grid = result.get("grid", {})
    other = grid.get("compare_shards")
    if not other or not grid.get("passages"):
        return []
    largest = max(grid["passages"])
    points = {
        (kb["index_type"], kb["shards"]): kb for kb in result["knowledge_bases"] if kb["passages"] == largest
    }
    rows = {
        (r["index_type"], r["shards"], r["workers"], r["label"]): r
        for r in result["results"]
        if r["passages"] == largest and r["mode"] == "ray"
    }
    out = []
    for (index_type, shards, workers, label), one in sorted(rows.items()):
        many = rows.get((index_type, other, workers, label))
        if shards != 1 or many is None:
            continue
        probe = {s: _mapped_probe(points.get((index_type, s))) for s in (1, other)}
        out.append(
            {
                "passages": largest, "index_type": index_type, "workers": workers, "label": label,
                "shards": other, "replicas": one["replicas"],
                "p50_ms": [one["latency_ms_p50"], many["latency_ms_p50"]],
                "latency_ratio": many["latency_ms_p50"] / one["latency_ms_p50"],
                "rss_per_actor_mb": [float(np.mean(one["actor_rss_mb"])), float(np.mean(many["actor_rss_mb"]))],
                "rss_ratio": float(np.mean(many["actor_rss_mb"]) / np.mean(one["actor_rss_mb"])),
                "shard_rss_ratio": _ratio_of(probe[other], probe[1]),
            }
        )  # fmt: skip
    return out


def _mapped_probe(point: dict | None) -> float | None:
    probes = {p["mode"]: p for p in (point or {}).get("memory_probes", [])}
    return probes.get("auto", {}).get("rss_bytes_delta")


def _ratio_of(top: float | None, bottom: float | None) -> float | None:
    return None if top is None or not bottom else top / bottom


def shard_comparison_lines(comparison: list[dict]) -> list[str]:
    """The S comparison as a markdown table with the targets it is held to."""
    if not comparison:
        return []
    other = comparison[0]["shards"]
    lines = [
        f"### S={other} against S=1 at N={comparison[0]['passages']:,} (one run; target latency <= "
        f"{SHARD_LATENCY_TARGET}x, RSS per actor about {SHARD_MEMORY_TARGET}x)",
        "",
        "Whole-actor RSS includes what every Ray worker holds whatever its shard (Python, FAISS, Arrow); "
        "the shard's own part is what loading shard 0 (mapped) and searching added to a fresh process.",
        "",
        f"| index | W | mode | p50 ms S=1 | p50 ms S={other} | latency ratio | RSS per actor MiB S=1 "
        f"| S={other} | RSS ratio | shard's own RSS ratio |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in comparison:
        lines.append(
            f"| {c['index_type']} | {c['workers']} | {c['label']} | {c['p50_ms'][0]:.2f} | {c['p50_ms'][1]:.2f} "
            f"| {c['latency_ratio']:.2f}x | {c['rss_per_actor_mb'][0]:.0f} | {c['rss_per_actor_mb'][1]:.0f} "
            f"| {c['rss_ratio']:.2f}x | {_ratio(c['shard_rss_ratio'])} |"
        )
    return lines
