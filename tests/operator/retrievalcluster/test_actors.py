"""Reading the loaded retrieval actors from the Ray dashboard's state API.

The dashboard is a loopback HTTP server that answers `/api/v0/actors` in the shape Ray's state
API uses (`{"result": true, "data": {"result": {"result": [rows]}}}`): no Ray head runs a
dashboard here (ray[default] is not installed), so this stands in for it and records the query.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from rag_job.config import RETRIEVAL_NAMESPACE, actor_name
from rag_operator.retrievalcluster import actors


class FakeDashboard:
    """Serves `rows` as the state API's actor list; remembers each request's path."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.auth: list[str | None] = []
        self.status = 200
        dashboard = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                dashboard.paths.append(self.path)
                dashboard.auth.append(self.headers.get("Authorization"))
                body = json.dumps(
                    {
                        "result": dashboard.status == 200,
                        "msg": "",
                        "data": {"result": {"total": len(dashboard.rows), "result": dashboard.rows}},
                    }
                ).encode()
                self.send_response(dashboard.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def dashboard() -> Iterator[FakeDashboard]:
    server = FakeDashboard()
    yield server
    server.stop()


def row(name: str, state: str = "ALIVE", namespace: str = RETRIEVAL_NAMESPACE) -> dict[str, Any]:
    return {
        "actor_id": name,
        "class_name": "RetrievalActor",
        "name": name,
        "state": state,
        "ray_namespace": namespace,
    }


def test_fetch_asks_for_the_retrieval_namespace_and_returns_the_rows(dashboard: FakeDashboard) -> None:
    dashboard.rows = [row(actor_name("kb", 0, 0))]
    rows = actors.fetch_actors(dashboard.url)
    assert [r["name"] for r in rows] == ["kb-shard0-replica0"]
    (path,) = dashboard.paths
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    assert urllib.parse.urlsplit(path).path == "/api/v0/actors"
    assert query["filter_keys"] == ["ray_namespace"] and query["filter_values"] == [RETRIEVAL_NAMESPACE]
    assert query["filter_predicates"] == ["="]


def test_an_unreachable_or_failing_dashboard_is_a_dashboard_error(dashboard: FakeDashboard) -> None:
    dashboard.status = 500
    with pytest.raises(actors.DashboardError, match="api/v0/actors"):
        actors.fetch_actors(dashboard.url)
    dashboard.stop()
    with pytest.raises(actors.DashboardError):
        actors.fetch_actors(dashboard.url, timeout=1)


def test_summary_counts_alive_actors_per_shard_by_the_job_side_naming(dashboard: FakeDashboard) -> None:
    dashboard.rows = [
        row(actor_name("kb", 0, 0)),
        row(actor_name("kb", 0, 1)),
        row(actor_name("kb", 1, 0)),
        row(actor_name("kb", 1, 1), state="RESTARTING"),
        row(actor_name("kb", 1, 1), state="DEAD"),
        row(actor_name("other", 1, 1)),  # another cluster's actor
        row(actor_name("kb", 2, 0)),  # a shard the cluster does not have
    ]
    summary = actors.summarize_actors(actors.fetch_actors(dashboard.url), "kb", shards=2, replicas=2)
    assert summary.alive == {0: 2, 1: 1}
    assert (summary.shards_loaded, summary.ready_replicas, summary.actors_alive) == (2, 1, 3)
    assert not summary.all_loaded
    dashboard.rows.append(row(actor_name("kb", 1, 1)))
    summary = actors.summarize_actors(actors.fetch_actors(dashboard.url), "kb", shards=2, replicas=2)
    assert summary.all_loaded and summary.ready_replicas == 2


def test_a_prefix_is_matched_exactly_not_as_a_prefix_of_another_name() -> None:
    rows = [row(actor_name("kb-big", 0, 0))]
    assert actors.summarize_actors(rows, "kb", shards=1, replicas=1).actors_alive == 0


def test_dashboard_url_is_the_head_service_in_the_clusters_namespace() -> None:
    cluster = {
        "metadata": {"name": "kb", "namespace": "ml"},
        "status": {"head": {"serviceName": "kb-head-svc"}},
    }
    assert actors.dashboard_url(cluster) == "http://kb-head-svc.ml.svc:8265"
    assert actors.dashboard_url({"metadata": {"name": "kb", "namespace": "ml"}}).startswith(
        "http://kb-head-svc."
    )


# --- against a real Ray dashboard ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_head(ray_cluster) -> str:
    """The dashboard URL of the suite's real multi-node Ray cluster (token auth off, as on a
    KubeRay cluster without authOptions; the token path is checked against the loopback server above)."""
    if not ray_cluster.dashboard_url:
        pytest.skip("this Ray install runs no dashboard (needs ray[default])")
    return ray_cluster.dashboard_url


@pytest.mark.ray
def test_a_real_dashboard_lists_detached_named_actors_and_their_death(ray_head: str) -> None:
    import time

    import ray

    @ray.remote(num_cpus=0)
    class Shard:
        def ping(self) -> int:
            return 1

    handles = [
        Shard.options(
            name=actor_name("kb", s, 0), namespace=RETRIEVAL_NAMESPACE, lifetime="detached", max_restarts=0
        ).remote()
        for s in range(2)
    ]
    ray.get([h.ping.remote() for h in handles])

    def summary() -> actors.ActorSummary:
        deadline = time.monotonic() + 30
        while True:  # the dashboard's state module may start after ray.init returns
            try:
                return actors.summarize_actors(actors.fetch_actors(ray_head), "kb", 2, 1)
            except actors.DashboardError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    loaded = summary()
    assert loaded.all_loaded and loaded.shards_loaded == 2
    ray.kill(handles[0])
    deadline = time.monotonic() + 20
    while (after := summary()).shards_loaded != 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert after.alive == {1: 1} and not after.all_loaded
    ray.kill(handles[1])


def test_a_token_is_sent_as_a_bearer_header(
    dashboard: FakeDashboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    actors.fetch_actors(dashboard.url, token="t0ken")
    monkeypatch.setenv(actors.TOKEN_ENV_VAR, "from-env")
    actors.fetch_actors(dashboard.url)
    assert dashboard.auth == ["Bearer t0ken", "Bearer from-env"]
