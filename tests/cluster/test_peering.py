"""Two operator replicas with kopf peering, as the chart deploys them (peering on, a KopfPeering
in the watched namespace, the chart's ServiceAccount): only the higher-priority replica acts,
and the other takes over when it stops.

Priorities are given explicitly: with kopf's default random ones, which replica stands down
depends on the draw (and a replica that died without removing its peering record keeps the
others paused until the record's 60 s lifetime runs out).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from localcluster.controlplane import ControlPlane
from localcluster.toolchain import REPO
from tests.polling import eventually

from .kube import get_if_exists, install_chart, one_of_kind, operator_running, service_account_kubeconfig

pytestmark = pytest.mark.cluster

RELEASE, NS = "peer", "peer"
CPU_EXAMPLE = REPO / "examples" / "rag-finetune-job-cpu.yaml"
PAUSED, RESUMED = "Pausing operations in favour of", "Resuming operations after the pause"


@pytest.fixture(scope="module")
def peered(control_plane: ControlPlane, helm_path: str) -> Iterator[tuple[str, Path]]:
    """The chart installed with peering; (peering object name, the ServiceAccount's kubeconfig)."""
    objects = install_chart(control_plane, helm_path, RELEASE, f"{RELEASE}-system", NS, peering=True)
    peering = one_of_kind(objects, "KopfPeering")["metadata"]["name"]
    yield peering, service_account_kubeconfig(control_plane, objects, f"{RELEASE}-system", NS)


def job(name: str) -> str:
    doc = yaml.safe_load(CPU_EXAMPLE.read_text())
    doc["metadata"].update(name=name, namespace=NS)
    return yaml.safe_dump(doc)


def test_only_the_higher_priority_replica_acts_and_the_other_takes_over(
    peered: tuple[str, Path], control_plane: ControlPlane, kubectl
) -> None:
    peering, kubeconfig = peered

    def replica(name: str, priority: int):
        args = ("--peering", peering, "--priority", str(priority))
        return operator_running(control_plane, kubeconfig, NS, name, args)

    with replica("peer-low", 100) as low:
        with replica("peer-high", 200) as high:
            eventually(
                lambda: PAUSED in low.log.read_text(), timeout=60, what="the low replica to stand down"
            )
            assert kubectl("apply", "-f", "-", stdin=job("peered-1")).returncode == 0
            eventually(lambda: get_if_exists(kubectl, "rayjob", "peered-1", "-n", NS), 60, "the RayJob")
            time.sleep(3)  # the paused replica must not act either
            assert "Handler 'reconcile'" in high.log.read_text()
            assert "Handler 'reconcile'" not in low.log.read_text()
            assert PAUSED not in high.log.read_text()
        # high stopped: it removes itself from the peering object, and low resumes
        eventually(lambda: RESUMED in low.log.read_text(), timeout=90, what="the low replica to resume")
        assert kubectl("apply", "-f", "-", stdin=job("peered-2")).returncode == 0
        eventually(
            lambda: get_if_exists(kubectl, "rayjob", "peered-2", "-n", NS), 60, "the RayJob after takeover"
        )
    rayjobs = [
        j["metadata"]["name"]
        for j in yaml.safe_load(kubectl("get", "rayjobs", "-n", NS, "-o", "yaml").stdout)["items"]
    ]
    assert sorted(rayjobs) == ["peered-1", "peered-2"]
