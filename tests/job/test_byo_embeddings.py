"""`build-index --embeddings-dataset`: a `datasets` directory with its own embeddings, indexed as is."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag_job.cli import main
from rag_job.knowledge import ingest as ingest_module
from rag_job.knowledge.digest import verify_files
from rag_job.knowledge.ingest import MAX_ROWS_NAMED, KnowledgeBaseError, ingest_embeddings_dataset
from rag_job.knowledge.layout import load_meta
from rag_job.retrieval.searcher import KnowledgeBaseSearcher, load_passages
from tests.job.helpers import assert_exact_top_k

ROWS, DIM = 60, 16
NOT_FINITE = "holds a value that is not a finite float32 (NaN, infinity, null or out of range)"


def _unit_vectors(rows: int = ROWS, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """Unit-length rows: each row's nearest neighbour by inner product is itself (Cauchy-Schwarz)."""
    vectors = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _columns(rows: int = ROWS, embeddings=None) -> dict[str, list]:
    return {
        "id": [f"doc-{i}" for i in range(rows)],
        "title": [f"Title {i}" for i in range(rows)],
        "text": [f"passage number {i}" for i in range(rows)],
        "embeddings": (_unit_vectors(rows) if embeddings is None else embeddings).tolist(),
    }


def _save(directory: Path, columns: dict[str, list], features=None) -> Path:
    """Written by `datasets` itself, as a user would (wiki_dpr's column layout)."""
    from datasets import Dataset

    Dataset.from_dict(columns, features=features).save_to_disk(str(directory))
    return directory


def _build(dataset: Path, out: Path, *extra: str) -> int:
    return main(["build-index", "--embeddings-dataset", str(dataset), "--out", str(out), *extra])


