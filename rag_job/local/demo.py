"""`make demo`: the whole product on one laptop, and the proof that the model answers from what
it retrieves.

1. Generates a knowledge base of invented entities whose questions are split by entity
   (rag_job/local/entity_kb.py), builds tiny models (DPR warmed up on the corpus, a generator
   warmed up to read on training entities' passages only) and two 2-shard indexes: the real
   one, and one whose vectors are random, so every question retrieves unrelated passages.
2. Starts a local Ray cluster shaped like the Kubernetes layout (2 trainer nodes, 2 retrieval
   nodes) and fine-tunes twice with the same seed and steps: with retrieval, and with the
   unrelated passages (the ablation).
3. Evaluates both on held-out questions (about entities no training question mentions) and on
   training questions, before and after, and prints one table; `metrics.json` holds it all.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rag_job.config import JobConfig
from rag_job.local.entity_kb import EntityKBFiles

#: Fine-tuning steps of each of the two runs.
DEMO_STEPS = 600
#: Invented entities (one passage each, three questions each; a fifth are held out).
DEMO_ENTITIES = 2000
#: Questions scored per evaluation (held-out, and a sample of the training questions).
EVAL_SAMPLES = 300
RUNS = ("retrieval", "unrelated")


@dataclass(frozen=True)
class DemoInputs:
    data: EntityKBFiles
    model: Path
    knowledge_bases: dict[str, Path]  # run -> index directory


def demo_config(out: Path, inputs: DemoInputs, run: str, max_steps: int, seed: int) -> JobConfig:
    return JobConfig.from_dict(
        {
            "name": f"demo-{run}",
            "model": {"path": str(inputs.model), "type": "rag_token"},
            "retrieval": {
                "knowledge_base": str(inputs.knowledge_bases[run]),
                "mode": "ray",
                "actors_per_shard": 1,
                "n_docs": 3,
            },
            "data": {"train_path": str(inputs.data.qa_train), "eval_path": str(inputs.data.qa_heldout)},
            "training": {
                "max_steps": max_steps,
                "batch_size": 8,
                "learning_rate": 2e-3,
                "warmup_steps": 20,
                # Keep the warmed-up retriever: at this learning rate the tiny question
                # encoder would drift away from the index it was built with.
                "train_question_encoder": False,
                "log_every_steps": 25,
                "seed": seed,
            },
            "scaling": {"num_workers": 2, "cpus_per_worker": 1},
            "checkpoint": {"storage_path": str(out / "checkpoints"), "every_steps": max_steps},
            "evaluation": {
                "at_start": True,
                "at_end": True,
                "max_samples": EVAL_SAMPLES,
                "batch_size": 50,
                "max_new_tokens": 8,
            },
            "output_dir": str(out / run),
        },
        source="demo config",
    )


def prepare_inputs(
    out: Path,
    console: Console,
    seed: int,
    entities: int = DEMO_ENTITIES,
    dpr_steps: int = 600,
    reader_steps: int = 2000,
) -> DemoInputs:
    """The knowledge base and questions, the tiny models, the real and the unrelated index
    (`reader_steps` 0: no reading warm-up of the generator)."""
    import numpy as np

    from rag_job.knowledge.index import encode_passages, write_knowledge_base
    from rag_job.knowledge.ingest import ingest
    from rag_job.local.entity_kb import generate_entity_kb, write_entity_kb
    from rag_job.local.tiny_models import build_tiny_models, reading_pairs_for, retrieval_pairs_for
    from rag_job.train.data import read_examples, read_qa_texts

    kb = generate_entity_kb(entities=entities, seed=seed)
    data = write_entity_kb(kb, out / "data")
    report = ingest(data.knowledge_base)
    train = read_examples(data.qa_train)
    console.print(
        f"{report.summary()}; {len(kb.train)} training questions, {len(kb.heldout)} held-out questions "
        f"about {len(kb.heldout) // 3} entities no training question mentions"
    )
    # The generator learns to read only on passages the training questions are about.
    trained_on = {gold for example in train for gold in example.gold_ids}
    reading = reading_pairs_for([p for p in report.passages if p.source_id in trained_on])
    corpus = [f"{p.title} {p.text}" for p in report.passages] + read_qa_texts(data.qa_train)
    paths = build_tiny_models(
        corpus,
        out / "models",
        retrieval_pairs=retrieval_pairs_for(report.passages, train),
        reading_pairs=reading if reader_steps else None,
        reader_steps=reader_steps,
        seed=seed,
        dpr_steps=dpr_steps,
    )
    embeddings = encode_passages(report.passages, paths.ctx_encoder)
    # The ablation's index: the same passages under random vectors of the same size, so each
    # question retrieves n_docs passages unrelated to it (retrieval replaced, all else equal).
    rng = np.random.default_rng(seed)
    unrelated = rng.standard_normal(embeddings.shape).astype(embeddings.dtype)
    unrelated *= np.linalg.norm(embeddings, axis=1, keepdims=True) / np.linalg.norm(
        unrelated, axis=1, keepdims=True
    )
    knowledge_bases = {}
    for run, vectors in zip(RUNS, (embeddings, unrelated), strict=True):
        knowledge_bases[run] = out / f"kb-{run}"
        meta = write_knowledge_base(
            report.passages,
            vectors,
            knowledge_bases[run],
            "flat",
            shards=2,
            ctx_encoder=str(paths.ctx_encoder),
        )
    console.print(f"indexes: {len(meta.shards)} shards each, {meta.index_bytes} bytes")
    return DemoInputs(data=data, model=paths.rag, knowledge_bases=knowledge_bases)


def run_demo(out: Path, max_steps: int = DEMO_STEPS, seed: int = 0) -> dict:
    import shutil

    import ray

    from rag_job.local.cluster import LocalLayout, connect, start_local_cluster
    from rag_job.train.driver import run_training

    console = Console()
    started = time.perf_counter()
    out = out.resolve()
    if out.exists():
        shutil.rmtree(out)  # a demo starts from scratch: no resume from an older run's checkpoints
    console.rule("1/3 knowledge base, tiny models, indexes")
    inputs = prepare_inputs(out, console, seed)

    console.rule("2/3 fine-tuning twice on a local Ray cluster (2 trainer nodes, 2 retrieval nodes)")
    cluster = start_local_cluster(LocalLayout(trainer_nodes=2, retrieval_nodes=2))
    runs: dict[str, dict] = {}
    try:
        connect(cluster, log_to_driver=True)
        node_names = _node_names()
        for run in RUNS:
            console.print(
                f"run {run!r}: " + ("retrieval as usual" if run == "retrieval" else "unrelated passages")
            )
            run_training(demo_config(out, inputs, run, max_steps, seed))
            runs[run] = json.loads((out / run / "metrics.json").read_text())
    finally:
        ray.shutdown()
        cluster.shutdown()

    console.rule("3/3 results")
    summary = summarize(out, inputs, runs, max_steps, seed)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    _print_results(console, summary, runs["retrieval"], node_names)
    console.print(
        f"metrics: {out / 'metrics.json'}   per run: {out}/{{{','.join(RUNS)}}}/ (metrics.json, loss.png, model, export)"
    )
    console.print(f"demo finished in {summary['seconds']:.0f}s")
    return summary


def _scores(metrics: dict | None) -> dict:
    metrics = metrics or {}
    return {
        "em": metrics.get("eval_exact_match"),
        "f1": metrics.get("eval_f1"),
        "recall_at_k": metrics.get("eval_retrieval_recall_at_k"),
    }


def _before_after(before: dict | None, after: dict | None) -> dict:
    merged = {f"{key}_before": value for key, value in _scores(before).items()}
    merged.update({f"{key}_after": value for key, value in _scores(after).items()})
    return merged


def summarize(out: Path, inputs: DemoInputs, runs: dict[str, dict], max_steps: int, seed: int) -> dict:
    """Held-out figures from each run's own evaluation (Ray retrieval), training-question
    figures scored here in one process, before (the built model) and after (the trained one)."""
    from rag_job.train.evaluate_saved import evaluate_saved_model

    figures = {}
    for run in RUNS:
        config = demo_config(out, inputs, run, max_steps, seed)
        train_before = evaluate_saved_model(config, str(inputs.model), inputs.data.qa_train)
        train_after = evaluate_saved_model(config, str(out / run / "model"), inputs.data.qa_train)
        metrics = runs[run]
        figures[run] = {
            "heldout": _before_after(metrics.get("eval_before"), metrics.get("eval_after")),
            "train": _before_after(train_before, train_after),
            "loss_start": metrics["loss_start"],
            "loss_end": metrics["loss_end"],
            "steps": metrics["steps"],
        }
    main = figures["retrieval"]
    return {
        **{key: main[key] for key in ("heldout", "train", "loss_start", "loss_end", "steps")},
        "ablation": figures["unrelated"],
        "seed": seed,
        "eval_samples": EVAL_SAMPLES,
        "retrieval_latency_ms_p50": runs["retrieval"]["retrieval_latency_ms_p50"],
        "retrieval_latency_ms_p95": runs["retrieval"]["retrieval_latency_ms_p95"],
    }


def _node_names() -> dict[str, str]:
    """Readable names for the emulated pods, by Ray node id."""
    import ray

    from rag_job.config import RETRIEVAL_RESOURCE, TRAINER_RESOURCE

    names, counters = {}, {"trainer": 0, "retrieval": 0, "head": 0}
    for node in sorted(ray.nodes(), key=lambda n: n["NodeID"]):
        kind = (
            "trainer"
            if TRAINER_RESOURCE in node["Resources"]
            else "retrieval"
            if RETRIEVAL_RESOURCE in node["Resources"]
            else "head"
        )
        names[node["NodeID"]] = f"{kind}-node-{counters[kind]}"
        counters[kind] += 1
    return names


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _print_results(console: Console, summary: dict, retrieval_run: dict, node_names: dict[str, str]) -> None:
    ablation = summary["ablation"]
    table = Table(
        title=f"RAG fine-tuning, {summary['steps']} steps, same seed: with retrieval vs unrelated passages"
    )
    table.add_column("")
    table.add_column("before", justify="right")
    table.add_column("after, with retrieval", justify="right")
    table.add_column("after, unrelated passages", justify="right")
    rows = (
        ("held-out questions: exact match", "heldout", "em"),
        ("held-out questions: F1", "heldout", "f1"),
        ("held-out: gold passage in top 3", "heldout", "recall_at_k"),
        ("training questions: exact match", "train", "em"),
    )
    for label, split, key in rows:
        table.add_row(
            label,
            _figure(summary[split][f"{key}_before"]),
            _figure(summary[split][f"{key}_after"]),
            _figure(ablation[split][f"{key}_after"]),
        )
    table.add_row(
        "training loss (NLL per question)",
        f"{summary['loss_start']:.2f}",
        f"{summary['loss_end']:.2f}",
        f"{ablation['loss_end']:.2f}",
    )
    console.print(table)
    console.print(
        "Held-out questions ask about entities no training question mentions, with invented answers that "
        "only their passage states: the model answers them by reading what it retrieved."
    )
    console.print(
        f"retrieval latency per call: p50 {summary['retrieval_latency_ms_p50']:.1f} ms, "
        f"p95 {summary['retrieval_latency_ms_p95']:.1f} ms over {summary['steps']} steps"
    )
    placement = Table(title="where things ran (run with retrieval)")
    placement.add_column("process")
    placement.add_column("node")
    for rank, node in enumerate(retrieval_run.get("trainer_nodes", [])):
        placement.add_row(f"trainer rank {rank}", node_names.get(node, node[:12]))
    for actor in retrieval_run.get("retrieval_actors", []):
        placement.add_row(
            f"{actor['actor']} ({actor['calls']} calls)",
            node_names.get(actor["node_id"], actor["node_id"][:12]),
        )
    console.print(placement)
