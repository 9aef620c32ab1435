"""Where a Ray retrieval call's time goes, phase by phase, from measured timestamps.

The pool stamps each call in the calling thread (`RetrievalPool.last_trace`) and the actor
stamps its side into the answer (`ShardAnswer.timings`). Both use `time.perf_counter()`, which
on Linux reads CLOCK_MONOTONIC, one clock for every process of a machine: the phases that
cross processes (the request's way to the actor, the answer's way back) are only meaningful
when the caller and the actor share a machine, as in `bench retrieval`.

The phases telescope: their sum is the call's time from the pool's first stamp to its last.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rag_job.retrieval.pool import CallTrace

#: (phase, what it covers), in call order.
PHASES = (
    ("prepare", "queries made contiguous float32 (put in the object store when large)"),
    (
        "submit",
        "replica choice and `.remote()`: the queries serialised and handed to Ray (up to the actor's start)",
    ),
    ("to actor", "request transfer and dispatch to one of the actor's threads"),
    ("batching wait", "in the actor, waiting for the search that serves this call to start"),
    ("FAISS search", "the search serving this call (shared with the calls batched into it)"),
    ("actor reply", "rows sliced out, counters and metrics updated, answer returned"),
    ("to client", "answer serialised, transferred and deserialised in the caller"),
    ("merge", "shards' top-k merged by score"),
    ("embedding lookup", "embeddings of the ids read from the caller's memory-mapped passages"),
    ("bookkeeping", "version pin, latency list and client metrics"),
)


def phases_ms(trace: CallTrace) -> dict[str, float]:
    """One call's time per phase, ms (see PHASES); they add up to trace.ended - trace.started."""
    actor = trace.actor
    if actor is None:
        raise ValueError("the answer carried no actor timings: the actor runs older code than the pool")
    stamps = [
        trace.started,
        trace.prepared,
        trace.submitted,
        actor.arrived,
        actor.search_started,
        actor.search_ended,
        actor.returned,
        trace.answered,
        trace.merged,
        trace.embedded,
        trace.ended,
    ]
    # Ray may hand the request to the actor before `.remote()` returns in the caller, so an
    # actor stamp can precede the caller's stamp before it. Each boundary is taken as the earliest
    # of itself and every later stamp: the overlap counts once, in the earlier phase, no phase is
    # negative, and the phases still add up to the call.
    for i in range(len(stamps) - 2, -1, -1):
        stamps[i] = min(stamps[i], stamps[i + 1])
    return {name: (b - a) * 1000 for (name, _), a, b in zip(PHASES, stamps[:-1], stamps[1:], strict=True)}


def breakdown(traces: Sequence[CallTrace]) -> dict:
    """Mean ms per phase over `traces` (means add up to the mean call), the p50 call, and the mean
    number of calls each FAISS search served."""
    if not traces:
        raise ValueError("no traced calls to break down")
    per_call = [phases_ms(t) for t in traces]
    totals = np.asarray([(t.ended - t.started) * 1000 for t in traces])
    return {
        "calls": len(traces),
        "phases_ms": {name: float(np.mean([p[name] for p in per_call])) for name, _ in PHASES},
        "call_ms_mean": float(totals.mean()),
        "call_ms_p50": float(np.percentile(totals, 50)),
        "calls_per_search": float(np.mean([t.actor.batch_calls for t in traces])),
    }


def overhead_ms(result: dict) -> float:
    """Mean ms of a call not spent in the batching wait or the FAISS search: what Ray adds."""
    phases = result["phases_ms"]
    return sum(v for name, v in phases.items() if name not in ("batching wait", "FAISS search"))


def breakdown_table(rows: list[dict]) -> str:
    """Markdown: one column per profiled Ray cell (rows with a `profile`), one row per phase."""
    cells = [r for r in rows if r.get("profile")]
    if not cells:
        return "(no traced Ray calls)"
    head = [f"{r['label']}, W={r['workers']}" for r in cells]
    lines = [
        "| mean ms per call | " + " | ".join(head) + " |",
        "|---|" + "---:|" * len(cells),
    ]
    for name, _ in PHASES:
        lines.append(
            f"| {name} | " + " | ".join(f"{r['profile']['phases_ms'][name]:.2f}" for r in cells) + " |"
        )
    lines.append(
        "| **sum of phases** | " + " | ".join(f"{r['profile']['call_ms_mean']:.2f}" for r in cells) + " |"
    )
    lines.append(
        "| overhead (all but wait and search) | "
        + " | ".join(f"{overhead_ms(r['profile']):.2f}" for r in cells)
        + " |"
    )
    lines.append(
        "| calls served per FAISS search | "
        + " | ".join(f"{r['profile']['calls_per_search']:.2f}" for r in cells)
        + " |"
    )
    return "\n".join(lines)
