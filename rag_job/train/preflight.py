"""The job's pre-flight check: everything a cluster would only discover minutes later.

`python -m rag_job train` runs it before `ray.init`: the model checkpoint, every knowledge-base
file against kb.json (sizes and fingerprints), the training data, and that checkpoint storage
and the output directory can be written. Every problem is collected, so one run names them
all, each with the JobConfig field it comes from and the fix. Light on purpose: no torch, Ray
or FAISS imports, so the check takes a fraction of a second plus a few MiB of reads per file.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from rag_job.config import ConfigError, JobConfig
from rag_job.knowledge.digest import verify_files
from rag_job.knowledge.layout import KnowledgeBaseLayoutError, KnowledgeBaseMeta, load_meta
from rag_job.storage import exists as storage_exists
from rag_job.storage import fetch, file_sizes, is_uri, join, probe_writable, read_text
from rag_job.train.data import read_examples
from rag_job.train.tracking import problems as tracking_problems

logger = logging.getLogger(__name__)

#: What `save_pretrained` of a RAG model and its RagTokenizer write (facebook/rag-token-base too).
RAG_TOKENIZER_DIRS = ("question_encoder_tokenizer", "generator_tokenizer")
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
#: `org/name` or `name`: what the hub accepts as a model id.
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@dataclass
class Preflight:
    """Problems (the job cannot start) as (field, message), and notes on what was not checked."""

    problems: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def problem(self, field_name: str, message: str) -> None:
        self.problems.append((field_name, message))

    def raise_for_problems(self) -> None:
        if not self.problems:
            return
        count = len(self.problems)
        lines = [
            f"the job cannot start: {count} problem{'s' if count > 1 else ''} found before any cluster "
            "work (nothing was started):"
        ]
        for field_name, message in self.problems:
            lines.append(f"  {field_name}: " + message.replace("\n", "\n    "))
        raise ConfigError("\n".join(lines))


def check_before_cluster_work(config: JobConfig) -> list[str]:
    """Raise ConfigError naming every problem; return notes on what could not be checked here."""
    result = Preflight()
    check_model(config.model.path, result)
    meta = check_knowledge_base(config, result)
    if meta is not None:
        check_retrieval_against_kb(config, meta, result)
    if config.retrieval.end_to_end is not None and meta is not None:
        check_ctx_encoder(config, result)
        check_no_other_end_to_end_job(config, result)
    check_data(config, result)
    check_writable("checkpoint.storage_path", config.checkpoint.storage_path, result)
    check_writable("output_dir", config.output_dir, result)
    for message in tracking_problems(config.training.report_to):
        result.problem("training.report_to", message)
    result.raise_for_problems()
    for note in result.notes:
        logger.warning("pre-flight: %s", note)
    return result.notes


def check_ctx_encoder(config: JobConfig, result: Preflight) -> None:
    """End-to-end training needs a DPR context encoder it can load (configured or kb.json's)."""
    from rag_job.train.ctx_encoder import FIELD, resolve_ctx_encoder

    try:
        resolve_ctx_encoder(config)
    except ConfigError as err:
        result.problem(FIELD, str(err).removeprefix(f"{FIELD}: "))


def check_no_other_end_to_end_job(config: JobConfig, result: Preflight) -> None:
    """Another live end-to-end job on the same knowledge base would delete this one's index
    versions and it theirs (rag_job/knowledge/lease.py)."""
    from rag_job.knowledge.lease import check_free

    busy = check_free(config.retrieval.knowledge_base)
    if busy is not None:
        result.problem("retrieval.knowledge_base", busy)


def check_model(path: str, result: Preflight) -> None:
    """A local `model.path` must hold a RAG checkpoint; hub names and URIs are left to from_pretrained."""
    fix = (
        "point it at a directory written by save_pretrained of a RAG model and its RagTokenizer "
        "(`python -m rag_job make-tiny-models` writes one), or at a hub name such as facebook/rag-token-base"
    )
    local = Path(path).expanduser()
    if is_uri(path):
        check_remote_model(path, result, fix)
        return
    if not local.exists():
        offline = [var for var in _OFFLINE_VARS if os.environ.get(var, "").lower() in ("1", "true", "yes")]
        if _HUB_NAME.match(path) and not offline:
            result.notes.append(
                f"model.path {path!r} is not a local path: taken as a hub model name, not checked before "
                "start (if it is meant to be a local directory, it does not exist)"
            )
            return
        why = f" (and {offline[0]} is set, so it is no hub name either)" if offline else ""
        result.problem("model.path", f"{path} does not exist{why}; {fix}")
        return
    if not local.is_dir():
        result.problem("model.path", f"{path} is a file, not a checkpoint directory; {fix}")
        return
    config_file = local / "config.json"
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except FileNotFoundError:
        result.problem("model.path", f"{path} has no config.json, so it is no saved model; {fix}")
        return
    except (OSError, ValueError, AttributeError) as err:
        result.problem("model.path", f"{config_file} is unreadable or not a JSON object ({err}); {fix}")
        return
    missing = []
    if model_type != "rag":
        result.problem(
            "model.path", f"{path} holds a {model_type or 'untyped'} model, not a RAG checkpoint; {fix}"
        )
        return
    if not any((local / name).is_file() for name in WEIGHT_FILES):
        missing.append(f"weights ({' or '.join(WEIGHT_FILES[::2])})")
    missing += [f"{name}/" for name in RAG_TOKENIZER_DIRS if not (local / name).is_dir()]
    if missing:
        result.problem(
            "model.path", f"{path} is an incomplete RAG checkpoint: no {', no '.join(missing)}; {fix}"
        )


def check_remote_model(uri: str, result: Preflight, fix: str) -> None:
    """The same checks on an object store, from its listing and config.json (no weights read)."""
    try:
        sizes = file_sizes(uri)
    except OSError as err:
        result.problem("model.path", f"cannot list {uri}: {err}")
        return
    if not sizes:
        result.problem("model.path", f"{uri} holds no files; upload the checkpoint directory there, or {fix}")
        return
    if "config.json" not in sizes:
        result.problem("model.path", f"{uri} has no config.json, so it is no saved model; {fix}")
        return
    try:
        model_type = json.loads(read_text(join(uri, "config.json"))).get("model_type")
    except (OSError, ValueError, AttributeError) as err:
        result.problem("model.path", f"{uri}/config.json is unreadable or not a JSON object ({err}); {fix}")
        return
    if model_type != "rag":
        result.problem(
            "model.path", f"{uri} holds a {model_type or 'untyped'} model, not a RAG checkpoint; {fix}"
        )
        return
    missing = (
        [] if any(name in sizes for name in WEIGHT_FILES) else [f"weights ({' or '.join(WEIGHT_FILES[::2])})"]
    )
    missing += [f"{name}/" for name in RAG_TOKENIZER_DIRS if not any(f.startswith(f"{name}/") for f in sizes)]
    if missing:
        result.problem(
            "model.path", f"{uri} is an incomplete RAG checkpoint: no {', no '.join(missing)}; {fix}"
        )


def check_knowledge_base(config: JobConfig, result: Preflight) -> KnowledgeBaseMeta | None:
    """kb.json, then every index shard and passages file against it (sizes and fingerprints)."""
    retrieval = config.retrieval
    kb_dir = retrieval.knowledge_base
    try:
        meta = load_meta(kb_dir)
    except KnowledgeBaseLayoutError as err:
        result.problem("retrieval.knowledge_base", str(err))
        return None
    except OSError as err:
        result.problem(
            "retrieval.knowledge_base", f"cannot read {err.filename or kb_dir}: {err.strerror or err}"
        )
        return None
    check = verify_files(kb_dir, meta, "fingerprint", passages=retrieval.passages_path is None)
    if not check.ok:
        result.problem("retrieval.knowledge_base", check.message())
    result.notes.extend(check.warnings)
    for field_name, override, kind in (
        ("retrieval.passages_path", retrieval.passages_path, "directory"),
        ("retrieval.index_path", retrieval.index_path, "file"),
    ):
        if override is None:
            continue
        if is_uri(override):
            exists = storage_exists(override)
        else:
            exists = Path(override).is_dir() if kind == "directory" else Path(override).is_file()
        if not exists:
            result.problem(field_name, f"{override} is not a {kind}; fix the path or drop the field")
        else:
            result.notes.append(f"{field_name} {override} exists; kb.json has no checksums for it")
    return meta


def check_retrieval_against_kb(config: JobConfig, meta: KnowledgeBaseMeta, result: Preflight) -> None:
    retrieval = config.retrieval
    if retrieval.shards is not None and retrieval.shards != len(meta.shards):
        result.problem(
            "retrieval.shards",
            f"{retrieval.shards} but {retrieval.knowledge_base} has {len(meta.shards)} index shard(s); "
            f"rebuild the index with --shards {retrieval.shards} or drop the field",
        )
    if retrieval.n_docs > meta.num_passages:
        result.problem(
            "retrieval.n_docs",
            f"{retrieval.n_docs} exceeds the {meta.num_passages} passages of {retrieval.knowledge_base}",
        )


def check_data(config: JobConfig, result: Preflight) -> None:
    for field_name, path, split in (
        ("data.train_path", config.data.train_path, "train"),
        ("data.eval_path", config.data.eval_path, "val"),
    ):
        if path is None:
            continue
        try:
            read_examples(fetch(path, what=field_name).path, split)
        except (ValueError, OSError) as err:
            result.problem(field_name, str(err))


def check_writable(field_name: str, value: str, result: Preflight) -> None:
    """Create the directory, write and remove a probe file (an object, under a URI)."""
    if is_uri(value):
        try:
            probe_writable(value)
        except OSError as err:
            result.problem(
                field_name,
                f"{err}; check the URI, that the bucket exists, and the credentials in the environment "
                "(e.g. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL for an S3-compatible store)",
            )
        return
    path = Path(value).expanduser()
    probe = path / f".rag-job-write-probe-{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"rag_job pre-flight\n")
        probe.unlink()
    except OSError as err:
        where = f" ({err.filename})" if err.filename and str(err.filename) != str(path) else ""
        result.problem(
            field_name,
            f"cannot write to {path}: {err.strerror or err}{where}; point it at a writable directory "
            "(a shared volume mounted read-write on every pod, on Kubernetes) or an object-store URI",
        )
