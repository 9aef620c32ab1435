"""`make demo`: the whole product on one laptop, from the shipped knowledge base to a better model.

Builds the tiny models and a 2-shard index, starts a local Ray cluster shaped like
the Kubernetes layout (2 trainer nodes, 2 retrieval nodes), fine-tunes with Ray
retrieval and prints what changed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rag_job.config import JobConfig

EXAMPLE_DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
#: Enough for the tiny generator to learn most of the 349 training answers (EM ~0.8) on 2 cores.
DEMO_STEPS = 400


def demo_config(out: Path, models: Path, kb_dir: Path, max_steps: int) -> JobConfig:
    return JobConfig.from_dict(
        {
            "name": "demo",
            "model": {"path": str(models / "rag"), "type": "rag_token"},
            "retrieval": {"knowledge_base": str(kb_dir), "mode": "ray", "actors_per_shard": 1, "n_docs": 3},
            "data": {"train_path": str(EXAMPLE_DATA / "qa_train.jsonl")},
            "training": {
                "max_steps": max_steps,
                "batch_size": 8,
                "learning_rate": 3e-3,
                "warmup_steps": 50,
                # Keep the warmed-up retriever: at this learning rate the tiny question
                # encoder would drift away from the index it was built with.
                "train_question_encoder": False,
                "log_every_steps": 25,
            },
            "scaling": {"num_workers": 2, "cpus_per_worker": 1},
            "checkpoint": {"storage_path": str(out / "checkpoints"), "every_steps": max(1, max_steps // 2)},
            "evaluation": {"at_start": True, "at_end": True, "batch_size": 32, "max_new_tokens": 8},
            "output_dir": str(out),
        },
        source="demo config",
    )


def run_demo(out: Path, max_steps: int = DEMO_STEPS) -> dict:
    import shutil

    from rag_job.knowledge.index import encode_passages, write_knowledge_base
    from rag_job.knowledge.ingest import ingest
    from rag_job.local.cluster import LocalLayout, connect, start_local_cluster
    from rag_job.local.tiny_models import build_tiny_models, retrieval_pairs_for
    from rag_job.train.data import read_examples, read_qa_texts
    from rag_job.train.driver import run_training

    console = Console()
    started = time.perf_counter()
    out = out.resolve()
    if out.exists():
        shutil.rmtree(out)  # a demo starts from scratch: no resume from an older run's checkpoints
    kb_file = EXAMPLE_DATA / "knowledge_base.jsonl"
    console.rule("1/3 tiny models and index")
    report = ingest(kb_file)
    qa_train = EXAMPLE_DATA / "qa_train.jsonl"
    corpus = [f"{p.title} {p.text}" for p in report.passages] + read_qa_texts(qa_train)
    pairs = retrieval_pairs_for(report.passages, read_examples(qa_train))
    paths = build_tiny_models(corpus, out / "models", retrieval_pairs=pairs)
    embeddings = encode_passages(report.passages, paths.ctx_encoder)
    meta = write_knowledge_base(
        report.passages, embeddings, out / "kb", "flat", shards=2, ctx_encoder=str(paths.ctx_encoder)
    )
    console.print(f"{report.summary()}; index: {len(meta.shards)} shards, {meta.index_bytes} bytes")

    console.rule("2/3 fine-tuning on a local Ray cluster: 2 trainer nodes, 2 retrieval nodes")
    import ray

    cluster = start_local_cluster(LocalLayout(trainer_nodes=2, retrieval_nodes=2))
    try:
        connect(cluster, log_to_driver=True)
        node_names = _node_names()
        summary = run_training(demo_config(out, out / "models", out / "kb", max_steps))
    finally:
        ray.shutdown()
        cluster.shutdown()

    console.rule("3/3 results")
    metrics = json.loads((out / "metrics.json").read_text())
    _print_results(console, metrics, node_names)
    console.print(
        f"metrics: {out / 'metrics.json'}   loss curve: {out / 'loss.png'}   model: {out / 'model'}"
    )
    console.print(f"demo finished in {time.perf_counter() - started:.0f}s")
    return summary.metrics


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


def _print_results(console: Console, metrics: dict, node_names: dict[str, str]) -> None:
    before, after = metrics.get("eval_before") or {}, metrics.get("eval_after") or {}
    table = Table(title="RAG fine-tuning on the shipped knowledge base (training questions)")
    table.add_column("metric")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    for key, label in (
        ("eval_exact_match", "exact match"),
        ("eval_f1", "F1"),
        ("eval_retrieval_recall_at_k", "gold passage in top k (recall@k)"),
        ("eval_retrieval_precision_at_k", "retrieval precision@k"),
    ):
        if key in before or key in after:
            table.add_row(
                label, f"{before.get(key, float('nan')):.3f}", f"{after.get(key, float('nan')):.3f}"
            )
    table.add_row("training loss", f"{metrics['loss_start']:.2f}", f"{metrics['loss_end']:.2f}")
    console.print(table)
    console.print(
        f"retrieval latency per call: p50 {metrics['retrieval_latency_ms_p50']:.1f} ms, "
        f"p95 {metrics['retrieval_latency_ms_p95']:.1f} ms over {metrics['steps']} steps"
    )
    placement = Table(title="where things ran")
    placement.add_column("process")
    placement.add_column("node")
    for rank, node in enumerate(metrics.get("trainer_nodes", [])):
        placement.add_row(f"trainer rank {rank}", node_names.get(node, node[:12]))
    for actor in metrics.get("retrieval_actors", []):
        placement.add_row(
            f"{actor['actor']} ({actor['calls']} calls)",
            node_names.get(actor["node_id"], actor["node_id"][:12]),
        )
    console.print(placement)
