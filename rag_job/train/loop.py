"""`train_loop_per_worker`: what every Ray Train worker runs.

Everything the worker needs arrives in `loop_config` (the JobConfig as JSON and the
retrieval pool's names); progress and checkpoints leave only through
`ray.train.report`, and a restarted worker resumes from `ray.train.get_checkpoint()`.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from rag_job.config import JobConfig
from rag_job.train.data import QAExample, read_examples
from rag_job.train.timeline import mark

logger = logging.getLogger(__name__)

CHECKPOINT_MODEL_DIR = "model"
CHECKPOINT_STATE_FILE = "trainer_state.pt"


def _batches(examples: list[QAExample], batch_size: int, rank: int, world: int, epoch: int, seed: int):
    """This rank's micro-batches for one epoch: a seeded shuffle shared by all ranks, then rank::world."""
    order = np.random.default_rng(seed + epoch).permutation(len(examples))
    usable = len(order) - len(order) % world if len(order) >= world else len(order)
    mine = [examples[i] for i in order[:usable][rank::world]]
    return [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]


def _encode_batch(tokenizer, batch: list[QAExample], config: JobConfig, device):
    inputs = tokenizer.question_encoder(
        [ex.question for ex in batch],
        max_length=config.data.max_source_length,
        truncation=True,
        padding=True,
        return_tensors="pt",
    )
    labels = tokenizer.generator(
        [ex.answers[0] for ex in batch],
        max_length=config.data.max_target_length,
        truncation=True,
        padding=True,
        return_tensors="pt",
    )["input_ids"]
    return inputs["input_ids"].to(device), inputs["attention_mask"].to(device), labels.to(device)


def _save_checkpoint(
    directory: Path, model, tokenizer, optimizer, scheduler, state: dict, ctx_tokenizer=None
) -> None:
    import torch

    from rag_job.train.ctx_encoder import CTX_ENCODER_DIR, ctx_encoder_detached, save_ctx_encoder

    unwrapped = getattr(model, "module", model)
    if ctx_tokenizer is not None:  # end-to-end: the context encoder goes beside the RAG model
        save_ctx_encoder(unwrapped.rag.ctx_encoder, ctx_tokenizer, directory / CTX_ENCODER_DIR)
        with ctx_encoder_detached(unwrapped):
            unwrapped.save_pretrained(directory / CHECKPOINT_MODEL_DIR)
    else:
        unwrapped.save_pretrained(directory / CHECKPOINT_MODEL_DIR)
    tokenizer.save_pretrained(directory / CHECKPOINT_MODEL_DIR)
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), **state},
        directory / CHECKPOINT_STATE_FILE,
    )


