"""Knowledge-base ingestion: CSV, TSV or JSONL rows -> DPR-style passages of ~100 words.

Every row read is either indexed or rejected with its file, line number and the reason;
nothing is dropped silently (`IngestReport.rows_read == rows_indexed + len(rejected)`).
A quote that never closes costs its own row, not the rest of the file; a UTF-8 byte-order
mark is dropped; bytes that are not UTF-8 reject their row with the real byte offset.
With `strict=True` the first bad row stops ingestion.

A second input brings its own embeddings (`ingest_embeddings_dataset`): a `datasets` directory
with title, text and embeddings columns, as wiki_dpr. Its rows are passages as they are, so a
bad row is refused (named with its row and column), never skipped.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: DPR splits Wikipedia into passages of 100 words; so do we.
DEFAULT_PASSAGE_WORDS = 100
SUPPORTED_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
#: A quoted CSV/TSV field still open after this many lines is taken as a quote that never closes.
MAX_RECORD_LINES = 1000


class KnowledgeBaseError(ValueError):
    """The knowledge-base file cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class Passage:
    """One retrievable unit. `source_id` ties it back to the input row (JSONL `id`, or the line number)."""

    source_id: str
    title: str
    text: str


@dataclass(frozen=True)
class RejectedRow:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class IngestReport:
    """What ingestion did: the passages, and every row read, indexed or rejected."""

    path: Path
    passages: list[Passage] = field(default_factory=list)
    rows_read: int = 0
    rows_indexed: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.path}: {self.rows_read} rows read = {self.rows_indexed} indexed + "
            f"{len(self.rejected)} rejected; {len(self.passages)} passages"
        )

    def rejection_messages(self) -> list[str]:
        """`FILE: line N: reason` for every rejected row."""
        return [f"{self.path}: {rejected}" for rejected in self.rejected]


def split_into_passages(text: str, words_per_passage: int = DEFAULT_PASSAGE_WORDS) -> list[str]:
    """Split on whitespace into consecutive chunks of at most `words_per_passage` words.

    A trailing chunk shorter than a quarter of the target is merged into the previous
    one, so no passage is a near-empty tail.
    """
    words = text.split()
    if not words:
        return []
    chunks = [words[i : i + words_per_passage] for i in range(0, len(words), words_per_passage)]
    if len(chunks) > 1 and len(chunks[-1]) < words_per_passage // 4:
        tail = chunks.pop()
        chunks[-1] = chunks[-1] + tail
    return [" ".join(chunk) for chunk in chunks]


def _detect_format(path: Path) -> str:
    try:
        return SUPPORTED_SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise KnowledgeBaseError(
            f"{path}: unsupported knowledge-base format {path.suffix!r}; use .csv, .tsv or .jsonl "
            "with columns 'title' and 'text'"
        ) from None


@dataclass(frozen=True, slots=True)
class _Line:
    """One physical line (split on \\n), decoded; `bad_utf8` says where its bytes are not UTF-8."""

    number: int
    text: str
    bad_utf8: str | None = None


def _physical_lines(path: Path) -> Iterator[_Line]:
    """The file's lines, read as bytes so an invalid byte is reported at its real offset.

    A UTF-8 byte-order mark at the start of the file is dropped; a UTF-16 one is an error
    (every line would be garbage).
    """
    with path.open("rb") as handle:
        offset = 0
        for number, raw in enumerate(handle, start=1):
            body = raw
            if number == 1:
                if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                    raise KnowledgeBaseError(
                        f"{path}: line 1: the file is UTF-16 (byte-order mark {raw[:2].hex(' ')}); "
                        "save it as UTF-8"
                    )
                if raw.startswith(codecs.BOM_UTF8):
                    body = raw[len(codecs.BOM_UTF8) :]
            try:
                line = _Line(number, body.decode("utf-8"))
            except UnicodeDecodeError as err:
                at = offset + (len(raw) - len(body)) + err.start
                column = len(body[: err.start].decode("utf-8")) + 1
                line = _Line(
                    number,
                    body.decode("utf-8", errors="replace"),
                    f"not UTF-8: byte 0x{body[err.start]:02x} at byte offset {at} (line {number}, "
                    f"column {column}); save the file as UTF-8",
                )
            offset += len(raw)
            yield line


