"""The job's configuration: the contract between the operator and the Ray job.

The operator validates a `RagFinetuneJob` into a `JobConfig`, serialises it into
the RayJob, and `python -m rag_job train` parses it back. This module must import
nothing heavier than pydantic and PyYAML: the operator image has no torch or Ray.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

#: Ray custom resource declared by trainer pods (`rayStartParams.resources`).
TRAINER_RESOURCE = "rag_trainer"
#: Ray custom resource declared by retrieval pods.
RETRIEVAL_RESOURCE = "rag_retrieval"
#: Ray namespace of the named retrieval actors, so trainers and a shared retrieval cluster find them.
RETRIEVAL_NAMESPACE = "rag-retrieval"
#: Environment variable that carries the JSON JobConfig into the RayJob's runtime env.
CONFIG_ENV_VAR = "RAG_JOB_CONFIG"
#: Environment variable that carries the JSON ServiceConfig into the retrieval service's RayJob.
SERVICE_CONFIG_ENV_VAR = "RAG_RETRIEVAL_SERVICE_CONFIG"
#: Prefix of an env var value that holds the JSON base64-encoded. KubeRay's submitter pastes the
#: runtime env into a `bash -c` line inside double quotes, where `$(...)`, backticks and `$VAR` in a
#: user's path would be expanded; base64 has none of those characters.
ENV_BASE64_PREFIX = "base64:"
#: Retrieval actors are named `<prefix>-shard{s}-replica{r}`: the job, the retrieval service and
#: the operator (which counts loaded actors on the dashboard) all use these two functions.
_ACTOR_NAME = re.compile(r"^(?P<prefix>.+)-shard(?P<shard>\d+)-replica(?P<replica>\d+)$")


def encode_for_env(text: str) -> str:
    """A config's JSON as an env var value that no shell can alter (see ENV_BASE64_PREFIX)."""
    return ENV_BASE64_PREFIX + base64.b64encode(text.encode("utf-8")).decode("ascii")


def decode_from_env(value: str) -> str:
    """The JSON text of an env var value: base64 (what the operator writes) or plain JSON (by hand)."""
    if not value.startswith(ENV_BASE64_PREFIX):
        return value
    try:
        return base64.b64decode(value[len(ENV_BASE64_PREFIX) :], validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError) as err:
        raise ConfigError(f"the config's {ENV_BASE64_PREFIX} value is not valid base64 UTF-8: {err}") from err


def actor_name(prefix: str, shard: int, replica: int) -> str:
    """The Ray actor name of one retrieval actor (unique per prefix, shard and replica)."""
    return f"{prefix}-shard{shard}-replica{replica}"


def parse_actor_name(name: str, prefix: str) -> tuple[int, int] | None:
    """(shard, replica) of an actor named by `actor_name(prefix, ...)`, else None."""
    match = _ACTOR_NAME.match(name)
    if match is None or match.group("prefix") != prefix:
        return None
    return int(match.group("shard")), int(match.group("replica"))


