"""The tiny RAG checkpoint can learn: the property `make demo` rests on.

In-process with local retrieval (no Ray): this is about the model, not the cluster.
"""

from __future__ import annotations

import numpy as np
import pytest

from rag_job.config import JobConfig
from rag_job.train.data import read_examples

QUESTIONS = 32
STEPS = 150


def _job(tiny_assets, tmp_path) -> JobConfig:
    return JobConfig.from_dict(
        {
            "name": "learn",
            "model": {"path": str(tiny_assets.rag), "type": "rag_token"},
            "retrieval": {"knowledge_base": str(tiny_assets.kb_flat), "mode": "local", "n_docs": 3},
            "data": {"train_path": str(tiny_assets.qa_train)},
            "checkpoint": {"storage_path": str(tmp_path / "checkpoints")},
            "output_dir": str(tmp_path / "out"),
        },
        source="test",
    )


@pytest.mark.slow
def test_tiny_generator_memorises_training_answers(tiny_assets, tmp_path):
    """EM on 32 training questions goes from 0 to most of them in 150 steps.

    Guards the tiny models' init scale and dropout: with BART's default init (0.02) at width 64
    the generator ignored its input and answered every question alike after 600 steps.
    """
    import torch
    from transformers import RagTokenizer, get_linear_schedule_with_warmup

    from rag_job.retrieval.searcher import load_passages
    from rag_job.train.evaluation import evaluate
    from rag_job.train.model_io import build_retriever, load_model, rag_config_for

    torch.manual_seed(0)
    job = _job(tiny_assets, tmp_path)
    tokenizer = RagTokenizer.from_pretrained(str(tiny_assets.rag))
    retriever = build_retriever(job, rag_config_for(job), tokenizer)
    model = load_model(job, retriever)
    for parameter in model.rag.question_encoder.parameters():
        parameter.requires_grad_(False)
    examples = read_examples(tiny_assets.qa_train)[:QUESTIONS]
    passage_ids = load_passages(str(tiny_assets.kb_flat)).select_columns(["id"])

    def exact_match() -> float:
        sums = evaluate(model, tokenizer, retriever, passage_ids, examples, 32, 1, 8)
        return sums.as_metrics("eval")["eval_exact_match"]

    before = exact_match()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=3e-3)
    scheduler = get_linear_schedule_with_warmup(optimizer, 20, STEPS)
    rng = np.random.default_rng(0)
    model.train()
    for _ in range(STEPS):
        batch = [examples[i] for i in rng.choice(len(examples), 16, replace=False)]
        inputs = tokenizer.question_encoder([ex.question for ex in batch], padding=True, return_tensors="pt")
        labels = tokenizer.generator([ex.answers[0] for ex in batch], padding=True, return_tensors="pt")
        loss = model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            labels=labels["input_ids"],
            reduce_loss=True,
        ).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    after = exact_match()
    print(f"EM on {QUESTIONS} training questions: {before:.3f} -> {after:.3f} after {STEPS} steps")
    assert before < 0.1
    assert after > 0.6, f"the tiny generator did not learn its training answers (EM {after:.3f})"