def test_index_of_a_saved_dataset_returns_each_rows_own_passage_and_kb_json_is_right(tmp_path, capsys):
    embeddings = _unit_vectors()
    dataset = _save(tmp_path / "wiki", _columns(embeddings=embeddings))
    assert _build(dataset, tmp_path / "kb", "--shards", "2") == 0
    out = capsys.readouterr().out
    assert f"passages indexed: {ROWS} (from {ROWS} rows, dimension {DIM})" in out
    assert "rows rejected:    0" in out
    assert "not re-encoded" in out

    meta = load_meta(tmp_path / "kb")
    assert (meta.num_passages, meta.dim, meta.index_type, meta.ctx_encoder) == (ROWS, DIM, "flat", "")
    assert [(s.start, s.end) for s in meta.shards] == [(0, ROWS // 2), (ROWS // 2, ROWS)]
    assert verify_files(tmp_path / "kb", meta, "full").ok
    stored = load_passages(tmp_path / "kb")
    assert stored["id"] == [f"doc-{i}" for i in range(ROWS)]
    assert stored["title"][7] == "Title 7" and stored["text"][7] == "passage number 7"
    np.testing.assert_array_equal(np.asarray(stored.with_format("numpy")["embeddings"]), embeddings)

    targets = np.array([0, 7, ROWS // 2 - 1, ROWS // 2, ROWS - 1])  # both sides of the shard boundary
    scores, ids, embeds = KnowledgeBaseSearcher(tmp_path / "kb").search(embeddings[targets], 3)
    np.testing.assert_array_equal(ids[:, 0], targets)
    np.testing.assert_allclose(scores[:, 0], 1.0, rtol=1e-5)
    assert_exact_top_k(tmp_path / "kb", embeddings[targets], ids, embeds, k=3)


@pytest.mark.parametrize("index_type", ["hnsw", "ivfpq"])
def test_other_index_types_find_each_rows_own_passage(tmp_path, index_type):
    embeddings = _unit_vectors(rows=400)
    dataset = _save(tmp_path / "wiki", _columns(rows=400, embeddings=embeddings))
    assert _build(dataset, tmp_path / "kb", "--index-type", index_type, "--ctx-encoder", "my/encoder") == 0
    assert load_meta(tmp_path / "kb").ctx_encoder == "my/encoder"
    targets = np.arange(0, 400, 37)
    _, ids, _ = KnowledgeBaseSearcher(tmp_path / "kb").search(embeddings[targets], 3)
    hits = np.mean(ids[:, 0] == targets)
    print(f"{index_type}: top-1 is the row itself for {hits:.2f} of the queries")
    assert hits >= (1.0 if index_type == "hnsw" else 0.8)


def test_float64_lists_and_fixed_length_float32_columns_both_index(tmp_path, monkeypatch):
    from datasets import Features, Sequence, Value

    monkeypatch.setattr(ingest_module, "_BATCH_ROWS", 7)

    embeddings = _unit_vectors()
    as_float64 = _save(tmp_path / "f64", _columns(embeddings=embeddings.astype(np.float64)))
    fixed = Features({"id": Value("string"), "title": Value("string"), "text": Value("string"),
                      "embeddings": Sequence(Value("float32"), length=DIM)})  # fmt: skip
    as_fixed = _save(tmp_path / "fixed", _columns(embeddings=embeddings), features=fixed)
    for dataset in (as_float64, as_fixed):
        report, got = ingest_embeddings_dataset(dataset)
        assert got.dtype == np.float32 and got.shape == (ROWS, DIM)
        np.testing.assert_array_equal(got, embeddings)
        assert report.rows_read == report.rows_indexed == len(report.passages) == ROWS


def test_rows_without_an_id_column_take_their_row_number(tmp_path):
    columns = _columns()
    del columns["id"]
    report, _ = ingest_embeddings_dataset(_save(tmp_path / "d", columns))
    assert [p.source_id for p in report.passages[:3]] == ["0", "1", "2"]


def _refused(dataset: Path) -> str:
    with pytest.raises(KnowledgeBaseError) as refused:
        ingest_embeddings_dataset(dataset)
    return str(refused.value)


def test_bad_rows_are_refused_naming_row_and_column_never_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest_module, "_BATCH_ROWS", 7)  # rows in several batches, as in a large dataset
    columns = _columns()
    columns["embeddings"][3][5] = float("nan")
    columns["embeddings"][4] = columns["embeddings"][4][:-1]
    columns["embeddings"][6] = None
    columns["embeddings"][8][0] = float("inf")
    columns["embeddings"][9][2] = None
    columns["text"][10] = "   "
    columns["title"][11] = None
    columns["id"][12] = "doc-2"
    message = _refused(_save(tmp_path / "bad", columns))
    assert "8 bad rows, so nothing was indexed" in message
    for line in (
        f"row 3: column 'embeddings' {NOT_FINITE} at position 5",
        f"row 4: column 'embeddings' has {DIM - 1} values, row 0 has {DIM}",
        "row 6: column 'embeddings' is null",
        f"row 8: column 'embeddings' {NOT_FINITE} at position 0",
        f"row 9: column 'embeddings' {NOT_FINITE} at position 2",
        "row 10: column 'text' is empty",
        "row 11: column 'title' is null",
        "row 12: column 'id': duplicate id 'doc-2' (first in row 2)",
    ):
        assert line in message, message


def test_a_dataset_with_many_bad_rows_names_the_first_ones_and_counts_all(tmp_path):
    columns = _columns()
    for row in range(1, ROWS):
        columns["embeddings"][row] = columns["embeddings"][row][:3]
    message = _refused(_save(tmp_path / "ragged", columns))
    assert f"{ROWS - 1} bad rows" in message
    assert message.count("column 'embeddings' has 3 values") == MAX_ROWS_NAMED
    assert f"... and {ROWS - 1 - MAX_ROWS_NAMED} more" in message


def test_missing_columns_are_named_with_the_columns_found(tmp_path):
    columns = _columns()
    columns["vectors"] = columns.pop("embeddings")
    message = _refused(_save(tmp_path / "d", columns))
    assert "missing the column 'embeddings' (found id, title, text, vectors)" in message


@pytest.mark.parametrize(
    ("column", "values", "expected"),
    [
        ("embeddings", [[1, 2, 3]] * ROWS, "column 'embeddings' must hold a list of floats per row (float32, as "
         "wiki_dpr), it holds list<item: int64>"),
        ("embeddings", [0.5] * ROWS, "column 'embeddings' must hold a list of floats per row"),
        ("title", list(range(ROWS)), "column 'title' must hold strings, it holds int64"),
    ],
)  # fmt: skip
def test_columns_of_the_wrong_type_are_refused_naming_the_type(tmp_path, column, values, expected):
    columns = _columns()
    columns[column] = values
    assert expected in _refused(_save(tmp_path / "d", columns))


def test_a_dataset_dict_or_a_plain_file_is_refused_saying_what_to_pass(tmp_path):
    from datasets import Dataset, DatasetDict

    DatasetDict({"train": Dataset.from_dict(_columns())}).save_to_disk(str(tmp_path / "dd"))
    assert f"pass one split's directory, e.g. {tmp_path / 'dd' / 'train'}" in _refused(tmp_path / "dd")
    (tmp_path / "kb.jsonl").write_text('{"title": "t", "text": "x"}\n')
    assert "not a directory; pass a directory written by datasets' Dataset.save_to_disk" in _refused(
        tmp_path / "kb.jsonl"
    )
    (tmp_path / "empty").mkdir()
    assert "not a readable saved dataset" in _refused(tmp_path / "empty")


def test_cli_refuses_a_bad_dataset_with_exit_code_1_and_writes_nothing(tmp_path, capsys):
    columns = _columns()
    columns["embeddings"][5] = None
    assert _build(_save(tmp_path / "bad", columns), tmp_path / "kb") == 1
    assert "row 5: column 'embeddings' is null" in capsys.readouterr().err
    assert not (tmp_path / "kb").exists()


def test_cli_usage_errors_exit_2(tmp_path, capsys):
    dataset = _save(tmp_path / "ok", _columns())
    kb_file = tmp_path / "kb.jsonl"
    kb_file.write_text(json.dumps({"title": "t", "text": "x"}) + "\n")
    out = str(tmp_path / "out")
    both = ["--knowledge-base", str(kb_file), "--embeddings-dataset", str(dataset)]
    assert main(["build-index", *both, "--ctx-encoder", "x", "--out", out]) == 2
    assert "exactly one of --knowledge-base FILE and --embeddings-dataset DIR" in capsys.readouterr().err
    assert main(["build-index", "--out", out]) == 2
    assert main(["build-index", "--knowledge-base", str(kb_file), "--out", out]) == 2
    assert "--knowledge-base needs --ctx-encoder" in capsys.readouterr().err
    assert _build(dataset, tmp_path / "out", "--ray-actors", "2") == 2
    assert not (tmp_path / "out").exists()
