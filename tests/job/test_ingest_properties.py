"""Property tests: random CSV/TSV/JSONL knowledge bases never lose a row silently.

Each generated file mixes well-formed rows (quotes, delimiters, tabs and line breaks inside
fields, unicode, optional ids) with damaged ones (a quote that never closes, a missing or
extra column, bytes that are not UTF-8, broken JSON, a duplicate id), blank lines and an
optional byte-order mark. Every row written must come back either indexed (its marker word in
a passage with its source id) or rejected with the line it starts on; damaged rows must be
rejected, intact ones indexed; or ingest must fail with a KnowledgeBaseError.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag_job.knowledge.ingest import KnowledgeBaseError, ingest

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

#: Characters that stress CSV/TSV/JSON: quotes, both delimiters, line breaks, escapes, non-ASCII.
_TRICKY = st.sampled_from([*"\",\t\n\r\\'{}[] ", "é", "日本", "🙂", "\u2028"])
_WORD = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=6)
_FIELD = st.lists(st.one_of(_WORD, _TRICKY), max_size=6).map("".join)
_PLAIN = st.text(alphabet="abcdefgh ", min_size=1, max_size=12).map(lambda s: "p" + s.strip())

DAMAGE = ("stray_quote", "missing_column", "extra_column", "bad_utf8", "broken_json", "duplicate_id")


@dataclass
class Row:
    marker: str
    title: str
    text: str
    damage: str | None
    row_id: str | None = None
    line: int = 0  # the line the row starts on, filled in when the file is written


@st.composite
def knowledge_bases(draw, fmt: str):
    """(file bytes, rows as written) for one random knowledge-base file of format `fmt`."""
    count = draw(st.integers(min_value=1, max_value=12))
    with_ids = fmt == "jsonl" and draw(st.booleans())
    allowed = [d for d in DAMAGE if (d in ("broken_json", "duplicate_id")) == (fmt == "jsonl")]
    allowed += ["bad_utf8", "missing_column"] if fmt == "jsonl" else []
    rows = []
    for number in range(count):
        marker = f"mk{number}z"
        damage = draw(st.one_of(st.none(), st.none(), st.sampled_from(sorted(set(allowed)))))
        if damage == "duplicate_id" and (not with_ids or number == 0 or rows[0].damage):
            damage = None
        simple = damage in ("stray_quote", "missing_column", "extra_column", "bad_utf8")
        title = draw(_PLAIN if simple else _FIELD)
        words = draw(_PLAIN if simple else _FIELD)
        text = f"{words} {marker} {draw(_PLAIN if simple else _FIELD)}"
        if fmt != "jsonl":
            # The two readings of CSV that no reader can tell apart (see ingest._swallowed_rows):
            # a value spanning lines that ends with the delimiter, a title opening with one.
            delimiter = "\t" if fmt == "tsv" else ","
            title = title.lstrip(delimiter + "\r\n")
            title, text = (v.rstrip(delimiter) if "\n" in v else v for v in (title, text))
        row_id = f"id{number}" if with_ids else None
        if damage == "duplicate_id":
            row_id = "id0"
        rows.append(Row(marker, title, text, damage, row_id))
    bom = draw(st.booleans())
    terminator = draw(st.sampled_from(["\n", "\r\n"]))
    blank_after = draw(st.lists(st.sampled_from(["", "   "]), max_size=3))
    out = io.BytesIO()
    if bom:
        out.write(b"\xef\xbb\xbf")
    delimiter = "\t" if fmt == "tsv" else ","
    if fmt != "jsonl":
        out.write(f"title{delimiter}text{terminator}".encode())
    for index, row in enumerate(rows):
        row.line = out.getvalue().count(b"\n") + 1
        out.write(_encode(row, fmt, delimiter, terminator))
        if index < len(blank_after):
            out.write((blank_after[index] + terminator).encode())
    return out.getvalue(), rows


def _encode(row: Row, fmt: str, delimiter: str, terminator: str) -> bytes:
    if fmt == "jsonl":
        record: dict = {"title": row.title, "text": row.text}
        if row.row_id is not None:
            record["id"] = row.row_id
        if row.damage == "missing_column":
            del record["text"]
        line = json.dumps(record, ensure_ascii=False)
        if row.damage == "broken_json":
            line = line[:-1]
        data = (line + terminator).encode()
        if row.damage == "bad_utf8":
            data = data.replace(row.marker.encode(), row.marker.encode() + b"\xff", 1)
        return data
    if row.damage == "stray_quote":
        return f'{row.title}{delimiter}"{row.text}{terminator}'.encode()
    if row.damage == "missing_column":
        return f"{row.title}{terminator}".encode()
    if row.damage == "extra_column":
        return f"{row.title}{delimiter}{row.text}{delimiter}extra{terminator}".encode()
    buffer = io.StringIO()
    # The csv module quotes by `lineterminator` only: a lone \r must be quoted by hand.
    quoting = csv.QUOTE_ALL if "\r" in row.title + row.text else csv.QUOTE_MINIMAL
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=terminator, quoting=quoting)
    writer.writerow([row.title, row.text])
    data = buffer.getvalue().encode()
    if row.damage == "bad_utf8":
        data = data.replace(row.marker.encode(), row.marker.encode() + b"\xfe", 1)
    return data


def _expected_source_id(row: Row) -> str:
    return row.row_id if row.row_id is not None else f"line-{row.line}"


def _check_every_row_accounted_for(path, rows: list[Row]) -> None:
    try:
        report = ingest(path)
    except KnowledgeBaseError as err:
        # Failing is allowed only with a message, and only when nothing was usable.
        assert str(path) in str(err)
        assert all(row.damage for row in rows), f"usable rows lost: {err}"
        return
    assert report.rows_read == report.rows_indexed + len(report.rejected)
    rejected_lines = {r.line: r.reason for r in report.rejected}
    by_source = {}
    for passage in report.passages:
        by_source.setdefault(passage.source_id, []).append(passage)
    for row in rows:
        passages = by_source.get(_expected_source_id(row), [])
        indexed = any(row.marker in p.text.split() for p in passages)
        if row.damage is not None:
            assert row.line in rejected_lines, f"damaged row on line {row.line} ({row.damage}) not rejected"
            assert not indexed
        else:
            assert indexed, (
                f"intact row on line {row.line} not indexed; rejected: {rejected_lines.get(row.line)}"
            )
            assert passages[0].title == row.title.strip()
    assert report.rows_indexed == len(by_source)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_random_files_ingest_with_every_row_indexed_or_rejected_by_line(fmt, tmp_path):
    @SETTINGS
    @given(knowledge_bases(fmt))
    def check(case):
        data, rows = case
        path = tmp_path / f"kb.{fmt}"
        path.write_bytes(data)
        _check_every_row_accounted_for(path, rows)

    check()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_strict_mode_stops_at_the_first_damaged_row_naming_its_line(fmt, tmp_path):
    @settings(SETTINGS, max_examples=30)
    @given(knowledge_bases(fmt))
    def check(case):
        data, rows = case
        path = tmp_path / f"kb.{fmt}"
        path.write_bytes(data)
        first_bad = next((row for row in rows if row.damage), None)
        if first_bad is None:
            report = ingest(path, strict=True)
            assert report.rejected == [] and report.rows_indexed == len(rows)
            return
        with pytest.raises(KnowledgeBaseError, match=rf"kb\.{fmt}: line {first_bad.line}: .*--strict"):
            ingest(path, strict=True)

    check()
