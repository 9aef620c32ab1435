"""`training.retriever_learning_rate`: the DPR encoders get their own AdamW rate, the generator keeps its own."""

from __future__ import annotations

import pytest

from rag_job.config import JobConfig
from rag_job.train.loop import optimizer_param_groups


def _job(tmp_path, **training) -> JobConfig:
    return JobConfig.from_dict(
        {
            "model": {"path": str(tmp_path / "rag")},
            "retrieval": {"knowledge_base": str(tmp_path / "kb")},
            "data": {"train_path": str(tmp_path / "train.jsonl")},
            "training": {"learning_rate": 2e-3, **training},
        },
        source="test",
    )


def _rag_like(question_encoder_trained: bool = True):
    """A module shaped like RagTokenForGeneration after `set_context_encoder_for_training`."""
    import torch

    model = torch.nn.Module()
    model.rag = torch.nn.Module()
    model.rag.question_encoder = torch.nn.Linear(2, 2)
    model.rag.ctx_encoder = torch.nn.Linear(2, 2)
    model.rag.generator = torch.nn.Linear(2, 3)
    model.rag.question_encoder.requires_grad_(question_encoder_trained)
    return model


def _ids(params) -> set[int]:
    return {id(p) for p in params}


def test_retriever_learning_rate_applies_to_both_dpr_encoders_only(tmp_path):
    model = _rag_like()
    groups = optimizer_param_groups(model, _job(tmp_path, retriever_learning_rate=1e-4))
    assert [group["lr"] for group in groups] == [2e-3, 1e-4]
    assert _ids(groups[0]["params"]) == _ids(model.rag.generator.parameters())
    towers = [*model.rag.question_encoder.parameters(), *model.rag.ctx_encoder.parameters()]
    assert _ids(groups[1]["params"]) == _ids(towers)


def test_without_retriever_learning_rate_every_trainable_parameter_shares_one_rate(tmp_path):
    model = _rag_like()
    groups = optimizer_param_groups(model, _job(tmp_path))
    assert len(groups) == 1 and groups[0]["lr"] == 2e-3
    assert _ids(groups[0]["params"]) == _ids(model.parameters())


def test_frozen_question_encoder_stays_out_of_the_optimizer(tmp_path):
    model = _rag_like(question_encoder_trained=False)
    groups = optimizer_param_groups(model, _job(tmp_path, retriever_learning_rate=1e-4))
    assert _ids(groups[1]["params"]) == _ids(model.rag.ctx_encoder.parameters())
    assert not _ids(model.rag.question_encoder.parameters()) & _ids(p for g in groups for p in g["params"])


def test_retriever_learning_rate_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="retriever_learning_rate"):
        _job(tmp_path, retriever_learning_rate=0)