class _Strict(BaseModel):
    """Unknown keys are errors (a typo must not be silently ignored); numbers are finite."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ModelConfig(_Strict):
    """Which RAG checkpoint to fine-tune."""

    path: str = Field(
        description="RAG checkpoint: a local directory, a path on a mounted volume, an object-store URI "
        "(s3://, gs://, ...: copied once to each node) or a hub name (e.g. facebook/rag-token-base). "
        "Loaded with from_pretrained."
    )
    type: Literal["rag_token", "rag_sequence"] = Field(
        default="rag_token", description="RAG marginalisation: per token or per sequence."
    )


#: `scheme://...`: an object-store (or other fsspec) URI rather than a filesystem path.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class EndToEndConfig(_Strict):
    """Train the DPR context encoder too, re-encoding the knowledge base while training runs."""

    refresh_every_steps: int | None = Field(
        default=None,
        ge=1,
        description="Every N optimizer steps rank 0 snapshots the context encoder and re-encodes the "
        "knowledge base into a new index version in the background; the retrieval actors swap to it "
        "when it is written (training goes on over the previous index meanwhile). Set this or "
        "refresh_at_steps.",
    )
    refresh_at_steps: list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None,
        min_length=1,
        description="A schedule instead of a fixed interval: the optimizer steps to refresh at, "
        "increasing (e.g. [25, 50, 100, 200, 400]: often while the encoder moves fast, rarely "
        "later). Set this or refresh_every_steps.",
    )
    ctx_encoder: str | None = Field(
        default=None,
        description="The DPR context encoder to start from (a directory every node sees, with its "
        "tokenizer). Default: the one kb.json records (`build-index --ctx-encoder`).",
    )
    encode_on: Literal["retrieval_nodes", "trainers"] = Field(
        default="retrieval_nodes",
        description="What re-encodes the passages on a refresh. retrieval_nodes: encode_actors Ray "
        "actors on the retrieval nodes, in the background (the trainers do not wait; suits CPU "
        "clusters and knowledge bases a refresh interval can encode on CPUs). trainers: every trainer "
        "encodes its slice on its own device (GPU) with the current encoder, pausing training for "
        "that long; the index is then built and swapped in the background (suits large knowledge "
        "bases that CPUs encode too slowly). metrics.json reports the pause (end_to_end."
        "trainer_pause_seconds_total).",
    )
    encode_actors: int | None = Field(
        default=None,
        ge=1,
        description="Ray actors, started once per job, that re-encode the passages on each refresh "
        "(each holds a slice); placed on retrieval nodes when there are any, reserving no CPU and no "
        "rag_retrieval slot (they borrow the retrieval pods' CPU time in bursts). Default 1; "
        "encode_on retrieval_nodes only.",
    )
    encode_batch_size: int = Field(default=64, ge=1, description="Passages per encoder forward pass.")
    rerank_candidates: int | None = Field(
        default=None,
        ge=2,
        description="Between refreshes, retrieve this many (more than retrieval.n_docs) from the stale "
        "index and keep the n_docs the current context encoder scores highest (no gradient). Unset: "
        "no reranking.",
    )
    encode_threads: int | None = Field(
        default=None,
        ge=1,
        description="Torch threads per encode actor: kept low so a refresh does not starve the "
        "retrieval actors it shares nodes with. Default 1; encode_on retrieval_nodes only.",
    )
    refresh_at_end: bool = Field(
        default=True,
        description="When training ends on an index older than the final context encoder, wait for a "
        "running refresh, then re-encode once more with the final encoder before the final evaluation "
        "and the export, so both use the trained retriever (the other trainers wait in a collective "
        "that fails after training.collective_timeout_s, 30 minutes by default). Turn off when the knowledge base is so large "
        "that one more re-encode costs too much: the evaluation and export then use the last index "
        "written, and metrics.json (end_to_end.final_index) and export.json say its version and the step "
        "its encoder was copied at.",
    )

    @model_validator(mode="after")
    def _one_schedule(self) -> EndToEndConfig:
        every, at = self.refresh_every_steps, self.refresh_at_steps
        if (every is None) == (at is None):
            raise ValueError(
                "set exactly one of refresh_every_steps (a fixed interval, e.g. 100) and "
                f"refresh_at_steps (a list of steps, e.g. [25, 50, 100, 200]); got {'both' if every else 'neither'}"
            )
        if at is not None and any(b <= a for a, b in itertools.pairwise(at)):
            raise ValueError(
                f"refresh_at_steps must increase step by step, got {at}: sort it and drop repeats"
            )
        actor_fields = [f for f in ("encode_actors", "encode_threads") if getattr(self, f) is not None]
        if self.encode_on == "trainers" and actor_fields:
            raise ValueError(
                f"{' and '.join(actor_fields)} set the encode actors on the retrieval nodes, which "
                "encode_on: trainers does not start: remove them, or set encode_on: retrieval_nodes"
            )
        return self

    def refresh_due(self, step: int) -> bool:
        """Whether a refresh starts after optimizer step `step`."""
        if self.refresh_at_steps is not None:
            return step in self.refresh_at_steps
        return step % self.refresh_every_steps == 0


class RetrievalConfig(_Strict):
    """Where the knowledge base lives and how trainers reach it."""

    knowledge_base: str = Field(
        description="Directory written by `python -m rag_job build-index` (passages dataset, "
        "FAISS index file(s) and kb.json), local or an object-store URI: each retrieval actor copies "
        "kb.json, the passages and its own shard once."
    )
    passages_path: str | None = Field(
        default=None, description="Override: the passages dataset directory (datasets save_to_disk)."
    )
    index_path: str | None = Field(
        default=None, description="Override: the FAISS index file (single-shard knowledge bases only)."
    )
    mode: Literal["ray", "torch", "local"] = Field(
        default="ray",
        description="ray: Ray retrieval actors; torch: rank-0 retrieval over torch.distributed "
        "(the baseline); local: each worker searches its own copy in process.",
    )
    actors_per_shard: int = Field(
        default=1, ge=1, description="Retrieval actors per index shard (ray mode): copies of each shard."
    )
    shards: int | None = Field(
        default=None, ge=1, description="Index shards; read from kb.json when omitted, checked against it."
    )
    n_docs: int = Field(default=5, ge=1, le=100, description="Documents retrieved per question.")
    faiss_threads: int | None = Field(
        default=None, ge=1, description="OpenMP threads per retrieval actor; defaults to its CPU request."
    )
    actor_cpus: float = Field(default=1.0, gt=0, description="CPUs reserved by each retrieval actor.")
    cluster: str | None = Field(
        default=None,
        description="Name of a running retrieval service (RagRetrievalCluster) whose actors are used "
        "instead of starting new ones.",
    )
    end_to_end: EndToEndConfig | None = Field(
        default=None,
        description="Train the context encoder too and refresh the index while training runs (Hugging "
        "Face's rag-end2end-retriever, without its stop-the-world reload). Needs mode ray or local, no cluster, "
        "and a knowledge_base that is a filesystem path every node sees (a PVC or local path; object-"
        "store URIs are not supported yet): the new index versions are written beside the old one.",
    )

    @model_validator(mode="after")
    def _end_to_end_fits(self) -> RetrievalConfig:
        e2e = self.end_to_end
        if e2e is None:
            return self
        if self.mode == "torch":
            raise ValueError(
                "retrieval.end_to_end needs retrieval.mode 'ray' (the retrieval actors swap to each new "
                "index) or 'local' (every trainer switches its own copy), not 'torch': set mode: ray "
                "or local, or remove end_to_end"
            )
        if self.cluster is not None:
            raise ValueError(
                f"retrieval.end_to_end cannot be used with retrieval.cluster ({self.cluster!r}): a shared "
                "retrieval service serves other jobs and its index must not change under them; remove "
                "cluster (the job then starts its own retrieval actors) or end_to_end"
            )
        if _URI.match(self.knowledge_base):
            raise ValueError(
                f"retrieval.end_to_end needs retrieval.knowledge_base to be a filesystem path every node "
                f"sees (a PVC or local path), not the URI {self.knowledge_base!r}: new index versions are "
                "written beside it; copy the knowledge base to a shared volume"
            )
        if e2e.ctx_encoder is not None and _URI.match(e2e.ctx_encoder):
            raise ValueError(
                f"retrieval.end_to_end.ctx_encoder must be a directory every node sees, not the URI "
                f"{e2e.ctx_encoder!r}: copy it next to the knowledge base"
            )
        if e2e.rerank_candidates is not None and e2e.rerank_candidates <= self.n_docs:
            raise ValueError(
                f"retrieval.end_to_end.rerank_candidates ({e2e.rerank_candidates}) must exceed retrieval.n_docs "
                f"({self.n_docs}): rerank over more candidates than are kept, or remove it"
            )
        if self.passages_path is not None or self.index_path is not None:
            raise ValueError(
                "retrieval.end_to_end re-indexes the knowledge base's own passages: remove "
                "retrieval.passages_path and retrieval.index_path"
            )
        return self


class DataConfig(_Strict):
    """Training and evaluation data."""

    train_path: str = Field(
        description="A directory with train.source/train.target line files, or a JSONL file of "
        "{question, answers[, gold_ids]}; local or an object-store URI."
    )
    eval_path: str | None = Field(
        default=None, description="Same formats as train_path (a directory uses val.source/val.target)."
    )
    max_source_length: int = Field(default=64, ge=8, description="Question tokens kept.")
    max_target_length: int = Field(default=32, ge=2, description="Answer tokens kept.")


class TrainingConfig(_Strict):
    """Optimisation settings."""

    epochs: int | None = Field(default=None, ge=1, description="Passes over the training data.")
    max_steps: int | None = Field(
        default=None, ge=1, description="Optimizer steps; takes precedence over epochs."
    )
    batch_size: int = Field(default=8, ge=1, description="Questions per worker per micro-batch.")
    learning_rate: float = Field(default=3e-5, gt=0, description="Peak learning rate (AdamW).")
    retriever_learning_rate: float | None = Field(
        default=None,
        gt=0,
        description="Peak learning rate of the DPR question and context encoders (their own AdamW "
        "parameter group, same schedule); unset: learning_rate.",
    )
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_steps: int = Field(default=0, ge=0, description="Linear warm-up steps.")
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    max_grad_norm: float = Field(default=1.0, gt=0)
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    mixed_precision: Literal["no", "fp16", "bf16"] = Field(
        default="no", description="Autocast dtype on GPU; ignored on CPU."
    )
    train_question_encoder: bool = Field(
        default=True, description="Fine-tune the DPR question encoder as well as the generator."
    )
    seed: int = Field(default=42)
    max_failures: int = Field(
        default=2,
        ge=-1,
        description="Worker-group restarts from the last checkpoint before giving up (-1: no limit).",
    )
    log_every_steps: int = Field(
        default=10,
        ge=1,
        description="Report metrics to Ray Train and the log every N steps (each step is kept).",
    )
    collective_timeout_s: int = Field(
        default=1800,
        ge=60,
        description="Seconds a torch.distributed collective waits for the slowest rank before the job "
        "fails (Ray Train's TorchConfig.timeout_s). Raise it when a rank may legitimately wait long: "
        "with retrieval.end_to_end.refresh_at_end the other trainers wait while rank 0 re-encodes the "
        "knowledge base one last time.",
    )
    report_to: list[Literal["tensorboard", "mlflow", "wandb"]] = Field(
        default_factory=list,
        description="Experiment trackers the driver logs every step, the evaluations and this config to "
        "when training ends: tensorboard (output_dir/tensorboard), mlflow (MLFLOW_TRACKING_URI, else "
        "output_dir/mlflow.db), wandb (WANDB_MODE, else offline in output_dir/wandb).",
    )

    @model_validator(mode="after")
    def _one_stopping_rule(self) -> TrainingConfig:
        if self.epochs is None and self.max_steps is None:
            self.epochs = 1
        return self


class ScalingConfig(_Strict):
    """Trainer workers; on Kubernetes the operator fills this from the trainer group."""

    num_workers: int = Field(default=2, ge=1, description="Data-parallel trainer workers.")
    use_gpu: bool = Field(default=False, description="One GPU per worker, NCCL between them.")
    cpus_per_worker: float = Field(default=1.0, gt=0)
    resources_per_worker: dict[str, float] = Field(
        default_factory=dict, description="Extra Ray resources per worker (rag_trainer is always added)."
    )


class CheckpointConfig(_Strict):
    """Where checkpoints go and how many stay."""

    storage_path: str = Field(
        default="out/checkpoints",
        description="Ray Train storage: a shared filesystem path (PVC) or an object-store URI.",
    )
    num_to_keep: int = Field(default=2, ge=1)
    every_steps: int = Field(default=50, ge=1, description="Checkpoint every N optimizer steps.")


class EvaluationConfig(_Strict):
    """End-of-training evaluation."""

    at_start: bool = Field(default=False, description="Also evaluate before the first step (shows the gain).")
    at_end: bool = Field(default=True)
    max_samples: int | None = Field(default=None, ge=1, description="Evaluate on at most this many examples.")
    batch_size: int = Field(default=16, ge=1)
    num_beams: int = Field(default=1, ge=1)
    max_new_tokens: int = Field(default=20, ge=1)


class JobConfig(_Strict):
    """Everything one fine-tuning run needs, validated once at the start."""

    name: str = Field(default="rag-finetune", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    model: ModelConfig
    retrieval: RetrievalConfig
    data: DataConfig
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    output_dir: str = Field(
        default="out/run",
        description="Final model, metrics.json and plots go here: a local or mounted path, or an "
        "object-store URI (written locally, uploaded at the end). On Kubernetes it defaults to "
        "outputs/<job> under spec.storage.",
    )
    export_knowledge_base: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="Also write output_dir/export: the model with the passages and ONE FAISS index of "
        "the whole knowledge base, a directory plain transformers loads with no rag_job, movable "
        "(`python -m rag_job export` writes the same); with end_to_end, of the index version the job "
        "finished on. auto: when the knowledge base's index and "
        "passages take at most 2 GiB (a copy of a larger one is left to the export command).",
    )

    @classmethod
    def from_file(cls, path: str | Path) -> JobConfig:
        """Load YAML or JSON; errors name the file and the offending field."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from err
        except UnicodeDecodeError as err:
            raise ConfigError(
                f"{path} is not UTF-8 text (byte {err.start}): give a YAML or JSON config"
            ) from err
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as err:
            raise ConfigError(
                f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {err}"
            ) from err
        return cls.from_dict(data or {}, source=str(path))

    @classmethod
    def from_json_text(cls, text: str, source: str = "config") -> JobConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{source} is not valid JSON: {err}") from err
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: Any, source: str = "config") -> JobConfig:
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, source)) from err

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)


class ServiceConfig(_Strict):
    """The long-lived retrieval service of a RagRetrievalCluster (`python -m rag_job serve-retrieval`)."""

    name: str = Field(description="Actor name prefix: the RagRetrievalCluster's name.")
    knowledge_base: str = Field(description="Directory written by `python -m rag_job build-index`.")
    actors_per_shard: int = Field(default=1, ge=1, description="Retrieval actors per index shard.")
    shards: int | None = Field(default=None, ge=1, description="Checked against kb.json when given.")
    actor_cpus: float = Field(default=1.0, gt=0, description="CPUs reserved by each retrieval actor.")
    faiss_threads: int | None = Field(default=None, ge=1, description="OpenMP threads per actor.")

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)


class ConfigError(ValueError):
    """A config that cannot run; the message names the field and what is wrong."""


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line per problem, each naming its dotted field path."""
    lines = [f"invalid {source}:"]
    for problem in err.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        lines.append(f"  {field}: {problem['msg']}")
    return "\n".join(lines)
