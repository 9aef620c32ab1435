"""Experiment tracking: `training.report_to` (tensorboard, mlflow, wandb).

Where it runs: in the driver, once training has finished, from the run's per-step history.
The trainer workers never talk to a tracker. Three reasons:

- where the files go: `output_dir` may be an object-store URI, staged in a local directory
  that only the driver knows (`rag_job.storage.staging_dir`), and a local `output_dir` need not
  be mounted on the trainer pods. The driver writes its tracking files into that directory
  before `publish` uploads it, so they end up beside the model and metrics.json in every case;
- exactly once: the history arrives in the last checkpoint's state (`state["history"]`), one
  entry per optimizer step, written by rank 0 with the loss all-reduced over every rank. A
  worker restarted from a checkpoint repeats steps, and a live logger would record those
  steps twice; the checkpointed history already holds each step once;
- dependencies: only the driver (the head pod) needs the tracker packages, which pre-flight
  checks before any cluster work (`problems`).

What is not given up: every step is logged (finer than the progress line, which averages
`training.log_every_steps` steps), at the wall time the step ended (`time_unix`), so the
curves and their clock times read as if logged live. What is: watching the curves during
training; the progress line, Ray Train's reported metrics and the Ray dashboard show those.

Names: every numeric key of a history entry (loss, learning_rate, step_time_s,
samples_per_s, retrieval_latency_ms_p50 / _p95 / _mean, retrieval_calls,
retrieval_share_of_step, retrieval_retries, epoch) as `train/<key>` at its step; each
evaluation key `eval_<name>` as `eval/<name>`, the evaluation before training at step 0 and
the one after at the last step; the JobConfig as flat dotted params (MLflow), hparams and a
text summary (TensorBoard), the run config (W&B).

Destinations, standard environment variables first:

- tensorboard: `output_dir/tensorboard/` (torch.utils.tensorboard, package `tensorboard`).
- mlflow: `MLFLOW_TRACKING_URI` when set (a tracking server, say), else a SQLite store
  `output_dir/mlflow.db`. MLflow 3 refuses a plain file store (`./mlruns`) unless
  `MLFLOW_ALLOW_FILE_STORE=true`: SQLite is the local store it recommends, and one file is
  easy to publish. Experiment: `MLFLOW_EXPERIMENT_NAME`, else the job's name. Needs
  `mlflow-skinny`, plus SQLAlchemy and Alembic for the SQLite store (`mlflow ui` to browse it
  needs the full `mlflow` package, which the job does not: it brings scikit-learn, a server and
  an older pyarrow).
- wandb: `WANDB_MODE` when set (e.g. online, with `WANDB_API_KEY`), else offline, which needs no
  network; `WANDB_DIR` when set, else `output_dir/wandb/` (`wandb sync` uploads it later).
  Project: `WANDB_PROJECT`, else the job's name.

What this run wrote under output_dir replaces what an earlier run there wrote (like
metrics.json); destinations named by environment variables are only added to. A tracker that
fails (a server that does not answer) is logged as an error and does not fail the run: the
model is trained and is still published.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from rag_job.config import JobConfig

logger = logging.getLogger(__name__)

TENSORBOARD_DIR = "tensorboard"
MLFLOW_DB = "mlflow.db"
WANDB_DIR = "wandb"

#: Modules each tracker imports here, and what to install for them (the `tracking` extra of
#: pyproject.toml holds mlflow-skinny, SQLAlchemy, Alembic and wandb; the `job` extra tensorboard).
REQUIREMENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "tensorboard": (("tensorboard", "tensorboard"),),
    "mlflow": (("mlflow", "mlflow-skinny"),),
    "wandb": (("wandb", "wandb"),),
}
#: What MLflow's SQLite store (the default destination) needs beyond mlflow-skinny.
MLFLOW_SQLITE_REQUIREMENTS = (("sqlalchemy", "sqlalchemy"), ("alembic", "alembic"))
#: History keys that are coordinates, not metrics.
NOT_METRICS = frozenset({"step", "time_unix"})
#: MLflow's limits per log_batch call.
_MLFLOW_METRICS_PER_BATCH = 1000
_MLFLOW_PARAMS_PER_BATCH = 100


def problems(report_to: list[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    """Why the trackers in `report_to` cannot log from this process: missing packages, by name.

    Cheap (no tracker is imported): pre-flight calls it before any cluster work.
    """
    found: list[str] = []
    for name in dict.fromkeys(report_to):
        needed = list(REQUIREMENTS[name])
        if name == "mlflow" and _mlflow_uri_is_sqlite(environ):
            needed += MLFLOW_SQLITE_REQUIREMENTS
        missing = [package for module, package in needed if importlib.util.find_spec(module) is None]
        if missing:
            what = name
            if name == "mlflow" and "mlflow-skinny" not in missing:
                what = "mlflow (its default SQLite store in output_dir)"
            found.append(
                f"{what} needs {', '.join(missing)} where the driver runs: pip install {' '.join(missing)} "
                f"(or the extra: pip install 'rag-finetune-operator[{_extra(name)}]'), or remove {name} "
                "from training.report_to"
            )
    return found


def _extra(name: str) -> str:
    return "job" if name == "tensorboard" else "tracking"


def _mlflow_uri_is_sqlite(environ: Mapping[str, str]) -> bool:
    uri = environ.get("MLFLOW_TRACKING_URI", "")
    return not uri or uri.startswith("sqlite:")


def log_run(
    config: JobConfig,
    output_dir: Path,
    history: list[dict],
    evals: Mapping[str, Mapping[str, float]] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> dict[str, str]:
    """Log the run to every tracker of `config.training.report_to`; returns tracker -> where it went.

    `history`: one metrics dict per optimizer step (the checkpoint's `state["history"]`);
    `evals`: {"before": {eval_*: ...}, "after": {...}} (the checkpoint's `state["eval"]`).
    A tracker that fails is logged and reported as "failed: ..." instead of raising.
    """
    evals = evals or {}
    done: dict[str, str] = {}
    for name in dict.fromkeys(config.training.report_to):
        started = time.perf_counter()
        try:
            done[name] = _LOGGERS[name](config, Path(output_dir), history, evals, environ)
        except Exception as err:  # the model is trained: a tracker must not lose it
            logger.error("training.report_to %s: logging failed: %s: %s", name, type(err).__name__, err)
            done[name] = f"failed: {type(err).__name__}: {err}"
            continue
        logger.info(
            "training.report_to %s: %d step(s) logged to %s in %.1fs",
            name, len(history), done[name], time.perf_counter() - started,
        )  # fmt: skip
    return done


def step_metrics(entry: Mapping) -> dict[str, float]:
    """`train/<key>` for every numeric metric of one history entry."""
    return {
        f"train/{key}": float(value)
        for key, value in entry.items()
        if key not in NOT_METRICS and isinstance(value, int | float) and not isinstance(value, bool)
    }


def eval_points(
    history: list[dict], evals: Mapping[str, Mapping[str, float]]
) -> list[tuple[int, float | None, dict[str, float]]]:
    """(step, wall time or None, {eval/<name>: value}) of each evaluation, in order: the one
    before training at step 0, the one after it at the last step."""
    points = []
    if evals.get("before"):
        points.append((0, _start_time(history[0]) if history else None, _eval_metrics(evals["before"])))
    if evals.get("after"):
        last = history[-1] if history else {}
        points.append((int(last.get("step", 0)), last.get("time_unix"), _eval_metrics(evals["after"])))
    return points


def _eval_metrics(results: Mapping[str, float]) -> dict[str, float]:
    return {f"eval/{key.removeprefix('eval_')}": float(value) for key, value in results.items()}


def _start_time(entry: Mapping) -> float | None:
    if "time_unix" not in entry:
        return None
    return entry["time_unix"] - entry.get("step_time_s", 0.0)


def flat_config(config: JobConfig) -> dict[str, str | int | float | bool]:
    """The JobConfig as `section.key` -> scalar (None, lists and empty dicts as JSON text)."""
    flat: dict[str, str | int | float | bool] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        elif isinstance(value, str | int | float | bool):
            flat[prefix] = value
        else:
            flat[prefix] = json.dumps(value)

    walk("", config.model_dump(mode="json"))
    return flat


def _fresh(path: Path) -> None:
    """Remove what an earlier run in this output_dir wrote at `path`."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _log_tensorboard(config, output_dir, history, evals, environ) -> str:
    import yaml
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    log_dir = output_dir / TENSORBOARD_DIR
    _fresh(log_dir)
    points = eval_points(history, evals)
    with SummaryWriter(log_dir=str(log_dir), max_queue=1000) as writer:
        for entry in history:
            for tag, value in step_metrics(entry).items():
                writer.add_scalar(tag, value, global_step=int(entry["step"]), walltime=entry.get("time_unix"))
        for step, walltime, metrics in points:
            for tag, value in metrics.items():
                writer.add_scalar(tag, value, global_step=step, walltime=walltime)
        # The HParams tab: the config against the final evaluation (and the loss curve).
        metric_tags = {tag: 0.0 for _, _, metrics in points for tag in metrics} | {"train/loss": 0.0}
        for summary in hparams(flat_config(config), metric_tags):
            writer.file_writer.add_summary(summary)
        text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
        writer.add_text("config", "\n".join("    " + line for line in text.splitlines()))
    return str(log_dir)


def _log_mlflow(config, output_dir, history, evals, environ) -> str:
    from mlflow.tracking import MlflowClient

    uri = environ.get("MLFLOW_TRACKING_URI")
    artifact_location, db, building = None, None, None
    if not uri:
        # Written under a name of its own, then renamed over an earlier run's mlflow.db: MLflow
        # keeps one SQLite engine per URI for the life of the process, which would go on writing
        # to a deleted file if this process had used the same URI before.
        db = (output_dir / MLFLOW_DB).resolve()
        building = db.with_name(f".{MLFLOW_DB}.{uuid.uuid4().hex}")
        uri = f"sqlite:///{building}"
        # Nothing is logged as an artifact; this keeps MLflow from choosing ./mlartifacts in the cwd.
        artifact_location = (output_dir / "mlartifacts").resolve().as_uri()
    try:
        where = _mlflow_run(
            MlflowClient(tracking_uri=uri), config, history, evals, environ, artifact_location
        )
    except BaseException:
        if building is not None:
            building.unlink(missing_ok=True)
        raise
    if building is None:
        return f"{uri} ({where})"
    building.replace(db)
    return f"sqlite:///{db} ({where})"


def _mlflow_run(client, config, history, evals, environ, artifact_location) -> str:
    from mlflow.entities import Metric, Param, RunTag

    experiment_name = environ.get("MLFLOW_EXPERIMENT_NAME") or config.name
    experiment = client.get_experiment_by_name(experiment_name)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(experiment_name, artifact_location=artifact_location)
    )
    now_ms = int(time.time() * 1000)
    start = _start_time(history[0]) if history else None
    run = client.create_run(
        experiment_id,
        run_name=config.name,
        start_time=int(start * 1000) if start else now_ms,
        tags={"rag_job.output_dir": config.output_dir, "rag_job.model_type": config.model.type},
    )
    run_id = run.info.run_id
    try:
        params = [Param(key, str(value)) for key, value in flat_config(config).items()]
        for i in range(0, len(params), _MLFLOW_PARAMS_PER_BATCH):
            client.log_batch(run_id, params=params[i : i + _MLFLOW_PARAMS_PER_BATCH])
        metrics = [
            Metric(key, value, _ms(entry.get("time_unix"), now_ms), int(entry["step"]))
            for entry in history
            for key, value in step_metrics(entry).items()
        ]
        metrics += [
            Metric(key, value, _ms(walltime, now_ms), step)
            for step, walltime, values in eval_points(history, evals)
            for key, value in values.items()
        ]
        for i in range(0, len(metrics), _MLFLOW_METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=metrics[i : i + _MLFLOW_METRICS_PER_BATCH])
        client.log_batch(run_id, tags=[RunTag("rag_job.steps", str(len(history)))])
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    end = history[-1].get("time_unix") if history else None
    client.set_terminated(run_id, end_time=_ms(end, now_ms))
    return f"experiment {experiment_name!r}, run {run_id}"


def _ms(unix_seconds: float | None, default_ms: int) -> int:
    return int(unix_seconds * 1000) if unix_seconds is not None else default_ms


def _log_wandb(config, output_dir, history, evals, environ) -> str:
    import wandb

    # Read here, not left to wandb: it reads its environment once per process.
    own_dir = not environ.get("WANDB_DIR")
    if own_dir:
        _fresh(output_dir / WANDB_DIR)
        output_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        dir=str(output_dir) if own_dir else environ["WANDB_DIR"],
        mode=environ.get("WANDB_MODE") or "offline",
        project=environ.get("WANDB_PROJECT") or config.name,
        name=config.name,
        config=config.model_dump(mode="json"),
        # Logged after training: the driver's system metrics, console and git state say nothing about it.
        settings=wandb.Settings(console="off", x_disable_stats=True, disable_git=True),
    )
    try:
        # W&B steps only go forward: the evaluation before, every step, then the one after.
        points = eval_points(history, evals)
        if evals.get("before"):
            run.log(points.pop(0)[2], step=0)
        for entry in history:
            run.log(step_metrics(entry), step=int(entry["step"]))
        for step, _, metrics in points:
            run.log(metrics, step=step)
        for when, results in evals.items():
            for key, value in _eval_metrics(results).items():
                run.summary[f"{key}_{when}"] = value
        where = run.dir
    finally:
        run.finish()
    if own_dir:  # wandb's convenience symlinks would be uploaded twice by `publish`
        for link in ("latest-run", "debug.log", "debug-internal.log"):
            path = output_dir / WANDB_DIR / link
            if path.is_symlink():
                path.unlink()
    return str(Path(where).parent)


_LOGGERS = {"tensorboard": _log_tensorboard, "mlflow": _log_mlflow, "wandb": _log_wandb}
