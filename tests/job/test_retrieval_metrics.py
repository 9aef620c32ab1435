"""The retrieval actors' Prometheus series, scraped from the real metrics port of the Ray nodes
they run on (what a PodMonitor scrapes on a retrieval pod)."""

from __future__ import annotations

import re
import time
import urllib.request

import numpy as np
import pytest

from tests.polling import eventually

pytestmark = [pytest.mark.ray]

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)\{(?P<labels>.*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(node_ids: frozenset[str]) -> list[tuple[str, dict[str, str], float]]:
    """Every labelled sample on the metrics ports of these nodes."""
    import ray

    samples = []
    for node in ray.nodes():
        if node["NodeID"] not in node_ids or not node["Alive"]:
            continue
        url = f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        for line in text.splitlines():
            match = _SAMPLE.match(line)
            if match:
                labels = dict(_LABEL.findall(match.group("labels")))
                samples.append((match.group("name"), labels, float(match.group("value"))))
    return samples


def series(samples, name: str, pool: str) -> dict[str, float]:
    """Value per shard of one series of this pool (summed over actors and label sets)."""
    found: dict[str, float] = {}
    for sample_name, labels, value in samples:
        if sample_name == name and labels.get("pool") == pool:
            found[labels["shard"]] = found.get(labels["shard"], 0.0) + value
    return found


def test_each_actor_exports_calls_latency_and_its_index_and_the_series_move(
    ray_cluster, tiny_assets, pool_factory, question_vectors
):
    from rag_job.knowledge.layout import load_meta

    pool = pool_factory(tiny_assets.kb_flat_2shards, replicas=1, shards=2)
    pool_name = pool.spec.name_prefix
    meta = load_meta(tiny_assets.kb_flat_2shards)
    queries = np.ascontiguousarray(question_vectors[:4])
    for _ in range(5):
        pool.search(queries, k=3)

    # Ray's metrics agent exports every ~10 s.
    def calls_reach(count: int):
        samples = scrape(ray_cluster.retrieval_node_ids)
        calls = series(samples, "ray_rag_retrieval_calls_total", pool_name)
        return samples if calls == {"0": count, "1": count} else None

    samples = eventually(lambda: calls_reach(5), timeout=60, what="5 calls per shard exported")
    assert series(samples, "ray_rag_retrieval_queries_total", pool_name) == {"0": 20.0, "1": 20.0}
    assert series(samples, "ray_rag_retrieval_search_latency_ms_count", pool_name) == {"0": 5.0, "1": 5.0}
    assert series(samples, "ray_rag_retrieval_index_passages", pool_name) == {
        str(s): float(info.end - info.start) for s, info in enumerate(meta.shards)
    }
    created = series(samples, "ray_rag_retrieval_index_created_unix", pool_name)
    assert created == {"0": float(meta.created_unix), "1": float(meta.created_unix)}
    assert series(samples, "ray_rag_retrieval_in_flight", pool_name) == {"0": 0.0, "1": 0.0}

    for _ in range(3):
        pool.search(queries, k=3)
    eventually(lambda: calls_reach(8), timeout=60, what="the calls series moving to 8 per shard")


def test_the_client_exports_its_call_latency_and_retries(
    ray_cluster, tiny_assets, pool_factory, question_vectors
):
    """The trainer's side (here the test process, a driver on the head node): one latency sample
    per pool search, and a retry counted when an actor dies under a call."""
    import ray

    pool = pool_factory(tiny_assets.kb_flat_2shards, replicas=1, shards=2)
    pool_name = pool.spec.name_prefix
    queries = np.ascontiguousarray(question_vectors[:2])
    searches = 0
    for _ in range(4):
        pool.search(queries, k=3)
        searches += 1
    # ray.kill is asynchronous: a search sent at once may still be answered by the dying actor, so
    # kill and search until the pool has seen a failure (each kill is restarted by Ray).
    for _ in range(5):
        ray.kill(pool.actors()[0][1], no_restart=False)  # shard 0's only replica
        time.sleep(0.5)
        pool.search(queries, k=3)  # retried until the restarted actor answers
        searches += 1
        if pool.retries:
            break
    retried = pool.retries
    assert retried >= 1, "five kills of shard 0's actor and no search saw it fail"
    everywhere = frozenset(node["NodeID"] for node in ray.nodes())

    def exported():
        samples = scrape(everywhere)
        latency = series_of(samples, "ray_rag_retrieval_client_call_latency_ms_count", pool_name)
        retries = series(samples, "ray_rag_retrieval_client_retries_total", pool_name)
        return (latency, retries) if latency == searches and retries.get("0") == retried else None

    _, retries = eventually(
        exported, timeout=90, what=f"{searches} client calls and {retried} retries exported"
    )
    assert "1" not in retries, "shard 1's actor never failed"


def series_of(samples, name: str, pool: str) -> float:
    return sum(value for n, labels, value in samples if n == name and labels.get("pool") == pool)
