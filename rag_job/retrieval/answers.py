"""What a retrieval actor answers, shared by the actor and its clients (the pool)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class ActorTimings(NamedTuple):
    """Where one call's time went inside the actor (perf_counter stamps, seconds)."""

    arrived: float
    search_started: float
    search_ended: float
    returned: float
    #: Calls served by that one search (this one and those batched with it).
    batch_calls: int = 1


class ShardAnswer(NamedTuple):
    """One shard's top-k, with the index version it came from."""

    scores: np.ndarray
    ids: np.ndarray
    embeddings: np.ndarray | None
    #: Calls already in flight at the actor when this one arrived (routing).
    backlog: int
    #: The index version searched (the one the call asked for, or the actor's active one).
    version: int
    #: The actor's active version when it answered: clients move to it for their next calls.
    active: int
    #: `time.perf_counter()` in the actor when the call arrived, its search started and ended, and it
    #: returned (`rag_job.bench.profile` splits a call's time by them; same-host clocks agree).
    timings: ActorTimings | None = None


class VersionNotLoadedError(RuntimeError):
    """The call asked for an index version this actor does not hold (dropped, or not loaded yet).

    The pool answers it by running the whole call again on one version every shard holds,
    so an answer never mixes versions.
    """

    def __init__(self, version: int, active: int, shard: int):
        super().__init__(f"shard {shard} does not hold index version {version} (active: {active})")
        self.version, self.active, self.shard = version, active, shard

    def __reduce__(self):
        return (VersionNotLoadedError, (self.version, self.active, self.shard))
