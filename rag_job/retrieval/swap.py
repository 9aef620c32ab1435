"""Swap a whole retrieval pool to a new index version while it serves.

The protocol, and why it never mixes versions in one answer nor loses a call:

1. prepare: every actor of every shard loads the new version beside the one it serves. One
   failure (a corrupt file) discards it everywhere and raises, naming the file; nothing else
   changed, so the pool keeps serving the old version.
2. activate: the knowledge base's current-version record moves first (a restarted actor loads
   the new version), then every actor makes the new version its default, then this client
   asks for it. Each pool call names one version for all its shards, and every actor already
   holds the new one, so a call is served wholly from the old or wholly from the new; other
   clients move when an answer reports the new active version.
3. drop: once this client has no call in flight on the old version, every actor drops it,
   each after the calls it is serving on it finish; a later call naming it is refused and runs
   again, whole, on the new one (`RetrievalPool.search_with_version`). Then, when no actor
   holds it any more, the old version's files are deleted (never version 0's: kb.json's index,
   which export and `RagRetriever` read).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import ray
from ray.exceptions import RayTaskError

from rag_job.knowledge.versions import delete_version, load_version, set_current_version
from rag_job.retrieval.pool import ACTOR_FAILURES, RetrievalPool

logger = logging.getLogger(__name__)


class IndexSwapError(RuntimeError):
    """The pool was not moved to the new version; it still serves the version it served."""


@dataclass
class SwapReport:
    """What one swap did, and how long each phase took (seconds, measured here)."""

    previous: list[int]
    version: int
    prepare_seconds: float
    activate_seconds: float
    drain_seconds: float
    deleted: list[str] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)


def _get_all(
    refs: dict[str, ray.ObjectRef], timeout_s: float
) -> tuple[dict[str, object], dict[str, BaseException]]:
    """Every ref's value or error, by actor name (no failure hides the others)."""
    values, errors = {}, {}
    for name, ref in refs.items():
        try:
            values[name] = ray.get(ref, timeout=timeout_s)
        except Exception as err:  # reported together below
            errors[name] = err.cause if isinstance(err, RayTaskError) and err.cause is not None else err
    return values, errors


def swap_index(
    pool: RetrievalPool,
    kb_dir: str | Path,
    version: int,
    delete_previous: bool = True,
    timeout_s: float = 600.0,
) -> SwapReport:
    """Move every actor of `pool` to index version `version` of `kb_dir` (see the module docstring)."""
    index_version = load_version(kb_dir, version)  # a missing or corrupt manifest stops here
    if len(index_version.shards) != pool.spec.shards:
        raise IndexSwapError(
            f"index version {version} of {kb_dir} has {len(index_version.shards)} shards; "
            f"pool {pool.spec.name_prefix} serves {pool.spec.shards}"
        )
    actors = dict(pool.actors())
    states, errors = _get_all({n: h.versions.remote() for n, h in actors.items()}, timeout_s)
    if errors:
        raise IndexSwapError(f"retrieval actors did not answer: {_lines(errors)}")
    previous = sorted({s["active"] for s in states.values()})
    if version <= max(previous):
        raise IndexSwapError(f"pool serves version {max(previous)}; swap only to a newer one, not {version}")
    pool.pin(max(previous))  # from now on every call of this client names its version

    started = time.perf_counter()
    _, errors = _get_all({n: h.prepare.remote(version) for n, h in actors.items()}, timeout_s)
    if errors:
        _get_all({n: h.drop.remote(version) for n, h in actors.items()}, timeout_s)
        raise IndexSwapError(
            f"index version {version} of {kb_dir} not activated; the pool still serves version "
            f"{max(previous)}:{_lines(errors)}"
        )
    prepared = time.perf_counter()

    set_current_version(kb_dir, version)
    try:
        _activate_all(actors, version, timeout_s)
    except IndexSwapError:
        # Calls stay consistent (each names its version, and both are loaded everywhere);
        # restarted actors go back to the old one until the swap is tried again.
        set_current_version(kb_dir, max(previous))
        raise
    pool.pin(version)
    activated = time.perf_counter()

    for old in previous:
        if not pool.wait_unpinned(old, timeout_s):
            logger.warning(
                "calls on index version %d still in flight after %.0fs; dropping it", old, timeout_s
            )
    in_use: dict[int, list[str]] = {old: [] for old in previous}
    for old in previous:
        done, errors = _get_all({n: h.drop.remote(old, timeout_s) for n, h in actors.items()}, timeout_s)
        in_use[old] = sorted([*errors, *(n for n, ok in done.items() if not ok)])
    drained = time.perf_counter()
    report = SwapReport(previous, version, prepared - started, activated - prepared, drained - activated)
    if delete_previous:
        _delete_unused(pool, kb_dir, in_use, report, timeout_s)
    logger.info("index swap %s -> %d: %s", previous, version, report)
    return report


def loaded_versions(pool: RetrievalPool, timeout_s: float = 60.0) -> tuple[set[int], list[str]]:
    """Every version some actor of `pool` holds (active or loaded), and the actors that did not
    answer: a version one of them may hold must not be deleted."""
    states, errors = _get_all({n: h.versions.remote() for n, h in pool.actors()}, timeout_s)
    held = {v for s in states.values() for v in (s["active"], *s["loaded"])}
    return held, sorted(errors)


def _activate_all(actors: dict, version: int, timeout_s: float) -> None:
    """Activate everywhere; an actor Ray restarts meanwhile loads the current version anyway."""
    deadline = time.monotonic() + timeout_s
    pending = dict(actors)
    while pending:
        _, errors = _get_all({n: h.activate.remote(version) for n, h in pending.items()}, timeout_s)
        failed = {n: e for n, e in errors.items() if not isinstance(e, ACTOR_FAILURES)}
        if failed:
            raise IndexSwapError(f"activating index version {version} failed:{_lines(failed)}")
        pending = {n: actors[n] for n in errors}
        if pending and time.monotonic() > deadline:
            raise IndexSwapError(
                f"retrieval actors unavailable while activating version {version}: {sorted(pending)}"
            )
        if pending:
            time.sleep(0.5)


def _delete_unused(
    pool: RetrievalPool,
    kb_dir: str | Path,
    in_use: dict[int, list[str]],
    report: SwapReport,
    timeout_s: float,
) -> None:
    """Delete each previous version's files unless it is version 0 or an actor may still use it
    (its drop timed out or failed, or it holds the version again)."""
    states, errors = _get_all({n: h.versions.remote() for n, h in pool.actors()}, timeout_s)
    for old, busy in sorted(in_use.items()):
        users = sorted({*busy, *errors, *(n for n, s in states.items() if old in s["loaded"])})
        if old == 0 or users:
            report.kept.append(old)
            if users:
                logger.warning("index version %d kept: it may still be in use by %s", old, users)
            continue
        report.deleted.append(str(delete_version(kb_dir, old)))


def _lines(errors: dict[str, BaseException]) -> str:
    return "".join(f"\n  {name}: {err}" for name, err in sorted(errors.items()))
