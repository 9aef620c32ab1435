"""Index refresh during end-to-end retriever training, off the trainers' critical path.

Every `refresh_every_steps` optimizer steps rank 0 copies the context encoder's weights (a CPU
copy, taken between steps so no optimizer update tears it) and hands the rest to a background
thread: it saves the copy under KB/index/encoders/v<N>/, has the job's encode actors (started
once, on retrieval nodes: `rag_job.knowledge.encoder_pool`) re-encode the passages and write
index version N, then swaps rank 0's pool to it (`swap_index`). Training goes on over the
previous version meanwhile; the other ranks' pools move when an answer reports the new active
version (`RetrievalPool.search_with_version`). One refresh at a time: a due refresh while one
runs is skipped and logged. A failed refresh is logged and counted; training goes on.
"""

from __future__ import annotations

import copy
import logging
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag_job.config import EndToEndConfig
from rag_job.knowledge.versions import VERSIONS_DIR, current_version, list_versions, next_version
from rag_job.train.ctx_encoder import save_ctx_encoder, trained_ctx_encoder

logger = logging.getLogger(__name__)

#: KB/index/ENCODERS_DIR/v<N>: the context encoder that encoded index version N.
ENCODERS_DIR = "encoders"


@dataclass
class RefreshReport:
    """One refresh: the version it wrote, the step its encoder was copied at, seconds per phase."""

    version: int
    encoded_at_step: int
    snapshot_seconds: float = 0.0
    encode_seconds: float = 0.0
    build_seconds: float = 0.0
    swap_seconds: float = 0.0
    total_seconds: float = 0.0
    finished_at_step: int | None = None
    deleted_versions: list[str] = field(default_factory=list)


def encoder_dir(kb_dir: str | Path, version: int) -> Path:
    return Path(kb_dir) / VERSIONS_DIR / ENCODERS_DIR / f"v{version}"


