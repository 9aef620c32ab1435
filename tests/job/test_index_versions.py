"""Index versions on disk, without Ray: writing, reading back, refusing corrupt files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.job.helpers import (
    K,
    assert_exact_top_k,
    assert_exact_top_k_in,
    flip_middle_byte,
    permuted,
    stored_embeddings,
)


def test_a_knowledge_base_built_before_versions_reads_as_version_0(tiny_assets, question_vectors):
    from rag_job.knowledge.layout import load_meta
    from rag_job.knowledge.versions import current_version, list_versions, load_version
    from rag_job.retrieval.searcher import open_shard

    kb_dir = tiny_assets.kb_flat
    assert list_versions(kb_dir) == [0]
    assert current_version(kb_dir) == 0
    version = load_version(kb_dir, 0)
    assert [s.file for s in version.shards] == [s.file for s in load_meta(kb_dir).shards] == ["index.faiss"]
    assert all(s.embeddings is None for s in version.shards)  # the passages' column
    _, ids, embeds = open_shard(kb_dir, 0, 0).search(question_vectors, K)
    assert_exact_top_k(kb_dir, question_vectors, ids, embeds)


def test_a_written_version_is_searched_with_its_own_embeddings_shard_by_shard(kb_copy, question_vectors):
    from rag_job.knowledge.reindex import write_index_version
    from rag_job.knowledge.versions import list_versions, load_version
    from rag_job.retrieval.searcher import merge_top_k, open_shard

    table = permuted(stored_embeddings(kb_copy), seed=1)
    written = write_index_version(kb_copy, table)
    assert written.version == 1
    assert list_versions(kb_copy) == [0, 1]
    assert load_version(kb_copy, 1) == written
    assert [(s.start, s.end) for s in written.shards] == [
        (s.start, s.end) for s in load_version(kb_copy, 0).shards
    ]
    shards = [open_shard(kb_copy, s, 1) for s in range(2)]
    assert {s.version for s in shards} == {1}
    _, ids, embeds = merge_top_k([s.search(question_vectors, K) for s in shards], K)
    assert_exact_top_k_in(table, question_vectors, ids, embeds)
    # Version 0 is untouched: kb.json's index still returns the stored embeddings' top-k.
    _, ids0, embeds0 = merge_top_k(
        [open_shard(kb_copy, s, 0).search(question_vectors, K) for s in range(2)], K
    )
    assert_exact_top_k(kb_copy, question_vectors, ids0, embeds0)
    assert not np.array_equal(ids, ids0)


def test_an_unfinished_version_is_not_listed_and_its_number_is_not_reused(kb_copy):
    from rag_job.knowledge.layout import KnowledgeBaseLayoutError
    from rag_job.knowledge.reindex import write_index_version
    from rag_job.knowledge.versions import list_versions, load_version, version_dir

    version_dir(kb_copy, 1).mkdir(parents=True)  # a build that died before its manifest
    assert list_versions(kb_copy) == [0]
    with pytest.raises(KnowledgeBaseLayoutError, match=r"v1/manifest\.json is missing"):
        load_version(kb_copy, 1)
    assert write_index_version(kb_copy, stored_embeddings(kb_copy)).version == 2


def test_a_corrupt_manifest_and_corrupt_version_files_are_reported_by_name(kb_copy):
    from rag_job.knowledge.layout import KnowledgeBaseLayoutError
    from rag_job.knowledge.reindex import write_index_version
    from rag_job.knowledge.versions import load_version, manifest_path
    from rag_job.retrieval.searcher import open_shard

    written = write_index_version(kb_copy, permuted(stored_embeddings(kb_copy), seed=2))
    index_file = kb_copy / written.shards[1].file
    flip_middle_byte(index_file)
    with pytest.raises(KnowledgeBaseLayoutError) as err:
        open_shard(kb_copy, 1, written.version)
    assert f"{index_file} does not match its fingerprint in index/v1/manifest.json" in str(err.value)
    open_shard(kb_copy, 0, written.version)  # the other shard's files are intact and load

    embeddings_file = kb_copy / written.shards[0].embeddings.file
    embeddings_file.write_bytes(embeddings_file.read_bytes()[:-16])
    with pytest.raises(KnowledgeBaseLayoutError, match=f"{embeddings_file} is .* bytes"):
        open_shard(kb_copy, 0, written.version)

    manifest = manifest_path(kb_copy, written.version)
    manifest.write_text(json.dumps({"version": 1, "shards": "two"}))
    with pytest.raises(KnowledgeBaseLayoutError, match=f"{manifest} is corrupt"):
        load_version(kb_copy, written.version)


def test_version_0_and_the_current_version_are_never_deleted(kb_copy):
    from rag_job.knowledge.reindex import write_index_version
    from rag_job.knowledge.versions import delete_version, list_versions, set_current_version, version_dir

    write_index_version(kb_copy, stored_embeddings(kb_copy))
    write_index_version(kb_copy, stored_embeddings(kb_copy))
    set_current_version(kb_copy, 2)
    with pytest.raises(ValueError, match="never deleted"):
        delete_version(kb_copy, 0)
    with pytest.raises(ValueError, match="current one"):
        delete_version(kb_copy, 2)
    delete_version(kb_copy, 1)
    assert not version_dir(kb_copy, 1).exists()
    assert list_versions(kb_copy) == [0, 2]
