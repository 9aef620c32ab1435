"""`python -m rag_job`: build tiny models, build the index, train, evaluate, demo, bench.

Exit codes (both CLIs, rag_operator's too): 0 done, 1 the input or the work failed (an invalid
config, an unreadable knowledge base), 2 the command line itself is wrong.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import typer

from rag_job import __version__
from rag_job.bench.cli import app as bench_app
from rag_job.local.demo import DEMO_STEPS

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help=__doc__,
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,
)
app.add_typer(bench_app, name="bench")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rag_job {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Distributed RAG fine-tuning on Ray, with retrieval served by Ray actors."""


def _human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    raise AssertionError("unreachable")


def _fail(message: str) -> None:
    """An input or run that cannot go on: the message says what and where; exit code 1."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


def _usage(message: str, option: str) -> None:
    """A command line that cannot work: exit code 2, like any other usage error."""
    raise typer.BadParameter(message, param_hint=option)


@app.command("make-tiny-models")
def make_tiny_models(
    knowledge_base: Annotated[
        Path,
        typer.Option(
            "--knowledge-base",
            help="Knowledge-base file (CSV, TSV or JSONL) to train the tokenizers on.",
        ),
    ],
    out: Annotated[Path, typer.Option(help="Output directory: OUT/rag and OUT/ctx_encoder.")],
    qa: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="FILE",
            help="JSONL question/answer files whose text the tokenizers also learn (repeatable).",
        ),
    ] = None,
    model_type: Annotated[str, typer.Option(help="rag_token or rag_sequence.")] = "rag_token",
) -> None:
    """Build a tiny DPR + BART RAG checkpoint offline, in the layout of facebook/rag-token-base."""
    from rag_job.knowledge.ingest import KnowledgeBaseError, ingest
    from rag_job.local.tiny_models import build_tiny_models, retrieval_pairs_for
    from rag_job.train.data import read_examples, read_qa_texts

    if model_type not in ("rag_token", "rag_sequence"):
        _usage(f"must be rag_token or rag_sequence, not {model_type!r}", "--model-type")
    started = time.perf_counter()
    try:
        report = ingest(knowledge_base)
    except KnowledgeBaseError as err:
        _fail(str(err))
    corpus = [f"{p.title} {p.text}" for p in report.passages]
    examples = []
    for path in qa or []:
        corpus.extend(read_qa_texts(path))
        examples.extend(read_examples(path))
    pairs = retrieval_pairs_for(report.passages, examples)
    paths = build_tiny_models(corpus, out, model_type=model_type, retrieval_pairs=pairs)
    typer.echo(f"tiny {model_type} checkpoint: {paths.rag}")
    typer.echo(f"context encoder:        {paths.ctx_encoder}")
    typer.echo(
        f"tokenizers trained on {len(corpus)} texts, DPR warmed up on {len(pairs)} query/passage pairs, "
        f"in {time.perf_counter() - started:.1f}s"
    )


@app.command("build-index")
def build_index(
    out: Annotated[Path, typer.Option(help="Output knowledge-base directory.")],
    knowledge_base: Annotated[
        Path | None,
        typer.Option("--knowledge-base", help="Knowledge base: CSV/TSV with title,text columns, or JSONL."),
    ] = None,
    embeddings_dataset: Annotated[
        Path | None,
        typer.Option(
            "--embeddings-dataset",
            help="Instead of --knowledge-base, bring your own embeddings: a directory written by datasets' "
            "Dataset.save_to_disk with columns title, text, embeddings (a list of floats per row) and "
            "optionally id, as wiki_dpr. Indexed row for row (row i is passage id i), without encoding; "
            "a bad row (null, empty text, NaN, wrong length, duplicate id) is refused by row number, "
            "never skipped.",
        ),
    ] = None,
    ctx_encoder: Annotated[
        str | None,
        typer.Option(
            help="DPR context encoder: local dir, mounted path or hub name. Required with --knowledge-base; "
            "with --embeddings-dataset only recorded in kb.json, as the encoder that made the embeddings."
        ),
    ] = None,
    index_type: Annotated[str, typer.Option(help="flat (exact), hnsw or ivfpq (compressed).")] = "flat",
    shards: Annotated[int, typer.Option(min=1, help="Index files over disjoint id ranges.")] = 1,
    strict: Annotated[
        bool,
        typer.Option(help="Fail on the first bad row instead of skipping it (--embeddings-dataset: always)."),
    ] = False,
    words_per_passage: Annotated[int, typer.Option(min=10, help="--knowledge-base only.")] = 100,
    batch_size: Annotated[int, typer.Option(min=1, help="--knowledge-base only.")] = 64,
    ray_actors: Annotated[
        int, typer.Option(min=0, help="Encode on N Ray actors (0: in this process; --knowledge-base only).")
    ] = 0,
) -> None:
    """Ingest a knowledge base, encode it with DPR and write passages + FAISS index for RagRetriever.

    With --embeddings-dataset the passages bring their embeddings and nothing is encoded.
    """
    from rag_job.knowledge.index import (
        INDEX_TYPES,
        encode_passages,
        encode_passages_on_ray,
        write_knowledge_base,
    )
    from rag_job.knowledge.ingest import KnowledgeBaseError, ingest, ingest_embeddings_dataset

    if index_type not in INDEX_TYPES:
        _usage(f"must be one of {', '.join(INDEX_TYPES)}, not {index_type!r}", "--index-type")
    if (knowledge_base is None) == (embeddings_dataset is None):
        _usage("pass exactly one of --knowledge-base FILE and --embeddings-dataset DIR", "--knowledge-base")
    if knowledge_base is not None and not ctx_encoder:
        _usage("--knowledge-base needs --ctx-encoder to encode the passages", "--ctx-encoder")
    if embeddings_dataset is not None and ray_actors:
        _usage("--embeddings-dataset brings its embeddings: nothing to encode on Ray", "--ray-actors")
    started = time.perf_counter()
    try:
        if embeddings_dataset is not None:
            report, embeddings = ingest_embeddings_dataset(embeddings_dataset)
        else:
            report = ingest(knowledge_base, words_per_passage=words_per_passage, strict=strict)
    except KnowledgeBaseError as err:
        _fail(str(err))
    for message in report.rejection_messages():
        typer.secho(f"rejected {message}", fg=typer.colors.YELLOW, err=True)
    if shards > len(report.passages):
        _fail(f"--shards {shards} exceeds the {len(report.passages)} passages")
    if embeddings_dataset is None and ray_actors:
        import ray

        ray.init(address="auto" if _ray_address_given() else None, log_to_driver=False)
        embeddings = encode_passages_on_ray(report.passages, ctx_encoder, ray_actors, batch_size)
    elif embeddings_dataset is None:
        embeddings = encode_passages(report.passages, ctx_encoder, batch_size=batch_size)
    meta = write_knowledge_base(
        report.passages, embeddings, out, index_type, shards, ctx_encoder=ctx_encoder or ""
    )
    typer.echo(
        f"passages indexed: {meta.num_passages} (from {report.rows_indexed} rows, dimension {meta.dim})"
    )
    typer.echo(
        f"rows rejected:    {len(report.rejected)} (rows read: {report.rows_read} = "
        f"{report.rows_indexed} indexed + {len(report.rejected)} rejected)"
    )
    if embeddings_dataset is not None:
        typer.echo(f"embeddings:       from {embeddings_dataset} (not re-encoded)")
    typer.echo(
        f"index:            {index_type}, {len(meta.shards)} shard(s), {_human_bytes(meta.index_bytes)} on disk"
        f" (+ {_human_bytes(meta.passages_bytes)} passages)"
    )
    typer.echo(f"written to:       {out}")
    typer.echo(f"time:             {time.perf_counter() - started:.1f}s")


@app.command("verify-kb")
def verify_kb(
    knowledge_base: Annotated[
        Path, typer.Option("--knowledge-base", help="Knowledge-base directory (build-index --out).")
    ],
    full: Annotated[
        bool, typer.Option(help="Hash every byte (SHA-256) instead of sizes and fingerprints.")
    ] = False,
) -> None:
    """Check every index shard and passages file against kb.json: truncated, deleted, swapped, changed."""
    from rag_job.knowledge.digest import verify_files
    from rag_job.knowledge.layout import KnowledgeBaseLayoutError, load_meta

    started = time.perf_counter()
    try:
        meta = load_meta(knowledge_base)
    except KnowledgeBaseLayoutError as err:
        _fail(str(err))
    level = "full" if full else "fingerprint"
    check = verify_files(knowledge_base, meta, level)
    for warning in check.warnings:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    if not check.ok:
        _fail(check.message())
    what = "SHA-256 of every byte" if full else "sizes and fingerprints"
    typer.echo(
        f"{knowledge_base}: {check.files_checked} files match kb.json ({what}), "
        f"{_human_bytes(meta.index_bytes + meta.passages_bytes)} in {time.perf_counter() - started:.2f}s"
    )


@app.command("export")
def export(
    model: Annotated[
        str,
        typer.Option(
            help="Trained RAG model directory (OUTPUT_DIR/model, or any save_pretrained RAG); a path or URI."
        ),
    ],
    kb: Annotated[str, typer.Option(help="Its knowledge-base directory (build-index --out); a path or URI.")],
    out: Annotated[
        str, typer.Option(help="New directory to write (must not exist or be empty), or a URI to upload to.")
    ],
    index_version: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Index version to export (end-to-end training writes versions under KB/index/). "
            "Default: the one the knowledge base serves (index/current.json), 0 (kb.json's) when none.",
        ),
    ] = None,
) -> None:
    """Write one directory plain transformers loads with no rag_job: the model, its tokenizers, the
    passages and ONE FAISS index over the whole knowledge base (shards merged). Its README.md says
    how to load it, export.json which index version it holds; the directory can be moved."""
    import shutil

    from rag_job.knowledge.export import ExportError, export_model
    from rag_job.knowledge.layout import KnowledgeBaseLayoutError, local_knowledge_base
    from rag_job.knowledge.versions import current_version
    from rag_job.storage import fetch, is_uri, local_path, publish, staging_dir

    started = time.perf_counter()
    local_out = staging_dir(out) / "export" if is_uri(out) else local_path(out)
    if is_uri(out):
        shutil.rmtree(local_out, ignore_errors=True)
    try:
        local_model = fetch(model, what="--model").path
        local_kb = local_knowledge_base(kb)
        version = current_version(local_kb) if index_version is None else index_version
        summary = export_model(local_model, local_kb, local_out, version)
        if is_uri(out):
            publish(local_out, out)
    except (ExportError, KnowledgeBaseLayoutError, OSError) as err:
        _fail(str(err))
    how = {"copied": "copied (one shard)", "merged": "merged from", "rebuilt": "HNSW graph rebuilt from"}
    shards = "" if summary.index_method == "copied" else f" {summary.shards} shards"
    typer.echo(f"model:      {summary.model_class} from {model}")
    typer.echo(
        f"index:      {summary.index_type}, {how[summary.index_method]}{shards}: {summary.num_passages} "
        f"passages, dimension {summary.dim}, {_human_bytes(summary.index_bytes)}, index version "
        f"{summary.index_version}"
    )
    typer.echo(f"written to: {out} (load it as its README.md says)")
    typer.echo(f"time:       {time.perf_counter() - started:.1f}s")


def _load_config(config_file: Path | None):
    """The JobConfig from --config, or from the RayJob's runtime env (RAG_JOB_CONFIG) without it."""
    import os

    from rag_job.config import CONFIG_ENV_VAR, ConfigError, JobConfig, decode_from_env

    try:
        if config_file is not None:
            return JobConfig.from_file(config_file)
        if os.environ.get(CONFIG_ENV_VAR):
            text = decode_from_env(os.environ[CONFIG_ENV_VAR])
            return JobConfig.from_json_text(text, source=f"${CONFIG_ENV_VAR}")
    except ConfigError as err:
        _fail(str(err))
    _fail(f"no config: pass --config FILE or set {CONFIG_ENV_VAR} to the JobConfig as JSON")


