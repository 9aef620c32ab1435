"""Inputs and outputs on an S3-compatible object store: a real server on loopback.

The server is moto's standalone S3 server (`moto.server.ThreadedMotoServer`, Apache-2.0): a
real HTTP endpoint that s3fs/botocore talk to over the loopback network, as they would to AWS,
MinIO or Ceph (selected by AWS_ENDPOINT_URL). Nothing in the job is mocked.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rag_job.config import ConfigError, JobConfig
from rag_job.knowledge.digest import verify_files
from rag_job.knowledge.layout import KnowledgeBaseLayoutError, load_meta
from rag_job.storage import fetch, file_sizes
from rag_job.train.preflight import check_before_cluster_work

BUCKET = "rag-test"
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tiny_assets, tmp_path_factory):
    """An S3 server on 127.0.0.1 with a bucket holding the tiny model, a 2-shard KB and the QA data."""
    pytest.importorskip("s3fs")
    server_module = pytest.importorskip("moto.server")
    port = _free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "RAG_JOB_CACHE_DIR": str(tmp_path_factory.mktemp("fetch-cache")),
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem()
    fs.mkdir(BUCKET)
    fs.put(str(tiny_assets.rag), f"{BUCKET}/models/rag", recursive=True)
    fs.put(str(tiny_assets.kb_flat_2shards), f"{BUCKET}/kb", recursive=True)
    fs.put_file(str(tiny_assets.qa_train), f"{BUCKET}/data/qa_train.jsonl")
    yield fs, env
    server.stop()
    s3fs.S3FileSystem.clear_instance_cache()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_a_remote_directory_is_fetched_once_and_again_when_it_changes(s3, tmp_path):
    fs, _ = s3
    fs.put_file(str(REPO / "README.md"), f"{BUCKET}/fetch/a/readme.md")
    fs.pipe_file(f"{BUCKET}/fetch/b.txt", b"first")
    uri = f"s3://{BUCKET}/fetch"

    first = fetch(uri)
    assert not first.reused and first.files == 2
    assert (first.path / "b.txt").read_bytes() == b"first"
    assert (first.path / "a" / "readme.md").read_bytes() == (REPO / "README.md").read_bytes()
    assert fetch(uri).reused  # a second worker on this node

    fs.pipe_file(f"{BUCKET}/fetch/b.txt", b"second version")
    again = fetch(uri)
    assert not again.reused
    assert (again.path / "b.txt").read_bytes() == b"second version"

    subset = fetch(uri, only=["b.txt"])
    assert sorted(p.name for p in subset.path.iterdir()) == ["b.txt"]
    with pytest.raises(FileNotFoundError, match=r"s3://rag-test/nothing-here"):
        fetch(f"s3://{BUCKET}/nothing-here")


def test_knowledge_base_metadata_and_file_sizes_are_checked_on_the_store(s3, tiny_assets):
    fs, _ = s3
    meta = load_meta(f"s3://{BUCKET}/kb")
    assert meta == load_meta(tiny_assets.kb_flat_2shards)
    assert verify_files(f"s3://{BUCKET}/kb", meta).ok

    # A copy whose second shard was truncated on upload, and one with no kb.json at all.
    fs.put(str(tiny_assets.kb_flat_2shards), f"{BUCKET}/kb-bad", recursive=True)
    shard = meta.shards[1].file
    fs.pipe_file(f"{BUCKET}/kb-bad/{shard}", (tiny_assets.kb_flat_2shards / shard).read_bytes()[:100])
    check = verify_files(f"s3://{BUCKET}/kb-bad", meta)
    assert not check.ok
    assert any(shard in problem and "100 bytes" in problem for problem in check.problems)
    with pytest.raises(KnowledgeBaseLayoutError, match=r"s3://rag-test/data/kb.json does not exist"):
        load_meta(f"s3://{BUCKET}/data")


def _config(tmp_path: Path, **overrides) -> JobConfig:
    data = {
        "name": "s3-job",
        "model": {"path": f"s3://{BUCKET}/models/rag"},
        "retrieval": {"knowledge_base": f"s3://{BUCKET}/kb", "mode": "ray", "n_docs": 2},
        "data": {"train_path": f"s3://{BUCKET}/data/qa_train.jsonl"},
        "training": {"max_steps": 4, "batch_size": 4, "learning_rate": 1e-3, "log_every_steps": 2},
        "scaling": {"num_workers": 2, "cpus_per_worker": 1},
        "checkpoint": {"storage_path": f"s3://{BUCKET}/checkpoints", "every_steps": 2},
        "evaluation": {"at_end": True, "max_samples": 8, "max_new_tokens": 4},
        "output_dir": f"s3://{BUCKET}/outputs/s3-job",
    }
    for key, value in overrides.items():
        section, _, field = key.partition(".")
        if field:
            data[section][field] = value
        else:
            data[section] = value
    return JobConfig.from_dict(data)


def test_preflight_checks_remote_inputs_and_names_each_bad_field(s3, tmp_path):
    check_before_cluster_work(_config(tmp_path))  # all on the bucket, all fine

    bad = _config(
        tmp_path,
        **{
            "model.path": f"s3://{BUCKET}/kb",  # a knowledge base, not a model
            "data.train_path": f"s3://{BUCKET}/data/missing.jsonl",
            "output_dir": "s3://no-such-bucket/outputs",
        },
    )
    with pytest.raises(ConfigError) as raised:
        check_before_cluster_work(bad)
    message = str(raised.value)
    assert "model.path: s3://rag-test/kb has no config.json" in message
    assert "data.train_path:" in message and "missing.jsonl" in message
    assert "output_dir: cannot write to s3://no-such-bucket/outputs" in message


@pytest.mark.slow
def test_train_from_the_bucket_publish_to_it_and_resume_from_it(s3, tmp_path):
    """`python -m rag_job train --local`, as a user runs it: model, knowledge base and data come
    from the bucket, checkpoints and the final model go back to it; a second run with more
    steps resumes from the checkpoint on the bucket, each trainer from its own download. Neither
    run leaves a copy of a checkpoint in the temporary directory (a model's size per run)."""
    fs, env = s3
    scratch = tmp_path / "scratch"  # TMPDIR of the run and its Ray workers; Ray's own files stay in /tmp
    scratch.mkdir()
    env = {**env, "TMPDIR": str(scratch), "RAY_TMPDIR": "/tmp"}

    def train(max_steps: int) -> dict:
        config_file = tmp_path / f"job-{max_steps}.json"
        config_file.write_text(_config(tmp_path, **{"training.max_steps": max_steps}).to_json())
        done = subprocess.run(
            [sys.executable, "-m", "rag_job", "train", "--local", "--config", str(config_file)],
            cwd=tmp_path,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
        assert f"in s3://{BUCKET}/outputs/s3-job" in done.stdout
        assert sorted(p.name for p in scratch.iterdir() if "checkpoint" in p.name) == []
        return json.loads(fs.cat_file(f"{BUCKET}/outputs/s3-job/metrics.json"))

    first = train(4)
    assert first["steps"] == 4 and first["resumed_from_step"] is None
    published = file_sizes(f"s3://{BUCKET}/outputs/s3-job")
    assert {"model/config.json", "model/model.safetensors", "metrics.json", "loss.png"} <= set(published)
    assert any(name.startswith("model/generator_tokenizer/") for name in published)
    assert any("checkpoint_" in name for name in file_sizes(f"s3://{BUCKET}/checkpoints/s3-job"))
    # Each retrieval actor copied its shard from the bucket and says how long it took.
    actors = first["retrieval_actors"]
    assert sorted(actor["shard"] for actor in actors) == [0, 1]
    assert all(actor["fetch_seconds"] > 0 and actor["kb_dir"] == f"s3://{BUCKET}/kb" for actor in actors)

    second = train(6)
    assert second["resumed_from_step"] == 4
    assert second["steps"] == 6


def test_export_reads_the_bucket_and_uploads_a_self_contained_directory(s3):
    from rag_job.cli import main

    code = main(
        [
            "export",
            "--model", f"s3://{BUCKET}/models/rag",
            "--kb", f"s3://{BUCKET}/kb",
            "--out", f"s3://{BUCKET}/exported",
        ]
    )  # fmt: skip
    assert code == 0
    names = set(file_sizes(f"s3://{BUCKET}/exported"))
    assert {"config.json", "model.safetensors", "index.faiss", "README.md"} <= names
    assert any(name.startswith("passages/") for name in names)
    assert any(name.startswith("generator_tokenizer/") for name in names)
