"""Question/answer data: the published script's `.source`/`.target` line files, or JSONL.

JSONL rows are `{"question": str, "answers": [str, ...], "gold_ids": [passage id, ...]}`
(`gold_ids` optional; they enable retrieval precision@k). Errors name the file and line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


class DataError(ValueError):
    """Unusable training or evaluation data; the message names the file and line."""


@dataclass(frozen=True)
class QAExample:
    question: str
    answers: tuple[str, ...]
    gold_ids: tuple[str, ...] = field(default=())


def _read_jsonl(path: Path) -> list[QAExample]:
    examples = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}: line {line_number}: not valid JSON ({err.msg})") from err
            question = row.get("question") if isinstance(row, dict) else None
            answers = row.get("answers") if isinstance(row, dict) else None
            if isinstance(answers, str):
                answers = [answers]
            if not isinstance(question, str) or not question.strip():
                raise DataError(f"{path}: line {line_number}: field 'question' must be a non-empty string")
            if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
                raise DataError(
                    f"{path}: line {line_number}: field 'answers' must be a non-empty list of strings"
                )
            gold = row.get("gold_ids", [])
            examples.append(QAExample(question.strip(), tuple(answers), tuple(str(g) for g in gold)))
    return examples


def _read_line_files(source: Path, target: Path) -> list[QAExample]:
    for path in (source, target):
        if not path.is_file():
            raise DataError(f"{path} does not exist (line-file data needs both .source and .target)")
    questions = source.read_text(encoding="utf-8").splitlines()
    answers = target.read_text(encoding="utf-8").splitlines()
    if len(questions) != len(answers):
        raise DataError(f"{source} has {len(questions)} lines but {target} has {len(answers)}")
    # The published format allows several answers on one target line separated by tabs.
    return [QAExample(q.strip(), tuple(a.split("\t"))) for q, a in zip(questions, answers, strict=True)]


def read_examples(path: str | Path, split: str = "train") -> list[QAExample]:
    """Read `path`: a .jsonl file, or a directory holding `{split}.source` / `{split}.target`."""
    path = Path(path)
    if path.is_dir():
        examples = _read_line_files(path / f"{split}.source", path / f"{split}.target")
    elif path.is_file():
        examples = _read_jsonl(path)
    else:
        raise DataError(f"data path {path} does not exist")
    if not examples:
        raise DataError(f"{path} holds no examples")
    return examples


def read_qa_texts(path: str | Path) -> list[str]:
    """Every question and answer as plain text (to train tiny tokenizers on)."""
    return [text for ex in read_examples(path) for text in (ex.question, *ex.answers)]