@app.command("train")
def train(
    config_file: Annotated[Path | None, typer.Option("--config", help="JobConfig as YAML or JSON.")] = None,
    local: Annotated[
        bool, typer.Option(help="Start a local multi-node Ray cluster instead of joining one.")
    ] = False,
) -> None:
    """Fine-tune: the RayJob entrypoint (joins the running cluster), or --local on a laptop."""
    from rag_job.config import ConfigError
    from rag_job.train.driver import run_training
    from rag_job.train.preflight import check_before_cluster_work

    config = _load_config(config_file)
    typer.echo("config:\n" + config.model_dump_json(indent=2))
    started = time.perf_counter()
    try:
        check_before_cluster_work(config)
    except ConfigError as err:
        _fail(str(err))
    typer.echo(f"pre-flight check passed in {time.perf_counter() - started:.2f}s")
    from rag_job.local.cluster import LocalLayout, ray_session

    layout = LocalLayout(
        trainer_nodes=config.scaling.num_workers, trainer_cpus=config.scaling.cpus_per_worker
    )
    with ray_session(local, layout):
        summary = run_training(config)
    _print_summary(summary.metrics, summary.published_to or str(summary.output_dir))


@app.command("evaluate")
def evaluate_command(
    config_file: Annotated[Path | None, typer.Option("--config", help="JobConfig as YAML or JSON.")] = None,
    model: Annotated[str | None, typer.Option(help="Model to evaluate (default: OUTPUT_DIR/model).")] = None,
    data: Annotated[Path | None, typer.Option(help="Evaluation data (default: data.eval_path).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write metrics and predictions as JSON here.")] = None,
) -> None:
    """Exact match, F1 and retrieval precision@k of a saved model, with in-process retrieval."""
    from rag_job.train.evaluate_saved import evaluate_saved_model

    config = _load_config(config_file)
    metrics = evaluate_saved_model(config, model, data, out)
    for key, value in metrics.items():
        typer.echo(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("out/demo"),
    max_steps: Annotated[
        int, typer.Option(min=1, help="Optimizer steps of each of the two runs.")
    ] = DEMO_STEPS,
    seed: Annotated[int, typer.Option(help="Seed of the knowledge base, the models and both runs.")] = 0,
) -> None:
    """Fine-tune a tiny RAG model on a generated knowledge base twice, with retrieval and with
    unrelated passages, and score both on held-out questions that only retrieval can answer."""
    from rag_job.local.demo import run_demo

    run_demo(out, max_steps=max_steps, seed=seed)