class IndexRefresher:
    """Rank 0's refresh schedule and the one refresh in flight (see the module docstring)."""

    def __init__(self, settings: EndToEndConfig, retriever, encoders, kb_dir: str):
        self.settings = settings
        self.pool = retriever.pool
        self.tokenizer = retriever.ctx_encoder_tokenizer
        self.kb_dir = kb_dir
        self.reports: list[RefreshReport] = []
        self.failures: list[str] = []
        self.skipped_steps: list[int] = []
        #: Each (re)start: its step, where the encoder came from, the served version, whether it refreshed.
        self.starts: list[dict] = []
        self.index_version = current_version(kb_dir)
        self.encoded_at_step: int | None = None
        self._thread: threading.Thread | None = None
        self._running: RefreshReport | None = None
        self._error: BaseException | None = None
        self._busy_during_step = False
        self.encoders = encoders  # an EncoderPool the driver started with the retrieval actors

    @property
    def running(self) -> bool:
        return self._thread is not None

    def restore(self, saved: dict | None, loaded_from: str, resumed: bool, model, step: int) -> None:
        """After (re)start: refresh at once when the served index is older than the one in use
        at the checkpoint, or (fresh start) was encoded by another encoder than ours."""
        served = current_version(self.kb_dir)
        wanted = (saved or {}).get("version", 0) if resumed else 0
        if saved:
            self.encoded_at_step = saved.get("encoded_at_step")
            self.reports = [RefreshReport(**r) for r in saved.get("refreshes", [])]
            self.failures = list(saved.get("failures", []))
            self.skipped_steps = list(saved.get("skipped_steps", []))
            self.starts = list(saved.get("starts", []))
        refresh = served < wanted or (not resumed and served != 0)
        self.starts.append(
            {
                "step": step,
                "ctx_encoder": loaded_from,
                "served_version": served,
                "refreshed": refresh,
            }
        )
        if refresh:
            why = (
                f"the served index v{served} is older than the checkpoint's v{wanted}"
                if resumed
                else f"the served index v{served} was not encoded by this job's starting encoder"
            )
            logger.info("end-to-end: refreshing the index at step %d: %s", step, why)
            self.start(model, step)
        else:
            logger.info("end-to-end: serving index v%d, no refresh needed at step %d", served, step)

    def start(self, model, step: int) -> bool:
        """Copy the encoder now and re-encode in the background; False (logged) when one is running."""
        if self.running:
            self.skipped_steps.append(step)
            logger.warning(
                "end-to-end: refresh due at step %d skipped: the one started at step %d still runs",
                step, self._running.encoded_at_step,
            )  # fmt: skip
            return False
        started = time.perf_counter()
        encoder = copy.deepcopy(trained_ctx_encoder(model)).to("cpu").eval()
        tokenizer = copy.deepcopy(self.tokenizer)  # a Rust tokenizer is not to be shared across threads
        report = RefreshReport(version=next_version(self.kb_dir), encoded_at_step=step)
        report.snapshot_seconds = time.perf_counter() - started
        self._running, self._error = report, None
        self._thread = threading.Thread(
            target=self._run, args=(encoder, tokenizer, report, started), name="index-refresh", daemon=True
        )
        self._thread.start()
        return True

    def _run(self, encoder, tokenizer, report: RefreshReport, started: float) -> None:
        from rag_job.retrieval.swap import swap_index

        try:
            path = encoder_dir(self.kb_dir, report.version)
            path.mkdir(parents=True, exist_ok=True)
            save_ctx_encoder(encoder, tokenizer, path)
            _, timings = self.encoders.encode_version(path, report.version)
            report.encode_seconds, report.build_seconds = timings["encode_seconds"], timings["build_seconds"]
            swapped = time.perf_counter()
            swap = swap_index(self.pool, self.kb_dir, report.version)
            report.swap_seconds = time.perf_counter() - swapped
            report.deleted_versions = swap.deleted
            self._delete_unused_encoders()
        except Exception as err:  # reported by poll() on the training thread
            self._error = err
        report.total_seconds = time.perf_counter() - started

    def _delete_unused_encoders(self) -> None:
        """Encoders of versions whose files are gone (a swap deleted them)."""
        root = Path(self.kb_dir) / VERSIONS_DIR / ENCODERS_DIR
        alive = {f"v{v}" for v in list_versions(self.kb_dir)}
        for path in root.iterdir() if root.is_dir() else []:
            if path.name not in alive and path.name != f"v{self._running.version}":
                shutil.rmtree(path, ignore_errors=True)

    def poll(self, step: int, wait: bool = False) -> RefreshReport | None:
        """The refresh that finished since the last poll (waiting for it when `wait`), else None."""
        if self._thread is None or (self._thread.is_alive() and not wait):
            return None
        self._thread.join()
        report, error = self._running, self._error
        self._thread, self._running = None, None
        report.finished_at_step = step
        if error is not None:
            self.failures.append(f"v{report.version} (encoder of step {report.encoded_at_step}): {error}")
            logger.error(
                "end-to-end: refresh to index v%d failed; training goes on: %s", report.version, error
            )
            return None
        self.reports.append(report)
        self.index_version, self.encoded_at_step = report.version, report.encoded_at_step
        logger.info(
            "end-to-end: index v%d (encoder of step %d) served from step %d: encode %.1fs, build %.1fs, "
            "swap %.1fs, total %.1fs",
            report.version, report.encoded_at_step, step, report.encode_seconds, report.build_seconds,
            report.swap_seconds, report.total_seconds,
        )  # fmt: skip
        return report

    def after_step(self, model, step: int, done: bool) -> dict:
        """Called after every optimizer step: collect a finished refresh, start a due one.

        Returns the step's metrics: the index version in use, whether a refresh ran during the
        step, and the seconds of a refresh that finished.
        """
        overlapped = self._busy_during_step or self.running
        finished = self.poll(step, wait=done)
        if not done and step % self.settings.refresh_every_steps == 0:
            self.start(model, step)
        self._busy_during_step = self.running
        metrics = {"index_version": self.index_version, "refresh_overlapped": overlapped}
        if finished is not None:
            metrics["refresh_seconds"] = finished.total_seconds
        return metrics

    def state(self) -> dict:
        """What a checkpoint keeps: the version in use and the step its encoder was copied at."""
        return {
            "version": self.index_version,
            "encoded_at_step": self.encoded_at_step,
            "refreshes": [asdict(r) for r in self.reports],
            "failures": list(self.failures),
            "skipped_steps": list(self.skipped_steps),
            "starts": list(self.starts),
        }


def refresh_summary(index_state: dict | None, history: list[dict]) -> dict | None:
    """metrics.json's `end_to_end`: the refreshes, and step time with and without one running."""
    if not index_state:
        return None

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    steps = history[1:] or history  # the first step carries warm-up
    during = mean([h["step_time_s"] for h in steps if h.get("refresh_overlapped")])
    otherwise = mean([h["step_time_s"] for h in steps if not h.get("refresh_overlapped")])
    refreshes = index_state.get("refreshes", [])
    return {
        **index_state,
        "index_version": index_state.get("version"),
        "refresh_count": len(refreshes),
        "refresh_seconds_mean": mean([r["total_seconds"] for r in refreshes]),
        "step_time_s_during_refresh": during,
        "step_time_s_otherwise": otherwise,
        "step_time_ratio_during_refresh": during / otherwise if during and otherwise else None,
    }


def end_to_end_step(refresher: IndexRefresher | None, pool, model, step: int, done: bool, world: int) -> dict:
    """Every rank, after every step: rank 0's refresh bookkeeping, and the index version each
    rank's pool asks for (`index_version_by_rank`: shows the other ranks follow a swap)."""
    metrics = refresher.after_step(model, step, done) if refresher is not None else {}
    versions = [pool.version]
    if world > 1:
        import torch.distributed as dist

        versions = [None] * world
        dist.all_gather_object(versions, pool.version)
    return {**metrics, "index_version_by_rank": versions}
