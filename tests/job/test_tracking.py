"""`training.report_to`: runs written by rag_job.train.tracking, read back with each tool's own reader.

TensorBoard through its EventAccumulator, MLflow through MlflowClient, W&B (offline, no network)
through its own protobuf records. The last test trains for real on the session Ray cluster, with a
worker killed mid-run, and checks that every step reaches the trackers exactly once.
"""

from __future__ import annotations

import json
import struct
import sys
import typing
from pathlib import Path

import pytest

from rag_job.config import ConfigError, JobConfig, TrainingConfig
from rag_job.train import tracking

STEPS = 6
T0 = 1_700_000_000.0
EVALS = {
    "before": {"eval_exact_match": 0.125, "eval_f1": 0.25, "eval_examples": 8.0},
    "after": {"eval_exact_match": 0.75, "eval_f1": 0.875, "eval_examples": 8.0},
}


@pytest.fixture(autouse=True)
def _no_tracker_environment(monkeypatch):
    """Each test sees the defaults (files under output_dir) and no tracker phones home."""
    for name in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_EXPERIMENT_NAME",
        "WANDB_MODE",
        "WANDB_DIR",
        "WANDB_PROJECT",
        "WANDB_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("WANDB_DISABLE_CODE", "true")


def history(steps: int = STEPS) -> list[dict]:
    """What the loop records per optimizer step (rag_job.train.loop), with distinct values per step."""
    return [
        {
            "step": step,
            "epoch": (step - 1) // 4,
            "loss": 12.0 / step,
            "learning_rate": 1e-3 * (1 - step / (steps + 1)),
            "step_time_s": 0.5 + step / 100,
            "samples_per_s": 16.0 + step,
            "retrieval_calls": 2 + step % 2,
            "retrieval_latency_ms_mean": 3.0 + step,
            "retrieval_latency_ms_p50": 2.5 + step,
            "retrieval_latency_ms_p95": 9.0 + step,
            "retrieval_share_of_step": 0.01 * step,
            "retrieval_retries": int(step == 3),
            "time_unix": T0 + step,
        }
        for step in range(1, steps + 1)
    ]


def job_config(tmp_path, report_to: list[str], name: str = "tracked") -> JobConfig:
    return JobConfig.from_dict(
        {
            "name": name,
            "model": {"path": "out/tiny/rag"},
            "retrieval": {"knowledge_base": "out/kb"},
            "data": {"train_path": "qa.jsonl"},
            "training": {"max_steps": STEPS, "learning_rate": 0.002, "report_to": report_to},
            "output_dir": str(tmp_path / "out"),
        }
    )


# --- readers: each tool's own ------------------------------------------------------------


