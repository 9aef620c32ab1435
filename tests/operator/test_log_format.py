"""`python -m rag_operator run --log-format json` writes one JSON object per log line (kopf's JSON
formatter); the default stays kopf's text lines. Nothing is started: kopf.run and the metrics
server are replaced, and the replacement logs the way a handler does."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import kopf
import pytest

from rag_operator import __main__ as cli
from rag_operator import metrics
from rag_operator import operator as rag_operator

#: What kopf attaches to a record logged about one resource (its ObjectLogger's extra).
REF = {
    "apiVersion": "rag.finetune.dev/v1alpha1",
    "kind": "RagFinetuneJob",
    "name": "sweep-1",
    "namespace": "ml",
}


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """kopf.configure replaces the root logger's handler and level; put them back afterwards."""
    root, quiet = logging.getLogger(), logging.getLogger("asyncio")
    saved = (root.handlers[:], root.level, quiet.handlers[:], quiet.propagate)
    yield
    root.handlers[:], quiet.handlers[:] = saved[0], saved[2]
    root.setLevel(saved[1])
    quiet.propagate = saved[3]


def run_and_log(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """Run the CLI's `run` with these args; 'kopf' logs one line about a job and one warning."""

    def fake_kopf_run(**_: Any) -> None:
        logging.getLogger("kopf.objects").info(
            "Handler %r succeeded.", "reconcile", extra={"k8s_ref": REF, "k8s_skip": True}
        )
        logging.getLogger("rag_operator.test").warning("RayJob %s is gone", "sweep-1-abc")
        logging.getLogger("rag_operator.test").debug("not shown below DEBUG")

    monkeypatch.setattr(kopf, "run", fake_kopf_run)
    monkeypatch.setattr(metrics, "serve", lambda port: None)
    return cli.main(["run", *args])


def test_json_log_format_writes_one_json_object_per_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_and_log(monkeypatch, "--log-format", "json") == 0
    lines = capsys.readouterr().err.splitlines()
    records = [json.loads(line) for line in lines]  # every line parses on its own
    assert [r["message"] for r in records] == ["Handler 'reconcile' succeeded.", "RayJob sweep-1-abc is gone"]
    assert [r["severity"] for r in records] == ["info", "warn"]
    assert records[0]["object"] == REF  # the resource, as a field a log query can filter on
    assert "object" not in records[1]
    for record in records:
        assert datetime.fromisoformat(record["timestamp"]).tzinfo is not None


def test_text_is_the_default_log_format(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_and_log(monkeypatch) == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert re.fullmatch(
        r"\[[0-9-]+ [0-9:,]+\] kopf\.objects +\[INFO +\] Handler 'reconcile' succeeded\.", lines[0]
    )
    assert re.fullmatch(r"\[.+\] rag_operator\.test +\[WARNING \] RayJob sweep-1-abc is gone", lines[1])
    for line in lines:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)


def test_json_logs_keep_the_verbose_level(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_and_log(monkeypatch, "--log-format", "json", "--verbose") == 0
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert records[-1] == {**records[-1], "message": "not shown below DEBUG", "severity": "debug"}


def test_an_unknown_log_format_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(kopf, "run", lambda **_: pytest.fail("kopf.run must not start"))
    assert cli.main(["run", "--log-format", "xml"]) == 2
    assert "--log-format" in capsys.readouterr().err
    with pytest.raises(ValueError, match="'xml' is not one of text, json"):
        rag_operator.configure_logging(debug=False, quiet=False, log_format="xml")
