"""Job start-up, `run_training` to the end of the first optimizer step, split into phases.

The driver and rank 0 each note the wall clock (`time.time()`) at a few points; a phase is the
time between two consecutive marks, so the phases add up to the whole start-up and one slow
phase shows by name. The marks are a handful of clock reads per run: always on. The driver's
and rank 0's clocks are compared, which on Kubernetes means two pods' clocks (NTP keeps them
within milliseconds; the phases are seconds).

Ray's own start (`ray.init`, the local cluster) happens before `run_training` and is no part of
these phases.
"""

from __future__ import annotations

import time
from itertools import pairwise

#: The phase in which trainers wait for index loading that Ray Train's start did not cover.
WAITING_FOR_RETRIEVAL = "waiting for the retrieval actors (index load not hidden)"
#: (mark that ends the phase, phase name), in order; the first phase starts at `run_training`.
#: Driver marks: run_training, retrieval_started. Rank 0's marks (in the train loop):
#: loop_started ... first_step_started. The last mark is the first step's `time_unix`.
#: The retrieval actors load the index while Ray Train starts and the model loads; only what
#: that does not hide is on this path ("waiting for the retrieval actors").
PHASES: tuple[tuple[str, str], ...] = (
    ("retrieval_started", "driver imports and setup"),
    ("loop_started", "Ray Train start (controller, worker group, torch process group)"),
    ("imports_done", "worker imports (transformers, ...)"),
    ("model_loaded", "tokenizer, retriever and model load"),
    ("ddp_ready", "DDP wrap (prepare_model)"),
    ("setup_done", "data, optimizer and scheduler"),
    ("retrieval_waited", WAITING_FOR_RETRIEVAL),
    ("first_step_started", "evaluation before training"),
    ("first_step_done", "first optimizer step (first batch)"),
)
START_MARK = "run_training"
#: The driver's mark when every retrieval actor has loaded its shard: off the path above, since
#: the load runs beside it; `retrieval_ready - retrieval_started` is the whole index load.
RETRIEVAL_READY_MARK = "retrieval_ready"


def mark(marks: dict[str, float], name: str) -> None:
    """Note the wall clock now under `name` (the first note wins: a mark is the first time)."""
    marks.setdefault(name, time.time())


def startup_phases(marks: dict[str, float]) -> list[dict] | None:
    """The phases between consecutive marks, in order: name, start (s after run_training), seconds.

    None when a mark is missing or precedes `run_training` (a run resumed from another run's
    checkpoint carries that run's marks): a breakdown must add up to the start-up it explains.
    """
    names = [START_MARK, *(end for end, _ in PHASES)]
    if any(name not in marks for name in names):
        return None
    origin = marks[START_MARK]
    if any(marks[name] < origin for name in names):
        return None
    return [
        {"phase": phase, "mark": end, "start_s": marks[begin] - origin, "seconds": marks[end] - marks[begin]}
        for (begin, end), (_, phase) in zip(pairwise(names), PHASES, strict=True)
    ]


def phases_line(phases: list[dict]) -> str:
    """One log line: every phase's seconds, in order."""
    return ", ".join(f"{p['phase']} {p['seconds']:.1f} s" for p in phases)
