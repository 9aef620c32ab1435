"""SQuAD-style answer scoring and retrieval metrics."""

from __future__ import annotations

import pytest

from rag_job.train.evaluation import EvalSums
from rag_job.train.metrics import exact_match, f1_score, normalize_answer, precision_at_k, recall_at_k


def test_normalisation_drops_case_punctuation_and_articles():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"


def test_exact_match_and_f1_take_the_best_answer():
    assert exact_match("the Nile", ["Amazon", "Nile"]) == 1.0
    assert exact_match("Nile river", ["Nile"]) == 0.0
    assert f1_score("Nile river", ["Nile"]) == pytest.approx(2 / 3)
    assert f1_score("", ["Nile"]) == 0.0


def test_recall_at_k_is_what_single_gold_questions_need():
    retrieved = ["p2", "p1", "p9"]
    assert precision_at_k(retrieved, ["p1"], 3) == pytest.approx(1 / 3)
    assert recall_at_k(retrieved, ["p1"], 3) == 1.0
    assert recall_at_k(retrieved, ["p1"], 1) == 0.0
    assert recall_at_k(retrieved, ["p7"], 3) == 0.0


def test_eval_sums_round_trip_through_the_all_reduce_list():
    sums = EvalSums(
        exact_match=3, f1=3.5, examples=4, precision_at_k=1.0, recall_at_k=3, examples_with_gold=4
    )
    again = EvalSums.from_list(sums.to_list())
    assert again == sums
    metrics = again.as_metrics("eval")
    assert metrics["eval_retrieval_recall_at_k"] == 0.75
    assert metrics["eval_exact_match"] == 0.75
