"""Least-loaded routing in RetrievalPool, without actors: which replica a call goes to.

The handles are placeholders: `_pick` and `_finish` only read and write the pool's bookkeeping.
"""

from __future__ import annotations

import time

from rag_job.retrieval.pool import BACKLOG_FRESH_S, PoolSpec, RetrievalPool


def pool_of(replicas: int) -> RetrievalPool:
    return RetrievalPool(PoolSpec(name_prefix="routing", shards=1, replicas=replicas), [[None] * replicas])


def answered(pool: RetrievalPool, replica: int, backlog: int) -> None:
    """A call to `replica` comes back with the backlog the actor reports."""
    pool._replicas[0][replica].in_flight += 1
    pool._finish(0, replica, 1.0, backlog=backlog)


def test_a_replica_reporting_other_clients_backlog_is_avoided_while_the_report_is_fresh() -> None:
    pool = pool_of(2)
    answered(pool, 0, backlog=3)  # replica 0 is busy with other clients' calls
    picks = set()
    for _ in range(20):
        replica = pool._pick(0, exclude=set())
        picks.add(replica)
        pool._finish(0, replica, 1.0, backlog=0)
    assert picks == {1}


def test_a_stale_backlog_report_does_not_starve_its_replica() -> None:
    """Once its report is old, a replica is picked again (and so reports anew), as a fresh one."""
    pool = pool_of(2)
    answered(pool, 0, backlog=1)
    time.sleep(BACKLOG_FRESH_S * 1.5)
    picks = []
    for _ in range(200):
        replica = pool._pick(0, exclude=set())
        picks.append(replica)
        pool._finish(0, replica, 1.0, backlog=0)
    assert 50 <= picks.count(0) <= 150, picks.count(0)  # ties are broken at random


def test_calls_in_flight_spread_over_idle_replicas() -> None:
    pool = pool_of(3)
    held = [pool._pick(0, exclude=set()) for _ in range(3)]
    assert sorted(held) == [0, 1, 2]
