"""A real kube-apiserver (with etcd) holding the CRDs a test module needs, for the `cluster` tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from localcluster.controlplane import ControlPlane, start_control_plane
from localcluster.toolchain import ToolchainMissing, find_toolchain
from rag_operator.common import names
from tests.polling import eventually

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
#: Where the tests create their objects: the namespace, and the collections of our two kinds there.
NS = "default"
RFJS = f"/apis/{names.API_VERSION}/namespaces/{NS}/{names.PLURAL}"
RRCS = f"/apis/{names.API_VERSION}/namespaces/{NS}/{names.RRC_PLURAL}"


@contextmanager
def api_server_with(crds: list[dict[str, Any]], prefix: str) -> Iterator[ControlPlane]:
    """Start a control plane, create `crds` and wait until each is established; skip, saying why,
    when the toolchain is not built."""
    try:
        toolchain = find_toolchain()
    except ToolchainMissing as err:
        pytest.skip(f"control-plane toolchain not built (make toolchain): {err}")
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    plane = start_control_plane(toolchain, directory)
    api = plane.api()
    try:
        for crd in crds:
            status, body = api.request("POST", CRDS, crd)
            assert status == 201, body
            name = crd["metadata"]["name"]

            def established(name: str = name) -> bool:
                _, found = api.request("GET", f"{CRDS}/{name}")
                conditions = (found.get("status") or {}).get("conditions") or []
                return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

            eventually(established, 30, f"{name} established")
        yield plane
    finally:
        plane.stop()
        shutil.rmtree(directory, ignore_errors=True)
