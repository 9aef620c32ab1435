"""`python -m rag_job bench ...`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Benchmarks (retrieval, train, startup).",
    rich_markup_mode=None,
)

#: `--scale`: the largest flat point a 16-core / 64 GB machine holds. 2M x 768 is 5.7 GiB of index
#: and 5.7 GiB of embeddings, mapped once in the page cache whatever R; building it peaks near
#: three copies (vectors, Arrow table, FAISS index: ~18 GiB). 4M would peak near 37 GiB while its
#: 23 GiB of files must also stay cached for the run, with 8 trainers and the actors beside them.
SCALE_RETRIEVAL = {
    "passages": 2_000_000,
    "index_type": "flat",
    "workers": "1,2,4,8",
    "replicas": "1,2,4",
    "calls": 30,
    "warmup": 3,
}


def _int_list(option: str, text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{option} takes comma-separated integers, like 1,2,4; got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise typer.BadParameter(f"{option} takes integers of at least 1, like 1,2,4; got {text!r}")
    return values


def _fail(message: str, code: int = 1) -> None:
    """Exit with the message: 1 for what went wrong while running, 2 for a bad option (usage)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=code)


def _run_and_print(
    config: Any, run: Callable[[Any], dict], markdown: Callable[[dict], str], out: Path, *written: str
) -> None:
    """Validate and run one benchmark, print its tables; a bad option exits 2 and a failed run
    (a missing or corrupt knowledge base, say) exits 1, each with the message."""
    try:
        config.validate()
    except ValueError as err:
        _fail(str(err), code=2)
    try:
        result = run(config)
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err))
    typer.echo(markdown(result))
    typer.echo("\nwrote " + ", ".join(str(out / name) for name in written))


@app.command()
def retrieval(
    out: Annotated[
        Path,
        typer.Option(
            help="Output directory: retrieval.json, .md, .png (--sweep: sweep.json, .md, .png; "
            "built indexes are cached under OUT/cache)."
        ),
    ] = Path("out/bench"),
    passages: Annotated[
        int | None, typer.Option(help="Synthetic passages N (default 20000; --scale 2M).")
    ] = None,
    dim: Annotated[int, typer.Option(help="Vector dimension D.")] = 768,
    index_type: Annotated[str | None, typer.Option(help="flat, hnsw or ivfpq (default flat).")] = None,
    shards: Annotated[
        int | None, typer.Option(help="Index shards S (each Ray replica set serves all S; default 1).")
    ] = None,
    knowledge_base: Annotated[
        Path | None,
        typer.Option(
            "--knowledge-base",
            help="Benchmark a real knowledge base directory instead of synthetic vectors.",
        ),
    ] = None,
    workers: Annotated[str | None, typer.Option(help="Trainer process counts W (default 1,2,4).")] = None,
    replicas: Annotated[str | None, typer.Option(help="Ray replica counts R (default 1,2,4).")] = None,
    batch_size: Annotated[
        int,
        typer.Option("--batch-size", help="Queries per retrieval call B (per-GPU batch in the blog: 8)."),
    ] = 8,
    k: Annotated[int, typer.Option(help="Documents per query.")] = 5,
    calls: Annotated[int | None, typer.Option(help="Timed calls per trainer (default 30).")] = None,
    warmup: Annotated[int | None, typer.Option(help="Untimed calls first (default 3).")] = None,
    pause_ms: Annotated[
        float, typer.Option(help="Idle pause between calls, emulating a training step.")
    ] = 0.0,
    faiss_threads: Annotated[int, typer.Option(help="OpenMP threads in every searching process.")] = 1,
    scale: Annotated[bool, typer.Option("--scale", help="The large run (2M passages, W up to 8).")] = False,
    sweep: Annotated[
        bool,
        typer.Option(
            "--sweep",
            help="Sweep N x index type x S (and W x R): latency, memory per actor, build time, and "
            "latency's growth exponent in N per mode.",
        ),
    ] = False,
    profile: Annotated[
        bool,
        typer.Option(
            "--profile",
            help="Ray and in-process only (no torch): where a Ray call's time goes, phase by phase.",
        ),
    ] = False,
    grid: Annotated[
        str,
        typer.Option(
            help="--sweep grid: small (minutes on 2 cores) or full (20k to 1M, 4M IVF-PQ; big machine)."
        ),
    ] = "small",
) -> None:
    """Per-call latency of torch.distributed, Ray and in-process retrieval, side by side."""
    from rag_job.bench.retrieval import RetrievalBenchConfig, markdown, run_retrieval_bench

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    defaults = RetrievalBenchConfig()
    per_call = RetrievalBenchConfig(
        dim=dim,
        batch=batch_size,
        k=k,
        calls=calls or defaults.calls,
        warmup=warmup if warmup is not None else defaults.warmup,
        pause_ms=pause_ms,
        faiss_threads=faiss_threads,
        out_dir=out,
    )
    if sweep:
        given = {
            "--passages": passages, "--index-type": index_type, "--shards": shards,
            "--knowledge-base": knowledge_base, "--scale": scale or None,
        }  # fmt: skip
        _sweep(out, grid, workers, replicas, per_call, [name for name, v in given.items() if v is not None])
        return
    preset = SCALE_RETRIEVAL if scale else {}
    config = replace(
        per_call,
        passages=passages or preset.get("passages", defaults.passages),
        index_type=index_type or preset.get("index_type", defaults.index_type),
        shards=shards or 1,
        kb_dir=knowledge_base,
        workers=_int_list("--workers", workers or preset.get("workers", "1,2,4")),
        replicas=_int_list("--replicas", replicas or preset.get("replicas", "1,2,4")),
        calls=calls or preset.get("calls", defaults.calls),
        warmup=warmup if warmup is not None else preset.get("warmup", defaults.warmup),
        extra_settings={"preset": "--scale" if scale else "default (sized for 2 cores)"},
        **({"modes": ("ray", "local")} if profile else {}),
    )
    _run_and_print(
        config, run_retrieval_bench, markdown, out, "retrieval.json", "retrieval.md", "retrieval.png"
    )


