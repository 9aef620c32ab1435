"""`python -m rag_job evaluate`: score a saved model in one process, without a Ray cluster."""

from __future__ import annotations

import json
from pathlib import Path

from rag_job.config import JobConfig


def evaluate_saved_model(
    config: JobConfig, model_path: str | None = None, data: Path | None = None, out: Path | None = None
) -> dict:
    from transformers import RagTokenizer

    from rag_job.retrieval.retrievers import LocalRagRetriever
    from rag_job.retrieval.searcher import load_passages
    from rag_job.storage import fetch, join
    from rag_job.train.data import read_examples
    from rag_job.train.evaluation import evaluate
    from rag_job.train.inputs import with_local_inputs
    from rag_job.train.model_io import load_model, rag_config_for

    config = with_local_inputs(config)  # one process searches every shard: all of it, on local disk
    model_path = str(fetch(model_path or join(config.output_dir, "model"), what="model").path)
    data = fetch(str(data), what="data").path if data else None
    data_path = data or config.data.eval_path or config.data.train_path
    examples = read_examples(data_path, "val" if data or config.data.eval_path else "train")
    if config.evaluation.max_samples:
        examples = examples[: config.evaluation.max_samples]
    tokenizer = RagTokenizer.from_pretrained(model_path)
    retriever = LocalRagRetriever(
        rag_config_for(config, model_path),
        tokenizer,
        config.retrieval.knowledge_base,
        config.retrieval.passages_path,
    )
    model = load_model(config, retriever, model_path)
    passage_ids = load_passages(
        config.retrieval.knowledge_base, config.retrieval.passages_path
    ).select_columns(["id"])
    predictions: list[dict] = []
    sums = evaluate(
        model, tokenizer, retriever, passage_ids, examples, config.evaluation.batch_size,
        config.evaluation.num_beams, config.evaluation.max_new_tokens, predictions_out=predictions,
    )  # fmt: skip
    metrics = {"model": model_path, "data": str(data_path), **sums.as_metrics("eval")}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"metrics": metrics, "predictions": predictions}, indent=2) + "\n")
    return metrics
