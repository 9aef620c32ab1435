"""`python -m rag_job bench end-to-end`: frozen retriever vs end-to-end retriever training.

On the demo's held-out-entity knowledge base (rag_job/local/entity_kb.py, the same tiny models
the demo builds), with the same seed and steps: the demo's setting (question encoder and index
frozen), the question encoder trained over the frozen index (plain RAG fine-tuning), and
end-to-end (question and context encoders trained, the index refreshed every N steps). Held-out
recall@k and EM come from each run's own end-of-training evaluation; the refresh cost (encode,
build, swap seconds) and the step time while a refresh runs vs not from its metrics.json.

`--split-cpus` runs the trainer nodes on half this machine's CPUs and the retrieval nodes (the
encode actors' home) on the other half, as separate trainer and retrieval pods would be: without
it every node shares every CPU, so a refresh's encoding slows the trainers as it would not on
Kubernetes.

The defaults leave retrieval something to win: a weak DPR (held-out recall@3 well below 1), a
generator that has learnt to read (so the RAG loss rewards the passage holding the answer), and
the encoders at their own, lower learning rate (docs/end-to-end-retriever.md has the figures).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

RUNS = ("frozen", "question_encoder", "end_to_end")


@dataclass(frozen=True)
class EndToEndBenchConfig:
    out_dir: Path
    #: The demo's size: held-out EM then means something (a 400-entity reader warm-up leaves EM ~0).
    entities: int = 2000
    steps: int = 300
    refresh_every_steps: int = 25
    seed: int = 0
    #: A weak start on purpose: 30 steps leave held-out recall@3 at 0.15-0.43 (200: 0.98, a
    #: ceiling no run can beat), so there is retrieval left for training to win.
    dpr_steps: int = 30
    #: 0: no reading warm-up of the generator. With it the generator's likelihood rewards the
    #: passage that holds the answer: the only signal the RAG loss gives the retriever.
    reader_steps: int = 2000
    runs: tuple[str, ...] = RUNS
    #: The generator's rate (the demo's).
    learning_rate: float = 2e-3
    #: The DPR encoders' rate: at 2e-3 they drift off their index (recall fell to 0), and at 1e-4
    #: end-to-end fell below the frozen retriever (0.427 -> 0.377, 2000 entities, seed 0).
    retriever_learning_rate: float | None = 3e-5
    #: Trainer and retrieval nodes on separate halves of the CPUs (see the module docstring).
    split_cpus: bool = False
    #: What re-encodes on a refresh (retrieval.end_to_end.encode_on): the encode actors on the
    #: retrieval nodes, or the trainers themselves (each its slice, training paused).
    encode_on: str = "retrieval_nodes"

    def validate(self) -> None:
        if self.split_cpus:
            from rag_job.local.cluster import split_usable_cpus

            try:
                split_usable_cpus()
            except ValueError as err:
                raise ValueError(f"--split-cpus: {err}") from None
        if self.entities < 50 or self.steps < 1 or self.refresh_every_steps < 1:
            raise ValueError("--entities must be at least 50, --steps and --refresh-every at least 1")
        if self.learning_rate <= 0 or (
            self.retriever_learning_rate is not None and self.retriever_learning_rate <= 0
        ):
            raise ValueError("--learning-rate and --retriever-learning-rate must be positive")
        if self.encode_on not in ("retrieval_nodes", "trainers"):
            raise ValueError(f"--encode-on takes retrieval_nodes or trainers; got {self.encode_on!r}")
        if not self.runs or set(self.runs) - set(RUNS):
            raise ValueError(f"--runs takes some of {', '.join(RUNS)}; got {', '.join(self.runs)}")


def _config(out: Path, inputs, run: str, bench: EndToEndBenchConfig, kb: Path):
    from rag_job.local.demo import demo_config

    config = demo_config(out, inputs, "retrieval", bench.steps, bench.seed)
    raw = json.loads(config.to_json())
    raw["name"] = f"e2e-bench-{run.replace('_', '-')}"
    raw["output_dir"] = str(out / run)
    raw["retrieval"]["knowledge_base"] = str(kb)
    raw["training"]["train_question_encoder"] = run != "frozen"
    raw["training"]["learning_rate"] = bench.learning_rate
    raw["training"]["retriever_learning_rate"] = bench.retriever_learning_rate
    if run == "end_to_end":
        raw["retrieval"]["end_to_end"] = {
            "refresh_every_steps": bench.refresh_every_steps,
            "encode_on": bench.encode_on,
            **({"encode_actors": 2} if bench.encode_on == "retrieval_nodes" else {}),
        }
    return type(config).from_dict(raw, source=f"bench {run} config")


def run_end_to_end_bench(bench: EndToEndBenchConfig) -> dict:
    import ray
    from rich.console import Console

    from rag_job.local.cluster import (
        LocalLayout,
        connect,
        split_usable_cpus,
        start_local_cluster,
        usable_cpus,
    )
    from rag_job.local.demo import prepare_inputs
    from rag_job.train.driver import run_training

    out = bench.out_dir.resolve() / "end-to-end"
    if out.exists():
        shutil.rmtree(out)
    console = Console()
    inputs = prepare_inputs(
        out, console, bench.seed, bench.entities, dpr_steps=bench.dpr_steps, reader_steps=bench.reader_steps
    )
    trainer_cpus, retrieval_cpus = split_usable_cpus() if bench.split_cpus else (None, None)
    layout = LocalLayout(
        trainer_nodes=2, retrieval_nodes=2, trainer_cpu_set=trainer_cpus, retrieval_cpu_set=retrieval_cpus
    )
    cpus = {
        "usable": sorted(usable_cpus()),
        "trainer_nodes": sorted(trainer_cpus) if trainer_cpus else None,
        "retrieval_nodes": sorted(retrieval_cpus) if retrieval_cpus else None,
    }
    cluster = start_local_cluster(layout)
    runs = {}
    try:
        connect(cluster)
        for number, run in enumerate(bench.runs, start=1):
            console.print(f"run {number}/{len(bench.runs)} {run}: {bench.steps} steps")
            kb = shutil.copytree(inputs.knowledge_bases["retrieval"], out / f"kb-{run}")  # versions go here
            started = time.perf_counter()
            run_training(_config(out, inputs, run, bench, kb))
            metrics = json.loads((out / run / "metrics.json").read_text())
            runs[run] = {
                "seconds": round(time.perf_counter() - started, 1),
                **{f"{k}_before": v for k, v in _scores(metrics["eval_before"]).items()},
                **{f"{k}_after": v for k, v in _scores(metrics["eval_after"]).items()},
                "loss_end": metrics["loss_end"],
                "end_to_end": {k: v for k, v in (metrics.get("end_to_end") or {}).items() if k != "starts"},
            }
            console.print(_progress_line(run, runs[run]))
    finally:
        ray.shutdown()
        cluster.shutdown()
    result = {"config": {k: str(v) for k, v in bench.__dict__.items()}, "cpus": cpus, "runs": runs}
    (out / "end_to_end.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "end_to_end.md").write_text(end_to_end_markdown(result))
    return result


def _progress_line(run: str, result: dict) -> str:
    def cell(value) -> str:
        return "-" if value is None else f"{value:.3f}"

    return (
        f"  {run}: held-out recall@k {cell(result['recall_at_k_before'])} -> {cell(result['recall_at_k_after'])}, "
        f"EM {cell(result['em_before'])} -> {cell(result['em_after'])}, {result['seconds']} s"
    )


def _scores(metrics: dict | None) -> dict:
    metrics = metrics or {}
    return {"recall_at_k": metrics.get("eval_retrieval_recall_at_k"), "em": metrics.get("eval_exact_match")}


def end_to_end_markdown(result: dict) -> str:
    def cell(value) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = [
        "| run | held-out recall@k before -> after | held-out EM before -> after | final loss | seconds |",
        "|---|---|---|---|---|",
    ]
    for run, r in result["runs"].items():
        lines.append(
            f"| {run} | {cell(r['recall_at_k_before'])} -> {cell(r['recall_at_k_after'])} | "
            f"{cell(r['em_before'])} -> {cell(r['em_after'])} | {cell(r['loss_end'])} | {r['seconds']} |"
        )
    lines.append(f"\n{_cpus_line(result.get('cpus'))}")
    e2e = result["runs"].get("end_to_end", {}).get("end_to_end") or {}
    for refresh in e2e.get("refreshes", []):
        lines.append(
            f"\nrefresh to v{refresh['version']} (encoder of step {refresh['encoded_at_step']}): encode "
            f"{refresh['encode_seconds']:.2f}s, build {refresh['build_seconds']:.2f}s, swap "
            f"{refresh['swap_seconds']:.2f}s, total {refresh['total_seconds']:.2f}s, served from step "
            f"{refresh['finished_at_step']}; encoded on {refresh.get('encoded_on', 'retrieval_nodes')}, "
            f"trainers paused {refresh.get('trainer_pause_seconds', 0.0):.2f}s"
        )
    if e2e:
        lines.append(
            f"\nstep time during a refresh {cell(e2e.get('step_time_s_during_refresh'))}s vs otherwise "
            f"{cell(e2e.get('step_time_s_otherwise'))}s (ratio {cell(e2e.get('step_time_ratio_during_refresh'))}); "
            f"refreshes skipped (one still running) at steps {e2e.get('skipped_steps')}"
        )
    return "\n".join(lines) + "\n"


def _cpus_line(cpus: dict | None) -> str:
    if not cpus:
        return "CPUs: not recorded"
    if cpus.get("trainer_nodes") is None:
        return f"CPUs: every node shares CPUs {cpus['usable']} (no --split-cpus)"
    return (
        f"CPUs (--split-cpus): trainer nodes on {cpus['trainer_nodes']}, retrieval nodes (encode actors) "
        f"on {cpus['retrieval_nodes']}; head and driver on {cpus['usable']}"
    )