def _sweep(
    out: Path, grid: str, workers: str | None, replicas: str | None, per_call: Any, refused: list[str]
) -> None:
    """`retrieval --sweep`: the grid decides N, index type and S; --workers / --replicas replace its W / R."""
    from rag_job.bench.report import sweep_markdown
    from rag_job.bench.sweep import GRIDS, SweepConfig, run_sweep

    if refused:
        _fail(f"--sweep takes N, index type and shards from --grid; drop {', '.join(refused)}", code=2)
    if grid not in GRIDS:
        _fail(f"--grid must be one of {', '.join(GRIDS)}; got {grid!r}", code=2)
    chosen = replace(
        GRIDS[grid],
        **({"workers": _int_list("--workers", workers)} if workers else {}),
        **({"replicas": _int_list("--replicas", replicas)} if replicas else {}),
    )
    config = SweepConfig(grid=chosen, grid_name=grid, cell=per_call, out_dir=out)
    _run_and_print(config, run_sweep, sweep_markdown, out, "sweep.json", "sweep.md", "sweep.png")


@app.command()
def train(
    out: Annotated[Path, typer.Option(help="Output directory: train.json, train.md.")] = Path("out/bench"),
    workers: Annotated[int, typer.Option(help="Ray Train workers.")] = 2,
    steps: Annotated[int, typer.Option(help="Optimizer steps per mode.")] = 12,
    batch_size: Annotated[int, typer.Option(help="Per-worker batch size.")] = 8,
    modes: Annotated[str, typer.Option(help="Retrieval modes to compare (ray, torch, local).")] = "ray,torch",
    replicas: Annotated[int, typer.Option(help="Ray retrieval replicas per shard.")] = 2,
) -> None:
    """Samples/s, step time and retrieval's share of the step of the tiny RAG fine-tune, per mode."""
    from rag_job.bench.train import TrainBenchConfig, run_train_bench, train_markdown

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    chosen = tuple(m.strip() for m in modes.split(",") if m.strip())
    config = TrainBenchConfig(
        workers=workers, steps=steps, batch_size=batch_size, modes=chosen, replicas=replicas, out_dir=out
    )
    _run_and_print(config, run_train_bench, train_markdown, out, "train.json", "train.md")


