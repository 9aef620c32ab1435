"""A version's embeddings as part files: read across part boundaries they are the array they were
cut from, a version built from them equals one built from the array, and a missing, short or
misshapen part is reported, naming the file."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rag_job.knowledge.parts import PartedEmbeddings, part_path, write_part


def _cut(table: np.ndarray, parts_dir, ranges) -> PartedEmbeddings:
    for number, (start, end) in enumerate(ranges):
        chunks = (table[s : min(s + 3, end)] for s in range(start, end, 3))  # streamed 3 rows at a time
        write_part(part_path(parts_dir, number, len(ranges)), end - start, table.shape[1], chunks)
    return PartedEmbeddings(parts_dir, ranges)


def test_rows_read_across_part_boundaries_are_the_array(tmp_path):
    table = np.random.default_rng(0).standard_normal((23, 8)).astype(np.float32)
    parted = _cut(table, tmp_path, [(0, 7), (7, 15), (15, 23)])
    assert parted.shape == (23, 8) and len(parted) == 23
    for start, end in [(0, 23), (5, 9), (7, 15), (14, 16), (22, 23), (3, 3)]:
        np.testing.assert_array_equal(parted[start:end], table[start:end])


def test_a_version_built_from_parts_equals_one_built_from_the_array(kb_copy, tmp_path):
    from rag_job.knowledge.layout import load_meta
    from rag_job.knowledge.reindex import write_index_version
    from rag_job.knowledge.versions import version_embeddings

    meta = load_meta(kb_copy)
    table = np.random.default_rng(1).standard_normal((meta.num_passages, meta.dim)).astype(np.float32)
    thirds = np.linspace(0, meta.num_passages, 4).round().astype(int)  # not the 2 shards' boundaries
    ranges = [(int(a), int(b)) for a, b in itertools.pairwise(thirds)]
    write_index_version(kb_copy, _cut(table, tmp_path, ranges), version=1)
    write_index_version(kb_copy, table, version=2)
    np.testing.assert_array_equal(version_embeddings(kb_copy, 1), version_embeddings(kb_copy, 2))
    np.testing.assert_array_equal(version_embeddings(kb_copy, 1), table)


def test_a_missing_short_or_misshapen_part_is_reported_naming_the_file(tmp_path):
    table = np.ones((10, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"part-0000-of-0002\.npy: 3 rows encoded, the slice has 5"):
        write_part(part_path(tmp_path, 0, 2), 5, 4, [table[:3]])
    assert not list(tmp_path.iterdir())  # a failed writer leaves nothing behind, not even half a part
    write_part(part_path(tmp_path, 0, 2), 5, 4, [table[:5]])
    with pytest.raises(FileNotFoundError, match=r"passages 5-10 \(.*part-0001-of-0002\.npy\) are missing"):
        PartedEmbeddings(tmp_path, [(0, 5), (5, 10)])
    np.save(part_path(tmp_path, 1, 2), np.ones((4, 4), dtype=np.float32))
    with pytest.raises(
        ValueError,
        match=r"part-0001-of-0002\.npy holds float32 \[4, 4\]; it should hold float32 rows of passages 5-10",
    ):
        PartedEmbeddings(tmp_path, [(0, 5), (5, 10)])
    good = part_path(tmp_path, 1, 2)
    write_part(good, 5, 4, [table[5:]])
    good.write_bytes(good.read_bytes()[:-10])  # cut short, as a full volume would leave it
    with pytest.raises(ValueError, match=r"part-0001-of-0002\.npy is no readable \.npy part \(cut short\?\)"):
        PartedEmbeddings(tmp_path, [(0, 5), (5, 10)])
