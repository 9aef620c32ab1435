"""wiki_dpr on paper: index bytes, shards, pods, pod memory and per-call latency at 21M passages.

Built from a sweep's measurements, never from assumed constants: the bytes of each index type
are a least-squares line (fixed + per passage) through the sweep's S=1 knowledge bases; the pod
memory is what the operator computes (`rag_operator.common.sizing.retrieval_memory`, called,
not copied); the latency is the sweep's fitted power law (latency ~ c N^b) evaluated at the
passages one shard holds. That last figure is an extrapolation far beyond the measured N and
is labelled as one.

`python -m rag_job bench scale-table` rebuilds it from a sweep.json; the sweep writes it too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: wiki_dpr's `psgs_w100` split (the passages the published RAG models retrieve from).
WIKI_DPR_PASSAGES = 21_015_300
#: What one retrieval pod may use: a 64 GB node (the shards are the fewest that fit it).
DEFAULT_POD_MEMORY = "64Gi"
#: Shard counts tried, fewest first.
_MAX_SHARDS = 1024


def index_bytes_line(points: list[dict], index_type: str) -> tuple[float, float] | None:
    """(fixed bytes, bytes per passage) of `index_type` from the sweep's S=1 knowledge bases;
    None with fewer than two sizes (no line through one point)."""
    sizes = sorted({(kb["passages"], kb["index_mb"] * 2**20) for kb in points
                    if kb["index_type"] == index_type and kb["shards"] == 1})  # fmt: skip
    if len({n for n, _ in sizes}) < 2:
        return None
    per_passage, fixed = np.polyfit([n for n, _ in sizes], [b for _, b in sizes], 1)
    return max(0.0, float(fixed)), float(per_passage)


def power_law(rows: list[dict], index_type: str, label: str, workers: int) -> tuple[float, float] | None:
    """(c, b) of p50 latency ~ c N^b for one series at S=1 (least squares on log-log), or None."""
    series = sorted(
        (r["passages"], r["latency_ms_p50"])
        for r in rows
        if (r["index_type"], r["label"], r["workers"], r["shards"]) == (index_type, label, workers, 1)
    )
    if len({n for n, _ in series}) < 2:
        return None
    slope, intercept = np.polyfit(np.log([n for n, _ in series]), np.log([ms for _, ms in series]), 1)
    return float(np.exp(intercept)), float(slope)


def operator_sizing(total_bytes: float, pod_memory: str) -> dict:
    """The fewest shards whose retrieval pod (one actor, one replica per shard, the operator's
    default headroom and overhead) fits `pod_memory`, and the pod memory the operator computes."""
    from rag_operator.common.models import RetrievalGroupSpec
    from rag_operator.common.quantities import parse_quantity
    from rag_operator.common.sizing import no_kb_metadata, retrieval_memory

    budget = parse_quantity(pod_memory)
    for shards in range(1, _MAX_SHARDS + 1):
        spec = RetrievalGroupSpec(
            replicas=shards, shards=shards, actors_per_pod=1, index_size=str(int(total_bytes))
        )
        problems: list = []
        memory, _, _ = retrieval_memory(spec, "", no_kb_metadata, problems)
        if problems:
            raise ValueError(f"the operator refused the sizing of {shards} shards: {problems}")
        if parse_quantity(memory) <= budget:
            return {"shards": shards, "pods": spec.replicas, "actors_per_pod": 1, "memory_per_pod": memory,
                    "headroom": spec.memory_headroom, "overhead": spec.memory_overhead}  # fmt: skip
    raise ValueError(f"no shard count up to {_MAX_SHARDS} fits a {pod_memory} retrieval pod")


def scale_table(sweep: dict, passages: int = WIKI_DPR_PASSAGES, pod_memory: str = DEFAULT_POD_MEMORY) -> dict:
    """Per index type of the sweep: index bytes at `passages`, the operator's shards, pods and pod
    memory, and the extrapolated p50 per call (Ray at the smallest R, and in-process) per shard."""
    rows, points = sweep["results"], sweep["knowledge_bases"]
    widest = max(r["workers"] for r in rows)
    ray_labels = sorted({(r["replicas"], r["label"]) for r in rows if r["mode"] == "ray"})
    lines = []
    for index_type in sorted({kb["index_type"] for kb in points}):
        fit = index_bytes_line(points, index_type)
        if fit is None:
            continue
        total = fit[0] + fit[1] * passages
        sizing = operator_sizing(total, pod_memory)
        per_shard = passages / sizing["shards"]
        latency = {}
        for label in ([ray_labels[0][1]] if ray_labels else []) + ["local (in-process floor)"]:
            law = power_law(rows, index_type, label, widest)
            latency[label] = None if law is None else {"ms": law[0] * per_shard ** law[1], "exponent": law[1]}
        lines.append(
            {
                "index_type": index_type,
                "bytes_per_passage": fit[1],
                "fixed_bytes": fit[0],
                "index_bytes": total,
                **sizing,
                "passages_per_shard": per_shard,
                "extrapolated_p50": latency,
            }
        )
    measured = sorted({kb["passages"] for kb in points})
    return {
        "passages": passages,
        "dim": sweep.get("config", {}).get("dim"),
        "pod_memory": pod_memory,
        "workers": widest,
        "measured_passages": measured,
        "rows": lines,
    }


def scale_table_or_reason(sweep: dict, pod_memory: str = DEFAULT_POD_MEMORY) -> dict | None:
    """The table, or None where the operator package is not installed (a job-only image)."""
    try:
        import rag_operator  # noqa: F401
    except ImportError:
        return None
    return scale_table(sweep, pod_memory=pod_memory)


def _gib(value: float) -> str:
    return f"{value / 2**30:.1f}"


def scale_markdown(table: dict) -> str:
    """The table, its method and what it leaves out."""
    labels = [label for row in table["rows"] for label in row["extrapolated_p50"]]
    labels = list(dict.fromkeys(labels))
    measured = ", ".join(f"{n:,}" for n in table["measured_passages"])
    lines = [
        f"### wiki_dpr on paper: {table['passages']:,} passages x {table['dim']} (from this sweep)",
        "",
        f"Index bytes: a line (fixed + per passage) through the measured S=1 indexes ({measured} passages). "
        f"Shards: the fewest whose pod fits {table['pod_memory']} (the operator takes spec.retrieval.shards "
        "from the user; this picks it); pods and memory per pod: what the operator computes for one "
        "actor per pod and one replica per shard. Latency: the sweep's fitted N^b curve at the passages "
        f"one shard holds, W={table['workers']}: **an extrapolation** far beyond the largest measured N, "
        "on this machine's cores; the fan-out to S shards and the embeddings' page faults are not in it.",
        "",
        "| index | bytes per passage | index GiB | shards | pods | memory per pod | "
        + " | ".join(f"p50 ms {label} (extrapolated)" for label in labels)
        + " |",
        "|---|---:|---:|---:|---:|---:|" + "---:|" * len(labels),
    ]
    for row in table["rows"]:
        cells = []
        for label in labels:
            value = row["extrapolated_p50"].get(label)
            cells.append("n/a" if value is None else f"{value['ms']:.1f} (b={value['exponent']:.2f})")
        lines.append(
            f"| {row['index_type']} | {row['bytes_per_passage']:.0f} | {_gib(row['index_bytes'])} "
            f"| {row['shards']} | {row['pods']} | {row['memory_per_pod']} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def write_scale_table(sweep_json: Path, out_dir: Path, passages: int, pod_memory: str) -> dict:
    """`bench scale-table`: scale.json and scale.md under `out_dir` from a written sweep.json."""
    if not sweep_json.is_file():
        raise FileNotFoundError(
            f"{sweep_json} does not exist: run `python -m rag_job bench retrieval --sweep` first"
        )
    table = scale_table(json.loads(sweep_json.read_text()), passages, pod_memory)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "scale.json").write_text(json.dumps(table, indent=2) + "\n")
    (out_dir / "scale.md").write_text(scale_markdown(table) + "\n")
    return table
