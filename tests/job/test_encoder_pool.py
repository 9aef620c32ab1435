"""The encode actors of end-to-end training: a version they write holds exactly what one process
encoding every passage would, and they run at a lower CPU priority than searches and trainers."""

from __future__ import annotations

import numpy as np
import pytest
import ray

from rag_job.knowledge.encoder_pool import DEFAULT_NICE, NICE_ENV, EncoderPool, encode_niceness
from rag_job.knowledge.index import encode_passages
from rag_job.knowledge.ingest import Passage
from rag_job.knowledge.layout import load_meta
from rag_job.retrieval.searcher import load_passages, open_shard


@ray.remote(num_cpus=0)
def _priority() -> int:
    import os

    return os.nice(0)


def test_encode_actors_write_what_one_process_would_at_a_lower_priority(
    ray_cluster, kb_copy, tiny_assets, tmp_path
):
    pool = EncoderPool(kb_copy, actors=3, batch_size=5)  # batches that do not divide the slices
    parts = tmp_path / "parts"
    try:
        assert ray.get([actor.priority.remote() for actor in pool.actors]) == [DEFAULT_NICE] * 3
        searcher_priority = ray.get(_priority.remote())  # what any other Ray worker runs at
        assert searcher_priority < DEFAULT_NICE
        written, seconds = pool.encode_version(tiny_assets.ctx_encoder, version=1, parts_dir=parts)
    finally:
        pool.close()
    assert not parts.exists()  # the slices' part files are gone once the version holds them
    meta = load_meta(kb_copy)
    assert written.version == 1 and written.num_passages == meta.num_passages
    assert seconds["encode_seconds"] > 0 and seconds["build_seconds"] > 0
    rows = load_passages(kb_copy)
    passages = [Passage(source_id=str(i), title=r["title"], text=r["text"]) for i, r in enumerate(rows)]
    expected = encode_passages(passages, tiny_assets.ctx_encoder, progress=False)
    for shard in range(len(meta.shards)):  # the slices came back in order, none lost or doubled
        searcher = open_shard(kb_copy, shard, version=1)
        ids = np.arange(searcher.start, searcher.end)
        np.testing.assert_allclose(searcher.embeddings.take(ids), expected[ids], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("value", ["-1", "20", "low"])
def test_a_wrong_niceness_names_the_setting(monkeypatch, value):
    monkeypatch.setenv(NICE_ENV, value)
    with pytest.raises(ValueError, match=f"{NICE_ENV}='{value}' must be a whole number from 0 to 19"):
        encode_niceness()
