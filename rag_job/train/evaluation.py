"""Evaluation: generate answers, score EM / F1, and retrieval precision@k against gold passages.

Works on one process or sharded over data-parallel ranks: every rank runs the same
number of batches (torch.distributed retrieval needs every rank in each call), and
the sums are all-reduced.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rag_job.train.data import QAExample
from rag_job.train.metrics import exact_match, f1_score, precision_at_k, recall_at_k


@dataclass
class EvalSums:
    """Additive so ranks can sum them; `as_metrics` turns them into averages."""

    exact_match: float = 0.0
    f1: float = 0.0
    examples: int = 0
    precision_at_k: float = 0.0
    recall_at_k: float = 0.0
    examples_with_gold: int = 0

    def as_metrics(self, prefix: str = "eval") -> dict[str, float]:
        metrics = {
            f"{prefix}_exact_match": self.exact_match / max(self.examples, 1),
            f"{prefix}_f1": self.f1 / max(self.examples, 1),
            f"{prefix}_examples": float(self.examples),
        }
        if self.examples_with_gold:
            metrics[f"{prefix}_retrieval_precision_at_k"] = self.precision_at_k / self.examples_with_gold
            metrics[f"{prefix}_retrieval_recall_at_k"] = self.recall_at_k / self.examples_with_gold
        return metrics

    def to_list(self) -> list[float]:
        return [
            self.exact_match,
            self.f1,
            float(self.examples),
            self.precision_at_k,
            self.recall_at_k,
            float(self.examples_with_gold),
        ]

    @classmethod
    def from_list(cls, values: Sequence[float]) -> EvalSums:
        em, f1, n, precision, recall, n_gold = values
        return cls(em, f1, int(n), precision, recall, int(n_gold))


def generate_answers(
    model, tokenizer, questions: list[str], num_beams: int, max_new_tokens: int, device
) -> list[str]:
    import torch

    inputs = tokenizer.question_encoder(questions, padding=True, truncation=True, return_tensors="pt").to(
        device
    )
    with torch.inference_mode():
        generated = model.generate(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            num_beams=num_beams,
            max_new_tokens=max_new_tokens,
        )
    return tokenizer.generator.batch_decode(generated, skip_special_tokens=True)


def retrieved_passage_ids(
    model, tokenizer, retriever, passage_ids, questions: list[str], device
) -> list[list[str]]:
    """Source ids of the top n_docs passages for each question, as the model retrieves them."""
    import torch

    inputs = tokenizer.question_encoder(questions, padding=True, truncation=True, return_tensors="pt").to(
        device
    )
    with torch.inference_mode():
        question_vectors = model.rag.question_encoder(
            inputs["input_ids"], attention_mask=inputs["attention_mask"]
        )[0]
    _, doc_ids, _ = retriever.retrieve(question_vectors.float().cpu().numpy(), retriever.config.n_docs)
    return [passage_ids[np.asarray(row).tolist()]["id"] for row in doc_ids]


def evaluate(
    model,
    tokenizer,
    retriever,
    passage_ids,
    examples: list[QAExample],
    batch_size: int,
    num_beams: int = 1,
    max_new_tokens: int = 20,
    rank: int = 0,
    world_size: int = 1,
    device="cpu",
    predictions_out: list | None = None,
) -> EvalSums:
    """Score this rank's share of `examples` (rank::world_size); padding batches keep ranks in step."""
    mine = examples[rank::world_size]
    batches = math.ceil(math.ceil(len(examples) / world_size) / batch_size)
    sums = EvalSums()
    k = retriever.config.n_docs
    was_training = model.training
    model.eval()
    for number in range(batches):
        batch = mine[number * batch_size : (number + 1) * batch_size]
        questions = [ex.question for ex in batch] or [examples[0].question]  # a padding call, discarded
        answers = generate_answers(model, tokenizer, questions, num_beams, max_new_tokens, device)
        retrieved = retrieved_passage_ids(model, tokenizer, retriever, passage_ids, questions, device)
        for example, answer, doc_ids in zip(batch, answers, retrieved, strict=False):
            sums.exact_match += exact_match(answer, example.answers)
            sums.f1 += f1_score(answer, example.answers)
            sums.examples += 1
            if example.gold_ids:
                sums.precision_at_k += precision_at_k(doc_ids, example.gold_ids, k)
                sums.recall_at_k += recall_at_k(doc_ids, example.gold_ids, k)
                sums.examples_with_gold += 1
            if predictions_out is not None:
                predictions_out.append(
                    {"question": example.question, "prediction": answer, "answers": list(example.answers)}
                )
    if was_training:
        model.train()
    return sums
