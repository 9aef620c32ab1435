"""Knowledge-base ingestion and the errors a user sees for bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from rag_job.knowledge.ingest import KnowledgeBaseError, ingest, split_into_passages


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_long_texts_are_split_into_passages_of_about_100_words():
    passages = split_into_passages(" ".join(f"w{i}" for i in range(250)))
    assert [len(p.split()) for p in passages] == [100, 100, 50]
    # A short tail is merged instead of becoming a near-empty passage.
    assert [len(p.split()) for p in split_into_passages(" ".join(["x"] * 210))] == [100, 110]


def test_bad_jsonl_rows_are_reported_with_line_numbers_and_skipped(tmp_path):
    kb = _write(
        tmp_path / "kb.jsonl",
        "\n".join(
            [
                json.dumps({"id": "a", "title": "A", "text": "alpha text"}),
                "{not json",
                json.dumps({"title": "B"}),
                json.dumps({"id": "a", "title": "C", "text": "dup id"}),
                json.dumps({"title": "D", "text": 7}),
                json.dumps({"title": "E", "text": "   "}),
                json.dumps({"id": "f", "title": "F", "text": "fine"}),
            ]
        ),
    )
    report = ingest(kb)
    assert [p.source_id for p in report.passages] == ["a", "f"]
    assert report.rows_read == 7
    reasons = {r.line: r.reason for r in report.rejected}
    assert set(reasons) == {2, 3, 4, 5, 6}
    assert "not valid JSON" in reasons[2]
    assert "missing field 'text'" in reasons[3]
    assert "duplicate id 'a' (first on line 1)" in reasons[4]
    assert "'text' must be a string" in reasons[5]
    assert "empty" in reasons[6]


def test_strict_mode_stops_at_the_first_bad_row_naming_its_line(tmp_path):
    kb = _write(tmp_path / "kb.jsonl", '{"title": "A", "text": "ok"}\n{"title": "B"}\n')
    with pytest.raises(KnowledgeBaseError, match=r"kb.jsonl: line 2: missing field 'text'"):
        ingest(kb, strict=True)


def test_csv_and_tsv_rows_with_wrong_field_counts_are_reported(tmp_path):
    csv_kb = _write(tmp_path / "kb.csv", 'title,text\nA,"first, with comma"\nB,two,extra\nC\nD,fourth\n')
    report = ingest(csv_kb)
    assert [p.title for p in report.passages] == ["A", "D"]
    assert [r.line for r in report.rejected] == [3, 4]
    tsv_kb = _write(tmp_path / "kb.tsv", "title\ttext\nA\talpha\nB\n")
    report = ingest(tsv_kb)
    assert [p.text for p in report.passages] == ["alpha"]
    assert report.rejected[0].line == 3


def test_an_unbalanced_quote_rejects_only_its_own_row_naming_the_line_it_opened_on(tmp_path):
    rows = [f"T{i},text of row {i}" for i in range(50)]
    rows[9] = 'T9,"text of row 9 whose quote never closes'
    kb = _write(tmp_path / "kb.csv", "title,text\n" + "\n".join(rows) + "\n")
    report = ingest(kb)
    assert report.rows_read == 50 and report.rows_indexed == 49
    assert [r.line for r in report.rejected] == [11]
    assert "quoted field opens on this line" in report.rejected[0].reason
    assert "lines 12-51 are read again" in report.rejected[0].reason
    assert len(report.passages) == 49 and "T10" in {p.title for p in report.passages}
    assert report.summary().endswith("50 rows read = 49 indexed + 1 rejected; 49 passages")
    assert report.rejection_messages()[0].startswith(f"{kb}: line 11: ")


def test_a_quoted_field_still_open_after_max_record_lines_is_rejected_as_a_runaway(tmp_path):
    from rag_job.knowledge.ingest import MAX_RECORD_LINES

    body = "\n".join(f"word{i}" for i in range(MAX_RECORD_LINES + 50))
    kb = _write(tmp_path / "kb.csv", f'title,text\nA,"{body}"\nB,beta\n')
    report = ingest(kb)
    assert report.rejected[0].line == 2
    assert f"still open after {MAX_RECORD_LINES} lines" in report.rejected[0].reason
    assert report.rows_read == report.rows_indexed + len(report.rejected)
    assert "B" in {p.title for p in report.passages}


def test_a_quoted_field_that_spans_lines_is_one_row_numbered_by_its_first_line(tmp_path):
    kb = _write(tmp_path / "kb.tsv", 'title\ttext\nA\t"first line\nsecond line"\nB\tbeta\n')
    report = ingest(kb)
    assert [(p.source_id, p.text) for p in report.passages] == [
        ("line-2", "first line second line"),
        ("line-4", "beta"),
    ]


def test_a_utf8_byte_order_mark_costs_no_row(tmp_path):
    bom = b"\xef\xbb\xbf"
    jsonl = tmp_path / "kb.jsonl"
    jsonl.write_bytes(bom + b'{"title": "A", "text": "alpha"}\n{"title": "B", "text": "beta"}\n')
    assert [p.title for p in ingest(jsonl).passages] == ["A", "B"]
    csv_kb = tmp_path / "kb.csv"
    csv_kb.write_bytes(bom + b"title,text\nA,alpha\n")
    assert [p.title for p in ingest(csv_kb).passages] == ["A"]


def test_bytes_that_are_not_utf8_reject_their_row_with_the_real_offset_and_line(tmp_path):
    kb = tmp_path / "kb.jsonl"
    first = b'{"title": "A", "text": "alpha"}\n'
    kb.write_bytes(first + b'{"title": "B", "text": "b\xe9ta"}\n{"title": "C", "text": "gamma"}\n')
    report = ingest(kb)
    assert [p.title for p in report.passages] == ["A", "C"]
    offset = len(first) + len(b'{"title": "B", "text": "b')
    assert report.rejected[0].line == 2
    assert f"byte 0xe9 at byte offset {offset} (line 2, column 26)" in report.rejected[0].reason
    with pytest.raises(
        KnowledgeBaseError, match=rf"kb\.jsonl: line 2: not UTF-8: byte 0xe9 at byte offset {offset}"
    ):
        ingest(kb, strict=True)


def test_a_utf16_file_is_an_error_saying_to_save_it_as_utf8(tmp_path):
    kb = tmp_path / "kb.csv"
    kb.write_bytes("title,text\nA,alpha\n".encode("utf-16"))
    with pytest.raises(KnowledgeBaseError, match=r"line 1: the file is UTF-16.*save it as UTF-8"):
        ingest(kb)


def test_a_header_without_title_and_text_is_an_error_naming_the_columns(tmp_path):
    kb = _write(tmp_path / "kb.csv", "name,body\nA,alpha\n")
    with pytest.raises(KnowledgeBaseError, match="missing text, title"):
        ingest(kb)


def test_unsupported_or_missing_files_are_errors_naming_the_path(tmp_path):
    with pytest.raises(KnowledgeBaseError, match=r"nope\.jsonl: knowledge-base file not found"):
        ingest(tmp_path / "nope.jsonl")
    with pytest.raises(KnowledgeBaseError, match=r"unsupported knowledge-base format '\.xml'"):
        ingest(_write(tmp_path / "kb.xml", "<kb/>"))


def test_shipped_csv_example_ingests_cleanly():
    from tests.job.conftest import EXAMPLE_DATA

    report = ingest(EXAMPLE_DATA / "knowledge_base.csv")
    assert report.rejected == []
    assert len(report.passages) >= 20


def test_build_index_cli_prints_what_it_did_and_reports_bad_rows(tiny_assets, tmp_path):
    kb = _write(
        tmp_path / "kb.jsonl",
        "".join(
            json.dumps({"title": f"T{i}", "text": f"passage number {i} about rivers"}) + "\n"
            for i in range(12)
        )
        + "{broken\n",
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rag_job",
            "build-index",
            "--knowledge-base",
            str(kb),
            "--ctx-encoder",
            str(tiny_assets.ctx_encoder),
            "--out",
            str(tmp_path / "kb"),
            "--index-type",
            "flat",
            "--shards",
            "2",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "passages indexed: 12" in result.stdout
    assert "rows rejected:    1" in result.stdout
    assert "2 shard(s)" in result.stdout
    assert "line 13: not valid JSON" in result.stderr
    assert (tmp_path / "kb" / "index-shard-00-of-02.faiss").is_file()


class TestCorruptKnowledgeBase:
    """Each damaged piece gives an error that names the path, never a crash deep in FAISS or Arrow."""

    @pytest.fixture
    def kb_copy(self, tiny_assets, tmp_path):
        target = tmp_path / "kb"
        shutil.copytree(tiny_assets.kb_flat, target)
        return target

    def _load(self, kb_dir):
        from rag_job.retrieval.searcher import KnowledgeBaseSearcher

        return KnowledgeBaseSearcher(kb_dir)

    def test_missing_directory(self, tmp_path):
        from rag_job.knowledge.layout import KnowledgeBaseLayoutError

        with pytest.raises(KnowledgeBaseLayoutError, match=r"missing-kb does not exist"):
            self._load(tmp_path / "missing-kb")

    def test_missing_index_file(self, kb_copy):
        from rag_job.knowledge.layout import KnowledgeBaseLayoutError

        (kb_copy / "index.faiss").unlink()
        with pytest.raises(KnowledgeBaseLayoutError, match=r"index\.faiss is missing"):
            self._load(kb_copy)

    def test_corrupt_index_file(self, kb_copy):
        from rag_job.knowledge.layout import KnowledgeBaseLayoutError

        size = (kb_copy / "index.faiss").stat().st_size
        (kb_copy / "index.faiss").write_bytes(b"x" * size)
        with pytest.raises(KnowledgeBaseLayoutError, match=r"index\.faiss does not match its fingerprint"):
            self._load(kb_copy)

    def test_corrupt_index_file_of_a_format_1_knowledge_base(self, kb_copy):
        from rag_job.knowledge.layout import KnowledgeBaseLayoutError
        from tests.job.kb_files import downgrade_to_format_1

        downgrade_to_format_1(kb_copy)
        size = (kb_copy / "index.faiss").stat().st_size
        (kb_copy / "index.faiss").write_bytes(b"x" * size)
        with pytest.raises(KnowledgeBaseLayoutError, match=r"index\.faiss is corrupt"):
            self._load(kb_copy)

    def test_truncated_index_file(self, kb_copy):
        from rag_job.knowledge.layout import KnowledgeBaseLayoutError

        data = (kb_copy / "index.faiss").read_bytes()
        (kb_copy / "index.faiss").write_bytes(data[: len(data) // 2])
        with pytest.raises(KnowledgeBaseLayoutError, match=r"index\.faiss"):
            self._load(kb_copy)

    def test_corrupt_kb_json(self, kb_copy):
        from rag_job.knowledge.layout import KnowledgeBaseLayoutError

        (kb_copy / "kb.json").write_text("{ not json")
        with pytest.raises(KnowledgeBaseLayoutError, match=r"kb\.json is corrupt"):
            self._load(kb_copy)

    def test_missing_passages(self, kb_copy):
        from rag_job.knowledge.layout import KnowledgeBaseLayoutError

        shutil.rmtree(kb_copy / "passages")
        with pytest.raises(KnowledgeBaseLayoutError, match=r"passages dataset .*passages is missing"):
            self._load(kb_copy)

    def test_corrupt_passages(self, kb_copy):
        from rag_job.knowledge.layout import KnowledgeBaseLayoutError

        for arrow in (kb_copy / "passages").glob("*.arrow"):
            arrow.write_bytes(b"garbage")
        with pytest.raises(
            KnowledgeBaseLayoutError, match=r"passages/.*\.arrow is 7 bytes, kb\.json recorded"
        ):
            self._load(kb_copy)


def test_written_passages_keep_every_embedding_bit_for_bit_in_order(tmp_path):
    """The embeddings column is built from the matrix's own buffer (`embeddings_column`), not
    row by row; what is read back must be the same float32 rows, in passage order."""
    from rag_job.knowledge.index import write_knowledge_base
    from rag_job.knowledge.ingest import Passage
    from rag_job.retrieval.searcher import load_passages

    rng = np.random.default_rng(7)
    embeddings = rng.standard_normal((257, 12)).astype(np.float32)
    passages = [Passage(source_id=f"p{i}", title=f"t{i}", text=f"x{i}") for i in range(len(embeddings))]
    write_knowledge_base(
        passages, np.asfortranarray(embeddings), tmp_path / "kb", index_type="flat", shards=2
    )

    dataset = load_passages(tmp_path / "kb")
    assert dataset.features["embeddings"].length == 12
    assert dataset["id"] == [p.source_id for p in passages]
    np.testing.assert_array_equal(np.asarray(dataset["embeddings"], dtype=np.float32), embeddings)

    # Its fingerprint (datasets' cache key) follows the content: the same again, another if one value moves.
    write_knowledge_base(passages, embeddings, tmp_path / "same", index_type="flat")
    changed = embeddings.copy()
    changed[100, 3] += 1.0
    write_knowledge_base(passages, changed, tmp_path / "changed", index_type="flat")
    assert load_passages(tmp_path / "same")._fingerprint == dataset._fingerprint
    assert load_passages(tmp_path / "changed")._fingerprint != dataset._fingerprint
