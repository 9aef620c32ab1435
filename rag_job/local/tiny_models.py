"""Tiny RAG checkpoints built offline, for the demo and the tests.

These machines cannot download `facebook/rag-token-base`, so we build the same
architecture (DPR question encoder + DPR context encoder + BART generator) at a
toy size, with tokenizers trained on the given corpus, and save it in the same
layout. Everything downstream loads it through `from_pretrained(path)`, the code
path real checkpoints take.

Layout written under OUT:
    OUT/rag/            RAG checkpoint (config.json, weights, question_encoder_tokenizer/,
                        generator_tokenizer/), like facebook/rag-token-base
    OUT/ctx_encoder/    DPR context encoder + tokenizer, for `build-index`
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

BART_SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
#: How RAG joins a retrieved passage and the question for the generator (RagConfig title_sep,
#: doc_sep): "title / text // question". The reader warm-up feeds the generator the same layout.
TITLE_SEP, DOC_SEP = " / ", " // "
BERT_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@dataclass(frozen=True)
class TinySizes:
    """Model sizes: small enough to train in minutes on two CPU cores."""

    hidden: int = 64
    layers: int = 2
    heads: int = 2
    ffn: int = 128
    encoder_vocab: int = 2000
    generator_vocab: int = 2000
    max_positions: int = 256
    #: Retrieved passage + question tokens fed to the generator (RagConfig.max_combined_length).
    max_combined_length: int = 128
    n_docs: int = 3
    #: No dropout: these models fit a few hundred examples in minutes, and dropout slows that
    #: fitting several-fold (the DPR warm-up reaches recall@3 ~0.8 in 400 steps without it, ~0.03 with 0.1).
    dropout: float = 0.0

    @property
    def init_std(self) -> float:
        """Weight init scale 1/sqrt(hidden). The BERT/BART default of 0.02 is tuned for widths near
        1024; at width 64 it leaves attention uniform and cross-attention's signal ~100x below the
        residual, so a tiny generator ignores its input for hundreds of steps and answers every
        question alike."""
        return self.hidden**-0.5


@dataclass(frozen=True)
class TinyModelPaths:
    rag: Path
    ctx_encoder: Path


def _train_wordpiece(corpus: list[str], vocab_size: int):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=BERT_SPECIAL_TOKENS)
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return tokenizer.get_vocab()


def _train_byte_level_bpe(corpus: list[str], vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    from tokenizers import ByteLevelBPETokenizer

    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(corpus, vocab_size=vocab_size, special_tokens=BART_SPECIAL_TOKENS)
    # The trained merges are only exposed through the tokenizer's JSON form.
    merges = json.loads(tokenizer._tokenizer.to_str())["model"]["merges"]
    return tokenizer.get_vocab(), [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in merges]


def build_tiny_tokenizers(corpus: list[str], sizes: TinySizes = TinySizes()):
    """Train the question/context WordPiece tokenizer and the generator's byte-level BPE."""
    from transformers import (
        BartTokenizerFast,
        DPRContextEncoderTokenizerFast,
        DPRQuestionEncoderTokenizerFast,
    )

    wordpiece_vocab = _train_wordpiece(corpus, sizes.encoder_vocab)
    question_tokenizer = DPRQuestionEncoderTokenizerFast(vocab=wordpiece_vocab, do_lower_case=True)
    ctx_tokenizer = DPRContextEncoderTokenizerFast(vocab=wordpiece_vocab, do_lower_case=True)
    bpe_vocab, merges = _train_byte_level_bpe(corpus, sizes.generator_vocab)
    # A prefix space makes an answer tokenize as it does inside a passage ("ĠLuri", not "Luri"):
    # copying a span from what the generator reads is then copying token ids.
    generator_tokenizer = BartTokenizerFast(vocab=bpe_vocab, merges=merges, add_prefix_space=True)
    for tokenizer in (question_tokenizer, ctx_tokenizer, generator_tokenizer):
        tokenizer.model_max_length = sizes.max_positions
    return question_tokenizer, ctx_tokenizer, generator_tokenizer


@dataclass(frozen=True)
class RetrievalPair:
    """A query and the passage it should retrieve: the supervision DPR is trained on."""

    query: str
    title: str
    text: str


