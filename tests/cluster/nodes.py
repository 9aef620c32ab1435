"""Test-side helpers on top of the simulated nodes (hack/localcluster/kwok.py): the examples'
pre-bound claim and the chart's operator watching a namespace that has it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from localcluster.controlplane import Component, ControlPlane

from .kube import chart_operator, create_namespaces


def bound_claim(plane: ControlPlane, namespace: str, name: str) -> None:
    """A PersistentVolumeClaim already bound to an NFS volume, as an admin would pre-provision.

    The examples mount one; the scheduler refuses pods whose claim is missing or unbound, and no
    volume binder runs here, so the claim is created bound (volumeName + bind-completed).
    """
    api = plane.api()
    volume = f"{namespace}-{name}"
    status, body = api.request("POST", "/api/v1/persistentvolumes", {
        "metadata": {"name": volume},
        "spec": {
            "capacity": {"storage": "1Ti"}, "accessModes": ["ReadWriteMany"], "storageClassName": "",
            "nfs": {"server": "10.0.0.2", "path": "/rag"},
            "claimRef": {"namespace": namespace, "name": name},
        },
    })  # fmt: skip
    assert status == 201, body
    status, body = api.request("POST", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims", {
        "metadata": {"name": name, "annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
        "spec": {
            "accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": volume,
            "resources": {"requests": {"storage": "1Ti"}},
        },
    })  # fmt: skip
    assert status == 201, body


@contextmanager
def operator_with_claim(
    plane: ControlPlane, helm_path: str, release: str, namespace: str
) -> Iterator[Component]:
    """The examples' claim bound in namespace, then the chart and our operator watching it."""
    create_namespaces(plane, namespace)
    bound_claim(plane, namespace, "rag-shared")
    with chart_operator(plane, helm_path, release, namespace) as component:
        yield component
