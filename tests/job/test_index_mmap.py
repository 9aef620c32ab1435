"""Index files are memory-mapped where FAISS can map them, answer exactly as a read index does,
and a damaged file is still refused naming it."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from rag_job.bench.synthetic import query_batches, write_synthetic_knowledge_base
from rag_job.knowledge.index import INDEX_TYPES
from rag_job.knowledge.layout import KnowledgeBaseLayoutError, load_meta
from rag_job.retrieval import searcher as searcher_module
from rag_job.retrieval.searcher import MMAP_ENV, KnowledgeBaseSearcher, ShardSearcher, open_shard
from tests.job.kb_files import copy_kb

DIM = 32


@pytest.fixture(scope="module")
def kbs(tmp_path_factory):
    """One two-shard knowledge base per index type (1,000 passages a shard: IVF-PQ trains on it)."""
    root = tmp_path_factory.mktemp("mmap")
    for index_type in INDEX_TYPES:
        write_synthetic_knowledge_base(root / index_type, 2_000, DIM, index_type, shards=2)
    return root


@pytest.fixture(scope="module")
def queries():
    return query_batches(1, 16, DIM, seed=7)[0]


@pytest.mark.parametrize("index_type", INDEX_TYPES)
def test_every_index_type_is_mapped_and_answers_as_the_read_index(kbs, queries, index_type):
    mapped = ShardSearcher(kbs / index_type, 1, mmap="auto")
    read = ShardSearcher(kbs / index_type, 1, mmap="never")
    assert mapped.index_mapped and not read.index_mapped
    # The kernel agrees: the shard file is one of this process's mappings while the index is held.
    assert searcher_module._mappings_of(kbs / index_type / load_meta(kbs / index_type).shards[1].file) >= 1
    for got, want in zip(mapped.search(queries, 5), read.search(queries, 5), strict=True):
        np.testing.assert_array_equal(got, want)
    # Every shard of the in-process searcher (local mode, torch rank 0) maps too.
    assert all(shard.index_mapped for shard in KnowledgeBaseSearcher(kbs / index_type).shards)


def test_embeddings_are_read_only_views_of_the_mapped_arrow_file(kbs):
    searcher = open_shard(kbs / "flat", 0)
    assert searcher.embeddings.zero_copy
    assert searcher.embeddings_bytes == 1_000 * DIM * 4
    assert not any(chunk.flags.writeable for chunk in searcher.embeddings._chunks)


def test_an_index_faiss_will_not_map_is_read_with_the_reason_logged_once(kbs, queries, monkeypatch, caplog):
    monkeypatch.setattr(searcher_module, "_mappings_of", lambda path: 0)  # a FAISS that only reads
    monkeypatch.setattr(searcher_module, "_fallbacks_logged", set())
    with caplog.at_level(logging.INFO, logger=searcher_module.__name__):
        first = ShardSearcher(kbs / "flat", 0)
        ShardSearcher(kbs / "flat", 1)
    assert not first.index_mapped
    fallbacks = [r.getMessage() for r in caplog.records if "not mapped" in r.getMessage()]
    assert len(fallbacks) == 1 and "reads IndexFlatIP instead of mapping it" in fallbacks[0]
    np.testing.assert_array_equal(
        first.search(queries, 3)[1], ShardSearcher(kbs / "flat", 0).search(queries, 3)[1]
    )

    monkeypatch.setenv(MMAP_ENV, "always")
    with pytest.raises(
        KnowledgeBaseLayoutError,
        match=rf"index-shard-00-of-02.faiss cannot be memory-mapped.*{MMAP_ENV}=auto",
    ):
        ShardSearcher(kbs / "flat", 0)


def test_an_unknown_load_mode_names_the_variable_and_the_choices(kbs, monkeypatch):
    monkeypatch.setenv(MMAP_ENV, "sometimes")
    with pytest.raises(ValueError, match=rf"{MMAP_ENV}='sometimes' is not one of auto, always, never"):
        ShardSearcher(kbs / "flat", 0)


@pytest.mark.parametrize("mode", ["auto", "never"])
def test_a_corrupt_index_file_is_refused_naming_it_whether_mapped_or_read(kbs, tmp_path, mode):
    kb = copy_kb(kbs / "ivfpq", tmp_path / "kb")
    shard = kb / load_meta(kb).shards[0].file
    data = bytearray(shard.read_bytes())
    data[: len(data) // 2] = b"\x07" * (len(data) // 2)  # same size, damaged content
    shard.write_bytes(bytes(data))
    # The fingerprint check runs before anything is mapped: the shard file is named.
    with pytest.raises(KnowledgeBaseLayoutError, match=rf"{shard} does not match its fingerprint"):
        ShardSearcher(kb, 0, mmap=mode)
    # Unverified (an index version checked elsewhere), FAISS's own refusal still names the file.
    with pytest.raises(KnowledgeBaseLayoutError, match=rf"FAISS index file {shard} is corrupt"):
        ShardSearcher(kb, 0, verified=True, mmap=mode)


def test_rewriting_a_mapped_index_file_replaces_it_and_the_mapping_keeps_the_old_index(tmp_path, queries):
    """write_faiss_index stages the bytes and renames them over the file: a searcher that mapped
    the old file keeps answering from it (writing in place would change its pages or SIGBUS)."""
    import faiss

    from rag_job.knowledge.index import build_faiss_index, write_faiss_index
    from rag_job.retrieval.searcher import load_faiss_index

    rng = np.random.default_rng(3)
    old_vectors, new_vectors = (rng.standard_normal((500, DIM)).astype(np.float32) for _ in range(2))
    write_faiss_index(build_faiss_index(old_vectors, "flat"), tmp_path, "index.faiss")
    inode = (tmp_path / "index.faiss").stat().st_ino
    mapped, is_mapped = load_faiss_index(tmp_path / "index.faiss", "always")
    assert is_mapped
    before = mapped.search(queries, 5)

    digest = write_faiss_index(build_faiss_index(new_vectors, "flat"), tmp_path, "index.faiss")

    assert (tmp_path / "index.faiss").stat().st_ino != inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.faiss"]  # no staged file left
    np.testing.assert_array_equal(mapped.search(queries, 5)[1], before[1])
    reread = faiss.read_index(str(tmp_path / "index.faiss"))
    assert reread.ntotal == 500 and digest.bytes == (tmp_path / "index.faiss").stat().st_size
    exact = faiss.IndexFlatIP(DIM)
    exact.add(new_vectors)
    np.testing.assert_array_equal(reread.search(queries, 5)[1], exact.search(queries, 5)[1])
