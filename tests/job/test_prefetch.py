"""A mapped index is read into the page cache in the background: cold chunks are read, cached
ones skipped, a file larger than the memory left is left to the searches, and it can be off."""

from __future__ import annotations

import numpy as np
import pytest

from rag_job.bench.synthetic import write_synthetic_knowledge_base
from rag_job.knowledge.layout import load_meta
from rag_job.retrieval import prefetch as prefetch_module
from rag_job.retrieval.prefetch import (
    PREFETCH_ENV,
    _cgroup_headroom,
    evict_from_page_cache,
    prefetch_enabled,
    resident_fraction,
    start_prefetch,
)
from rag_job.retrieval.searcher import ShardSearcher


@pytest.fixture
def data_file(tmp_path, monkeypatch):
    monkeypatch.setattr(prefetch_module, "CHUNK_BYTES", 1 << 20)
    path = tmp_path / "index.bin"
    path.write_bytes(np.random.default_rng(0).bytes((5 << 20) + 12_345))  # a partial last chunk
    return path


def test_a_cold_file_is_read_and_a_cached_one_skipped(data_file):
    evict_from_page_cache(data_file)
    cold = start_prefetch(data_file, headroom=1 << 40)
    assert cold.wait(60)
    # Read from the first chunk on; the kernel's read-ahead may bring later chunks in first.
    assert cold.read_bytes >= prefetch_module.CHUNK_BYTES
    assert cold.read_bytes + cold.cached_bytes == data_file.stat().st_size
    assert cold.summary()["prefetch_seconds"] is not None and not cold.skipped
    warm = start_prefetch(data_file, headroom=1 << 40)  # the first read left it in the page cache
    assert warm.wait(60)
    assert warm.cached_bytes == data_file.stat().st_size and warm.read_bytes == 0


def test_a_file_larger_than_the_memory_left_is_not_read(data_file):
    job = start_prefetch(data_file, headroom=data_file.stat().st_size)  # needs 1/0.8 of the file
    assert job.wait(1) and job.read_bytes == 0
    assert "GiB this process may still use" in job.skipped


def test_it_can_be_turned_off_and_a_wrong_setting_names_the_fix(data_file, monkeypatch):
    monkeypatch.setenv(PREFETCH_ENV, "never")
    job = start_prefetch(data_file, headroom=1 << 40)
    assert job.skipped == f"{PREFETCH_ENV}=never" and job.read_bytes == 0
    with pytest.raises(ValueError, match=f"{PREFETCH_ENV}='sometimes' is not one of auto, never"):
        prefetch_enabled("sometimes")


def test_cgroup_headroom_is_the_limit_less_anonymous_memory(tmp_path):
    (tmp_path / "memory.max").write_text("1000000\n")
    (tmp_path / "memory.stat").write_text("anon 300000\nfile 500000\n")
    assert _cgroup_headroom(tmp_path) == 700_000
    (tmp_path / "memory.max").write_text("max\n")
    assert _cgroup_headroom(tmp_path) is None


def test_a_mapped_shard_prefetches_its_index_and_a_read_one_does_not(tmp_path):
    kb = tmp_path / "kb"
    write_synthetic_knowledge_base(kb, 2_000, 16, "flat", shards=1)
    index_file = kb / load_meta(kb).shards[0].file
    evict_from_page_cache(index_file)
    mapped = ShardSearcher(kb, 0, mmap="auto")
    assert mapped.prefetch is not None and mapped.prefetch.wait(60)
    assert mapped.prefetch.read_bytes + mapped.prefetch.cached_bytes == index_file.stat().st_size
    assert ShardSearcher(kb, 0, mmap="never").prefetch is None


def test_resident_fraction_sees_an_evicted_file_and_a_read_one(data_file):
    evict_from_page_cache(data_file)
    assert resident_fraction(data_file) < 0.5
    data_file.read_bytes()
    assert resident_fraction(data_file) == 1.0


def test_a_searcher_with_a_prefetch_can_be_deep_copied_and_pickled(tmp_path):
    """transformers deep-copies a model's retriever (the local one holds the searcher)."""
    import copy
    import pickle

    kb = tmp_path / "kb"
    write_synthetic_knowledge_base(kb, 500, 16, "flat", shards=1)
    searcher = ShardSearcher(kb, 0, mmap="auto")
    assert searcher.prefetch is not None and searcher.prefetch.wait(60)
    assert copy.deepcopy(searcher).prefetch is searcher.prefetch
    restored = pickle.loads(pickle.dumps(searcher.prefetch))
    assert restored.read_bytes + restored.cached_bytes == searcher.prefetch.size and restored.wait(1)
