"""Answer and retrieval metrics: SQuAD-style exact match and F1, retrieval precision@k."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and articles, collapse whitespace (the SQuAD evaluation script's rules)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, answers: Iterable[str]) -> float:
    normalized = normalize_answer(prediction)
    return float(any(normalized == normalize_answer(answer) for answer in answers))


def _f1(prediction: str, answer: str) -> float:
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(answer).split()
    common = Counter(predicted) & Counter(gold)
    overlap = sum(common.values())
    if not predicted or not gold:
        return float(predicted == gold)
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, answers: Iterable[str]) -> float:
    return max((_f1(prediction, answer) for answer in answers), default=0.0)


def precision_at_k(retrieved_ids: Sequence[str], gold_ids: Iterable[str], k: int) -> float:
    """Share of the top-k retrieved passages that are gold passages."""
    gold = set(gold_ids)
    top = list(retrieved_ids)[:k]
    return sum(1 for doc in top if doc in gold) / k if k else 0.0


def recall_at_k(retrieved_ids: Sequence[str], gold_ids: Iterable[str], k: int) -> float:
    """1.0 when any gold passage is in the top k. With one gold passage per question this is
    the figure to read: precision@k is then at most 1/k even for perfect retrieval."""
    gold = set(gold_ids)
    return float(any(doc in gold for doc in list(retrieved_ids)[:k]))
