"""`make cluster-up REAL_NODES=1` and `make cluster-down` as a person runs them (the same CLI,
another state directory and network so it can run beside a developer's own cluster), with a
pod running in between: afterwards no process, mount, network namespace, link, route,
iptables rule, CNI cache entry or log link of the cluster is left.

This module runs before the other node tests (file order) so no other real cluster's pods
come and go during the comparison.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from localcluster.images import job_image_name
from localcluster.realnodes import host_snapshot
from localcluster.toolchain import REPO, Toolchain

from ..polling import eventually
from ..tools import require_kubectl

pytestmark = pytest.mark.node

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "probe"},
    "spec": {
        "containers": [
            {
                "name": "probe",
                "image": job_image_name(),
                "imagePullPolicy": "Never",
                "command": ["python", "-c", "import time; print('probe up', flush=True); time.sleep(600)"],
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
            }
        ],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
    },
}


def localcluster(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localcluster", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cluster_down_leaves_nothing_behind(node_toolchain: Toolchain, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO / 'hack'}",
        "RAG_CLUSTER_DIR": str(tmp_path / "state"),
        "RAG_CLUSTER_NETWORK": "rfoc:215",
    }
    before = host_snapshot()
    up = localcluster(env, "up", "--real-nodes", "1", "--no-example-data")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((tmp_path / "state" / "state.json").read_text())
        kubectl = [str(require_kubectl()), f"--kubeconfig={state['kubeconfig']}"]
        done = subprocess.run(
            [*kubectl, "apply", "-f", "-"], input=json.dumps(POD), capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr

        def logged() -> bool:
            logs = subprocess.run([*kubectl, "logs", "probe"], capture_output=True, text=True)
            return "probe up" in logs.stdout

        eventually(logged, timeout=90, what="the probe pod running and its log readable through the kubelet")
        during = host_snapshot()
        assert set(during["netns"]) - set(before["netns"]), "the node's network namespace was never made"
    finally:
        down = localcluster(env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    after = host_snapshot()
    left = {key: sorted(set(after[key]) - set(before[key])) for key in before}
    assert not {key: value for key, value in left.items() if value}, f"cluster-down left behind: {left}"
    gone = {key: sorted(set(before[key]) - set(after[key])) for key in before}
    assert not {key: value for key, value in gone.items() if value}, (
        f"cluster-down removed what it did not make: {gone}"
    )
