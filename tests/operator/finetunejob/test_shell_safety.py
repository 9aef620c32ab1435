"""No user string reaches a shell unescaped: KubeRay's submitter pastes the RayJob's runtime env
into a `bash -ce` line inside Go-quoted double quotes, where `$(...)`, backticks and `$VAR` expand.

The command line comes from KubeRay's own code (hack/kuberay-submit, built by `make toolchain`
from the KubeRay module the control-plane tests run), and real bash runs it with a stand-in
`ray` on PATH that records its arguments; the config the job would read is decoded from them.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster.toolchain import kuberay_submit_binary
from rag_job.config import CONFIG_ENV_VAR, JobConfig, decode_from_env
from rag_operator.common.sizing import no_kb_metadata
from rag_operator.finetunejob.render import rayjob_for
from tests.operator.testlib import load_example

HOSTILE = [
    "/data/$(touch /tmp/rag-pwned)/model",
    "/data/`id`/model",
    "/data/$HOME/${PATH}/model",
    "/data/\"quoted\" and 'single'/model",
    '/data/back\\slash\\"/model',
    "/data/new\nline/model",
    "/data/ünïcødé 模型/model",
    "/data/;rm -rf x;|&&>/model",
]
#: Records each `ray` call's arguments (NUL-separated), says "not submitted yet" to `ray job status`.
FAKE_RAY = """#!/bin/bash
printf '%s\\0' "$@" >> "$RAY_CALLS"; printf '\\n' >> "$RAY_CALLS"
[ "$1 $2" = "job status" ] && exit 1
exit 0
"""


@pytest.fixture(scope="module")
def kuberay_submit() -> Path:
    binary = kuberay_submit_binary()
    if not binary.exists():
        pytest.skip(f"{binary} is not built: run `make toolchain` (needs Go)")
    return binary


def submitted_runtime_env(binary: Path, rayjob: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Run the submitter's command as the pod would; the runtime env `ray job submit` received."""
    built = subprocess.run(
        [str(binary), "http://rag-head-svc.ns.svc.cluster.local:8265", "rag-job-abc12"],
        input=json.dumps(rayjob), capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    container = json.loads(built.stdout)
    assert container["command"][:2] == ["/bin/bash", "-ce"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ray").write_text(FAKE_RAY)
    (bin_dir / "ray").chmod(0o755)
    calls = tmp_path / "calls"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "RAY_CALLS": str(calls), "HOME": str(tmp_path)}
    subprocess.run(
        ["bash", *container["command"][1:], *container["args"]], env=env, cwd=tmp_path, check=True, timeout=30
    )
    for line in calls.read_bytes().split(b"\0\n"):
        argv = [arg.decode() for arg in line.split(b"\0")]
        if argv[:3] == ["job", "submit", "--address"]:
            return json.loads(argv[argv.index("--runtime-env-json") + 1])
    raise AssertionError(f"ray job submit was never called: {calls.read_bytes()!r}")


def _job_with(path: str) -> dict[str, Any]:
    doc = copy.deepcopy(load_example("cpu"))
    doc["spec"]["job"]["model"]["path"] = path
    doc["spec"]["job"]["data"]["train_path"] = path
    doc["spec"]["job"]["retrieval"]["knowledge_base"] = path
    return doc


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_paths_reach_the_job_byte_for_byte_through_kuberays_submitter_shell(
    kuberay_submit: Path, tmp_path: Path, hostile: str
) -> None:
    rayjob, _ = rayjob_for(_job_with(hostile), no_kb_metadata)
    runtime_env = submitted_runtime_env(kuberay_submit, rayjob, tmp_path)
    config = JobConfig.from_json_text(decode_from_env(runtime_env["env_vars"][CONFIG_ENV_VAR]))
    assert (config.model.path, config.data.train_path, config.retrieval.knowledge_base) == (hostile,) * 3
    assert not Path("/tmp/rag-pwned").exists(), "the submitter's shell ran a command from the spec"


def test_without_the_encoding_the_same_shell_would_rewrite_the_config(
    kuberay_submit: Path, tmp_path: Path
) -> None:
    """The control: plain JSON in the runtime env (what the operator rendered before) is altered."""
    rayjob, plan = rayjob_for(_job_with("/data/$(echo pwned)/model"), no_kb_metadata)
    plain = yaml.safe_dump({"env_vars": {CONFIG_ENV_VAR: plan.job_config.to_json()}}, width=1 << 16)
    rayjob["spec"]["runtimeEnvYAML"] = plain
    runtime_env = submitted_runtime_env(kuberay_submit, rayjob, tmp_path)
    received = json.loads(runtime_env["env_vars"][CONFIG_ENV_VAR])
    assert received["model"]["path"] == "/data/pwned/model"
