"""End-to-end retriever training on the multi-node Ray cluster: the context encoder learns, the
index is re-encoded and hot-swapped while training runs, and a resumed job keeps both."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.job.test_training import make_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def e2e_config(
    tiny_assets,
    tmp_path,
    kb_dir,
    name: str,
    refresh_every_steps: int = 2,
    rerank_candidates=None,
    **overrides,
):
    return make_config(
        tiny_assets,
        tmp_path,
        name,
        retrieval__knowledge_base=str(kb_dir),
        retrieval__end_to_end={
            "refresh_every_steps": refresh_every_steps,
            "ctx_encoder": str(tiny_assets.ctx_encoder),
            "encode_actors": 2,
            "encode_batch_size": 16,
            "rerank_candidates": rerank_candidates,
        },
        export_knowledge_base="never",
        **overrides,
    )


def _weights(directory) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(directory / "model.safetensors"))


def test_context_encoder_learns_and_the_index_is_swapped_while_training_runs(
    ray_cluster, tiny_assets, kb_copy, tmp_path
):
    from rag_job.knowledge.versions import current_version, list_versions, version_numbers_on_disk
    from rag_job.train.driver import run_training
    from rag_job.train.refresh import ENCODERS_DIR

    # A refresh takes a few seconds here, 15-30 tiny steps: several steps run over the old index.
    steps = 40
    config = e2e_config(
        tiny_assets, tmp_path, kb_copy, "e2e", 8, training__max_steps=steps, checkpoint__every_steps=20
    )
    summary = run_training(config)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    e2e = metrics["end_to_end"]

    # (a) at least one refresh wrote a version and the pool swapped to it; none failed.
    assert e2e["refresh_count"] >= 1, e2e
    assert e2e["failures"] == []
    served = current_version(kb_copy)
    assert served >= 1 and e2e["index_version"] == served
    assert all(r["encode_seconds"] > 0 and r["swap_seconds"] > 0 for r in e2e["refreshes"])
    assert e2e["step_time_s_otherwise"] is not None

    # (b) the context encoder's weights changed, and it is saved beside the model, not inside it.
    start, trained = _weights(tiny_assets.ctx_encoder), _weights(tmp_path / "out" / "ctx_encoder")
    assert start.keys() == trained.keys()
    assert any(not np.array_equal(start[k], trained[k]) for k in start)
    assert not [k for k in _weights(tmp_path / "out" / "model") if "ctx_encoder" in k]

    # (c) retrieval answered every step of both ranks; no restart.
    assert [h["step"] for h in summary.history] == list(range(1, steps + 1))
    assert all(h["retrieval_calls"] >= 1 for h in summary.history)
    assert metrics["restarts"] == 0
    # Steps ran while a refresh did, and the other rank's pool followed each swap within two steps.
    assert any(h["refresh_overlapped"] for h in summary.history)
    by_step = {h["step"]: h["index_version_by_rank"] for h in summary.history}
    followed = [r for r in e2e["refreshes"] if r["finished_at_step"] + 2 <= steps]
    assert followed, e2e["refreshes"]
    for refresh in followed:
        assert min(by_step[refresh["finished_at_step"] + 2]) >= refresh["version"], by_step

    # (d) only version 0 (kb.json's, never deleted) and the served one are left on disk.
    assert list_versions(kb_copy) == [0, served]
    assert version_numbers_on_disk(kb_copy) == [served]
    assert (kb_copy / "kb.json").is_file()
    encoders = sorted(p.name for p in (kb_copy / "index" / ENCODERS_DIR).iterdir())
    assert encoders == [f"v{served}"]


def test_resumed_job_loads_the_context_encoder_and_index_version_from_its_checkpoint(
    ray_cluster, tiny_assets, kb_copy, tmp_path
):
    from rag_job.train.driver import run_training

    config = e2e_config(
        tiny_assets, tmp_path, kb_copy, "e2e-resume", training__max_steps=6, checkpoint__every_steps=3,
        rerank_candidates=6,
    )  # fmt: skip
    run_training(config, fail_at_step=4)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == 3 and metrics["restarts"] == 1
    first, resumed = metrics["end_to_end"]["starts"]
    assert first["step"] == 0 and first["ctx_encoder"] == str(tiny_assets.ctx_encoder.resolve())
    # The resumed rank 0 took the context encoder from the checkpoint, and the served index was
    # not older than the checkpoint's, so nothing was re-encoded at the restart.
    assert resumed["step"] == 3 and resumed["ctx_encoder"].endswith("/ctx_encoder")
    assert resumed["ctx_encoder"] != first["ctx_encoder"]
    assert resumed["refreshed"] is False
    assert metrics["end_to_end"]["index_version"] >= resumed["served_version"]