class _RecordTooLong(Exception):
    """A record ran past MAX_RECORD_LINES physical lines: a quote that never closes."""


class _LineFeed:
    """Feeds lines to `csv.reader` one at a time, remembering those of the current record.

    Lines can be put back, so after a runaway quote the lines it swallowed are read again.
    """

    def __init__(self, lines: Iterator[_Line]):
        self._source = lines
        self._put_back: list[_Line] = []
        self.taken: list[_Line] = []

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        line = self._put_back.pop() if self._put_back else next(self._source)
        self.taken.append(line)
        if len(self.taken) > MAX_RECORD_LINES:
            raise _RecordTooLong
        return line.text

    def start_record(self) -> None:
        self.taken = []

    def put_back(self, lines: list[_Line]) -> None:
        self._put_back.extend(reversed(lines))


def _read_delimited(path: Path, delimiter: str) -> Iterator[tuple[int, dict | str]]:
    """Yield (first line of the record, row dict) or (that line, why the record is rejected).

    A record that spans several lines and is malformed (a csv error, the wrong number of
    fields, more than MAX_RECORD_LINES lines, or `_swallowed_rows`) is taken as a quote that opened on its first
    line and ran away: that line is rejected and the lines after it are read again as rows,
    so a stray quote costs one row, not the rest of the file. Blank (or all-whitespace) lines
    are not rows.
    """
    feed = _LineFeed(_physical_lines(path))
    reader = csv.reader(feed, delimiter=delimiter, strict=True)
    header: list[str] | None = None
    while True:
        feed.start_record()
        fields, error = None, None
        try:
            fields = next(reader)
        except StopIteration:
            if not feed.taken:
                break
            error = _explain_csv_error("unexpected end of data")
        except csv.Error as err:
            error = _explain_csv_error(str(err))
        except _RecordTooLong:
            error = f"still open after {MAX_RECORD_LINES} lines"
        lines = feed.taken
        if fields == [] or (
            len(lines) == 1 and fields is not None and len(fields) == 1 and fields[0].isspace()
        ):
            continue  # a blank line is not a row
        if error is not None:  # the reader's state is undefined after an error: start afresh
            reader = csv.reader(feed, delimiter=delimiter, strict=True)
        start = lines[0].number
        bad = next((line.bad_utf8 for line in lines if line.bad_utf8), None)
        if header is None:
            if error is not None or bad is not None:
                raise KnowledgeBaseError(f"{path}: line {start}: unreadable header: {bad or error}")
            header = _checked_header(path, start, fields or [])
            continue
        swallowed = len(lines) > 1 and fields is not None and _swallowed_rows(fields, delimiter)
        if error is None and fields is not None and len(fields) == len(header) and not swallowed:
            yield start, (bad if bad is not None else dict(zip(header, fields, strict=True)))
            continue
        if error is not None:
            problem = error
        elif swallowed:
            problem = "a value that spans lines ends with a delimiter, as if it swallowed rows"
        else:
            problem = _field_count(fields or [], header)
        if len(lines) == 1:
            yield start, bad or f"malformed row: {problem}"
            continue
        feed.put_back(lines[1:])
        yield (
            start,
            (
                f"a quoted field opens on this line and is not closed properly by line {lines[-1].number} "
                f"({problem}); lines {start + 1}-{lines[-1].number} are read again as rows. "
                'Write a quote inside a field as two quotes ("") or quote the whole field'
            ),
        )
    if header is None:
        _checked_header(path, 1, [])


