"""encode_on: trainers, in process: the ranks' slices cover every passage once, in order, and
put together they are exactly what one encode of the whole knowledge base gives; a missing or
misshapen part is reported, naming the file."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from rag_job.config import EndToEndConfig
from rag_job.train.trainer_encode import TrainerEncoding, TrainerParts, part_file, read_parts, slice_for


@pytest.mark.parametrize(("world", "passages"), [(1, 7), (2, 7), (3, 10), (4, 4), (5, 3)])
def test_slices_cover_every_passage_once_in_order(world, passages):
    slices = [slice_for(rank, world, passages) for rank in range(world)]
    covered = [i for start, end in slices for i in range(start, end)]
    assert covered == list(range(passages))
    sizes = [end - start for start, end in slices if end > start]
    assert max(sizes) - min(sizes) <= 1
    assert sum(1 for start, end in slices if end == start) == max(0, world - passages)


def _settings(batch_size: int) -> EndToEndConfig:
    return EndToEndConfig(refresh_every_steps=5, encode_on="trainers", encode_batch_size=batch_size)


def test_slices_written_by_three_ranks_equal_one_encode_of_the_whole_knowledge_base(tiny_assets, kb_copy):
    from transformers import AutoTokenizer, DPRContextEncoder

    from rag_job.knowledge.index import encode_passages
    from rag_job.knowledge.ingest import Passage
    from rag_job.knowledge.versions import version_embeddings
    from rag_job.retrieval.searcher import load_passages
    from rag_job.train.trainer_encode import parts_dir

    encoder = DPRContextEncoder.from_pretrained(str(tiny_assets.ctx_encoder)).train()
    model = SimpleNamespace(rag=SimpleNamespace(ctx_encoder=encoder))  # what trained_ctx_encoder reads
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_assets.ctx_encoder))
    world = 3
    for rank in range(world):  # batch size 4 splits slices unevenly: the last batch is short
        TrainerEncoding(_settings(4), str(kb_copy), rank, world, tokenizer, "cpu").write_slice(model, 1)
    assert encoder.training  # back to training mode after encoding

    written, timings = TrainerParts(str(kb_copy), world).encode_version(tiny_assets.ctx_encoder, 1)
    assert written.version == 1 and timings["build_seconds"] > 0
    assert not parts_dir(kb_copy, 1).exists()  # the parts are gone once the version holds them
    passages = [Passage(str(i), r["title"], r["text"]) for i, r in enumerate(load_passages(kb_copy))]
    whole = encode_passages(passages, tiny_assets.ctx_encoder, batch_size=16, progress=False)
    np.testing.assert_allclose(version_embeddings(kb_copy, 1), whole, atol=1e-5)


def test_a_missing_or_misshapen_part_is_reported_naming_the_file(kb_copy):
    from rag_job.knowledge.layout import load_meta

    passages = load_meta(kb_copy).num_passages
    first = part_file(kb_copy, 2, 0, 2)
    first.parent.mkdir(parents=True)
    start, end = slice_for(0, 2, passages)
    np.save(first, np.zeros((end - start, 8), dtype=np.float32))
    with pytest.raises(FileNotFoundError, match=r"rank 1's embeddings .*part-0001-of-0002\.npy are missing"):
        read_parts(kb_copy, 2, 2, passages)
    np.save(part_file(kb_copy, 2, 1, 2), np.zeros((1, 8), dtype=np.float32))
    with pytest.raises(ValueError, match=r"part-0001-of-0002\.npy has 1 rows; rank 1's slice"):
        read_parts(kb_copy, 2, 2, passages)


def test_encode_actor_settings_with_trainers_encoding_are_refused_naming_the_fix():
    with pytest.raises(ValueError, match=r"encode_actors set the encode actors .* remove them"):
        EndToEndConfig(refresh_every_steps=5, encode_on="trainers", encode_actors=2)
    with pytest.raises(ValueError, match="encode_threads set the encode actors"):
        EndToEndConfig(refresh_every_steps=5, encode_on="trainers", encode_threads=1)
    settings = EndToEndConfig(refresh_every_steps=5, encode_on="trainers")
    assert (
        EndToEndConfig.model_validate_json(settings.model_dump_json()) == settings
    )  # the trainers re-read it
