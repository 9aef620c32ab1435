"""The shipped example data stays consistent: the demo's EM can only rise if every answer is in its gold passage.

Standard library only (no torch), so this runs in about a second.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
MIN_WORDS, MAX_WORDS = 25, 70
MIN_PASSAGES, MAX_PASSAGES = 300, 360
MIN_EVAL, MAX_EVAL = 60, 100
MAX_ANSWER_WORDS = 3


def read_jsonl(name: str) -> list[dict]:
    with (DATA / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_lines(name: str) -> list[str]:
    return (DATA / name).read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def passages() -> list[dict]:
    return read_jsonl("knowledge_base.jsonl")


@pytest.fixture(scope="module")
def by_id(passages: list[dict]) -> dict[str, dict]:
    return {p["id"]: p for p in passages}


@pytest.fixture(scope="module")
def train() -> list[dict]:
    return read_jsonl("qa_train.jsonl")


@pytest.fixture(scope="module")
def evals() -> list[dict]:
    return read_jsonl("qa_eval.jsonl")


def test_passages_have_exactly_the_documented_fields(passages: list[dict]) -> None:
    bad = [
        p
        for p in passages
        if set(p) != {"id", "title", "text"} or not all(isinstance(v, str) for v in p.values())
    ]
    assert not bad, f"passages must be {{id, title, text}} strings: {bad[:3]}"


def test_passage_ids_are_unique_and_numbered(passages: list[dict]) -> None:
    ids = [p["id"] for p in passages]
    assert len(ids) == len(set(ids)), "duplicate passage ids"
    assert all(re.fullmatch(r"p\d{4}", i) for i in ids), [i for i in ids if not re.fullmatch(r"p\d{4}", i)]


def test_passage_titles_are_unique(passages: list[dict]) -> None:
    titles = [p["title"] for p in passages]
    dupes = sorted({t for t in titles if titles.count(t) > 1})
    assert not dupes, f"duplicate titles: {dupes}"


def test_passage_count_and_word_counts_are_in_range(passages: list[dict]) -> None:
    assert MIN_PASSAGES <= len(passages) <= MAX_PASSAGES
    out_of_range = {p["id"]: len(p["text"].split()) for p in passages}
    out_of_range = {k: n for k, n in out_of_range.items() if not MIN_WORDS <= n <= MAX_WORDS}
    assert not out_of_range, f"passages outside {MIN_WORDS}-{MAX_WORDS} words: {out_of_range}"


@pytest.mark.parametrize("split", ["train", "evals"])
def test_every_gold_id_names_an_existing_passage(
    split: str, by_id: dict, request: pytest.FixtureRequest
) -> None:
    rows = request.getfixturevalue(split)
    missing = [(r["question"], g) for r in rows for g in r["gold_ids"] if g not in by_id]
    assert all(r["gold_ids"] for r in rows), "every question needs at least one gold id"
    assert not missing, f"gold ids not in knowledge_base.jsonl: {missing[:5]}"


@pytest.mark.parametrize("split", ["train", "evals"])
def test_every_answer_occurs_in_each_gold_passage(
    split: str, by_id: dict, request: pytest.FixtureRequest
) -> None:
    rows = request.getfixturevalue(split)
    absent = [
        (r["question"], a, g)
        for r in rows
        for a in r["answers"]
        for g in r["gold_ids"]
        if g in by_id and a.lower() not in by_id[g]["text"].lower()
    ]
    assert not absent, f"answers missing from their gold passage text: {absent[:5]}"


@pytest.mark.parametrize("split", ["train", "evals"])
def test_answers_are_one_to_three_words_and_questions_are_one_line(
    split: str, request: pytest.FixtureRequest
) -> None:
    rows = request.getfixturevalue(split)
    long_answers = [a for r in rows for a in r["answers"] if not 1 <= len(a.split()) <= MAX_ANSWER_WORDS]
    bad_questions = [r["question"] for r in rows if "\n" in r["question"] or not r["question"].endswith("?")]
    assert all(r["answers"] for r in rows), "every question needs at least one answer"
    assert not long_answers, f"answers must be 1-{MAX_ANSWER_WORDS} words: {long_answers[:5]}"
    assert not bad_questions, bad_questions[:5]


def test_training_set_asks_one_question_per_passage(passages: list[dict], train: list[dict]) -> None:
    gold = [g for r in train for g in r["gold_ids"]]
    assert sorted(gold) == sorted(p["id"] for p in passages)
    assert len({r["question"] for r in train}) == len(train), "duplicate training questions"


def test_eval_questions_are_new_wordings_about_known_passages(train: list[dict], evals: list[dict]) -> None:
    assert MIN_EVAL <= len(evals) <= MAX_EVAL
    train_questions = {r["question"].lower() for r in train}
    reused = [r["question"] for r in evals if r["question"].lower() in train_questions]
    assert not reused, f"eval questions copied from training: {reused}"
    assert len({r["question"] for r in evals}) == len(evals), "duplicate eval questions"


@pytest.mark.parametrize(("jsonl", "stem"), [("qa_train.jsonl", "train"), ("qa_eval.jsonl", "val")])
def test_line_files_match_the_jsonl_in_order(jsonl: str, stem: str) -> None:
    rows = read_jsonl(jsonl)
    assert read_lines(f"{stem}.source") == [r["question"] for r in rows]
    assert read_lines(f"{stem}.target") == [r["answers"][0] for r in rows]


def test_csv_holds_the_first_twenty_passages(passages: list[dict]) -> None:
    with (DATA / "knowledge_base.csv").open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["title", "text"]
        rows = list(reader)
    assert rows == [{"title": p["title"], "text": p["text"]} for p in passages[:20]]


def test_generator_reproduces_the_committed_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards against hand edits to the outputs that the generator would silently undo."""
    spec = importlib.util.spec_from_file_location("generate_kb", DATA / "generate_kb.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look the module up there
    spec.loader.exec_module(module)
    files = module.write(tmp_path)
    stale = [name for name in files if (tmp_path / name).read_bytes() != (DATA / name).read_bytes()]
    assert not stale, f"regenerate with: .venv/bin/python examples/data/generate_kb.py  (stale: {stale})"