def _swallowed_rows(fields: list[str], delimiter: str) -> bool:
    """A well-formed record that is still a runaway quote, closed by a later row's opening quote.

    The quote that opens a later row's quoted `text` closes the runaway cleanly when that text
    starts with a delimiter or a line break; the swallowed value then ends with the delimiter
    that came before that quote. A legitimate field that spans lines almost never does.
    (A later quoted *title* that starts with a delimiter or a line break is not caught: that
    file reads both ways.)
    """
    return any("\n" in value and value.endswith(delimiter) for value in fields)


def _explain_csv_error(message: str) -> str:
    """The csv module's message in the user's terms (its own hints are about Python)."""
    if message.startswith("new-line character seen in unquoted field"):
        return "a carriage return (\\r) inside an unquoted field; quote the field or remove it"
    if message.startswith("unexpected end of data"):
        return "the file ends inside a quoted field"
    if message.startswith("field larger than field limit"):
        return f"a field longer than {csv.field_size_limit()} characters"
    if message.endswith("expected after '\"'"):
        return f"text after a closing quote ({message})"
    return message


def _checked_header(path: Path, line: int, header: list[str]) -> list[str]:
    missing = {"title", "text"} - set(header)
    if missing:
        raise KnowledgeBaseError(
            f"{path}: line {line}: header must name the columns 'title' and 'text' "
            f"(missing {', '.join(sorted(missing))}; found {', '.join(header) or 'nothing'})"
        )
    return header


def _field_count(fields: list[str], header: list[str]) -> str:
    if len(fields) > len(header):
        return f"{len(fields)} fields, the header has {len(header)}"
    return f"{len(fields)} field(s), fewer than the header's {len(header)} ({', '.join(header)})"


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict | str]]:
    for line in _physical_lines(path):
        if line.bad_utf8:
            yield line.number, line.bad_utf8
            continue
        if not line.text.strip():
            continue
        try:
            row = json.loads(line.text)
        except json.JSONDecodeError as err:
            yield line.number, f"not valid JSON ({err.msg} at column {err.colno})"
            continue
        if not isinstance(row, dict):
            yield line.number, f"expected a JSON object, got {type(row).__name__}"
            continue
        yield line.number, row


def _validate_row(row: dict) -> str | None:
    """Return why the row is unusable, or None."""
    for key in ("title", "text"):
        if key not in row:
            return f"missing field '{key}'"
        if not isinstance(row[key], str):
            return f"field '{key}' must be a string, got {type(row[key]).__name__}"
        try:
            row[key].encode("utf-8")
        except UnicodeEncodeError as err:
            return f"field '{key}' holds an unpaired surrogate {row[key][err.start]!r} (not valid Unicode)"
    if not row["text"].strip():
        return "field 'text' is empty"
    if "id" in row and not isinstance(row["id"], str | int):
        return f"field 'id' must be a string or an integer, got {type(row['id']).__name__}"
    return None


def ingest(
    path: str | Path,
    words_per_passage: int = DEFAULT_PASSAGE_WORDS,
    strict: bool = False,
) -> IngestReport:
    """Read a knowledge-base file into passages, reporting every bad row."""
    path = Path(path)
    if not path.is_file():
        raise KnowledgeBaseError(f"{path}: knowledge-base file not found")
    fmt = _detect_format(path)
    rows = _read_jsonl(path) if fmt == "jsonl" else _read_delimited(path, "," if fmt == "csv" else "\t")
    report = IngestReport(path=path)
    seen_ids: dict[str, int] = {}
    for line, row in rows:
        report.rows_read += 1
        reason = row if isinstance(row, str) else _validate_row(row)
        if reason is None:
            source_id = str(row.get("id", f"line-{line}"))
            if source_id in seen_ids:
                reason = f"duplicate id {source_id!r} (first on line {seen_ids[source_id]})"
            else:
                seen_ids[source_id] = line
        if reason is not None:
            rejected = RejectedRow(line, reason)
            if strict:
                raise KnowledgeBaseError(f"{path}: {rejected} (--strict stops at the first bad row)")
            report.rejected.append(rejected)
            continue
        report.rows_indexed += 1
        title = row["title"].strip()
        for chunk in split_into_passages(row["text"], words_per_passage):
            report.passages.append(Passage(source_id=source_id, title=title, text=chunk))
    if not report.passages:
        raise KnowledgeBaseError(
            f"{path}: no usable passages ({report.rows_read} rows read, {len(report.rejected)} rejected"
            + (f"; first: {report.rejected[0]})" if report.rejected else ")")
        )
    return report


