"""Fine-tuning on the multi-node Ray cluster: every retrieval mode trains, failures resume, bad configs fail fast."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rag_job.config import JobConfig

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def small_training_set(tiny_assets, tmp_path, size: int = 8):
    """The first `size` training questions: every step then sees the same questions, so the loss must fall."""
    target = tmp_path / "train-small.jsonl"
    lines = tiny_assets.qa_train.read_text().splitlines()[:size]
    target.write_text("\n".join(lines) + "\n")
    return target


def make_config(tiny_assets, tmp_path, name: str, **overrides) -> JobConfig:
    raw = {
        "name": name,
        "model": {"path": str(tiny_assets.rag), "type": "rag_token"},
        "retrieval": {
            "knowledge_base": str(tiny_assets.kb_flat_2shards),
            "mode": "ray",
            "n_docs": 3,
            "actor_cpus": 0.5,
        },
        "data": {"train_path": str(small_training_set(tiny_assets, tmp_path))},
        "training": {"max_steps": 8, "batch_size": 4, "learning_rate": 2e-3, "seed": 0},
        "scaling": {"num_workers": 2, "cpus_per_worker": 1},
        "checkpoint": {"storage_path": str(tmp_path / "checkpoints"), "every_steps": 4},
        "evaluation": {"at_end": False},
        "output_dir": str(tmp_path / "out"),
    }
    for dotted, value in overrides.items():
        section, _, key = dotted.partition("__")
        if key:
            raw[section][key] = value
        else:
            raw[section] = value
    return JobConfig.from_dict(raw)


def _losses(summary) -> list[float]:
    return [h["loss"] for h in summary.history]


@pytest.mark.parametrize("mode", ["ray", "torch"])
def test_two_workers_train_and_the_loss_falls(ray_cluster, tiny_assets, tmp_path, mode):
    from rag_job.train.driver import run_training

    summary = run_training(make_config(tiny_assets, tmp_path, f"falls-{mode}", retrieval__mode=mode))
    losses = _losses(summary)
    assert len(losses) == 8
    assert losses[-1] < 0.92 * losses[0], losses
    assert set(summary.trainer_nodes) <= ray_cluster.trainer_node_ids
    assert all(h["retrieval_calls"] >= 1 for h in summary.history)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["steps"] == 8
    assert (tmp_path / "out" / "loss.png").stat().st_size > 1000
    if mode == "ray":
        assert {a["node_id"] for a in summary.actors} <= ray_cluster.retrieval_node_ids
        assert sum(a["calls"] for a in summary.actors) >= 8 * 2


def test_rag_sequence_trains_and_the_loss_falls(ray_cluster, tiny_assets, tmp_path):
    from rag_job.train.driver import run_training

    config = make_config(
        tiny_assets, tmp_path, "sequence", model__type="rag_sequence", export_knowledge_base="never"
    )
    losses = _losses(run_training(config))
    assert losses[-1] < 0.92 * losses[0], losses
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["export"] == {"written": False, "reason": "export_knowledge_base is never"}
    assert not (tmp_path / "out" / "export").exists()


def test_final_model_loads_in_plain_transformers_and_generates(ray_cluster, tiny_assets, tmp_path):
    from transformers import RagRetriever, RagTokenForGeneration, RagTokenizer

    from rag_job.train.driver import run_training

    config = make_config(
        tiny_assets,
        tmp_path,
        "plain",
        training__max_steps=2,
        retrieval__knowledge_base=str(tiny_assets.kb_flat),
    )
    run_training(config)
    model_dir = tmp_path / "out" / "model"
    retriever = RagRetriever.from_pretrained(str(model_dir))  # passages_path / index_path saved in its config
    model = RagTokenForGeneration.from_pretrained(str(model_dir), retriever=retriever)
    tokenizer = RagTokenizer.from_pretrained(str(model_dir))
    inputs = tokenizer.question_encoder(["What is the capital of France?"], return_tensors="pt")
    generated = model.generate(input_ids=inputs["input_ids"], max_new_tokens=5)
    assert generated.shape[0] == 1

    # The self-contained export beside it (a small knowledge base: written by default) loads
    # after a move, from the files inside it alone.
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["export"]["written"] is True
    moved = tmp_path / "moved-export"
    (tmp_path / "out" / "export").rename(moved)
    retriever = RagRetriever.from_pretrained(
        str(moved), index_name="custom", passages_path=f"{moved}/passages", index_path=f"{moved}/index.faiss"
    )
    model = RagTokenForGeneration.from_pretrained(str(moved), retriever=retriever)
    assert model.generate(input_ids=inputs["input_ids"], max_new_tokens=5).shape[0] == 1


def test_run_killed_after_a_checkpoint_resumes_at_the_saved_step_and_completes(
    ray_cluster, tiny_assets, tmp_path
):
    from rag_job.train.driver import run_training

    config = make_config(
        tiny_assets,
        tmp_path,
        "killed",
        training__max_steps=5,
        checkpoint__every_steps=2,
        retrieval__mode="local",
    )
    summary = run_training(config, fail_at_step=3)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == 2
    assert [h["step"] for h in summary.history] == [1, 2, 3, 4, 5]


def test_a_new_run_with_the_same_storage_path_resumes(ray_cluster, tiny_assets, tmp_path):
    from rag_job.train.driver import run_training

    first = make_config(tiny_assets, tmp_path, "twice", training__max_steps=2, retrieval__mode="local")
    run_training(first)
    second = make_config(tiny_assets, tmp_path, "twice", training__max_steps=4, retrieval__mode="local")
    summary = run_training(second)
    assert summary.metrics["resumed_from_step"] == 2
    assert [h["step"] for h in summary.history] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"training": {"learning_rate": -1}}, "training.learning_rate: Input should be greater than 0"),
        ({"retrieval": {"mode": "grpc"}}, "retrieval.mode: Input should be 'ray', 'torch' or 'local'"),
        ({"scaling": {"num_workers": "two"}}, "scaling.num_workers: Input should be a valid integer"),
        ({"trainig": {}}, "trainig: Extra inputs are not permitted"),
        ({"retrieval": {"shards": 3}}, "retrieval.shards: 3 but"),
    ],
)
def test_an_invalid_config_fails_before_any_cluster_work_naming_the_field(
    tiny_assets, tmp_path, patch, expected
):
    import yaml

    raw = make_config(tiny_assets, tmp_path, "invalid").model_dump(exclude_none=True)
    for section, values in patch.items():
        raw.setdefault(section, {}).update(values)
    config_file = tmp_path / "job.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    # No --local and no cluster to join: reaching cluster work would fail differently.
    result = subprocess.run(
        [sys.executable, "-m", "rag_job", "train", "--config", str(config_file)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]  # an invalid input (2 is for usage errors)
    assert expected in result.stderr
    assert "Connecting to existing Ray cluster" not in result.stderr