def warm_up_dpr(
    question_encoder,
    ctx_encoder,
    question_tokenizer,
    ctx_tokenizer,
    pairs: list[RetrievalPair],
    steps: int = 400,
    batch_size: int = 32,
    seed: int = 0,
) -> float:
    """Train the two towers briefly with in-batch negatives, as DPR is trained; returns the last loss.

    A real RAG checkpoint starts from a pretrained DPR whose retrieval already works. A tiny
    random one does not, so we give it a few seconds of the same training on the corpus,
    and fine-tuning then starts from meaningful retrieval.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    parameters = [*question_encoder.parameters(), *ctx_encoder.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=2e-3)
    question_encoder.train()
    ctx_encoder.train()
    loss = torch.tensor(0.0)
    for _ in range(steps):
        batch = [pairs[i] for i in torch.randperm(len(pairs), generator=generator)[:batch_size].tolist()]
        queries = question_tokenizer(
            [p.query for p in batch], padding=True, truncation=True, max_length=64, return_tensors="pt"
        )
        passages = ctx_tokenizer(
            [p.title for p in batch],
            [p.text for p in batch],
            padding=True,
            truncation=True,
            max_length=128,
            return_tensors="pt",
        )
        # Cosine scores with a temperature: plain dot products of a random tiny model saturate the
        # softmax and the towers collapse onto one vector.
        query_vectors = torch.nn.functional.normalize(question_encoder(**queries).pooler_output, dim=-1)
        passage_vectors = torch.nn.functional.normalize(ctx_encoder(**passages).pooler_output, dim=-1)
        scores = query_vectors @ passage_vectors.T / 0.05
        loss = torch.nn.functional.cross_entropy(scores, torch.arange(len(batch)))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        optimizer.zero_grad()
    question_encoder.eval()
    ctx_encoder.eval()
    return float(loss.detach())


@dataclass(frozen=True)
class ReadingPair:
    """What the generator reads (a passage and a query, joined as RAG joins them) and the span to answer."""

    source: str
    target: str


def reading_pairs_for(passages) -> list[ReadingPair]:
    """Cloze questions answered from the passage: each sentence with one name masked.

    A real RAG generator starts from a pretrained BART that can already copy from its input; a
    tiny random one cannot, and would spend most of a short fine-tuning learning to. This is
    the stand-in for that pretraining: the passage, then one of its own sentences with a
    capitalised word (not the title) replaced by <mask>, answered by that word. It teaches
    reading, not facts: callers pass only passages the fine-tuning questions may see.
    """
    import re

    pairs = []
    for passage in passages:
        for sentence in re.findall(r"[^.!?]+[.!?]", passage.text):
            words = sentence.split()
            for position, word in enumerate(words):
                name = word.strip(".,;:!?\"'()")
                if position == 0 or not name[:1].isupper() or name == passage.title:
                    continue
                masked = " ".join([*words[:position], word.replace(name, "<mask>"), *words[position + 1 :]])
                source = f"{passage.title}{TITLE_SEP}{passage.text}{DOC_SEP}{masked}".replace("  ", " ")
                pairs.append(ReadingPair(source, name))
    return pairs


def warm_up_reader(
    generator, tokenizer, pairs: list[ReadingPair], max_steps: int = 2000, batch_size: int = 32, seed: int = 0,
    max_length: int = 128, target_loss: float = 0.15,
) -> tuple[float, int]:  # fmt: skip
    """Train the generator on `pairs` (see `reading_pairs_for`) until it reads; returns the
    final mean loss and the steps taken.

    Copying from the input is learnt suddenly (the loss sits near 1.5, then drops within a
    few hundred steps) and when depends on the initial weights, so the warm-up runs until the
    mean loss of the last 50 steps is below `target_loss`, at most `max_steps` steps.
    """
    import torch

    rng = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(generator.parameters(), lr=2e-3)
    # Tokenized once: at these sizes tokenizing every batch would cost a third of each step.
    sources = tokenizer([p.source for p in pairs], truncation=True, max_length=max_length)["input_ids"]
    targets = tokenizer([p.target for p in pairs])["input_ids"]

    def padded(rows: list[list[int]], fill: int) -> torch.Tensor:
        width = max(len(row) for row in rows)
        return torch.tensor([row + [fill] * (width - len(row)) for row in rows])

    generator.train()
    recent: list[float] = []
    step = 0
    for step in range(1, max_steps + 1):
        chosen = torch.randperm(len(pairs), generator=rng)[:batch_size].tolist()
        input_ids = padded([sources[i] for i in chosen], tokenizer.pad_token_id)
        inputs = {"input_ids": input_ids, "attention_mask": (input_ids != tokenizer.pad_token_id).long()}
        labels = padded([targets[i] for i in chosen], -100)
        loss = generator(**inputs, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(generator.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        recent = [*recent[-49:], float(loss.detach())]
        if step % 100 == 0:
            logger.info("reader warm-up: step %d, loss %.3f", step, sum(recent) / len(recent))
        if len(recent) == 50 and sum(recent) / 50 < target_loss:
            break
    generator.eval()
    return (sum(recent) / len(recent) if recent else float("nan")), step


def tiny_bart_config(tokenizer, sizes: TinySizes = TinySizes()):
    """The tiny generator's BartConfig for `tokenizer` (the byte-level BPE of build_tiny_tokenizers)."""
    from transformers import BartConfig

    return BartConfig(
        vocab_size=len(tokenizer),
        d_model=sizes.hidden,
        encoder_layers=sizes.layers,
        decoder_layers=sizes.layers,
        encoder_attention_heads=sizes.heads,
        decoder_attention_heads=sizes.heads,
        encoder_ffn_dim=sizes.ffn,
        decoder_ffn_dim=sizes.ffn,
        max_position_embeddings=max(sizes.max_positions, sizes.max_combined_length + 2),
        dropout=sizes.dropout,
        init_std=sizes.init_std,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        # Targets are tokenized as "<s> answer </s>" and teacher-forced from "<s>", so
        # generation starts from "<s>" too (no forced BOS after a leading "</s>").
        decoder_start_token_id=tokenizer.bos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
    )


