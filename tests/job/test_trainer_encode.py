"""encode_on: trainers, in process: the ranks' slices cover every passage once, in order, and
put together they are exactly what one encode of the whole knowledge base gives."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from rag_job.config import EndToEndConfig
from rag_job.knowledge.parts import writer_slices
from rag_job.train.trainer_encode import TrainerEncoding, TrainerParts, parts_dir


@pytest.mark.parametrize(("world", "passages"), [(1, 7), (2, 7), (3, 10), (4, 4), (5, 3)])
def test_slices_cover_every_passage_once_in_order(world, passages):
    """The one rule both the trainers and the encode actors slice by."""
    slices = writer_slices(passages, world)
    assert [i for start, end in slices for i in range(start, end)] == list(range(passages))
    sizes = [end - start for start, end in slices]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
    assert len(slices) == min(world, passages)  # ranks beyond the passages encode nothing


def _settings(batch_size: int) -> EndToEndConfig:
    return EndToEndConfig(refresh_every_steps=5, encode_on="trainers", encode_batch_size=batch_size)


def test_slices_written_by_three_ranks_equal_one_encode_of_the_whole_knowledge_base(tiny_assets, kb_copy):
    from transformers import AutoTokenizer, DPRContextEncoder

    from rag_job.knowledge.index import encode_passages
    from rag_job.knowledge.ingest import Passage
    from rag_job.knowledge.versions import version_embeddings
    from rag_job.retrieval.searcher import load_passages

    encoder = DPRContextEncoder.from_pretrained(str(tiny_assets.ctx_encoder)).train()
    model = SimpleNamespace(rag=SimpleNamespace(ctx_encoder=encoder))  # what trained_ctx_encoder reads
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_assets.ctx_encoder))
    world = 3
    for rank in range(world):  # batch size 4 splits slices unevenly: the last batch is short
        TrainerEncoding(_settings(4), str(kb_copy), rank, world, tokenizer, "cpu").write_slice(model, 1)
    assert encoder.training  # back to training mode after encoding

    parts = parts_dir(kb_copy, 1)
    written, timings = TrainerParts(str(kb_copy), world).encode_version(tiny_assets.ctx_encoder, 1, parts)
    assert written.version == 1 and timings["build_seconds"] > 0
    assert not parts.exists()  # the parts are gone once the version holds them
    passages = [Passage(str(i), r["title"], r["text"]) for i, r in enumerate(load_passages(kb_copy))]
    whole = encode_passages(passages, tiny_assets.ctx_encoder, batch_size=16, progress=False)
    np.testing.assert_allclose(version_embeddings(kb_copy, 1), whole, atol=1e-5)


def test_encode_actor_settings_with_trainers_encoding_are_refused_naming_the_fix():
    with pytest.raises(ValueError, match=r"encode_actors set the encode actors .* remove them"):
        EndToEndConfig(refresh_every_steps=5, encode_on="trainers", encode_actors=2)
    with pytest.raises(ValueError, match="encode_threads set the encode actors"):
        EndToEndConfig(refresh_every_steps=5, encode_on="trainers", encode_threads=1)
    settings = EndToEndConfig(refresh_every_steps=5, encode_on="trainers")
    assert (
        EndToEndConfig.model_validate_json(settings.model_dump_json()) == settings
    )  # the trainers re-read it