#: Columns a bring-your-own-embeddings dataset must have (the wiki_dpr layout; `id` is optional).
EMBEDDINGS_DATASET_COLUMNS = ("title", "text", "embeddings")
#: Bad rows named one by one in the error; the rest are counted.
MAX_ROWS_NAMED = 20
_BATCH_ROWS = 16_384


def ingest_embeddings_dataset(path: str | Path) -> tuple[IngestReport, np.ndarray]:
    """Read a `Dataset.save_to_disk` directory of passages with their embeddings (wiki_dpr's layout).

    Row i becomes passage i with the row's own embedding: nothing is split or re-encoded. Bad
    rows are refused, never skipped: the embeddings were computed for these exact rows, and users
    align their ids with row numbers, so dropping one would shift every id after it. The error
    names every bad row (numbered from 0, as `dataset[i]`) and its column.
    """
    import numpy as np
    import pyarrow.compute as pc

    path = Path(path)
    dataset = _load_embeddings_dataset(path)
    rows = dataset.with_format("arrow")
    _check_column_types(path, rows[:0])
    num_rows = len(dataset)
    if num_rows == 0:
        raise KnowledgeBaseError(f"{path}: the dataset has no rows")
    problems = _RowProblems(path)
    has_ids = "id" in dataset.column_names
    seen_ids: dict[str, int] = {}
    passages: list[Passage] = []
    dim = _dimension(path, rows[:1])
    embeddings = np.empty((num_rows, dim), dtype=np.float32)
    for start in range(0, num_rows, _BATCH_ROWS):
        batch = rows[start : start + _BATCH_ROWS]
        vectors = batch.column("embeddings").combine_chunks()
        lengths = pc.fill_null(pc.list_value_length(vectors), -1).to_numpy(zero_copy_only=False)
        # Nulls inside a list come back as NaN; float64 values beyond float32's range as infinity.
        with np.errstate(over="ignore"):
            values = np.asarray(pc.list_flatten(vectors).to_numpy(zero_copy_only=False), dtype=np.float32)
        first_bad = np.full(len(batch), -1)
        bad_values = np.flatnonzero(~np.isfinite(values))
        if bad_values.size:
            parents = pc.list_parent_indices(vectors).to_numpy(zero_copy_only=False)
            bad_rows, first = np.unique(parents[bad_values], return_index=True)
            row_starts = np.concatenate([[0], np.cumsum(np.maximum(lengths, 0))[:-1]])
            first_bad[bad_rows] = bad_values[first] - row_starts[bad_rows]
        titles = batch.column("title").to_pylist()
        texts = batch.column("text").to_pylist()
        ids = batch.column("id").to_pylist() if has_ids else [None] * len(batch)
        for offset, (title, text, source_id) in enumerate(zip(titles, texts, ids, strict=True)):
            row = start + offset
            if title is None:
                problems.add(row, "column 'title' is null")
            if text is None or not text.strip():
                problems.add(row, f"column 'text' is {'null' if text is None else 'empty'}")
            if lengths[offset] < 0:
                problems.add(row, "column 'embeddings' is null")
            elif lengths[offset] != dim:
                problems.add(row, f"column 'embeddings' has {lengths[offset]} values, row 0 has {dim}")
            elif first_bad[offset] >= 0:
                problems.add(
                    row,
                    f"column 'embeddings' holds a value that is not a finite float32 (NaN, infinity, null or "
                    f"out of range) at position {first_bad[offset]}",
                )
            if has_ids:
                if source_id is None:
                    problems.add(row, "column 'id' is null")
                    continue
                source_id = str(source_id)
                if source_id in seen_ids:
                    problems.add(
                        row, f"column 'id': duplicate id {source_id!r} (first in row {seen_ids[source_id]})"
                    )
                    continue
                seen_ids[source_id] = row
            passages.append(
                Passage(source_id=str(row) if source_id is None else source_id, title=title, text=text)
            )
        if not problems.count:
            embeddings[start : start + len(batch)] = values.reshape(len(batch), dim)
    problems.raise_if_any()
    return IngestReport(path=path, passages=passages, rows_read=num_rows, rows_indexed=num_rows), embeddings


