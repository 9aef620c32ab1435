"""One end-to-end job at a time per knowledge base: a lease file with a heartbeat.

An end-to-end job writes index versions into its knowledge base, moves `current.json`, and
deletes the versions it does not serve as orphans (rag_job/train/refresh.py). A second job
training end to end on the same directory would delete the first one's versions under its
retrieval actors and swap its actors to an index of another encoder. So rank 0 takes
`KB/index/LEASE_FILE` before it touches any version, rewrites its heartbeat every
`HEARTBEAT_S` from a thread, and deletes it when training ends. Another job finding a lease
whose heartbeat is younger than `STALE_AFTER_S` is refused, with the holder, the file and the
fix; a lease older than that is a job that died, and is taken over with a log line. A restarted
rank 0 of the same run (same Ray job) takes its own lease back at once.

A file, not a lock: `flock` does not hold across the nodes of a shared volume (NFS, many CSI
drivers), and a lock a dead pod held would need an operator to clear it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

from rag_job.knowledge.layout import write_atomically
from rag_job.knowledge.versions import VERSIONS_DIR

logger = logging.getLogger(__name__)

LEASE_FILE = "end_to_end.lease.json"
#: Seconds between heartbeats, and after which a silent lease counts as its job's death.
HEARTBEAT_S = 15.0
STALE_AFTER_S = 120.0


class KnowledgeBaseBusy(RuntimeError):
    """Another live job trains end to end on this knowledge base."""


def lease_path(kb_dir: str | Path) -> Path:
    return Path(kb_dir) / VERSIONS_DIR / LEASE_FILE


def read_lease(kb_dir: str | Path) -> dict | None:
    """The lease's holder and heartbeat; None when there is none (an unreadable one reads as none:
    it was being replaced, or a crash cut it short, and its heartbeat cannot be trusted)."""
    try:
        lease = json.loads(lease_path(kb_dir).read_text())
    except (OSError, ValueError):
        return None
    return lease if isinstance(lease, dict) and isinstance(lease.get("heartbeat_unix"), int | float) else None


def busy_message(kb_dir: str | Path, lease: dict, now: float) -> str:
    age = now - lease["heartbeat_unix"]
    return (
        f"the knowledge base {kb_dir} is in use by another end-to-end job: {lease.get('job')!r} "
        f"(Ray job {lease.get('ray_job_id')}, host {lease.get('host')}, pid {lease.get('pid')}) wrote its "
        f"heartbeat to {lease_path(kb_dir)} {age:.0f}s ago. Two such jobs would delete each other's index "
        f"versions. Wait for it to finish, or train on a copy of the knowledge base; if that job is gone, "
        f"its lease expires {max(0.0, STALE_AFTER_S - age):.0f}s from now (or delete the file)"
    )


def _is_live(lease: dict, now: float) -> bool:
    """A fresh heartbeat, from a process that still runs where this can tell (the same host)."""
    if now - lease["heartbeat_unix"] >= STALE_AFTER_S:
        return False
    if lease.get("host") == socket.gethostname() and isinstance(lease.get("pid"), int):
        try:
            os.kill(lease["pid"], 0)
        except ProcessLookupError:
            return False  # a laptop run that crashed: no need to wait out its heartbeat
        except PermissionError:
            pass  # alive, another user's
    return True


def check_free(kb_dir: str | Path, now: float | None = None) -> str | None:
    """What keeps a new job from this knowledge base (a live lease), or None (the pre-flight asks)."""
    lease = read_lease(kb_dir)
    now = time.time() if now is None else now
    return busy_message(kb_dir, lease, now) if lease is not None and _is_live(lease, now) else None


def release_if_held_by(kb_dir: str | Path, ray_job_id: str) -> bool:
    """The driver, when its training ended however it ended: delete the lease its run's rank 0
    may have left (it died), so a corrected job can start at once. True when one was deleted."""
    held = read_lease(kb_dir)
    if held is None or held.get("ray_job_id") != ray_job_id:
        return False
    lease_path(kb_dir).unlink(missing_ok=True)
    return True


class Lease:
    """This job's hold on a knowledge base; `acquire` takes it, `release` gives it back."""

    def __init__(self, kb_dir: str | Path, job: str, ray_job_id: str, heartbeat_s: float = HEARTBEAT_S):
        self.kb_dir, self.path = Path(kb_dir), lease_path(kb_dir)
        self.record = {
            "job": job,
            "ray_job_id": ray_job_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "acquired_unix": time.time(),
        }
        self.heartbeat_s = heartbeat_s
        #: Set when another job took the lease over (our heartbeat stalled past STALE_AFTER_S).
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def acquire(
        cls, kb_dir: str | Path, job: str, ray_job_id: str, heartbeat_s: float = HEARTBEAT_S
    ) -> Lease:
        """Take the lease (KnowledgeBaseBusy naming the holder when a live other run has it)."""
        lease = cls(kb_dir, job, ray_job_id, heartbeat_s)
        held = read_lease(kb_dir)
        now = time.time()
        if held is not None and held.get("ray_job_id") != ray_job_id:
            if _is_live(held, now):
                raise KnowledgeBaseBusy(busy_message(kb_dir, held, now))
            logger.warning(
                "end-to-end: taking over %s from job %r (Ray job %s), taken for dead: last heartbeat "
                "%.0fs ago (stale after %.0fs), pid %s on %s", lease.path, held.get("job"),
                held.get("ray_job_id"), now - held["heartbeat_unix"], STALE_AFTER_S, held.get("pid"),
                held.get("host"),
            )  # fmt: skip
        elif held is not None:
            logger.info("end-to-end: %s is this run's own (a restarted rank 0); taken back", lease.path)
        lease._write()
        lease._thread = threading.Thread(target=lease._beat, name="kb-lease", daemon=True)
        lease._thread.start()
        return lease

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, json.dumps({**self.record, "heartbeat_unix": time.time()}) + "\n")

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            held = read_lease(self.kb_dir)
            if held is not None and held.get("ray_job_id") != self.record["ray_job_id"]:
                self.lost = (
                    f"job {held.get('job')!r} (Ray job {held.get('ray_job_id')}) took {self.path} over"
                )
                logger.error("end-to-end: lease lost: %s; no further refreshes", self.lost)
                return
            try:
                self._write()
            except OSError as err:  # the next beat tries again; a long outage lets the lease go stale
                logger.warning("end-to-end: heartbeat to %s failed: %s", self.path, err)

    def release(self) -> None:
        """Stop the heartbeat and delete the lease, if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        held = read_lease(self.kb_dir)
        if self.lost is None and (held is None or held.get("ray_job_id") == self.record["ray_job_id"]):
            self.path.unlink(missing_ok=True)
