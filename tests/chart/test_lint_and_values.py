"""`helm lint --strict` passes for every option, and bad values fail at install naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import CHART_DIR, RELEASE, run_helm, values_files


def test_chart_lints_strict_with_defaults(helm_bin: Path) -> None:
    proc = run_helm(helm_bin, "lint", "--strict", str(CHART_DIR))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_chart_lints_strict_with_every_values_file(helm_bin: Path) -> None:
    args = ["lint", "--strict", str(CHART_DIR)]
    for values in values_files():
        proc = run_helm(helm_bin, *args, "--values", str(values))
        assert proc.returncode == 0, f"{values.name}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("replicas=0", "/replicas"),
        ("replicas=two", "/replicas"),
        ("logLevel=loud", "/logLevel"),
        ("logLevel=warning", "/logLevel"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("livenessProbe.port=70000", "/livenessProbe/port"),
        ("watchNamespaces[0]=Team_A", "/watchNamespaces/0"),
        ("imagee.tag=x", "imagee"),
        ("peering.enabled=false", "/peering/enabled"),
        ("serviceAccount.create=false", "/serviceAccount/name"),
        # A prefix not ending in / : or @ would also admit registry.internal.evil.io/...
        (
            "admissionPolicy.allowedImagePrefixes[0]=registry.internal",
            "/admissionPolicy/allowedImagePrefixes/0",
        ),
        ("logFormat=xml", "/logFormat"),
        ("readinessProbe.periodSeconds=0", "/readinessProbe/periodSeconds"),
        ("readinessProbe.port=8080", "/readinessProbe"),  # it asks the liveness port: no port of its own
        ("podDisruptionBudget.maxUnavailable=half", "/podDisruptionBudget/maxUnavailable"),
        ("podDisruptionBudget.maxUnavailable=-1", "/podDisruptionBudget/maxUnavailable"),
        ("topologySpreadConstraints[0].maxSkew=1", "/topologySpreadConstraints/0"),  # no topologyKey
        ("rbac.aggregateToDefaultRoles=maybe", "/rbac/aggregateToDefaultRoles"),
    ],
)
def test_invalid_value_is_rejected_naming_the_field(helm_bin: Path, setting: str, field: str) -> None:
    proc = run_helm(helm_bin, "template", RELEASE, str(CHART_DIR), "--set", setting)
    assert proc.returncode != 0, f"--set {setting} was accepted"
    # helm 4 names the field as a JSON pointer (/image/pullPolicy); older helm 3 in dotted form.
    dotted = field.strip("/").replace("/", ".")
    assert field in proc.stderr or dotted in proc.stderr, (
        f"error for --set {setting} does not name {field}:\n{proc.stderr}"
    )


@pytest.mark.parametrize("max_unavailable", ["1", "0", "50%"])
def test_disruption_budget_with_both_max_unavailable_and_min_available_is_refused(
    helm_bin: Path, max_unavailable: str
) -> None:
    """A PodDisruptionBudget takes one of the two; the schema refuses both, saying so."""
    base = ["template", RELEASE, str(CHART_DIR), "--set", "podDisruptionBudget.minAvailable=1"]
    both = run_helm(helm_bin, *base, "--set", f"podDisruptionBudget.maxUnavailable={max_unavailable}")
    assert both.returncode != 0, "maxUnavailable and minAvailable were both accepted"
    assert "/podDisruptionBudget/maxUnavailable" in both.stderr, both.stderr
    assert "takes maxUnavailable or minAvailable, not both" in both.stderr, both.stderr
    one = run_helm(helm_bin, *base, "--show-only", "templates/poddisruptionbudget.yaml")
    assert one.returncode == 0, one.stderr
    assert "minAvailable: 1" in one.stdout and "maxUnavailable" not in one.stdout


def test_kubeversion_below_the_minimum_is_refused(helm_bin: Path) -> None:
    proc = run_helm(helm_bin, "template", RELEASE, str(CHART_DIR), "--kube-version", "1.25.0")
    assert proc.returncode != 0
    assert "kubeVersion" in proc.stderr or "incompatible" in proc.stderr, proc.stderr


KUBERAY_INSTALL = "helm install kuberay-operator kuberay/kuberay-operator --version 1.7.0"


def notes(helm_bin: Path, *args: str) -> str:
    """NOTES.txt as `helm install` prints it (client-side dry run: no cluster needed)."""
    proc = run_helm(helm_bin, "install", RELEASE, str(CHART_DIR), "--dry-run=client", "-n", "ops", *args)
    assert proc.returncode == 0, proc.stderr
    assert "NOTES:" in proc.stdout
    return proc.stdout.split("NOTES:", 1)[1]


def test_notes_give_the_exact_kuberay_install_and_the_next_steps(helm_bin: Path) -> None:
    text = " ".join(notes(helm_bin).replace("\\\n", " ").split())
    assert KUBERAY_INSTALL in text
    assert "rollout status deployment/rfo-rag-finetune-operator" in text
    assert "kubectl apply -f examples/rag-finetune-job-cpu.yaml" in text
    assert "every namespace" in text


def test_notes_name_the_watched_namespaces(helm_bin: Path) -> None:
    text = notes(helm_bin, "--set-json", 'watchNamespaces=["team-a","team-b"]')
    assert "team-a, team-b" in text