def _total_steps(config: JobConfig, batches_per_epoch: int) -> int:
    if config.training.max_steps is not None:
        return config.training.max_steps
    per_epoch = max(1, batches_per_epoch // config.training.gradient_accumulation_steps)
    return per_epoch * (config.training.epochs or 1)


def optimizer_param_groups(model, config: JobConfig) -> list[dict]:
    """AdamW parameter groups of the trainable parameters: the generator (and anything else) at
    `training.learning_rate` first, then the DPR question and context encoders at
    `training.retriever_learning_rate` when that is set (one group otherwise)."""
    rate, retriever_rate = config.training.learning_rate, config.training.retriever_learning_rate
    trainable = [p for p in model.parameters() if p.requires_grad]
    if retriever_rate is None:
        return [{"params": trainable, "lr": rate}]
    towers = [model.rag.question_encoder, getattr(model.rag, "ctx_encoder", None)]
    in_towers = {id(p) for tower in towers if tower is not None for p in tower.parameters()}
    groups = [
        {"params": [p for p in trainable if id(p) not in in_towers], "lr": rate},
        {"params": [p for p in trainable if id(p) in in_towers], "lr": retriever_rate},
    ]
    return [group for group in groups if group["params"]]


def _maybe_inject_failure(step: int, rank: int, fail_at_step: int | None, marker: Path) -> None:
    """Fault injection for tests and drills: rank 0 dies once at `fail_at_step` (the marker makes it once)."""
    if fail_at_step is not None and rank == 0 and step == fail_at_step and not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(str(step))
        raise RuntimeError(f"injected failure at step {step}")


def _global_step_totals(loss_sum: float, samples: int, retries: int, world: int, device) -> tuple[float, int]:
    """(loss per question, retried retrieval calls) over every rank in one all-reduce, so the
    logged curve is the model's, not rank 0's, and a retry on any rank is counted."""
    import torch
    import torch.distributed as dist

    if world == 1:
        return loss_sum / max(samples, 1), retries
    totals = torch.tensor([loss_sum, float(samples), float(retries)], dtype=torch.float64, device=device)
    dist.all_reduce(totals)
    return float(totals[0] / totals[1].clamp(min=1)), int(totals[2])


def _window_metrics(history: list[dict], latencies: list[float], since: int) -> dict:
    """Metrics over the steps after `since`: what one report to Ray Train and one log line say."""
    window = [h for h in history if h["step"] > since] or history[-1:]
    last = window[-1]
    total_time = sum(h["step_time_s"] for h in window)
    return {
        "step": last["step"],
        "epoch": last["epoch"],
        "learning_rate": last["learning_rate"],
        "loss": float(np.mean([h["loss"] for h in window])),
        "step_time_s": total_time / len(window),
        "samples_per_s": float(np.mean([h["samples_per_s"] for h in window])),
        "retrieval_calls": len(latencies),
        "retrieval_latency_ms_mean": float(np.mean(latencies)) if latencies else 0.0,
        "retrieval_latency_ms_p50": float(np.percentile(latencies, 50)) if latencies else 0.0,
        "retrieval_latency_ms_p95": float(np.percentile(latencies, 95)) if latencies else 0.0,
        "retrieval_share_of_step": (sum(latencies) / 1000) / total_time if total_time else 0.0,
    }


#: How long a worker waits for Ray Train to register a reported checkpoint before training on.
CHECKPOINT_COMMIT_TIMEOUT_S = 120.0


def _wait_until_committed(step: int) -> None:
    """Block until Ray Train's controller has registered the checkpoint just reported.

    `ray.train.report` persists the files and returns; the controller registers the checkpoint
    when it next polls the workers. A worker lost in between would be restarted from the
    checkpoint before, repeating up to two checkpoint intervals of steps. Waiting here (one
    controller round trip per checkpoint) keeps the promise that at most `checkpoint.every_steps`
    steps are repeated. On a Ray Train without the call, or past the timeout, training goes on.
    """
    import ray.train

    get_all = getattr(ray.train, "get_all_reported_checkpoints", None)
    mode = getattr(getattr(ray.train, "CheckpointConsistencyMode", None), "COMMITTED", None)
    if get_all is None or mode is None:
        return
    try:
        get_all(consistency_mode=mode, timeout_s=CHECKPOINT_COMMIT_TIMEOUT_S)
    except Exception as err:  # a slow controller must not fail training; say so and go on
        logger.warning(
            "checkpoint of step %d not confirmed by Ray Train within %.0f s (%s): a restart now may "
            "resume from the checkpoint before it",
            step, CHECKPOINT_COMMIT_TIMEOUT_S, err,
        )  # fmt: skip


def _quiet_ray_train_reports() -> None:
    """Ray Train logs every report's whole metrics dict at INFO on every rank; our progress line says it once."""
    try:
        from ray.train.v2._internal.execution import context
    except ImportError:  # another Ray Train version: leave its logging alone
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


def train_loop_per_worker(loop_config: dict) -> None:
    startup: dict[str, float] = {}  # rank 0's start-up marks (rag_job/train/timeline.py)
    mark(startup, "loop_started")
    import ray
    import ray.train
    import ray.train.torch
    import torch
    import torch.distributed as dist
    from transformers import RagTokenizer, get_linear_schedule_with_warmup

    from rag_job.retrieval.pool import PoolSpec
    from rag_job.retrieval.searcher import load_passages
    from rag_job.train.evaluation import EvalSums, evaluate
    from rag_job.train.inputs import with_local_inputs
    from rag_job.train.model_io import build_retriever, load_model, opened_checkpoint, rag_config_for

    mark(startup, "imports_done")
    _quiet_ray_train_reports()
    # Remote inputs are copied to this node once (index shards only where this worker searches).
    submitted = JobConfig.model_validate_json(loop_config["job"])
    config = with_local_inputs(submitted, [] if submitted.retrieval.mode == "ray" else None)
    pool_spec = PoolSpec(**loop_config["pool"]) if loop_config.get("pool") else None
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(config.training.seed)

    checkpoint = ray.train.get_checkpoint()
    # Everything a resume needs is read inside this block (`opened_checkpoint` says why not Ray's).
    with opened_checkpoint(checkpoint) as resume_dir:
        saved = (
            torch.load(resume_dir / CHECKPOINT_STATE_FILE, map_location="cpu", weights_only=False)
            if resume_dir
            else None
        )
        model_source = resume_dir / CHECKPOINT_MODEL_DIR if resume_dir else config.model.path
        tokenizer = RagTokenizer.from_pretrained(str(model_source))
        rag_config = rag_config_for(config, str(model_source))
        retriever = build_retriever(config, rag_config, tokenizer, pool_spec)
        model = load_model(config, retriever, model_source if resume_dir else None)
        if not config.training.train_question_encoder:
            for parameter in model.rag.question_encoder.parameters():
                parameter.requires_grad_(False)
        ctx_source = None  # end-to-end: where the context encoder and its tokenizer were loaded from
        if config.retrieval.end_to_end:
            from rag_job.train.ctx_encoder import CTX_ENCODER_DIR, attach_ctx_encoder, resolve_ctx_encoder

            ctx_source = str(resume_dir / CTX_ENCODER_DIR) if resume_dir else resolve_ctx_encoder(config)
            attach_ctx_encoder(model, retriever, ctx_source, config.retrieval.end_to_end.rerank_candidates)
    mark(startup, "model_loaded")
    model = ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"find_unused_parameters": False})
    mark(startup, "ddp_ready")
    unwrapped = getattr(model, "module", model)

    train_examples = read_examples(config.data.train_path, "train")
    eval_examples = read_examples(config.data.eval_path, "val") if config.data.eval_path else train_examples
    if config.evaluation.max_samples:
        eval_examples = eval_examples[: config.evaluation.max_samples]
    passage_ids = load_passages(
        config.retrieval.knowledge_base, config.retrieval.passages_path
    ).select_columns(["id"])

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        optimizer_param_groups(unwrapped, config), weight_decay=config.training.weight_decay
    )
    batches_per_epoch = len(_batches(train_examples, config.training.batch_size, rank, world, 0, 0))
    if batches_per_epoch < config.training.gradient_accumulation_steps:
        raise ValueError(
            f"training.gradient_accumulation_steps ({config.training.gradient_accumulation_steps}) exceeds the "
            f"{batches_per_epoch} micro-batches per epoch each of the {world} workers gets"
        )
    total_steps = _total_steps(config, batches_per_epoch)
    scheduler = get_linear_schedule_with_warmup(optimizer, config.training.warmup_steps, total_steps)

    state = {
        "step": 0, "epoch": 0, "batch_in_epoch": 0, "history": [], "resumed_from_step": None, "eval": {},
        "restarts": 0, "startup": startup,
    }  # fmt: skip
    if saved is not None:
        optimizer.load_state_dict(saved.pop("optimizer"))
        scheduler.load_state_dict(saved.pop("scheduler"))
        state.update(saved)
        state["resumed_from_step"] = state["step"]
        state["restarts"] = saved.get("restarts", 0) + 1  # resumes of this run, kept in checkpoints
        state["startup"] = saved.get("startup", {})  # the run's start-up, not this resume's
        logger.info("rank %d resumed from checkpoint at step %d", rank, state["step"])
    refresher, trainer_encoding = None, None
    autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(config.training.mixed_precision)
    e2e = config.retrieval.end_to_end
    if e2e is not None:
        from rag_job.train.refresh import IndexRefresher
        from rag_job.train.trainer_encode import TrainerEncoding, TrainerParts

        kb = config.retrieval.knowledge_base
        encoders = loop_config["encoders"]
        if e2e.encode_on == "trainers":  # every rank encodes its slice at each refresh
            trainer_encoding = TrainerEncoding(
                e2e, kb, rank, world, retriever.ctx_encoder_tokenizer, device, autocast_dtype
            )
            encoders = TrainerParts(kb, world)
        if rank == 0:
            from rag_job.knowledge.lease import Lease

            # before any version is touched: one end-to-end job per knowledge base
            lease = Lease.acquire(kb, config.name, ray.get_runtime_context().get_job_id())
            refresher = IndexRefresher(e2e, retriever, encoders, kb, trainer_encoding, lease)
            refresher.restore(state.get("index"), ctx_source, resume_dir is not None, model, state["step"])
        elif trainer_encoding is not None:
            trainer_encoding.follow(model)  # rank 0's restore announces whether it refreshes now

    def run_eval(prefix: str) -> dict[str, float]:
        sums = evaluate(
            unwrapped, tokenizer, retriever, passage_ids, eval_examples, config.evaluation.batch_size,
            config.evaluation.num_beams, config.evaluation.max_new_tokens, rank, world, device,
        )  # fmt: skip
        if world > 1:
            totals = torch.tensor(sums.to_list(), dtype=torch.float64, device=device)
            dist.all_reduce(totals)
            sums = EvalSums.from_list(totals.tolist())
        return sums.as_metrics(prefix)

    node_id = ray.get_runtime_context().get_node_id()
    trainer_nodes = [None] * world
    if world > 1:
        dist.all_gather_object(trainer_nodes, node_id)
    else:
        trainer_nodes = [node_id]
    state["trainer_nodes"] = trainer_nodes
    mark(startup, "setup_done")
    if config.retrieval.mode == "ray":
        retriever.pool.wait_ready()  # the actors load the index while all of the above runs
    mark(startup, "retrieval_waited")

    if config.evaluation.at_start and state["step"] == 0 and "before" not in state["eval"]:
        state["eval"]["before"] = run_eval("eval")
        retriever.take_latencies()  # training metrics count training calls only

    use_autocast = autocast_dtype is not None and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_autocast and autocast_dtype == torch.float16)
    accumulation = config.training.gradient_accumulation_steps
    failure_marker = Path(config.checkpoint.storage_path) / config.name / ".injected-failure"

    model.train()
    window_latencies: list[float] = []
    last_reported_step = state["step"]
    done = state["step"] >= total_steps
    while not done:
        batches = _batches(
            train_examples, config.training.batch_size, rank, world, state["epoch"], config.training.seed
        )
        while state["batch_in_epoch"] + accumulation <= len(batches) and not done:
            mark(startup, "first_step_started")
            step_started = time.perf_counter()
            losses, samples = [], 0
            for micro in range(accumulation):
                batch = batches[state["batch_in_epoch"] + micro]
                input_ids, attention_mask, labels = _encode_batch(tokenizer, batch, config, device)
                with torch.autocast(device.type, dtype=autocast_dtype, enabled=use_autocast):
                    loss = model(
                        input_ids=input_ids, attention_mask=attention_mask, labels=labels, reduce_loss=True
                    ).loss
                scaler.scale(loss / accumulation).backward()
                losses.append(loss.item())  # RAG's reduced loss sums over the micro-batch
                samples += len(batch)
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(trainable, config.training.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            state["batch_in_epoch"] += accumulation
            done = state["step"] >= total_steps
            _maybe_inject_failure(state["step"], rank, loop_config.get("fail_at_step"), failure_marker)

            latencies = retriever.take_latencies()
            loss, retries = _global_step_totals(sum(losses), samples, retriever.take_retries(), world, device)
            step_time = time.perf_counter() - step_started
            metrics = {
                "step": state["step"],
                "epoch": state["epoch"],
                "loss": loss,
                "learning_rate": scheduler.get_last_lr()[0],
                "step_time_s": step_time,
                "samples_per_s": samples * world / step_time,
                "retrieval_calls": len(latencies),
                "retrieval_latency_ms_mean": float(np.mean(latencies)) if latencies else 0.0,
                "retrieval_latency_ms_p50": float(np.percentile(latencies, 50)) if latencies else 0.0,
                "retrieval_latency_ms_p95": float(np.percentile(latencies, 95)) if latencies else 0.0,
                "retrieval_share_of_step": (sum(latencies) / 1000) / step_time if latencies else 0.0,
                "retrieval_retries": retries,  # calls whose replica failed and were sent again (all ranks)
                "time_unix": time.time(),  # wall clock at the step's end: start-up = first step - submit
            }
            if config.retrieval.end_to_end:
                from rag_job.train.refresh import end_to_end_step

                metrics.update(
                    end_to_end_step(
                        refresher,
                        retriever.pool
                        if config.retrieval.mode == "ray"
                        else retriever,  # local: its searcher
                        model,
                        state["step"],
                        done,
                        world,
                        trainer_encoding,
                    )
                )
                state["index"] = refresher.state() if refresher else None
            state["history"].append(metrics)
            window_latencies.extend(latencies)
            save_now = done or state["step"] % config.checkpoint.every_steps == 0
            log_now = done or save_now or state["step"] % config.training.log_every_steps == 0
            if not log_now:
                continue
            reported = _window_metrics(state["history"], window_latencies, since=last_reported_step)
            reported["max_steps"] = total_steps  # for the progress gauges (rag_job/train/progress.py)
            window_latencies, last_reported_step = [], state["step"]
            if done and config.evaluation.at_end:
                state["eval"]["after"] = run_eval("eval")
                reported.update(state["eval"]["after"])
            if save_now:
                with tempfile.TemporaryDirectory() as tmp:
                    if rank == 0:
                        ctx_tokenizer = retriever.ctx_encoder_tokenizer  # None unless end-to-end
                        _save_checkpoint(
                            Path(tmp), model, tokenizer, optimizer, scheduler, state, ctx_tokenizer
                        )
                        (Path(tmp) / "metrics.json").write_text(json.dumps(reported))
                    ray.train.report(
                        reported, checkpoint=ray.train.Checkpoint.from_directory(tmp) if rank == 0 else None
                    )
                _wait_until_committed(state["step"])
            else:
                ray.train.report(reported)
            if rank == 0:
                logger.info(
                    "step %d/%d loss %.4f step %.2fs %.1f samples/s retrieval p50 %.1f ms p95 %.1f ms",
                    state["step"], total_steps, reported["loss"], reported["step_time_s"], reported["samples_per_s"],
                    reported["retrieval_latency_ms_p50"], reported["retrieval_latency_ms_p95"],
                )  # fmt: skip
        if not done:
            state["epoch"] += 1
            state["batch_in_epoch"] = 0
