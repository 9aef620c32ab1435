"""`python -m rag_job bench` rejects bad options before any cluster work, naming the option."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from rag_job.bench.cli import app


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["retrieval", "--workers", "1,two"], "--workers"),
        (["retrieval", "--replicas", "0"], "--replicas"),
        (["retrieval", "--index-type", "lsh"], "--index-type"),
        (["retrieval", "--k", "50", "--passages", "10"], "--k"),
        (["train", "--modes", "ray,grpc"], "--modes"),
        (["train", "--steps", "1"], "--steps"),
        (["startup", "--replicas", "0"], "--replicas"),
        (["startup", "--dim", "7"], "--dim"),
        (["startup", "--repeats", "0"], "--repeats"),
        (["retrieval", "--sweep", "--passages", "1000"], "--passages"),
        (["retrieval", "--sweep", "--knowledge-base", "kb"], "--knowledge-base"),
        (["retrieval", "--sweep", "--grid", "huge"], "--grid"),
        (["retrieval", "--sweep", "--workers", "0"], "--workers"),
        (["end-to-end", "--runs", "frozen,magic"], "--runs"),
        (["end-to-end", "--entities", "10"], "--entities"),
        (["end-to-end", "--retriever-learning-rate", "0"], "--retriever-learning-rate"),
        (["end-to-end", "--encode-on", "gpus"], "--encode-on"),
    ],
)
def test_bad_bench_option_is_rejected_naming_it(args, named, tmp_path):
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert named in result.output
    assert not (tmp_path / "retrieval.json").exists() and not (tmp_path / "sweep.json").exists()


def test_a_missing_knowledge_base_is_a_failed_run_exit_1_naming_the_path(tmp_path):
    """Exit 2 is for usage; input that fails at run time exits 1, as `verify-kb` does."""
    missing = tmp_path / "no-kb"
    result = CliRunner().invoke(app, ["retrieval", "--knowledge-base", str(missing), "--out", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert str(missing) in result.output and "build-index" in result.output