@app.command("end-to-end")
def end_to_end(
    out: Annotated[Path, typer.Option(help="Output directory: end-to-end/end_to_end.{json,md}.")] = Path(
        "out/bench"
    ),
    entities: Annotated[int, typer.Option(help="Invented entities of the knowledge base.")] = 2000,
    steps: Annotated[int, typer.Option(help="Optimizer steps per run.")] = 300,
    refresh_every: Annotated[int, typer.Option(help="End-to-end: refresh the index every N steps.")] = 25,
    seed: Annotated[int, typer.Option(help="Seed of the data, models and training.")] = 0,
    dpr_steps: Annotated[
        int, typer.Option(help="DPR warm-up steps of the tiny models (few: a weak retriever to improve).")
    ] = 30,
    reader_steps: Annotated[
        int, typer.Option(help="Generator reading warm-up steps at most (0: none; EM then says little).")
    ] = 2000,
    runs: Annotated[str, typer.Option(help="Runs: frozen, question_encoder, end_to_end.")] = (
        "frozen,question_encoder,end_to_end"
    ),
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate of the generator.")] = 2e-3,
    retriever_learning_rate: Annotated[
        float, typer.Option(help="Peak learning rate of the DPR question and context encoders.")
    ] = 3e-5,
    split_cpus: Annotated[
        bool,
        typer.Option(
            "--split-cpus",
            help="Trainer nodes on half the CPUs, retrieval nodes (encode actors) on the other half, "
            "as separate pods would be (default: every node shares every CPU).",
        ),
    ] = False,
    encode_on: Annotated[
        str,
        typer.Option(
            help="Who re-encodes on a refresh: retrieval_nodes (encode actors, in the background) or "
            "trainers (each its slice, training paused)."
        ),
    ] = "retrieval_nodes",
) -> None:
    """Frozen retriever vs end-to-end retriever training on the demo's held-out entities."""
    from rag_job.bench.end_to_end import EndToEndBenchConfig, end_to_end_markdown, run_end_to_end_bench

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = EndToEndBenchConfig(
        out_dir=out,
        entities=entities,
        steps=steps,
        refresh_every_steps=refresh_every,
        seed=seed,
        dpr_steps=dpr_steps,
        reader_steps=reader_steps,
        runs=tuple(r.strip() for r in runs.split(",") if r.strip()),
        learning_rate=learning_rate,
        retriever_learning_rate=retriever_learning_rate,
        split_cpus=split_cpus,
        encode_on=encode_on,
    )
    _run_and_print(config, run_end_to_end_bench, end_to_end_markdown, out, "end-to-end/end_to_end.json")


@app.command()
def startup(
    out: Annotated[Path, typer.Option(help="Output directory: startup.json, startup.md.")] = Path(
        "out/bench"
    ),
    passages: Annotated[int, typer.Option(help="Synthetic passages in the knowledge base.")] = 200_000,
    dim: Annotated[
        int, typer.Option(help="Vector dimension; the tiny model is built at this hidden size.")
    ] = 768,
    replicas: Annotated[int, typer.Option(help="Retrieval actors (one flat shard each replica).")] = 2,
    workers: Annotated[int, typer.Option(help="Ray Train workers per job.")] = 1,
    steps: Annotated[int, typer.Option(help="Optimizer steps per job (start-up ends at the first).")] = 1,
    evict_page_cache: Annotated[
        bool,
        typer.Option(help="Drop the knowledge base from the page cache before the cold job (fresh pod)."),
    ] = True,
    repeats: Annotated[int, typer.Option(help="Warm/cold pairs to run; the table shows medians.")] = 1,
) -> None:
    """Job start-up (submit to first step) with its own retrieval actors vs a warm retrieval service."""
    from rag_job.bench.startup import StartupBenchConfig, run_startup_bench, startup_markdown

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = StartupBenchConfig(
        passages=passages,
        dim=dim,
        replicas=replicas,
        workers=workers,
        steps=steps,
        evict_page_cache=evict_page_cache,
        repeats=repeats,
        out_dir=out,
    )
    _run_and_print(config, run_startup_bench, startup_markdown, out, "startup.json", "startup.md")


@app.command("scale-table")
def scale_table(
    sweep: Annotated[Path, typer.Option(help="A sweep.json written by `bench retrieval --sweep`.")] = Path(
        "out/bench/sweep.json"
    ),
    out: Annotated[Path, typer.Option(help="Output directory: scale.json, scale.md.")] = Path("out/bench"),
    passages: Annotated[int, typer.Option(help="Passages to size for (wiki_dpr: 21,015,300).")] = 21_015_300,
    pod_memory: Annotated[
        str, typer.Option(help="Memory one retrieval pod may use; shards are the fewest that fit it.")
    ] = "64Gi",
) -> None:
    """Index bytes, shards, pods, pod memory and extrapolated latency at wiki_dpr's size, from a sweep."""
    from rag_job.bench.scale import scale_markdown, write_scale_table

    if passages < 1:
        _fail("--passages must be at least 1", code=2)
    from rag_operator.common.quantities import parse_quantity

    try:
        parse_quantity(pod_memory)
    except ValueError as err:
        _fail(f"--pod-memory: {err}", code=2)
    try:
        table = write_scale_table(sweep, out, passages, pod_memory)
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err))
    typer.echo(scale_markdown(table))
    typer.echo(f"\nwrote {out / 'scale.json'}, {out / 'scale.md'}")
