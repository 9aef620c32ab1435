"""`retrieval.end_to_end`: refused where it cannot work, each error naming the field and the fix."""

from __future__ import annotations

import json
import os

import pytest

from rag_job.config import ConfigError, JobConfig


def _config(tmp_path, kb: str, **e2e_and_retrieval) -> dict:
    retrieval = {"knowledge_base": kb, "end_to_end": {"refresh_every_steps": 5}}
    for key, value in e2e_and_retrieval.items():
        if key in ("mode", "cluster", "passages_path", "index_path"):
            retrieval[key] = value
        else:
            retrieval["end_to_end"][key] = value
    return {
        "model": {"path": str(tmp_path / "rag")},
        "retrieval": retrieval,
        "data": {"train_path": str(tmp_path / "train.jsonl")},
    }


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"mode": "torch"},
            "needs retrieval.mode 'ray' (the retrieval actors swap to each new index) or 'local'",
        ),
        ({"mode": "torch"}, "set mode: ray or local, or remove end_to_end"),
        ({"cluster": "shared"}, "its index must not change under them"),
        ({"ctx_encoder": "s3://bucket/ctx"}, "must be a directory every node sees"),
        ({"passages_path": "/data/passages"}, "remove retrieval.passages_path"),
        ({"refresh_every_steps": 0}, "retrieval.end_to_end.refresh_every_steps"),
        ({"encode_actors": 0}, "retrieval.end_to_end.encode_actors"),
        ({"rerank_every": 3}, "retrieval.end_to_end.rerank_every: Extra inputs are not permitted"),
        ({"rerank_candidates": 5}, "rerank_candidates (5) must exceed retrieval.n_docs (5)"),
        ({"refresh_every_steps": None}, "set exactly one of refresh_every_steps"),
        ({"refresh_at_steps": [10, 20]}, "(a list of steps, e.g. [25, 50, 100, 200]); got both"),
        ({"refresh_every_steps": None, "refresh_at_steps": [10, 10]}, "sort it and drop repeats"),
        (
            {"refresh_every_steps": None, "refresh_at_steps": [0, 5]},
            "retrieval.end_to_end.refresh_at_steps.0",
        ),
        ({"refresh_every_steps": None, "refresh_at_steps": []}, "retrieval.end_to_end.refresh_at_steps"),
    ],
)
def test_end_to_end_is_refused_where_it_cannot_work(tmp_path, overrides, expected):
    with pytest.raises(ConfigError) as err:
        JobConfig.from_dict(_config(tmp_path, "/data/kb", **overrides))
    assert expected in str(err.value)
    assert "retrieval" in str(err.value)


def test_an_object_store_knowledge_base_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ConfigError) as err:
        JobConfig.from_dict(_config(tmp_path, "s3://bucket/kb"))
    message = str(err.value)
    assert (
        "filesystem path every node sees" in message
        and "copy the knowledge base to a shared volume" in message
    )


def test_a_sound_end_to_end_config_round_trips(tmp_path):
    config = JobConfig.from_dict(_config(tmp_path, "/data/kb", encode_actors=3))
    again = JobConfig.from_json_text(config.to_json())
    assert again.retrieval.end_to_end == config.retrieval.end_to_end
    assert again.retrieval.end_to_end.encode_actors == 3
    assert (
        JobConfig.from_dict(
            {**_config(tmp_path, "/data/kb"), "retrieval": {"knowledge_base": "/kb"}}
        ).retrieval.end_to_end
        is None
    )


def test_context_encoder_path_problems_name_the_field_and_the_fix(tiny_assets, tmp_path, monkeypatch):
    """Missing or relative paths, a non-DPR model, and a kb.json that records no encoder."""
    from rag_job.train.ctx_encoder import resolve_ctx_encoder
    from tests.job.kb_files import copy_kb

    kb = copy_kb(tiny_assets.kb_flat_2shards, tmp_path / "kb")

    def problem(**e2e) -> str:
        with pytest.raises(ConfigError) as err:
            resolve_ctx_encoder(JobConfig.from_dict(_config(tmp_path, str(kb), **e2e)))
        return str(err.value)

    assert "kb.json's ctx_encoder is empty" in problem()  # the test KBs record none
    monkeypatch.chdir(tmp_path)
    message = problem(ctx_encoder="models/ctx")
    assert message.startswith("retrieval.end_to_end.ctx_encoder:")
    assert f"taken relative to {tmp_path}" in message and "save_pretrained of a DPRContextEncoder" in message
    assert "holds a rag model, not DPR" in problem(ctx_encoder=str(tiny_assets.rag))

    # Recorded by kb.json, relative to the current directory: resolved to an absolute path.
    meta = json.loads((kb / "kb.json").read_text())
    meta["ctx_encoder"] = os.path.relpath(tiny_assets.ctx_encoder, tmp_path)
    (kb / "kb.json").write_text(json.dumps(meta))
    resolved = resolve_ctx_encoder(JobConfig.from_dict(_config(tmp_path, str(kb))))
    assert resolved == str(tiny_assets.ctx_encoder.resolve())


def test_pre_flight_names_a_missing_context_encoder_before_any_cluster_work(tiny_assets, tmp_path):
    from rag_job.train.preflight import check_before_cluster_work
    from tests.job.kb_files import copy_kb

    data = _config(tmp_path, str(copy_kb(tiny_assets.kb_flat_2shards, tmp_path / "kb")))
    data["model"]["path"] = str(tiny_assets.rag)
    data["data"]["train_path"] = str(tiny_assets.qa_train)
    data["checkpoint"] = {"storage_path": str(tmp_path / "ckpt")}
    data["output_dir"] = str(tmp_path / "out")
    with pytest.raises(ConfigError) as err:
        check_before_cluster_work(JobConfig.from_dict(data))
    assert "retrieval.end_to_end.ctx_encoder: the knowledge base" in str(err.value)
    data["retrieval"]["end_to_end"]["ctx_encoder"] = str(tiny_assets.ctx_encoder)
    check_before_cluster_work(JobConfig.from_dict(data))  # passes


def test_a_refresh_schedule_refreshes_at_its_steps_only(tmp_path):
    every = JobConfig.from_dict(_config(tmp_path, "/data/kb")).retrieval.end_to_end
    assert [step for step in range(1, 21) if every.refresh_due(step)] == [5, 10, 15, 20]
    schedule = JobConfig.from_dict(
        _config(tmp_path, "/data/kb", refresh_every_steps=None, refresh_at_steps=[2, 4, 8, 16])
    ).retrieval.end_to_end
    assert [step for step in range(1, 21) if schedule.refresh_due(step)] == [2, 4, 8, 16]
