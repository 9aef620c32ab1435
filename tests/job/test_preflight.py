"""The pre-flight check of `python -m rag_job train`: every problem a cluster would find minutes
later is named before any cluster work, with its JobConfig field and the fix, all at once.

Unwritable paths are paths under a file (`/dev/null/x`): the tests run as root, and root writes
into a chmod 0o555 directory regardless, so a read-only mode bit would test nothing.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from rag_job.config import ConfigError, JobConfig
from rag_job.train.preflight import check_before_cluster_work
from tests.job.kb_files import copy_kb, downgrade_to_format_1

UNWRITABLE = "/dev/null/checkpoints"


@pytest.fixture
def config_dict(tiny_assets, tmp_path) -> dict:
    """A JobConfig that passes, over a private copy of the 2-shard knowledge base."""
    return {
        "name": "preflight",
        "model": {"path": str(tiny_assets.rag)},
        "retrieval": {"knowledge_base": str(copy_kb(tiny_assets.kb_flat_2shards, tmp_path / "kb"))},
        "data": {"train_path": str(tiny_assets.qa_train)},
        "checkpoint": {"storage_path": str(tmp_path / "ckpt")},
        "output_dir": str(tmp_path / "out"),
    }


def _problems(data: dict) -> str:
    with pytest.raises(ConfigError) as err:
        check_before_cluster_work(JobConfig.from_dict(data))
    return str(err.value)


def test_a_sound_config_passes_and_leaves_only_the_directories_it_will_write(config_dict, tmp_path):
    assert check_before_cluster_work(JobConfig.from_dict(config_dict)) == []
    assert list((tmp_path / "ckpt").iterdir()) == [] and list((tmp_path / "out").iterdir()) == []


def test_every_problem_is_named_at_once_with_its_field(config_dict, tmp_path):
    kb = tmp_path / "kb"
    (kb / "index-shard-01-of-02.faiss").unlink()
    config_dict["model"]["path"] = str(tmp_path / "no-such-model")
    config_dict["checkpoint"]["storage_path"] = UNWRITABLE
    config_dict["output_dir"] = "/dev/null/out"
    message = _problems(config_dict)
    assert message.startswith("the job cannot start: 4 problems found before any cluster work")
    assert f"  model.path: {tmp_path / 'no-such-model'} does not exist" in message
    assert f"  retrieval.knowledge_base: knowledge base {kb} does not match its kb.json" in message
    assert f"{kb / 'index-shard-01-of-02.faiss'} is missing" in message
    assert f"  checkpoint.storage_path: cannot write to {UNWRITABLE}: Not a directory" in message
    assert "  output_dir: cannot write to /dev/null/out: Not a directory" in message


def test_a_truncated_shard_fails_pre_flight_naming_the_file(config_dict, tmp_path):
    shard = tmp_path / "kb" / "index-shard-00-of-02.faiss"
    shard.write_bytes(shard.read_bytes()[:100])
    assert f"{shard} is 100 bytes, kb.json recorded" in _problems(config_dict)


def test_a_deleted_passages_file_fails_pre_flight_naming_the_file(config_dict, tmp_path):
    arrow = next((tmp_path / "kb" / "passages").glob("*.arrow"))
    arrow.unlink()
    message = _problems(config_dict)
    assert "retrieval.knowledge_base" in message and f"{arrow} is missing" in message


def test_a_model_path_that_is_no_rag_checkpoint_says_what_it_holds(config_dict, tiny_assets, tmp_path):
    config_dict["model"]["path"] = str(tiny_assets.ctx_encoder)
    assert "holds a dpr model, not a RAG checkpoint" in _problems(config_dict)
    partial = copy_kb(tiny_assets.rag, tmp_path / "partial-rag")
    (partial / "model.safetensors").unlink()
    config_dict["model"]["path"] = str(partial)
    assert "incomplete RAG checkpoint: no weights" in _problems(config_dict)


def test_hub_names_are_not_checked_but_say_so(config_dict, monkeypatch):
    """(Object-store URIs are checked on a real S3 server: tests/job/test_object_store.py.)"""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    config_dict["model"]["path"] = "facebook/rag-token-base"
    notes = check_before_cluster_work(JobConfig.from_dict(config_dict))
    assert any("'facebook/rag-token-base' is not a local path: taken as a hub model name" in n for n in notes)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "HF_HUB_OFFLINE is set, so it is no hub name either" in _problems(config_dict)


def test_a_format_1_knowledge_base_passes_with_a_note_that_it_cannot_be_verified(config_dict, tmp_path):
    downgrade_to_format_1(tmp_path / "kb")
    notes = check_before_cluster_work(JobConfig.from_dict(config_dict))
    assert len(notes) == 1 and "records no checksums" in notes[0] and "build-index" in notes[0]


def test_train_exits_1_with_one_clear_message_and_no_traceback(config_dict, tmp_path):
    config_dict["checkpoint"]["storage_path"] = UNWRITABLE
    (tmp_path / "kb" / "index-shard-00-of-02.faiss").unlink()
    config_file = tmp_path / "job.yaml"
    config_file.write_text(yaml.safe_dump(config_dict))
    result = subprocess.run(
        [sys.executable, "-m", "rag_job", "train", "--config", str(config_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "error: the job cannot start: 2 problems found before any cluster work" in result.stderr
    assert "Traceback" not in result.stderr and "Started a local Ray instance" not in result.stderr
