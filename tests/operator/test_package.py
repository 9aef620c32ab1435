"""Package-level promises: a light import, the CLI wiring, and RBAC rules that cover every call."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import kopf
import pytest

from rag_operator import __main__ as cli
from rag_operator import permissions
from rag_operator.common import names
from rag_operator.finetunejob import controller
from tests.operator.testlib import FakeMemo, load_example, rbac_calls


def test_importing_the_operator_pulls_in_neither_torch_nor_ray() -> None:
    code = (
        "import sys, rag_operator, rag_operator.render, rag_operator.crd, rag_operator.operator, "
        "rag_operator.finetunejob.status, rag_operator.retrievalcluster.status, rag_operator.__main__\n"
        "heavy = sorted(m for m in ('torch', 'ray', 'transformers', 'faiss', 'datasets') if m in sys.modules)\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"rag_operator imported {result.stdout.strip()}"


def test_run_passes_namespaces_liveness_and_peering_to_kopf(monkeypatch: pytest.MonkeyPatch) -> None:
    """kopf.run is replaced: it would connect to an API server, and none runs on these machines."""
    seen: dict[str, Any] = {}
    monkeypatch.setattr(kopf, "run", lambda **kwargs: seen.update(kwargs))
    argv = ["run", "--namespace", "a", "--namespace", "b", "--liveness-port", "9000", "--peering", "p"]
    assert cli.main(argv) == 0
    assert seen["namespaces"] == ["a", "b"] and seen["clusterwide"] is False
    assert seen["liveness_endpoint"] == "http://0.0.0.0:9000/healthz"
    assert (seen["peering_name"], seen["standalone"]) == ("p", False)


def test_run_defaults_to_all_namespaces_port_8080_and_the_operator_peering(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rag_operator import metrics

    seen: dict[str, Any] = {}
    monkeypatch.setattr(kopf, "run", lambda **kwargs: seen.update(kwargs))
    monkeypatch.setattr(metrics, "serve", lambda port: seen.update(metrics_port=port))
    cli.main(["run"])
    assert seen["clusterwide"] is True and seen["namespaces"] == []
    assert seen["liveness_endpoint"].endswith(":8080/healthz")
    assert seen["metrics_port"] == 9090
    assert seen["peering_name"] == "rag-finetune-operator"
    first = seen["priority"]
    cli.main(["run"])
    assert seen["priority"] != first, "replicas must not tie: kopf pauses every peer of equal priority"
    seen.clear()
    cli.main(["run", "--standalone"])
    assert seen["standalone"] is True and seen["peering_name"] is None


def test_peering_and_standalone_cannot_be_combined(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(kopf, "run", lambda **kwargs: pytest.fail("kopf.run must not start"))
    assert cli.main(["run", "--standalone", "--peering", "x"]) == 2  # a usage error
    assert "--peering and --standalone" in capsys.readouterr().err


def test_cli_prints_its_version_and_exits_2_on_an_unknown_option(capsys: pytest.CaptureFixture[str]) -> None:
    from rag_operator import __version__

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"rag_operator {__version__}"
    assert cli.main(["render", "--no-such-option"]) == 2


def _granted(rules: list[dict[str, list[str]]], group: str, resource: str, verb: str) -> bool:
    return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)


def test_permissions_cover_every_call_the_handlers_make() -> None:
    memo = FakeMemo()
    doc = load_example("cpu")
    doc["metadata"]["namespace"] = "ns"
    body = memo.custom.put(names.GROUP, names.PLURAL, doc)
    controller.reconcile(body=body, memo=memo, patch=kopf.Patch())
    rayjob = memo.custom.get_namespaced_custom_object(
        names.RAY_GROUP, "v1", "ns", names.RAYJOB_PLURAL, "rag-tiny-cpu"
    )
    rayjob["status"] = {"jobStatus": "RUNNING", "jobDeploymentStatus": "Running"}
    controller.mirror_rayjob(event={"type": "MODIFIED"}, body=rayjob, memo=memo)
    edited = memo.custom.get_namespaced_custom_object(
        names.GROUP, names.VERSION, "ns", names.PLURAL, "rag-tiny-cpu"
    )
    edited["spec"]["rayJob"]["suspend"] = True
    controller.reconcile(body=edited, memo=memo, patch=kopf.Patch())
    queued = load_example("cpu")
    queued["metadata"].update(namespace="ns", name="queued")
    queued["spec"]["rayJob"]["queueName"] = "team-a"
    patch = kopf.Patch()
    controller.reconcile(body=memo.custom.put(names.GROUP, names.PLURAL, queued), memo=memo, patch=patch)
    queued["status"] = {**patch["status"], "phase": "Queued"}
    controller.report_queue(body=queued, memo=memo, logger=None)

    used = rbac_calls(memo.custom.calls)
    used.add(("", "events", "create"))
    assert memo.core.events, "the flow posted no event"
    assert {u[1] for u in used} >= {
        "rayjobs",
        "networkpolicies",
        "ragfinetunejobs",
        "ragfinetunejobs/status",
        "events",
        "workloads",
    }
    for group, resource, verb in used:
        assert _granted(permissions.WORKLOAD, group, resource, verb), (group, resource, verb)


def test_permissions_include_kopfs_own_needs_per_mode() -> None:
    clusterwide = permissions.rules(clusterwide=True, peering=True)
    namespaced = permissions.rules(clusterwide=False, peering=True)
    assert _granted(clusterwide, "kopf.dev", "clusterkopfpeerings", "patch")
    assert not _granted(clusterwide, "kopf.dev", "kopfpeerings", "patch")
    assert _granted(namespaced, "kopf.dev", "kopfpeerings", "patch")
    assert _granted(namespaced, "", "namespaces", "watch") and not _granted(
        clusterwide, "", "namespaces", "watch"
    )
    assert _granted(clusterwide, "apiextensions.k8s.io", "customresourcedefinitions", "watch")
    for rule in permissions.rules(clusterwide=False, peering=False):
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
        assert "delete" not in rule["verbs"]  # deletion cascades through ownerReferences
    assert not any(r["apiGroups"] == ["kopf.dev"] for r in permissions.rules(peering=False))
