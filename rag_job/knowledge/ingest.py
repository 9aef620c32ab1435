"""Knowledge-base ingestion: CSV, TSV or JSONL rows -> DPR-style passages of ~100 words.

Every rejected row is reported with its line number and the reason; nothing is
dropped silently. With `strict=True` the first bad row stops ingestion.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: DPR splits Wikipedia into passages of 100 words; so do we.
DEFAULT_PASSAGE_WORDS = 100
SUPPORTED_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}


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
    """What ingestion did: the passages, the rows read and every row rejected."""

    path: Path
    passages: list[Passage] = field(default_factory=list)
    rows_read: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.path}: {self.rows_read} rows read, {len(self.passages)} passages, "
            f"{len(self.rejected)} rows rejected"
        )


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


def _read_delimited(path: Path, delimiter: str) -> Iterator[tuple[int, dict | str]]:
    """Yield (line number, row dict) or (line number, error message)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        header = reader.fieldnames or []
        missing = {"title", "text"} - set(header)
        if missing:
            raise KnowledgeBaseError(
                f"{path}: line 1: header must name the columns 'title' and 'text' "
                f"(missing {', '.join(sorted(missing))}; found {', '.join(header) or 'nothing'})"
            )
        for row in reader:
            line = reader.line_num
            if None in row:
                yield line, f"{len(header) + len(row[None])} fields, the header has {len(header)}"
            elif any(value is None for value in row.values()):
                yield line, f"fewer fields than the header's {len(header)}"
            else:
                yield line, row


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict | str]]:
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                yield line_number, f"not valid JSON ({err.msg} at column {err.colno})"
                continue
            if not isinstance(row, dict):
                yield line_number, f"expected a JSON object, got {type(row).__name__}"
                continue
            yield line_number, row


def _validate_row(row: dict) -> str | None:
    """Return why the row is unusable, or None."""
    for key in ("title", "text"):
        if key not in row:
            return f"missing field '{key}'"
        if not isinstance(row[key], str):
            return f"field '{key}' must be a string, got {type(row[key]).__name__}"
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
    try:
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
            title = row["title"].strip()
            for chunk in split_into_passages(row["text"], words_per_passage):
                report.passages.append(Passage(source_id=source_id, title=title, text=chunk))
    except UnicodeDecodeError as err:
        raise KnowledgeBaseError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    except csv.Error as err:
        raise KnowledgeBaseError(f"{path}: malformed CSV/TSV: {err}") from err
    if not report.passages:
        raise KnowledgeBaseError(
            f"{path}: no usable passages ({report.rows_read} rows read, {len(report.rejected)} rejected)"
        )
    return report
