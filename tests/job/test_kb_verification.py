"""Knowledge-base files checked against kb.json: truncated, deleted, swapped and changed files
are reported naming them, the shard loader refuses them, and format-1 kb.json files still load."""

from __future__ import annotations

import json
import logging

import pytest

from rag_job.cli import main
from rag_job.knowledge.digest import FINGERPRINT_BLOCK, verify_files
from rag_job.knowledge.layout import KB_FORMAT_VERSION, KnowledgeBaseLayoutError, load_meta
from tests.job.kb_files import copy_kb, downgrade_to_format_1, swap, synthetic_kb


@pytest.fixture(scope="module")
def equal_shards_kb(tmp_path_factory):
    """Two shards of 10 vectors each: equal-size files, so only their content tells them apart."""
    return synthetic_kb(tmp_path_factory.mktemp("equal") / "kb", num_passages=20, shards=2)


@pytest.fixture
def kb(equal_shards_kb, tmp_path):
    return copy_kb(equal_shards_kb, tmp_path / "kb")


def test_build_index_records_size_checksum_and_fingerprint_of_every_file(kb):
    meta = load_meta(kb)
    assert meta.format_version == KB_FORMAT_VERSION == 2 and meta.verifiable
    files = [s.file for s in meta.shards] + [d.file for d in meta.passages_files]
    assert any(f.startswith("passages/") and f.endswith(".arrow") for f in files)
    for shard in meta.shards:
        assert shard.bytes == (kb / shard.file).stat().st_size and len(shard.sha256) == 64
    assert meta.passages_bytes == sum(d.bytes for d in meta.passages_files)
    result = verify_files(kb, meta, "full")
    assert result.ok and result.warnings == [] and result.files_checked == len(files)


def test_swapped_equal_size_shards_are_detected_naming_both_files(kb):
    from rag_job.retrieval.searcher import KnowledgeBaseSearcher, ShardSearcher

    first, second = kb / "index-shard-00-of-02.faiss", kb / "index-shard-01-of-02.faiss"
    assert first.stat().st_size == second.stat().st_size
    swap(first, second)
    meta = load_meta(kb)  # kb.json itself is intact
    assert verify_files(kb, meta, "size").ok  # sizes alone cannot see it
    result = verify_files(kb, meta)
    assert result.problems == [
        f"{first} and {second} are swapped: each holds the content build-index wrote to the other "
        "(a search would return the other shard's passage ids)"
    ]
    # The loader inside every retrieval actor refuses to serve the wrong ids.
    with pytest.raises(KnowledgeBaseLayoutError, match=r"holds the content build-index wrote to .*shard-01"):
        ShardSearcher(kb, 0)
    with pytest.raises(KnowledgeBaseLayoutError, match="are swapped"):
        KnowledgeBaseSearcher(kb)


def test_truncated_and_deleted_files_are_all_named_at_once(kb):
    shard = kb / "index-shard-01-of-02.faiss"
    size = shard.stat().st_size
    shard.write_bytes(shard.read_bytes()[: size // 2])
    arrow = next((kb / "passages").glob("*.arrow"))
    arrow.unlink()
    result = verify_files(kb, load_meta(kb))
    assert f"{shard} is {size // 2} bytes, kb.json recorded {size}: truncated or replaced" in result.problems
    assert any(p.startswith(f"{arrow} is missing") for p in result.problems)
    with pytest.raises(KnowledgeBaseLayoutError) as err:
        result.raise_for_problems()
    assert "rebuild the directory with `python -m rag_job build-index`" in str(err.value)


def test_deleted_passages_directory_is_reported_once(kb):
    import shutil

    shutil.rmtree(kb / "passages")
    assert verify_files(kb, load_meta(kb)).problems == [f"passages dataset {kb / 'passages'} is missing"]


def test_format_1_kb_json_still_loads_and_searches_with_a_warning_saying_how_to_rebuild(kb, caplog):
    import numpy as np

    from rag_job.retrieval.searcher import KnowledgeBaseSearcher

    downgrade_to_format_1(kb)
    meta = load_meta(kb)
    assert meta.format_version == 1 and not meta.verifiable
    result = verify_files(kb, meta)
    assert result.ok
    assert "records no checksums" in result.warnings[0] and "build-index" in result.warnings[0]
    with caplog.at_level(logging.WARNING, logger="rag_job.knowledge.digest"):
        searcher = KnowledgeBaseSearcher(kb)
    assert "records no checksums" in caplog.text
    _, ids, _ = searcher.search(np.ones((1, meta.dim), dtype=np.float32), 3)
    assert ids.shape == (1, 3)
    # Sizes are still checked for format 1.
    shard = kb / "index-shard-00-of-02.faiss"
    shard.write_bytes(shard.read_bytes()[:-4])
    assert "truncated or replaced" in verify_files(kb, load_meta(kb)).problems[0]


def test_a_kb_json_from_a_newer_rag_job_is_refused_saying_to_upgrade(kb):
    data = json.loads((kb / "kb.json").read_text())
    data["format_version"] = KB_FORMAT_VERSION + 1
    (kb / "kb.json").write_text(json.dumps(data))
    with pytest.raises(KnowledgeBaseLayoutError, match=r"newer than this rag_job reads.*upgrade rag_job"):
        load_meta(kb)


def test_verify_kb_full_catches_a_changed_byte_the_fingerprint_does_not_read(tmp_path, capsys):
    """A 6 MiB shard: a byte flipped at 1.5 MiB lies outside the three fingerprint blocks."""
    kb = synthetic_kb(tmp_path / "kb", num_passages=3072, dim=512, shards=1)
    shard = kb / "index.faiss"
    assert shard.stat().st_size > 4 * FINGERPRINT_BLOCK
    data = bytearray(shard.read_bytes())
    data[FINGERPRINT_BLOCK + FINGERPRINT_BLOCK // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert main(["verify-kb", "--knowledge-base", str(kb)]) == 0
    assert "files match kb.json (sizes and fingerprints)" in capsys.readouterr().out
    assert main(["verify-kb", "--knowledge-base", str(kb), "--full"]) == 1
    err = capsys.readouterr().err
    assert f"{shard} does not match its SHA-256 in kb.json: changed since build-index" in err
    assert "Traceback" not in err


def test_verify_kb_names_a_missing_directory_with_exit_code_1(tmp_path, capsys):
    assert main(["verify-kb", "--knowledge-base", str(tmp_path / "nope")]) == 1
    assert "does not exist; build it with `python -m rag_job build-index`" in capsys.readouterr().err