class _RowProblems:
    """Bad rows of an embeddings dataset: the first MAX_ROWS_NAMED named, all counted."""

    def __init__(self, path: Path):
        self.path = path
        self.named: list[str] = []
        self.count = 0

    def add(self, row: int, message: str) -> None:
        self.count += 1
        if len(self.named) < MAX_ROWS_NAMED:
            self.named.append(f"row {row}: {message}")

    def raise_if_any(self) -> None:
        if not self.count:
            return
        more = f"\n  ... and {self.count - len(self.named)} more" if self.count > len(self.named) else ""
        raise KnowledgeBaseError(
            f"{self.path}: {self.count} bad row{'s' if self.count > 1 else ''}, so nothing was indexed "
            "(rows are numbered from 0; none is skipped, since row i is passage id i):\n  "
            + "\n  ".join(self.named)
            + more
        )


def _load_embeddings_dataset(path: Path):
    """The dataset at `path`, or an error saying what the directory is instead."""
    from datasets import Dataset, load_from_disk

    how = "pass a directory written by datasets' Dataset.save_to_disk"
    if not path.is_dir():
        raise KnowledgeBaseError(f"{path}: {'not a directory' if path.exists() else 'does not exist'}; {how}")
    try:
        dataset = load_from_disk(str(path))
    except Exception as err:  # datasets raises several types for a directory it cannot read
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise KnowledgeBaseError(f"{path}: not a readable saved dataset ({first_line}); {how}") from err
    if not isinstance(dataset, Dataset):
        splits = list(dataset)
        raise KnowledgeBaseError(
            f"{path} holds a DatasetDict with the splits {', '.join(splits)}; pass one split's directory, "
            f"e.g. {path / splits[0]}"
        )
    missing = [column for column in EMBEDDINGS_DATASET_COLUMNS if column not in dataset.column_names]
    if missing:
        raise KnowledgeBaseError(
            f"{path}: missing the column{'s' if len(missing) > 1 else ''} {', '.join(repr(c) for c in missing)} "
            f"(found {', '.join(dataset.column_names)}); a dataset of passages needs 'title' and 'text' "
            "strings and 'embeddings', a list of floats per row, as wiki_dpr"
        )
    return dataset


def _check_column_types(path: Path, empty_table) -> None:
    """Column types come before rows: a dataset of the wrong type fails once, not on every row."""
    import pyarrow as pa

    schema = empty_table.schema
    for column in ("title", "text"):
        kind = schema.field(column).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise KnowledgeBaseError(f"{path}: column {column!r} must hold strings, it holds {kind}")
    kind = schema.field("embeddings").type
    is_list = pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    if not is_list or not pa.types.is_floating(kind.value_type):
        raise KnowledgeBaseError(
            f"{path}: column 'embeddings' must hold a list of floats per row (float32, as wiki_dpr), "
            f"it holds {kind}"
        )
    if "id" in schema.names:
        kind = schema.field("id").type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind)):
            raise KnowledgeBaseError(f"{path}: column 'id' must hold strings or integers, it holds {kind}")


def _dimension(path: Path, first_row) -> int:
    """The embedding width, fixed by row 0 (every other row must match it)."""
    import pyarrow.compute as pc

    length = pc.list_value_length(first_row.column("embeddings")).to_pylist()[0]
    if not length:
        raise KnowledgeBaseError(
            f"{path}: row 0: column 'embeddings' is {'null' if length is None else 'an empty list'}; "
            "row 0 fixes the embedding dimension"
        )
    return int(length)