def build_tiny_models(
    corpus: Iterable[str],
    out_dir: str | Path,
    model_type: str = "rag_token",
    sizes: TinySizes = TinySizes(),
    seed: int = 0,
    retrieval_pairs: list[RetrievalPair] | None = None,
    dpr_steps: int = 400,
    reading_pairs: list[ReadingPair] | None = None,
    reader_steps: int = 2000,
) -> TinyModelPaths:
    """Build and save a tiny RAG checkpoint plus its DPR context encoder.

    With `retrieval_pairs`, the DPR towers get a short warm-up (see `warm_up_dpr`); with
    `reading_pairs`, the generator learns to copy from what it reads (see `reading_pairs_for`).
    """
    import torch
    from transformers import (
        BartForConditionalGeneration,
        DPRConfig,
        DPRContextEncoder,
        DPRQuestionEncoder,
        RagConfig,
        RagSequenceForGeneration,
        RagTokenForGeneration,
        RagTokenizer,
    )

    torch.manual_seed(seed)
    corpus = [text for text in corpus if text.strip()]
    if not corpus:
        raise ValueError("cannot build tokenizers from an empty corpus")
    out_dir = Path(out_dir)
    question_tokenizer, ctx_tokenizer, generator_tokenizer = build_tiny_tokenizers(corpus, sizes)

    dpr_config = DPRConfig(
        vocab_size=len(question_tokenizer),
        hidden_size=sizes.hidden,
        num_hidden_layers=sizes.layers,
        num_attention_heads=sizes.heads,
        intermediate_size=sizes.ffn,
        max_position_embeddings=sizes.max_positions,
        pad_token_id=question_tokenizer.pad_token_id,
        initializer_range=sizes.init_std,
        hidden_dropout_prob=sizes.dropout,
        attention_probs_dropout_prob=sizes.dropout,
    )
    question_encoder = DPRQuestionEncoder(dpr_config)
    ctx_encoder = DPRContextEncoder(dpr_config)
    # Both towers start from the same weights, then (with pairs) a short DPR warm-up makes
    # retrieval meaningful from the first fine-tuning step, as with a real pretrained DPR.
    ctx_encoder.ctx_encoder.bert_model.load_state_dict(
        question_encoder.question_encoder.bert_model.state_dict()
    )
    if retrieval_pairs:
        loss = warm_up_dpr(
            question_encoder,
            ctx_encoder,
            question_tokenizer,
            ctx_tokenizer,
            retrieval_pairs,
            dpr_steps,
            seed=seed,
        )
        logger.info(
            "DPR warm-up on %d pairs: in-batch loss %.3f after %d steps",
            len(retrieval_pairs),
            loss,
            dpr_steps,
        )

    bart_config = tiny_bart_config(generator_tokenizer, sizes)
    generator = BartForConditionalGeneration(bart_config)
    if reading_pairs:
        loss, steps = warm_up_reader(
            generator, generator_tokenizer, reading_pairs, reader_steps, seed=seed,
            max_length=sizes.max_combined_length,
        )  # fmt: skip
        logger.info(
            "reader warm-up on %d cloze pairs: loss %.3f after %d steps", len(reading_pairs), loss, steps
        )

    rag_config = RagConfig.from_question_encoder_generator_configs(
        dpr_config,
        bart_config,
        n_docs=sizes.n_docs,
        max_combined_length=sizes.max_combined_length,
        retrieval_vector_size=sizes.hidden,
        index_name="custom",
        title_sep=TITLE_SEP,
        doc_sep=DOC_SEP,
    )
    model_class = RagTokenForGeneration if model_type == "rag_token" else RagSequenceForGeneration
    model = model_class(config=rag_config, question_encoder=question_encoder, generator=generator)

    paths = TinyModelPaths(rag=out_dir / "rag", ctx_encoder=out_dir / "ctx_encoder")
    model.save_pretrained(paths.rag)
    RagTokenizer(question_encoder=question_tokenizer, generator=generator_tokenizer).save_pretrained(
        paths.rag
    )
    ctx_encoder.save_pretrained(paths.ctx_encoder)
    ctx_tokenizer.save_pretrained(paths.ctx_encoder)
    logger.info(
        "saved tiny %s checkpoint to %s and context encoder to %s", model_type, paths.rag, paths.ctx_encoder
    )
    return paths


def retrieval_pairs_for(passages, qa_examples=()) -> list[RetrievalPair]:
    """Title -> passage pairs for every passage, plus question -> gold passage for QA with gold ids."""
    pairs = [RetrievalPair(p.title, p.title, p.text) for p in passages]
    by_id: dict[str, list] = {}
    for passage in passages:
        by_id.setdefault(passage.source_id, []).append(passage)
    for example in qa_examples:
        for gold in example.gold_ids:
            pairs.extend(RetrievalPair(example.question, p.title, p.text) for p in by_id.get(gold, []))
    return pairs
