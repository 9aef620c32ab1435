"""Helpers the cluster tests share: reading state through kubectl, installing the chart, and
running our operator as the chart's ServiceAccount (so the real RBAC authorizer checks it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from localcluster.controlplane import Component, ControlPlane, free_port, stop_component, write_kubeconfig
from localcluster.toolchain import REPO

CHART = REPO / "charts" / "rag-finetune-operator"


def get_json(kubectl, *args: str) -> dict[str, Any]:
    """`kubectl get ARGS -o json`, decoded; fails the test with kubectl's error."""
    done = kubectl("get", *args, "-o", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def get_if_exists(kubectl, *args: str) -> dict[str, Any] | None:
    """`kubectl get ARGS -o json`, or None while the object does not exist."""
    done = kubectl("get", *args, "-o", "json")
    return json.loads(done.stdout) if done.returncode == 0 else None


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    """True if one of obj's ownerReferences points at uid."""
    return any(ref["uid"] == uid for ref in obj["metadata"].get("ownerReferences", []))


def create_namespaces(plane: ControlPlane, *names: str) -> None:
    """Create each namespace (an existing one is fine)."""
    api = plane.api()
    for name in names:
        status, body = api.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        assert status in (201, 409), body


def install_chart(
    plane: ControlPlane, helm_path: str, release: str, namespace: str, watch: str, peering: bool = False
) -> list[dict[str, Any]]:
    """`helm install` of our chart watching one namespace (a Role there); returns its objects.

    One replica without peering unless `peering` (then the chart's default: 2 replicas, a
    KopfPeering object in the watched namespace)."""
    create_namespaces(plane, namespace, watch)
    common = [f"--kubeconfig={plane.kubeconfig}", f"--namespace={namespace}"]
    replicas = [] if peering else ["--set=replicas=1", "--set=peering.enabled=false"]
    argv = [
        helm_path, "install", release, str(CHART), *common, *replicas,
        f"--set=watchNamespaces={{{watch}}}", "--timeout=60s",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"helm install failed:\n{done.stdout}\n{done.stderr}"
    manifest = subprocess.run(
        [helm_path, "get", "manifest", release, *common],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [o for o in yaml.safe_load_all(manifest) if o]


def one_of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The single object of kind in a release; fails naming what was found instead."""
    matches = [o for o in objects if o["kind"] == kind]
    assert len(matches) == 1, (
        f"expected one {kind} in the release, got {[m['metadata']['name'] for m in matches]}"
    )
    return matches[0]


def service_account_kubeconfig(
    plane: ControlPlane, objects: list[dict[str, Any]], namespace: str, watch: str
) -> Path:
    """A kubeconfig with a TokenRequest token of the release's ServiceAccount (in namespace)."""
    account = one_of_kind(objects, "ServiceAccount")["metadata"]["name"]
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token"
    status, body = plane.api().request("POST", path, {"spec": {"expirationSeconds": 3600}})
    assert status == 201, body
    return write_kubeconfig(
        plane.directory / f"{namespace}-operator.kubeconfig",
        plane.server,
        plane.pki.ca.cert,
        {"token": body["status"]["token"]},
        namespace=watch,
    )


@contextmanager
def operator_running(
    plane: ControlPlane, kubeconfig: Path, watch: str, name: str, args: tuple[str, ...] = ("--standalone",)
) -> Iterator[Component]:
    """`python -m rag_operator run ARGS --namespace WATCH` with kubeconfig's credentials.

    Its log joins the control plane's, so a failed test's report carries its tail.
    """
    log = plane.directory / "logs" / f"{name}.log"
    argv = [sys.executable, "-m", "rag_operator", "run", *args, "--namespace", watch]
    argv += ["--liveness-port", str(free_port()), "--metrics-port", str(free_port())]
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "RAG_OPERATOR_LOG_LEVEL": "debug"}
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    component = Component(name=name, pid=process.pid, binary=sys.executable, log=log, process=process)
    plane.components.append(component)
    try:
        time.sleep(1)
        assert process.poll() is None, f"the operator exited at once:\n{component.log_tail()}"
        yield component
    finally:
        stop_component(component)
        plane.components.remove(component)


@contextmanager
def chart_operator(plane: ControlPlane, helm_path: str, release: str, watch: str) -> Iterator[Component]:
    """The chart installed as `release` (in `release`-system, watching `watch`) and our operator
    running with its ServiceAccount's token: the setup of every operator test module."""
    namespace = f"{release}-system"
    objects = install_chart(plane, helm_path, release, namespace, watch)
    kubeconfig = service_account_kubeconfig(plane, objects, namespace, watch)
    with operator_running(plane, kubeconfig, watch, f"{release}-operator") as component:
        yield component
