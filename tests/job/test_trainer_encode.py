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


class _CountingEncoding:
    """Stands in for rank 0's TrainerEncoding: records each announce (the other ranks' `follow`
    would meet exactly these broadcasts) and fails every encode, so no refresh thread starts."""

    def __init__(self, settings):
        self.settings, self.announced = settings, []

    def announce(self, version, model):
        self.announced.append(version)
        return [] if version is None else ["rank 1: RuntimeError: out of memory"]


class _Parts:
    def __init__(self):
        self.discarded = []

    def discard(self, version):
        self.discarded.append(version)

    def wait_idle(self, timeout_s):
        return True


def test_rank_0_announces_exactly_once_at_every_refresh_point_whatever_it_decides(kb_copy):
    """The other ranks listen once at each point `announces_after` names (and once at the start);
    one missed or extra broadcast would hang them. Every outcome is checked: nothing to do, a
    refresh skipped while one runs, the lease lost, the trainers' encode failing, and the end.
    The in-process stand-ins are here because a hang needs no model to show; the 2-worker test in
    test_end_to_end.py runs the real broadcasts."""
    import threading

    from rag_job.train.refresh import IndexRefresher, RefreshReport

    settings = EndToEndConfig(refresh_every_steps=2, encode_on="trainers", refresh_at_end=False)
    encoding, parts = _CountingEncoding(settings), _Parts()
    retriever = SimpleNamespace(version=0, ctx_encoder_tokenizer=None)  # local mode: no pool
    lease = SimpleNamespace(lost=None, release=lambda: None)
    refresher = IndexRefresher(settings, retriever, parts, str(kb_copy), encoding, lease)

    refresher.restore(None, "ctx", resumed=False, model=None, step=0)  # v0 served: nothing to do
    assert encoding.announced == [None]

    refresher.after_step(None, 1, done=False)  # not due: the trainers do not listen
    assert encoding.announced == [None]

    refresher.after_step(None, 2, done=False)  # due; the trainers' encode fails on rank 1
    assert encoding.announced == [None, 1] and parts.discarded == [1]
    assert "rank 1: RuntimeError: out of memory" in refresher.failures[-1]

    running = threading.Event()
    refresher._thread = threading.Thread(target=running.wait)  # a refresh still building
    refresher._running = RefreshReport(version=2, encoded_at_step=3)
    refresher._thread.start()
    try:
        refresher.after_step(None, 4, done=False)
    finally:
        running.set()
        refresher._thread.join()
        refresher._thread, refresher._running = None, None
    assert encoding.announced == [None, 1, None] and refresher.skipped_steps == [4]

    lease.lost = "another run took the lease"
    refresher.after_step(None, 6, done=False)
    assert encoding.announced == [None, 1, None, None]
    assert "another run took the lease" in refresher.failures[-1]

    refresher.finish(None, 7)  # refresh_at_end off: the end is still a point the trainers meet
    assert encoding.announced == [None, 1, None, None, None]
    assert refresher.final["refresh_at_end"] == "off (refresh_at_end: false)"


def test_local_mode_deletes_the_old_version_once_no_rank_and_nothing_of_rank_0_keeps_it(kb_copy, monkeypatch):
    """mode: local. The ranks move to v2 at one step, while rank 0 still counts v1 as its index
    (the refresh thread has switched but not been collected): v1 stays. When the refresh is
    collected at a later step, with no rank moving then, v1 goes. Steps where nothing changed
    list no directory."""
    import rag_job.train.refresh as refresh
    from rag_job.knowledge.reindex import write_index_version
    from rag_job.knowledge.versions import set_current_version, version_numbers_on_disk
    from tests.job.helpers import permuted, stored_embeddings

    table = stored_embeddings(kb_copy)
    for version in (1, 2):
        write_index_version(kb_copy, permuted(table, seed=version))
    set_current_version(kb_copy, 2)
    retriever = SimpleNamespace(version=1, ctx_encoder_tokenizer=None)  # local mode: no pool
    refresher = refresh.IndexRefresher(
        EndToEndConfig(refresh_every_steps=5), retriever, _Parts(), str(kb_copy)
    )
    refresher.index_version = 1  # what rank 0 served until the refresh is collected

    assert refresher.ranks_moved([1, 1]) == []
    assert refresher.ranks_moved([2, 2]) == []  # every rank on v2, but v1 is still rank 0's index
    assert version_numbers_on_disk(kb_copy) == [1, 2]

    refresher.index_version = 2  # poll collected the refresh; no rank moves at this step
    (deleted,) = refresher.ranks_moved([2, 2])
    assert deleted.endswith("v1") and version_numbers_on_disk(kb_copy) == [2]

    def listed(*args):
        raise AssertionError("a step at which nothing changed listed the versions")

    monkeypatch.setattr(refresh, "version_numbers_on_disk", listed)
    assert refresher.ranks_moved([2, 2]) == []
