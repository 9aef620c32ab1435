"""Which retrieval actors of a RagRetrievalCluster are loaded, from the Ray dashboard's state API.

`GET <dashboard>/api/v0/actors` lists actors (the same data as `ray list actors`); we filter on
the Ray namespace `rag-retrieval` and count the ones named `<prefix>-shard{s}-replica{r}` that
are ALIVE. An actor turns ALIVE only once its constructor has returned, and the constructor
loads the shard, so ALIVE means loaded. Only `fetch_actors` touches the network.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rag_job.config import RETRIEVAL_NAMESPACE, parse_actor_name

DASHBOARD_PORT = 8265
ACTORS_PATH = "/api/v0/actors"
#: Bearer token for dashboards with Ray token authentication (mount it from a Secret).
TOKEN_ENV_VAR = "RAG_OPERATOR_RAY_AUTH_TOKEN"


class DashboardError(RuntimeError):
    """The dashboard could not be reached or answered something we cannot read."""


@dataclass(frozen=True)
class ActorSummary:
    """Loaded actors per shard, against what the cluster should run."""

    shards: int
    replicas: int
    alive: dict[int, int]  # shard -> ALIVE replicas

    @property
    def shards_loaded(self) -> int:
        """Shards with at least one ALIVE actor (queries for them can be answered)."""
        return sum(1 for shard in range(self.shards) if self.alive.get(shard, 0) > 0)

    @property
    def ready_replicas(self) -> int:
        """Complete copies of the index: the fewest ALIVE actors any shard has."""
        return min((self.alive.get(shard, 0) for shard in range(self.shards)), default=0)

    @property
    def actors_alive(self) -> int:
        return sum(self.alive.values())

    @property
    def all_loaded(self) -> bool:
        return self.ready_replicas >= self.replicas


def dashboard_url(raycluster: dict[str, Any]) -> str:
    """The head service's dashboard inside the cluster (where the controller's pod runs)."""
    meta = raycluster["metadata"]
    head = (raycluster.get("status") or {}).get("head") or {}
    service = head.get("serviceName") or f"{meta['name']}-head-svc"
    return f"http://{service}.{meta['namespace']}.svc:{DASHBOARD_PORT}"


def actors_query(namespace: str = RETRIEVAL_NAMESPACE, limit: int = 10000) -> str:
    """The state API query: every actor in the retrieval namespace, without details."""
    params = [
        ("limit", str(limit)),
        ("detail", "false"),
        ("filter_keys", "ray_namespace"),
        ("filter_predicates", "="),
        ("filter_values", namespace),
    ]
    return f"{ACTORS_PATH}?{urllib.parse.urlencode(params)}"


def fetch_actors(base_url: str, timeout: float = 5.0, token: str | None = None) -> list[dict[str, Any]]:
    """The actor rows of the retrieval namespace; DashboardError when unreachable or unreadable.

    `token`: for a Ray cluster with token authentication (RAY_AUTH_MODE=token), sent as a
    bearer token; by default RAG_OPERATOR_RAY_AUTH_TOKEN from the environment, if set.
    """
    url = base_url.rstrip("/") + actors_query()
    token = token or os.environ.get(TOKEN_ENV_VAR)
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read().decode())
    except (OSError, ValueError) as err:
        raise DashboardError(f"GET {url}: {err}") from err
    try:
        if not payload.get("result", False):
            raise DashboardError(f"GET {url}: {payload.get('msg') or 'request failed'}")
        rows = payload["data"]["result"]["result"]
    except (KeyError, TypeError, AttributeError) as err:
        raise DashboardError(f"GET {url}: unexpected answer {str(payload)[:200]}") from err
    return list(rows or [])


def summarize_actors(rows: Iterable[dict[str, Any]], prefix: str, shards: int, replicas: int) -> ActorSummary:
    """Count ALIVE `<prefix>-shard{s}-replica{r}` actors per shard (each (s, r) once)."""
    seen: set[tuple[int, int]] = set()
    for row in rows:
        parsed = parse_actor_name(row.get("name") or "", prefix)
        if parsed is None or row.get("state") != "ALIVE":
            continue
        if row.get("ray_namespace", RETRIEVAL_NAMESPACE) != RETRIEVAL_NAMESPACE:
            continue
        shard, replica = parsed
        if shard < shards and replica < replicas:
            seen.add((shard, replica))
    alive: dict[int, int] = {}
    for shard, _ in seen:
        alive[shard] = alive.get(shard, 0) + 1
    return ActorSummary(shards=shards, replicas=replicas, alive=alive)
