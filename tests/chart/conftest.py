"""Shared fixtures: a real helm binary and a renderer for the chart with a values file."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `tests.tools` without relying on the pytest rootdir setup
    sys.path.insert(0, str(REPO_ROOT))

from tests.tools import require_helm  # noqa: E402

CHART_DIR = REPO_ROOT / "charts" / "rag-finetune-operator"
VALUES_DIR = Path(__file__).parent / "values"
RELEASE = "rfo"
NAMESPACE = "rag-system"

Render = Callable[..., list[dict[str, Any]]]


def values_files() -> list[Path]:
    """One values file per chart option (tests/chart/values/*.yaml)."""
    return sorted(VALUES_DIR.glob("*.yaml"))


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    """helm from PATH or the tool cache; `make tools` runs once when neither has it."""
    return require_helm()


@pytest.fixture(scope="session")
def render(helm_bin: Path) -> Render:
    """`helm template` the chart (with CRDs) and return the parsed objects; fails on a helm error."""
    cache: dict[tuple[Any, ...], list[dict[str, Any]]] = {}

    def _render(values: Path | None = None, *sets: str) -> list[dict[str, Any]]:
        key = (values, sets)
        if key not in cache:
            args = ["template", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE, "--include-crds"]
            if values is not None:
                args += ["--values", str(values)]
            for s in sets:
                args += ["--set", s]
            proc = run_helm(helm_bin, *args)
            assert proc.returncode == 0, f"helm template failed:\n{proc.stderr}"
            cache[key] = [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
        return cache[key]

    return _render
