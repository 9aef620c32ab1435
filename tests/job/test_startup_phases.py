"""Start-up phases (rag_job/train/timeline.py): consecutive marks, so they add up to the start-up."""

from __future__ import annotations

import numpy as np
import pytest

from rag_job.train.timeline import PHASES, START_MARK, mark, startup_phases


def _marks(seconds: list[float]) -> dict[str, float]:
    names = [START_MARK, *(end for end, _ in PHASES)]
    return dict(zip(names, [1_000.0 + s for s in seconds], strict=True))


def test_phases_follow_the_marks_in_order_and_add_up_to_the_start_up():
    offsets = [0, 0.5, 4.0, 9.0, 11.0, 12.5, 12.6, 13.0, 13.0, 15.0]
    phases = startup_phases(_marks(offsets))

    assert [p["phase"] for p in phases] == [name for _, name in PHASES]
    assert [p["start_s"] for p in phases] == pytest.approx(offsets[:-1])
    assert [p["seconds"] for p in phases] == pytest.approx(list(np.diff(offsets)))
    assert sum(p["seconds"] for p in phases) == pytest.approx(15.0)


def test_no_breakdown_from_a_missing_mark_or_another_runs_marks():
    marks = _marks([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    del marks["ddp_ready"]
    assert startup_phases(marks) is None
    resumed = _marks([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]) | {"loop_started": 500.0}  # before run_training
    assert startup_phases(resumed) is None


def test_a_mark_keeps_its_first_time():
    marks: dict[str, float] = {}
    mark(marks, "first_step_started")
    first = marks["first_step_started"]
    mark(marks, "first_step_started")
    assert marks["first_step_started"] == first
