"""Finding and building the control-plane binaries: versions come from one place,
and a missing binary or a missing Go says what to do (no control plane needed)."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from localcluster.toolchain import (
    REPO,
    ToolchainMissing,
    find_toolchain,
    k8s_version,
    kuberay_operator_version,
    pinned_version,
    require_placement,
)

pytestmark = pytest.mark.cluster

SCRIPT = REPO / "hack" / "controlplane" / "toolchain.sh"


def test_k8s_version_is_read_from_a_tidied_go_mod_require_block(tmp_path: Path) -> None:
    go_mod = tmp_path / "go.mod"
    go_mod.write_text(
        "module x\n\nrequire (\n\tk8s.io/api v0.34.2\n\tk8s.io/kubernetes v1.34.9 // indirect\n)\n"
    )
    assert k8s_version(go_mod) == "v1.34.9"


def test_k8s_version_without_a_kubernetes_requirement_says_so(tmp_path: Path) -> None:
    go_mod = tmp_path / "go.mod"
    go_mod.write_text("module x\n// k8s.io/kubernetes release notes\n")
    with pytest.raises(ToolchainMissing, match=re.escape("does not require k8s.io/kubernetes")):
        k8s_version(go_mod)


def test_repo_pins_a_kubernetes_release_a_kuberay_operator_and_kwok() -> None:
    assert k8s_version().startswith("v1.")
    assert kuberay_operator_version().startswith("v1.")
    assert pinned_version("KWOK_VERSION").startswith("v0.")


def test_a_missing_pin_names_the_key_and_the_file(tmp_path: Path) -> None:
    env = tmp_path / "versions.env"
    env.write_text("KUBERAY_OPERATOR_VERSION=v1.6.0\n")
    with pytest.raises(ToolchainMissing, match="has no KWOK_VERSION= line"):
        pinned_version("KWOK_VERSION", env)


def test_empty_cache_names_the_missing_binary_and_the_fix(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path))
    with pytest.raises(ToolchainMissing) as err:
        find_toolchain()
    message = str(err.value)
    assert str(tmp_path / "bin") in message
    assert "make toolchain" in message


def test_placement_binaries_are_checked_apart_from_the_control_planes(tmp_path: Path, monkeypatch) -> None:
    """kube-scheduler and kwok only gate the placement tests: find_toolchain does not ask for them."""
    try:
        toolchain = find_toolchain()
    except ToolchainMissing as err:
        pytest.skip(f"control-plane toolchain not built: {err}")
    missing = dataclasses.replace(toolchain, kwok=tmp_path / "kwok")
    with pytest.raises(ToolchainMissing, match=re.escape(f"{tmp_path / 'kwok'} is missing")):
        require_placement(missing)


def test_toolchain_script_without_go_fails_in_one_line(tmp_path: Path) -> None:
    bare_path = "/usr/bin:/bin"
    if shutil.which("go", path=bare_path):
        pytest.skip("go is installed in /usr/bin or /bin: cannot hide it from the script")
    done = subprocess.run(
        ["/bin/bash", str(SCRIPT)],
        env={"PATH": bare_path, "HOME": str(tmp_path), "RAG_CACHE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "toolchain: Go is not installed (need go >= 1.26 on PATH); the cluster tests will be skipped."
    ]
