"""One end-to-end job per knowledge base: a live lease refuses a second job, naming the holder and
the fix; a dead one (stale heartbeat, or an exited process on this host) is taken over; the
heartbeat moves; a lease another run took is not deleted by the one that lost it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time

import pytest

from rag_job.knowledge.lease import (
    STALE_AFTER_S,
    KnowledgeBaseBusy,
    Lease,
    check_free,
    lease_path,
    read_lease,
    release_if_held_by,
)


def _rewrite(kb, **changes) -> None:
    path = lease_path(kb)
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_a_second_job_is_refused_while_the_first_holds_the_lease(tmp_path):
    first = Lease.acquire(tmp_path, "job-a", "01000000")
    try:
        busy = check_free(tmp_path)
        assert busy is not None and "'job-a' (Ray job 01000000" in busy
        assert str(lease_path(tmp_path)) in busy and "train on a copy of the knowledge base" in busy
        with pytest.raises(KnowledgeBaseBusy, match="in use by another end-to-end job: 'job-a'"):
            Lease.acquire(tmp_path, "job-b", "02000000")
        again = Lease.acquire(tmp_path, "job-a", "01000000")  # a restarted rank 0 of the same run
        again.release()
    finally:
        first.release()
    assert check_free(tmp_path) is None and not lease_path(tmp_path).exists()


def test_a_lease_whose_heartbeat_stopped_or_whose_process_exited_is_taken_over(tmp_path, caplog):
    stale = Lease.acquire(tmp_path, "job-a", "01000000", heartbeat_s=3600)
    stale._stop.set()
    _rewrite(tmp_path, heartbeat_unix=time.time() - STALE_AFTER_S - 1)
    assert check_free(tmp_path) is None
    with caplog.at_level(logging.WARNING, logger="rag_job.knowledge.lease"):
        taken = Lease.acquire(tmp_path, "job-b", "02000000")
    assert "taking over" in caplog.text and "'job-a'" in caplog.text
    assert read_lease(tmp_path)["job"] == "job-b"
    taken._stop.set()

    exited = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    _rewrite(tmp_path, pid=int(exited.stdout), heartbeat_unix=time.time())  # fresh, but its process is gone
    assert check_free(tmp_path) is None
    Lease.acquire(tmp_path, "job-c", "03000000").release()


def test_the_heartbeat_moves_and_a_lease_taken_over_is_not_deleted_by_its_loser(tmp_path):
    lease = Lease.acquire(tmp_path, "job-a", "01000000", heartbeat_s=0.05)
    first = read_lease(tmp_path)["heartbeat_unix"]
    deadline = time.monotonic() + 30
    while read_lease(tmp_path)["heartbeat_unix"] == first and time.monotonic() < deadline:
        time.sleep(0.05)
    assert read_lease(tmp_path)["heartbeat_unix"] > first

    # Another run took it over (we looked dead). A beat that read the lease just before the
    # takeover may still write ours over it once, as a stalled heartbeat could: take it again
    # until a beat reads the other run's lease.
    deadline = time.monotonic() + 30
    while lease.lost is None and time.monotonic() < deadline:
        _rewrite(tmp_path, job="job-b", ray_job_id="02000000")
        time.sleep(0.2)
    assert lease.lost is not None and "'job-b'" in lease.lost
    lease.release()
    assert read_lease(tmp_path)["job"] == "job-b"  # still theirs
    assert not release_if_held_by(tmp_path, "01000000")
    assert release_if_held_by(tmp_path, "02000000") and read_lease(tmp_path) is None


def test_pre_flight_refuses_a_knowledge_base_another_live_job_trains_on(tiny_assets, tmp_path):
    from rag_job.config import ConfigError, JobConfig
    from rag_job.train.preflight import check_before_cluster_work
    from tests.job.kb_files import copy_kb

    kb = copy_kb(tiny_assets.kb_flat_2shards, tmp_path / "kb")
    config = JobConfig.from_dict(
        {
            "model": {"path": str(tiny_assets.rag)},
            "retrieval": {
                "knowledge_base": str(kb),
                "end_to_end": {"refresh_every_steps": 5, "ctx_encoder": str(tiny_assets.ctx_encoder)},
            },
            "data": {"train_path": str(tiny_assets.qa_train)},
            "checkpoint": {"storage_path": str(tmp_path / "ckpt")},
            "output_dir": str(tmp_path / "out"),
        }
    )
    check_before_cluster_work(config)  # free: passes
    holder = Lease.acquire(kb, "other-job", "0a000000")
    try:
        with pytest.raises(ConfigError, match=r"retrieval.knowledge_base: the knowledge base .* 'other-job'"):
            check_before_cluster_work(config)
    finally:
        holder.release()


def test_writers_racing_on_one_file_never_share_a_staged_file(tmp_path):
    """A takeover racing a late heartbeat is two writers of one lease at once: every write lands
    whole or is replaced whole, none fails, and no staged file is left behind."""
    import threading

    from rag_job.knowledge.layout import write_atomically

    target = tmp_path / "end_to_end.lease.json"
    payloads = {w: json.dumps({"writer": w, "pad": "x" * 20_000}) for w in ("a", "b")}
    errors, seen = [], set()

    def write(writer: str) -> None:
        try:
            for _ in range(300):
                write_atomically(target, payloads[writer])
        except Exception as err:  # the shared staged name made one writer's rename fail
            errors.append(err)

    threads = [threading.Thread(target=write, args=(w,)) for w in payloads]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        if target.exists():
            seen.add(json.loads(target.read_text())["writer"])
    for thread in threads:
        thread.join()
    assert errors == []
    assert seen <= set(payloads) and target.read_text() in payloads.values()
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