@app.command("serve-retrieval")
def serve_retrieval(
    knowledge_base: Annotated[str | None, typer.Option(help="Knowledge-base directory.")] = None,
    name: Annotated[
        str | None, typer.Option(help="Actor name prefix (the RagRetrievalCluster's name).")
    ] = None,
    actors_per_shard: Annotated[int, typer.Option(min=1, help="Retrieval actors per index shard.")] = 1,
    interval: Annotated[float, typer.Option(help="Seconds between health reports.")] = 30.0,
) -> None:
    """Run the long-lived retrieval service on the cluster this pod belongs to (RagRetrievalCluster).

    Without options it reads its config from $RAG_RETRIEVAL_SERVICE_CONFIG (set by the operator).
    """
    import os

    import ray
    from pydantic import ValidationError

    from rag_job.config import SERVICE_CONFIG_ENV_VAR, ConfigError, ServiceConfig, decode_from_env
    from rag_job.knowledge.layout import KnowledgeBaseLayoutError
    from rag_job.retrieval.service import serve_forever

    try:
        if knowledge_base and name:
            config = ServiceConfig(
                name=name, knowledge_base=knowledge_base, actors_per_shard=actors_per_shard
            )
        elif os.environ.get(SERVICE_CONFIG_ENV_VAR):
            config = ServiceConfig.model_validate_json(decode_from_env(os.environ[SERVICE_CONFIG_ENV_VAR]))
        else:
            _usage(f"pass --knowledge-base and --name, or set {SERVICE_CONFIG_ENV_VAR}", "--knowledge-base")
    except ValidationError as err:
        from rag_job.config import format_validation_error

        _fail(format_validation_error(err, "retrieval service config"))
    except ConfigError as err:
        _fail(str(err))
    ray.init(address="auto")
    try:
        serve_forever(config, interval)
    except KnowledgeBaseLayoutError as err:
        _fail(str(err))


def _print_summary(metrics: dict, output_dir: str) -> None:
    keys = (
        "steps",
        "loss_start",
        "loss_end",
        "retrieval_latency_ms_p50",
        "retrieval_latency_ms_p95",
        "eval_before",
        "eval_after",
    )
    for key in keys:
        if metrics.get(key) is not None:
            typer.echo(f"{key}: {metrics[key]}")
    typer.echo(f"model, metrics.json and loss.png in {output_dir}")


def _ray_address_given() -> bool:
    import os

    return bool(os.environ.get("RAY_ADDRESS"))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0, 1 for a failed input or run, 2 for usage)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        app(args=argv, prog_name="python -m rag_job")
    except SystemExit as done:  # typer always exits; the code is what main returns
        return done.code if isinstance(done.code, int) else int(done.code is not None)
    return 0
