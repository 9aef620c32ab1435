"""`opened_checkpoint`: a checkpoint on a local volume is read in place; one elsewhere is
downloaded into a private directory per opener, complete while it is open and gone afterwards.

The "elsewhere" here is pyarrow's SubTreeFileSystem over this machine's disk: Ray reads it through
the same download path as S3 (it is not a LocalFileSystem), without a server; the S3 test in
test_object_store.py runs the whole job against the test object store."""

from __future__ import annotations

import threading

import pyarrow.fs
import pytest
from ray.train import Checkpoint

from rag_job.train.model_io import opened_checkpoint


@pytest.fixture
def saved(tmp_path):
    root = tmp_path / "store" / "checkpoint_000001"
    (root / "model").mkdir(parents=True)
    (root / "model" / "tokenizer_config.json").write_text('{"model_max_length": 512}' * 2000)
    (root / "trainer_state.pt").write_bytes(b"\0" * 1_000_000)
    return root


def test_a_local_checkpoint_is_read_in_place(saved):
    with opened_checkpoint(Checkpoint.from_directory(str(saved))) as opened:
        assert opened == saved
    assert saved.is_dir()  # never deleted: it is the checkpoint itself
    with opened_checkpoint(None) as opened:
        assert opened is None


def test_openers_of_a_remote_checkpoint_each_get_a_whole_private_copy_that_goes_away(saved):
    remote = Checkpoint(path="checkpoint_000001", filesystem=pyarrow.fs.SubTreeFileSystem(
        str(saved.parent), pyarrow.fs.LocalFileSystem()
    ))  # fmt: skip
    want = {p.relative_to(saved): p.read_bytes() for p in saved.rglob("*") if p.is_file()}
    copies, errors, both_open = [], [], threading.Barrier(2)

    def open_and_read() -> None:
        try:
            with opened_checkpoint(remote) as opened:
                both_open.wait(timeout=30)  # the two copies exist at once
                got = {p.relative_to(opened): p.read_bytes() for p in opened.rglob("*") if p.is_file()}
                assert got == want
                copies.append(opened)
                both_open.wait(timeout=30)  # neither leaves while the other reads
        except Exception as err:
            errors.append(err)

    threads = [threading.Thread(target=open_and_read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(copies)) == 2 and saved not in copies
    assert not any(copy.exists() for copy in copies)