def tensorboard_run(log_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def tb_series(accumulator, tag: str) -> list[tuple[int, float]]:
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def mlflow_series(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def wandb_records(run_dir: Path) -> list:
    """The records of an offline run's .wandb file, as W&B's own protobuf messages.

    The file is W&B's transaction log: a 7-byte header (`:W&B`, magic, version), then LevelDB
    log framing (32 KiB blocks; each chunk: CRC32, length, type FULL/FIRST/MIDDLE/LAST).
    """
    from wandb.proto import wandb_internal_pb2

    block = 32 * 1024
    (path,) = run_dir.glob("*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pending, position = [], b"", 7
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:  # a block's tail too short for a chunk header is padding
            position += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if kind == 0 and length == 0:
            position += left
            continue
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def wandb_history(records) -> dict[int, dict[str, float]]:
    """step -> {key: value} of the history rows (rows logged at the same step are merged)."""
    rows: dict[int, dict[str, float]] = {}
    for record in records:
        if record.WhichOneof("record_type") == "history":
            row = {
                "/".join(item.nested_key) or item.key: json.loads(item.value_json)
                for item in record.history.item
            }
            rows.setdefault(int(row["_step"]), {}).update(row)
    return rows


# --- the config field --------------------------------------------------------------------


def test_report_to_is_empty_by_default_and_an_unknown_tracker_is_rejected_naming_the_field(tmp_path):
    assert job_config(tmp_path, []).training.report_to == []
    assert TrainingConfig().report_to == []
    with pytest.raises(ConfigError) as err:
        job_config(tmp_path, ["tensorboard", "neptune"])
    assert "training.report_to.1: Input should be 'tensorboard', 'mlflow' or 'wandb'" in str(err.value)


def test_every_tracker_the_config_accepts_can_be_logged_to():
    accepted = typing.get_args(typing.get_args(TrainingConfig.model_fields["report_to"].annotation)[0])
    assert set(accepted) == set(tracking.REQUIREMENTS) == set(tracking._LOGGERS)


# --- each tracker, fed a history ---------------------------------------------------------


def test_tensorboard_holds_every_metric_at_its_step_and_wall_time_and_both_evaluations(tmp_path):
    from tensorboard.plugins.hparams import plugin_data_pb2
    from tensorboard.util import tensor_util

    steps = history()
    config = job_config(tmp_path, ["tensorboard"])
    done = tracking.log_run(config, tmp_path / "out", steps, EVALS)
    assert done == {"tensorboard": str(tmp_path / "out" / "tensorboard")}

    run = tensorboard_run(tmp_path / "out" / "tensorboard")
    for key in (
        "loss",
        "step_time_s",
        "samples_per_s",
        "retrieval_latency_ms_p50",
        "retrieval_latency_ms_p95",
    ):
        assert tb_series(run, f"train/{key}") == [
            (h["step"], pytest.approx(h[key], rel=1e-6)) for h in steps
        ], key
    assert [e.wall_time for e in run.Scalars("train/loss")] == [h["time_unix"] for h in steps]
    assert "train/time_unix" not in run.Tags()["scalars"] and "train/step" not in run.Tags()["scalars"]
    assert tb_series(run, "eval/exact_match") == [(0, 0.125), (STEPS, 0.75)]
    assert tb_series(run, "eval/f1") == [(0, 0.25), (STEPS, 0.875)]

    hparams = plugin_data_pb2.HParamsPluginData.FromString(
        run.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    ).session_start_info.hparams
    assert hparams["training.learning_rate"].number_value == pytest.approx(0.002)
    assert hparams["name"].string_value == "tracked"
    text = tensor_util.make_ndarray(run.Tensors("config/text_summary")[0].tensor_proto).item().decode()
    assert "learning_rate: 0.002" in text and "report_to:" in text


def test_mlflow_run_in_output_dir_holds_every_step_the_evaluations_and_the_config_as_params(tmp_path):
    from mlflow.tracking import MlflowClient

    steps = history()
    config = job_config(tmp_path, ["mlflow"])
    done = tracking.log_run(config, tmp_path / "out", steps, EVALS)

    uri = f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}"
    assert done["mlflow"].startswith(uri)
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("tracked").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "tracked"
    for key in ("loss", "learning_rate", "samples_per_s", "retrieval_latency_ms_p95", "retrieval_retries"):
        assert mlflow_series(client, run.info.run_id, f"train/{key}") == [
            (h["step"], pytest.approx(h[key])) for h in steps
        ], key
    loss_history = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.timestamp for m in loss_history) == [int(h["time_unix"] * 1000) for h in steps]
    assert mlflow_series(client, run.info.run_id, "eval/exact_match") == [(0, 0.125), (STEPS, 0.75)]
    params = run.data.params
    assert params["training.learning_rate"] == "0.002"
    assert params["training.report_to"] == '["mlflow"]'
    assert params["output_dir"] == str(tmp_path / "out")
    assert params["training.epochs"] == "null"
    assert run.info.end_time == int(steps[-1]["time_unix"] * 1000)
    assert not (tmp_path / "out" / "mlartifacts").exists()


def test_wandb_offline_run_in_output_dir_holds_every_step_the_evaluations_and_the_config(tmp_path):
    steps = history()
    config = job_config(tmp_path, ["wandb"])
    done = tracking.log_run(config, tmp_path / "out", steps, EVALS)

    (run_dir,) = (tmp_path / "out" / "wandb").glob("offline-run-*")
    assert done == {"wandb": str(run_dir)}
    assert not any(p.is_symlink() for p in (tmp_path / "out" / "wandb").iterdir())
    records = wandb_records(run_dir)
    rows = wandb_history(records)
    assert sorted(rows) == [0, *range(1, STEPS + 1)]
    assert rows[0]["eval/exact_match"] == 0.125 and "train/loss" not in rows[0]
    for h in steps:
        assert rows[h["step"]]["train/loss"] == pytest.approx(h["loss"])
        assert rows[h["step"]]["train/retrieval_latency_ms_p50"] == pytest.approx(
            h["retrieval_latency_ms_p50"]
        )
    assert rows[STEPS]["eval/exact_match"] == 0.75
    (run_record,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    run_config = {item.key: json.loads(item.value_json) for item in run_record.config.update}
    assert run_config["training"]["learning_rate"] == 0.002 and run_config["name"] == "tracked"
    assert run_record.display_name == "tracked" and run_record.project == "tracked"


# --- where the logs go, and what goes wrong ----------------------------------------------


def test_a_second_run_in_the_same_output_dir_replaces_the_first_runs_logs(tmp_path):
    from mlflow.tracking import MlflowClient

    config = job_config(tmp_path, ["tensorboard", "mlflow"])
    tracking.log_run(config, tmp_path / "out", history(STEPS), EVALS)
    tracking.log_run(config, tmp_path / "out", history(3), {})

    run = tensorboard_run(tmp_path / "out" / "tensorboard")
    assert [step for step, _ in tb_series(run, "train/loss")] == [1, 2, 3]
    assert "eval/exact_match" not in run.Tags()["scalars"]
    client = MlflowClient(f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    (only,) = client.search_runs([client.get_experiment_by_name("tracked").experiment_id])
    assert [m.step for m in client.get_metric_history(only.info.run_id, "train/loss")] == [1, 2, 3]


def test_mlflow_and_wandb_honour_their_environment_variables(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    elsewhere = f"sqlite:///{tmp_path / 'team.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "rag-team")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_PROJECT", "rag-project")
    config = job_config(tmp_path, ["mlflow", "wandb"])
    tracking.log_run(config, tmp_path / "out", history(), EVALS)
    tracking.log_run(config, tmp_path / "out", history(), EVALS)  # added to, never replaced

    assert not (tmp_path / "out" / "mlflow.db").exists() and not (tmp_path / "out" / "wandb").exists()
    client = MlflowClient(elsewhere)
    assert len(client.search_runs([client.get_experiment_by_name("rag-team").experiment_id])) == 2
    run_dirs = list((tmp_path / "wandb-home" / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == 2
    (run_record,) = [r.run for r in wandb_records(run_dirs[0]) if r.WhichOneof("record_type") == "run"]
    assert run_record.project == "rag-project"


def test_a_tracker_that_fails_is_reported_and_the_others_still_log(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////dev/null/no-such-dir/x.db")
    config = job_config(tmp_path, ["mlflow", "tensorboard"])
    done = tracking.log_run(config, tmp_path / "out", history(), EVALS)
    assert done["mlflow"].startswith("failed: ")
    assert len(tb_series(tensorboard_run(tmp_path / "out" / "tensorboard"), "train/loss")) == STEPS


def test_a_missing_package_is_named_with_the_field_and_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # what find_spec and import see when it is not installed
    monkeypatch.setitem(sys.modules, "alembic", None)
    assert tracking.problems(["tensorboard"]) == []
    found = tracking.problems(["wandb", "mlflow", "wandb"])
    assert len(found) == 2
    assert found[0].startswith("wandb needs wandb where the driver runs: pip install wandb")
    assert "rag-finetune-operator[tracking]" in found[0]
    assert found[1].startswith(
        "mlflow (its default SQLite store in output_dir) needs alembic where the driver runs: pip install alembic"
    )
    # A tracking server needs no SQLite store.
    assert tracking.problems(["mlflow"], {"MLFLOW_TRACKING_URI": "http://mlflow:5000"}) == []


def test_pre_flight_names_training_report_to_when_a_tracker_cannot_be_imported(
    tiny_assets, tmp_path, monkeypatch
):
    from rag_job.train.preflight import check_before_cluster_work

    monkeypatch.setitem(sys.modules, "wandb", None)
    config = JobConfig.from_dict(
        {
            "name": "preflight-tracking",
            "model": {"path": str(tiny_assets.rag)},
            "retrieval": {"knowledge_base": str(tiny_assets.kb_flat)},
            "data": {"train_path": str(tiny_assets.qa_train)},
            "training": {"report_to": ["tensorboard", "wandb"]},
            "checkpoint": {"storage_path": str(tmp_path / "ckpt")},
            "output_dir": str(tmp_path / "out"),
        }
    )
    with pytest.raises(ConfigError) as err:
        check_before_cluster_work(config)
    message = str(err.value)
    assert "1 problem found before any cluster work" in message
    assert "  training.report_to: wandb needs wandb where the driver runs" in message


# --- through the real training path ------------------------------------------------------


@pytest.mark.ray
@pytest.mark.slow
def test_a_run_restarted_from_a_checkpoint_logs_each_step_once_with_its_evaluations(
    ray_cluster, tiny_assets, tmp_path
):
    from mlflow.tracking import MlflowClient

    from rag_job.train.driver import run_training
    from tests.job.test_training import make_config

    config = make_config(
        tiny_assets,
        tmp_path,
        "tracked-run",
        training__max_steps=5,
        training__report_to=["tensorboard", "mlflow", "wandb"],
        checkpoint__every_steps=2,
        retrieval__mode="local",
        evaluation={"at_start": True, "at_end": True, "max_samples": 4, "batch_size": 4},
    )
    summary = run_training(config, fail_at_step=3)  # rank 0 dies once after the step-2 checkpoint
    assert summary.metrics["resumed_from_step"] == 2
    out = tmp_path / "out"
    losses = [(h["step"], h["loss"]) for h in summary.history]
    assert [step for step, _ in losses] == [1, 2, 3, 4, 5]
    eval_before = summary.metrics["eval_before"]["eval_exact_match"]
    eval_after = summary.metrics["eval_after"]["eval_exact_match"]

    run = tensorboard_run(out / "tensorboard")
    assert tb_series(run, "train/loss") == [(step, pytest.approx(loss, rel=1e-6)) for step, loss in losses]
    assert tb_series(run, "eval/exact_match") == [(0, eval_before), (5, eval_after)]

    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    (mlflow_run,) = client.search_runs([client.get_experiment_by_name("tracked-run").experiment_id])
    assert mlflow_series(client, mlflow_run.info.run_id, "train/loss") == [
        (step, pytest.approx(loss)) for step, loss in losses
    ]
    assert mlflow_run.data.params["training.report_to"] == '["tensorboard", "mlflow", "wandb"]'

    (run_dir,) = (out / "wandb").glob("offline-run-*")
    rows = wandb_history(wandb_records(run_dir))
    assert sorted(rows) == [0, 1, 2, 3, 4, 5]
    assert [rows[step]["train/loss"] for step, _ in losses] == pytest.approx([loss for _, loss in losses])
