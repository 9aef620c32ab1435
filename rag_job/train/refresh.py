"""Index refresh during end-to-end retriever training, off the trainers' critical path.

Every `refresh_every_steps` optimizer steps (or at the steps of `refresh_at_steps`) rank 0 copies
the context encoder's weights (a CPU copy, taken between steps so no optimizer update tears it)
and hands the rest to a background thread: it saves the copy under KB/index/encoders/v<N>/, has
the job's encode actors (started once, on retrieval nodes: `rag_job.knowledge.encoder_pool`)
re-encode the passages and write index version N, then swaps rank 0's pool to it (`swap_index`). Training goes on over the
previous version meanwhile; the other ranks' pools move when an answer reports the new active
version (`RetrievalPool.search_with_version`). One refresh at a time: a due refresh while one
runs is skipped and logged. A failed refresh is logged and counted; training goes on.

In `local` retrieval mode there is no pool: the thread opens version N in rank 0's in-process
searcher and marks it served, every other rank switches its own copy at the end of the step that
shows rank 0 on N (`end_to_end_step`), and the old version is deleted once no rank searches it
(`ranks_moved`).

With `encode_on: trainers` the encode actors are not started: every rank pauses after the step
to encode its slice on its own device (rag_job/train/trainer_encode.py), and the background
thread only builds the version from the slices and swaps to it.

When training ends, the final evaluation and the export should use the index of the encoder
they evaluate: so rank 0 waits for a running refresh, then (`refresh_at_end`, unless the served
index already is the final encoder's) re-encodes once more, synchronously, before either runs,
and records which version and encoder they use (`final_index`).

A failed refresh, or a rank 0 that died mid-refresh, leaves a version directory nothing will
serve. Such orphans are deleted when the refresher starts (a resume waits first for the encode
actors to finish what the dead rank 0 asked) and before every refresh: every `v<N>` but version
0, the served one, the one in use here, the resumed checkpoint's, the one being written, and
any finished version a retrieval actor still holds (or might: one that did not answer).
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
from rag_job.knowledge.parts import PARTS_DIR
from rag_job.knowledge.versions import (
    VERSIONS_DIR,
    current_version,
    delete_version,
    list_versions,
    manifest_path,
    next_version,
    set_current_version,
    version_numbers_on_disk,
)
from rag_job.train.ctx_encoder import save_ctx_encoder, trained_ctx_encoder

logger = logging.getLogger(__name__)

#: KB/index/ENCODERS_DIR/v<N>: the context encoder that encoded index version N.
ENCODERS_DIR = "encoders"
#: How long a resumed rank 0 waits for the encode actors to finish a refresh its predecessor left.
ENCODERS_IDLE_TIMEOUT_S = 600.0


@dataclass
class RefreshReport:
    """One refresh: the version it wrote, the step its encoder was copied at, seconds per phase."""

    version: int
    encoded_at_step: int
    #: retrieval_nodes (the encode actors, in the background) or trainers (every rank, paused).
    encoded_on: str = "retrieval_nodes"
    snapshot_seconds: float = 0.0
    encode_seconds: float = 0.0
    build_seconds: float = 0.0
    swap_seconds: float = 0.0
    total_seconds: float = 0.0
    #: Seconds the trainers stopped to encode their slices (encode_on: trainers; 0 otherwise).
    trainer_pause_seconds: float = 0.0
    finished_at_step: int | None = None
    deleted_versions: list[str] = field(default_factory=list)


def encoder_dir(kb_dir: str | Path, version: int) -> Path:
    return Path(kb_dir) / VERSIONS_DIR / ENCODERS_DIR / f"v{version}"


class IndexRefresher:
    """Rank 0's refresh schedule and the one refresh in flight (see the module docstring)."""

    def __init__(
        self, settings: EndToEndConfig, retriever, encoders, kb_dir: str, trainer_encoding=None, lease=None
    ):
        self.settings = settings
        #: ray mode: the retrieval pool rank 0 swaps; local mode: None, and `local` is rank 0's
        #: in-process retriever (every rank switches its own; `ranks_moved`).
        self.pool = getattr(retriever, "pool", None)
        self.local = retriever if self.pool is None else None
        #: local mode: the versions the ranks searched at the last step (none may be deleted).
        self.local_held: set[int] = {retriever.version} if self.local is not None else set()
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
        self._paused_this_step = 0.0  # encode_on: trainers: seconds the trainers stopped after this step
        #: An EncoderPool the driver started with the retrieval actors, or (encode_on: trainers)
        #: a TrainerParts that builds a version from the slices the trainers wrote.
        self.encoders = encoders
        #: encode_on: trainers: rank 0's side of the collective encode (rag_job/train/trainer_encode.py).
        self.trainer_encoding = trainer_encoding
        #: This job's hold on the knowledge base (rag_job/knowledge/lease.py), released by `finish`.
        self.lease = lease
        #: The index the final evaluation and the export use (`finish`); None until training ends.
        self.final: dict | None = None
        #: Orphaned version directories deleted (`clean_orphans`): "path: why".
        self.orphans_deleted: list[str] = []
        self._resumed_version: int | None = None
        #: local mode: what `ranks_moved` last looked at (held, index_version, running, resumed).
        self._last_moved: tuple | None = None

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
            self.orphans_deleted = list(saved.get("orphans_deleted", []))
        if resumed:
            self._resumed_version = wanted
            if served != wanted:  # not the checkpoint's version: its encoder's step is unknown
                self.encoded_at_step = None
            if not self.encoders.wait_idle(ENCODERS_IDLE_TIMEOUT_S):
                logger.warning(
                    "end-to-end: the encode actors are still busy after %.0fs; a version they write "
                    "now may be deleted as an orphan", ENCODERS_IDLE_TIMEOUT_S,
                )  # fmt: skip
        self.clean_orphans("resumed" if resumed else "started")
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
        else:
            logger.info("end-to-end: serving index v%d, no refresh needed at step %d", served, step)
        self.refresh_point(model, step, wanted=refresh)

    def refresh_point(self, model, step: int, wanted: bool = True) -> bool:
        """One point where a refresh may start (the start, a due step, the end; the other ranks
        listen at exactly these when the trainers encode): start one when `wanted` and possible,
        and announce the outcome to the trainers exactly once, whatever it is. True when one started."""
        report = self._begin(step) if wanted else None
        started = time.perf_counter()
        if self.trainer_encoding is not None:
            report = self._trainers_encode(model, report)
        if report is None:
            return False
        self._start_thread(model, report, started)
        return True

    def _begin(self, step: int) -> RefreshReport | None:
        """The refresh of `step`, or None (recorded and logged) when the lease is lost or one still runs."""
        if self.lease is not None and self.lease.lost:
            self.failures.append(f"refresh of step {step} not started: {self.lease.lost}")
            logger.error("end-to-end: refresh of step %d not started: %s", step, self.lease.lost)
            return None
        if self.running:
            self.skipped_steps.append(step)
            logger.warning(
                "end-to-end: refresh due at step %d skipped: the one started at step %d still runs",
                step, self._running.encoded_at_step,
            )  # fmt: skip
            return None
        self.clean_orphans(f"before the refresh of step {step}")
        return RefreshReport(version=next_version(self.kb_dir), encoded_at_step=step)

    def _start_thread(self, model, report: RefreshReport, started: float) -> None:
        """Copy the encoder now and encode (or, when the trainers encoded, build) and swap in the background."""
        snapshot_started = time.perf_counter()
        encoder = copy.deepcopy(trained_ctx_encoder(model)).to("cpu").eval()
        tokenizer = copy.deepcopy(self.tokenizer)  # a Rust tokenizer is not to be shared across threads
        report.snapshot_seconds = time.perf_counter() - snapshot_started
        self._running, self._error = report, None
        self._thread = threading.Thread(
            target=self._run, args=(encoder, tokenizer, report, started), name="index-refresh", daemon=True
        )
        self._thread.start()

    def _trainers_encode(self, model, report: RefreshReport | None) -> RefreshReport | None:
        """encode_on: trainers: announce `report`'s version (None: nothing at this point) and, if
        any, every rank encodes its slice now; the report, or None (a failure, logged)."""
        if report is None:
            self.trainer_encoding.announce(None, None)
            return None
        report.encoded_on = "trainers"
        paused = time.perf_counter()
        errors = self.trainer_encoding.announce(report.version, model)
        report.trainer_pause_seconds = report.encode_seconds = time.perf_counter() - paused
        self._paused_this_step += report.trainer_pause_seconds
        if not errors:
            return report
        self.encoders.discard(report.version)
        self.failures.append(
            f"v{report.version} (encoder of step {report.encoded_at_step}): the trainers could not encode "
            f"their slices: {'; '.join(errors)}"
        )
        logger.error("end-to-end: refresh to index v%d failed; training goes on: %s", report.version, errors)
        return None

    def _run(self, encoder, tokenizer, report: RefreshReport, started: float) -> None:
        from rag_job.retrieval.swap import swap_index

        try:
            path = encoder_dir(self.kb_dir, report.version)
            path.mkdir(parents=True, exist_ok=True)
            save_ctx_encoder(encoder, tokenizer, path)
            _, timings = self.encoders.encode_version(path, report.version, path / PARTS_DIR)
            report.encode_seconds += timings["encode_seconds"]  # trainers: their pause, already counted
            report.build_seconds = timings["build_seconds"]
            swapped = time.perf_counter()
            if self.local is not None:  # open it, then serve it; the old one goes when every rank moved
                self.local.switch_to(report.version)
                set_current_version(self.kb_dir, report.version)
            else:
                report.deleted_versions = swap_index(self.pool, self.kb_dir, report.version).deleted
            report.swap_seconds = time.perf_counter() - swapped
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

    def clean_orphans(self, when: str) -> list[str]:
        """Delete the version directories nothing serves or will serve (see the module docstring);
        one log line each, saying why. A problem here is logged and never stops training."""
        try:
            return self._clean_orphans(when)
        except Exception as err:  # cleaning is housekeeping: training goes on
            logger.warning("end-to-end: orphaned index versions not cleaned (%s): %s", when, err)
            return []

    def _clean_orphans(self, when: str) -> list[str]:
        from rag_job.retrieval.swap import loaded_versions

        keep = self._versions_to_keep()
        candidates = [n for n in version_numbers_on_disk(self.kb_dir) if n not in keep]
        finished = {n for n in candidates if manifest_path(self.kb_dir, n).is_file()}
        if self.local is not None:
            held, silent = set(self.local_held), []
        else:
            held, silent = loaded_versions(self.pool) if finished else (set(), [])
        deleted = []
        for number in candidates:
            if number in finished and (number in held or silent):
                who = "a retrieval actor holds it" if number in held else f"{silent} did not answer"
                logger.info(
                    "end-to-end: %s: index version %d kept although not served: %s", when, number, who
                )
                continue
            why = (
                "finished, but neither served nor held by a retrieval actor (a failed or cut-short swap)"
                if number in finished
                else "never finished (no manifest: its refresh failed or rank 0 died while writing it)"
            )
            try:
                path = delete_version(self.kb_dir, number)
            except OSError as err:
                logger.warning("end-to-end: %s: orphaned index version %d not deleted: %s", when, number, err)
                continue
            shutil.rmtree(encoder_dir(self.kb_dir, number), ignore_errors=True)
            logger.info("end-to-end: %s: deleted orphaned index version %s: %s", when, path, why)
            deleted.append(f"{path}: {why}")
        self.orphans_deleted += deleted
        return deleted

    def ranks_moved(self, versions: list[int]) -> list[str]:
        """local mode, after every step: the versions the ranks search now. Delete the finished
        versions none of them searches any more and nothing else keeps (the one before a swap,
        once the last rank has left it); one log line each. Only a step at which a rank moved, or
        rank 0's own keep list changed (a refresh collected or started), can free one, so the
        other steps touch no file."""
        held = set(versions)
        running = self._running.version if self._running is not None else None
        moved = (frozenset(held), self.index_version, running, self._resumed_version)
        if moved == self._last_moved:
            return []
        self.local_held, self._last_moved = held, moved
        served = current_version(self.kb_dir)
        keep = held | self._versions_to_keep(served)
        deleted = []
        for number in version_numbers_on_disk(self.kb_dir):
            if number in keep or number > served:
                continue
            if not manifest_path(self.kb_dir, number).is_file():
                continue  # unfinished: clean_orphans deals with it, saying why
            try:
                path = delete_version(self.kb_dir, number)
            except OSError as err:
                logger.warning("end-to-end: superseded index version %d not deleted: %s", number, err)
                continue
            shutil.rmtree(encoder_dir(self.kb_dir, number), ignore_errors=True)
            logger.info("end-to-end: deleted index version %s: every rank searches v%d now", path, served)
            deleted.append(str(path))
        return deleted

    def _versions_to_keep(self, served: int | None = None) -> set[int]:
        """Version 0, the served one, the one in use here, the resumed checkpoint's, the one being written."""
        running = self._running.version if self._running is not None else None
        served = current_version(self.kb_dir) if served is None else served
        keep = {0, served, self.index_version, self._resumed_version, running}
        return {v for v in keep if v is not None}

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
        self._paused_this_step = 0.0
        finished = self.poll(step, wait=done)
        if done:
            finished = self.finish(model, step) or finished
        elif self.settings.refresh_due(step):
            self.refresh_point(model, step)
        self._busy_during_step = self.running
        metrics = {"index_version": self.index_version, "refresh_overlapped": overlapped}
        if finished is not None:
            metrics["refresh_seconds"] = finished.total_seconds
        if self._paused_this_step:
            metrics["trainer_encode_seconds"] = self._paused_this_step
        return metrics

    def finish(self, model, step: int) -> RefreshReport | None:
        """Training ended at `step` (a running refresh already collected): re-encode with the final
        encoder unless the served index is its own or `refresh_at_end` is off, and record the index
        the final evaluation and the export use. Returns the final refresh, if one finished."""
        report = None
        if self.encoded_at_step == step:
            outcome = "not needed: the served index is the final encoder's"
            self.refresh_point(model, step, wanted=False)
        elif not self.settings.refresh_at_end:
            outcome = "off (refresh_at_end: false)"
            self.refresh_point(model, step, wanted=False)
        else:
            logger.info(
                "end-to-end: training ended at step %d on index v%d (%s); re-encoding with the final "
                "encoder before the final evaluation", step, self.index_version, self._encoder_words(),
            )  # fmt: skip
            started = self.refresh_point(model, step)
            report = self.poll(step, wait=True) if started else None
            outcome = "done" if report is not None else f"failed: {self.failures[-1]}"
        if self.lease is not None:
            self.lease.release()
        self.final = {
            "version": self.index_version,
            "encoded_at_step": self.encoded_at_step,
            "step": step,
            "refresh_at_end": outcome,
        }
        logger.info(
            "end-to-end: the final evaluation and the export use index v%d (%s); training ended at "
            "step %d; final refresh: %s", self.index_version, self._encoder_words(), step, outcome,
        )  # fmt: skip
        return report

    def _encoder_words(self) -> str:
        if self.encoded_at_step is not None:
            return f"encoder of step {self.encoded_at_step}"
        if self.index_version == 0:
            return "the knowledge base's own encoder"
        return "an encoder from before the last restart, step unknown"

    def state(self) -> dict:
        """What a checkpoint keeps: the version in use and the step its encoder was copied at."""
        return {
            "version": self.index_version,
            "encoded_at_step": self.encoded_at_step,
            "refreshes": [asdict(r) for r in self.reports],
            "failures": list(self.failures),
            "skipped_steps": list(self.skipped_steps),
            "starts": list(self.starts),
            "final_index": self.final,
            "orphans_deleted": list(self.orphans_deleted),
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
    pauses = [r.get("trainer_pause_seconds", 0.0) for r in refreshes]
    return {
        **index_state,
        "index_version": index_state.get("version"),
        "refresh_count": len(refreshes),
        "refresh_seconds_mean": mean([r["total_seconds"] for r in refreshes]),
        "step_time_s_during_refresh": during,
        "step_time_s_otherwise": otherwise,
        "step_time_ratio_during_refresh": during / otherwise if during and otherwise else None,
        # encode_on: trainers: the trainers' stops to encode (not in step_time_s, which ends before).
        "trainer_pause_seconds_total": sum(pauses),
        "trainer_pause_seconds_mean": mean([p for p in pauses if p]),
    }


def end_to_end_step(
    refresher: IndexRefresher | None, pool, model, step: int, done: bool, world: int, trainer_encoding=None
) -> dict:
    """Every rank, after every step: rank 0's refresh bookkeeping (the other ranks encode their
    slices with it when the trainers encode), and the index version each rank's pool asks for
    (`index_version_by_rank`: shows the other ranks follow a swap)."""
    from rag_job.train.trainer_encode import announces_after

    metrics = {}
    if refresher is not None:
        metrics = refresher.after_step(model, step, done)
    elif trainer_encoding is not None and announces_after(trainer_encoding.settings, step, done):
        trainer_encoding.follow(model)
    local = hasattr(pool, "switch_to")  # a LocalRagRetriever; a RetrievalPool follows swaps itself
    versions = _gather_versions(pool, world)
    if local and len(set(versions)) > 1:  # rank 0 switched: every rank follows it, now
        pool.switch_to(versions[0])
        versions = _gather_versions(pool, world)
    if local and refresher is not None:
        refresher.ranks_moved(versions)
    return {**metrics, "index_version_by_rank": versions}


def _gather_versions(searcher, world: int) -> list[int]:
    """Every rank's index version (one collective; every rank calls it)."""
    if world == 1:
        return [searcher.version]
    import torch.distributed as dist

    versions = [None] * world
    dist.all_gather_object(versions, searcher.version)
    return versions
