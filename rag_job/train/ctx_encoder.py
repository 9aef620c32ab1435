"""The trained DPR context encoder of end-to-end retriever training (`retrieval.end_to_end`).

transformers' RAG trains it through `RagModel.set_context_encoder_for_training`: the retriever
returns the retrieved passages tokenized (`set_ctx_encoder_tokenizer`), the model encodes them
afresh on every step and scores them against the question with gradient. The encoder then sits
inside the RAG model (`rag.ctx_encoder`), so DDP averages its gradients like the rest, but it is
kept out of the RAG checkpoint (a plain `RagTokenForGeneration.from_pretrained` does not know it):
it is saved as its own `save_pretrained` directory beside it.

`resolve_ctx_encoder` is light (no torch) because the pre-flight check calls it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from rag_job.config import ConfigError, JobConfig
from rag_job.knowledge.layout import load_meta

#: The context encoder's directory in a checkpoint and in output_dir.
CTX_ENCODER_DIR = "ctx_encoder"
FIELD = "retrieval.end_to_end.ctx_encoder"


def resolve_ctx_encoder(config: JobConfig) -> str:
    """The absolute directory of the context encoder to start from; ConfigError naming the field.

    Configured, or the one kb.json records. A relative path is taken from the current directory
    (the driver's), and must hold a saved DPR context encoder with its tokenizer.
    """
    e2e = config.retrieval.end_to_end
    if e2e is None:
        raise ValueError("retrieval.end_to_end is not set")
    kb = config.retrieval.knowledge_base
    if e2e.ctx_encoder:
        given, origin = e2e.ctx_encoder, f"{FIELD} {e2e.ctx_encoder!r}"
    else:
        given = load_meta(kb).ctx_encoder
        if not given:
            raise ConfigError(
                f"{FIELD}: the knowledge base {kb} records no context encoder (kb.json's ctx_encoder is "
                "empty); set retrieval.end_to_end.ctx_encoder to the DPR context encoder that built it"
            )
        origin = f"kb.json's ctx_encoder {given!r} (the default of {FIELD})"
    path = Path(given).expanduser().resolve()
    fix = (
        f"set {FIELD} to a directory every node sees, written by save_pretrained of a "
        "DPRContextEncoder and its tokenizer (`python -m rag_job make-tiny-models` writes OUT/ctx_encoder)"
    )
    if not path.is_dir():
        relative = "" if Path(given).is_absolute() else f", taken relative to {Path.cwd()}"
        raise ConfigError(f"{FIELD}: {origin} is no directory ({path} does not exist{relative}); {fix}")
    try:
        model_type = json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError) as err:
        raise ConfigError(f"{FIELD}: {origin} holds no readable config.json ({err}); {fix}") from err
    if model_type != "dpr":
        raise ConfigError(f"{FIELD}: {origin} holds a {model_type or 'untyped'} model, not DPR; {fix}")
    if not (path / "tokenizer_config.json").is_file():
        raise ConfigError(f"{FIELD}: {origin} has no tokenizer (tokenizer_config.json); {fix}")
    return str(path)


def attach_ctx_encoder(model, retriever, source: str | Path, rerank_candidates: int | None = None):
    """Load the encoder and tokenizer from `source` and make `model` train it (see module doc);
    with `rerank_candidates`, the retriever reranks that many candidates with it."""
    from transformers import AutoTokenizer, DPRContextEncoder

    encoder = DPRContextEncoder.from_pretrained(str(source))
    encoder.train()
    model.set_context_encoder_for_training(encoder)
    retriever.set_ctx_encoder_tokenizer(AutoTokenizer.from_pretrained(str(source)))
    if rerank_candidates:
        from rag_job.retrieval.rerank import ContextReranker

        retriever.reranker = ContextReranker(
            encoder, retriever.ctx_encoder_tokenizer, retriever.index, rerank_candidates
        )
    return encoder


@contextlib.contextmanager
def ctx_encoder_detached(model) -> Iterator[None]:
    """`model` without its context encoder for the duration (its `save_pretrained` leaves it out)."""
    rag = getattr(model, "module", model).rag
    encoder = rag.ctx_encoder
    rag.ctx_encoder = None
    try:
        yield
    finally:
        rag.ctx_encoder = encoder


def trained_ctx_encoder(model):
    """The context encoder inside `model` (DDP-wrapped or not)."""
    return getattr(model, "module", model).rag.ctx_encoder


def save_ctx_encoder(encoder, tokenizer, target: Path) -> None:
    """Write `encoder` and its tokenizer to `target` (from memory: the directory they were loaded
    from, a resumed checkpoint, may be rotated away by then)."""
    encoder.save_pretrained(target)
    tokenizer.save_pretrained(target)
