"""`helm template` with the defaults and with one values file per option: every object is valid
Kubernetes, and each option changes exactly what it promises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import CHART_DIR, NAMESPACE, RELEASE, VALUES_DIR, Render, run_helm, values_files
from .k8s_schemas import chart_kube_versions, validate_object
from .test_rbac import of_kind

CASES = [None, *values_files()]
IDS = ["defaults", *(p.stem for p in values_files())]


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def deployment(objs: list[dict[str, Any]]) -> dict[str, Any]:
    (dep,) = by_kind(objs, "Deployment")
    return dep


def controller(objs: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = deployment(objs)["spec"]["template"]["spec"]["containers"]
    return container


def test_every_option_has_a_values_file() -> None:
    assert len(values_files()) >= 8, "tests/chart/values/ should hold one values file per chart option"


@pytest.mark.parametrize("values", CASES, ids=IDS)
def test_rendered_objects_validate_against_kubernetes_schemas(render: Render, values: Path | None) -> None:
    objs = render(values)
    crds = by_kind(objs, "CustomResourceDefinition")
    assert deployment(objs), "the chart must render the operator Deployment"
    for kube_version in chart_kube_versions():
        for obj in objs:
            validate_object(obj, kube_version, crds)


def test_validation_catches_an_invalid_object(render: Render) -> None:
    """The validator really bites: a Deployment with a string replica count is rejected."""
    broken = dict(deployment(render()))
    broken["spec"] = {**broken["spec"], "replicas": "two"}
    with pytest.raises(AssertionError, match=r"spec\.replicas"):
        validate_object(broken, chart_kube_versions()[0], [])


def test_default_pod_is_hardened(render: Render) -> None:
    pod = deployment(render())["spec"]["template"]["spec"]
    container = controller(render())
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_default_liveness_probe_hits_the_controller_health_endpoint(render: Render) -> None:
    container = controller(render())
    probe = container["livenessProbe"]["httpGet"]
    (port,) = [p for p in container["ports"] if p["name"] == "health"]
    assert probe["path"] == "/healthz"
    assert probe["port"] == port["name"] and port["containerPort"] == 8080
    assert container["args"][:3] == ["run", "--liveness-port", "8080"]


def test_defaults_run_two_peered_replicas_cluster_wide(render: Render) -> None:
    objs = render()
    assert deployment(objs)["spec"]["replicas"] == 2
    args = controller(objs)["args"]
    (peering,) = by_kind(objs, "ClusterKopfPeering")
    assert args[args.index("--peering") + 1] == peering["metadata"]["name"]
    assert "--namespace" not in args and "--standalone" not in args
    assert by_kind(objs, "ClusterRole") and not by_kind(objs, "Role")
    (binding,) = by_kind(objs, "ClusterRoleBinding")
    (sa,) = by_kind(objs, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}
    ]
    assert deployment(objs)["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


def test_default_log_level_is_not_verbose(render: Render) -> None:
    assert "--verbose" not in controller(render())["args"]


def test_default_log_format_is_the_controllers_default_text(render: Render) -> None:
    """Only logFormat=json adds the flag: an older operator image without --log-format still runs."""
    assert "--log-format" not in controller(render())["args"]


def test_default_readiness_probe_asks_the_liveness_endpoint(render: Render) -> None:
    """kopf serves /healthz only after the operator's startup handlers ran, so the same endpoint
    tells readiness; it must be the port the controller is told to serve it on."""
    container = controller(render())
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert readiness["httpGet"] == liveness["httpGet"]
    (port,) = [p for p in container["ports"] if p["name"] == readiness["httpGet"]["port"]]
    args = container["args"]
    assert str(port["containerPort"]) == args[args.index("--liveness-port") + 1]
    assert "readinessProbe" not in controller(render(None, "readinessProbe.enabled=false"))


def pdbs(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return by_kind(objs, "PodDisruptionBudget")


def test_default_disruption_budget_keeps_all_but_one_replica(render: Render) -> None:
    objs = render()
    (pdb,) = pdbs(objs)
    dep = deployment(objs)
    assert pdb["metadata"]["namespace"] == NAMESPACE
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    # It covers exactly this release's operator pods: the Deployment's own selector.
    assert pdb["spec"]["selector"] == dep["spec"]["selector"]
    assert (
        dep["spec"]["selector"]["matchLabels"].items()
        <= dep["spec"]["template"]["metadata"]["labels"].items()
    )


def test_disruption_budget_only_with_more_than_one_replica(render: Render) -> None:
    assert not pdbs(render(VALUES_DIR / "single-replica.yaml"))
    assert not pdbs(render(None, "podDisruptionBudget.enabled=false"))
    assert len(pdbs(render(None, "replicas=2"))) == 1


def test_disruption_budget_takes_min_available_instead(render: Render) -> None:
    (pdb,) = pdbs(render(VALUES_DIR / "availability.yaml"))
    assert pdb["spec"]["minAvailable"] == 2 and "maxUnavailable" not in pdb["spec"]
    (percent,) = pdbs(render(None, "podDisruptionBudget.maxUnavailable=50%"))
    assert percent["spec"]["maxUnavailable"] == "50%"


def test_topology_spread_constraints_reach_the_pod_with_the_release_selector(render: Render) -> None:
    """A constraint without labelSelector counts this release's operator pods (the Deployment's
    selector); one with a labelSelector is passed through as written."""
    objs = render(VALUES_DIR / "availability.yaml")
    given = yaml.safe_load((VALUES_DIR / "availability.yaml").read_text())["topologySpreadConstraints"]
    spread = deployment(objs)["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert len(spread) == len(given) == 2
    assert "labelSelector" not in given[0]
    assert spread[0] == {**given[0], "labelSelector": deployment(objs)["spec"]["selector"]}
    assert spread[1] == given[1]
    assert "topologySpreadConstraints" not in deployment(render())["spec"]["template"]["spec"]


def test_default_image_is_the_app_version(render: Render) -> None:
    assert controller(render())["image"] == "ghcr.io/rag-finetune/rag-finetune-operator:0.1.0"


def test_single_replica_runs_standalone_without_peering(render: Render) -> None:
    objs = render(VALUES_DIR / "single-replica.yaml")
    assert deployment(objs)["spec"]["replicas"] == 1
    args = controller(objs)["args"]
    assert "--standalone" in args and "--peering" not in args
    assert not by_kind(objs, "ClusterKopfPeering") and not by_kind(objs, "KopfPeering")


def test_watch_namespaces_uses_a_role_per_namespace_and_no_cluster_role(render: Render) -> None:
    objs = render(VALUES_DIR / "watch-namespaces.yaml")
    assert {r["metadata"]["namespace"] for r in by_kind(objs, "Role")} == {"team-a", "team-b"}
    assert {b["metadata"]["namespace"] for b in by_kind(objs, "RoleBinding")} == {"team-a", "team-b"}
    for binding in by_kind(objs, "RoleBinding"):
        assert binding["subjects"][0]["namespace"] == NAMESPACE
    # The only cluster-wide grant left is kopf's read-only scanning of cluster-scoped objects.
    (cluster_role,) = of_kind(objs, "ClusterRole")
    scanned = {r for rule in cluster_role["rules"] for r in rule["resources"]}
    assert scanned <= {"customresourcedefinitions", "namespaces"}
    assert {v for rule in cluster_role["rules"] for v in rule["verbs"]} <= {"list", "watch"}
    args = controller(objs)["args"]
    assert [args[i + 1] for i, a in enumerate(args) if a == "--namespace"] == ["team-a", "team-b"]
    assert {p["metadata"]["namespace"] for p in by_kind(objs, "KopfPeering")} == {"team-a", "team-b"}
    assert not by_kind(objs, "ClusterKopfPeering")


def test_existing_service_account_is_used_not_created(render: Render) -> None:
    objs = render(VALUES_DIR / "service-account.yaml")
    assert not by_kind(objs, "ServiceAccount")
    assert deployment(objs)["spec"]["template"]["spec"]["serviceAccountName"] == "rag-operator-sa"
    (binding,) = by_kind(objs, "ClusterRoleBinding")
    assert binding["subjects"][0]["name"] == "rag-operator-sa"


def test_service_account_name_and_annotations_are_applied(render: Render) -> None:
    (sa,) = by_kind(render(VALUES_DIR / "service-account-annotations.yaml"), "ServiceAccount")
    assert sa["metadata"]["name"] == "rag-operator"
    assert sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].startswith("rag-operator@")


def test_image_values_reach_the_pod(render: Render) -> None:
    objs = render(VALUES_DIR / "image.yaml")
    container = controller(objs)
    assert container["image"] == "registry.example.com/mirror/rag-finetune-operator:0.1.0-rc1"
    assert container["imagePullPolicy"] == "Always"
    assert deployment(objs)["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]


def test_scheduling_values_reach_the_pod(render: Render) -> None:
    objs = render(VALUES_DIR / "scheduling.yaml")
    pod = deployment(objs)["spec"]["template"]
    assert pod["spec"]["nodeSelector"] == {"node-role.example.com/system": "true"}
    assert pod["spec"]["tolerations"][0]["key"] == "dedicated"
    assert "nodeAffinity" in pod["spec"]["affinity"] and "podAntiAffinity" not in pod["spec"]["affinity"]
    assert pod["spec"]["priorityClassName"] == "system-cluster-critical"
    assert pod["metadata"]["annotations"]["example.com/owner"] == "ml-platform"
    assert pod["metadata"]["labels"]["team"] == "ml-platform"


def test_resources_values_reach_the_container(render: Render) -> None:
    resources = controller(render(VALUES_DIR / "resources.yaml"))["resources"]
    assert resources == {
        "requests": {"cpu": "200m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }


def test_log_level_and_probe_port_reach_the_container(render: Render) -> None:
    container = controller(render(VALUES_DIR / "logging-and-probe.yaml"))
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert "--verbose" in container["args"]
    assert env["HTTPS_PROXY"] == "http://proxy.example.com:3128"
    assert container["args"][:3] == ["run", "--liveness-port", "8081"]
    assert container["ports"][0]["containerPort"] == 8081
    assert container["livenessProbe"]["failureThreshold"] == 5
    args = container["args"]
    assert args[args.index("--log-format") + 1] == "json"
    readiness = container["readinessProbe"]
    assert readiness["httpGet"] == {"path": "/healthz", "port": "health"}
    assert (readiness["initialDelaySeconds"], readiness["periodSeconds"]) == (2, 4)
    assert (readiness["timeoutSeconds"], readiness["failureThreshold"]) == (3, 2)


def test_rbac_disabled_renders_no_roles(render: Render) -> None:
    objs = render(VALUES_DIR / "rbac-disabled.yaml")
    kinds = {o["kind"] for o in objs}
    assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


def test_name_overrides_apply_to_objects_and_peering(render: Render) -> None:
    objs = render(VALUES_DIR / "names.yaml")
    assert deployment(objs)["metadata"]["name"] == "rag-op"
    (peering,) = by_kind(objs, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "rag-op-peering"
    args = controller(objs)["args"]
    assert args[args.index("--peering") + 1] == "rag-op-peering"


@pytest.mark.parametrize("values", CASES, ids=IDS)
def test_container_args_parse_with_the_controller_cli(
    render: Render, values: Path | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chart and `python -m rag_operator run` agree on every flag (the real CLI parses the
    container's args; only the start of the controllers is replaced, it needs an API server)."""
    from rag_operator import __main__ as cli
    from rag_operator import operator

    objs = render(values)
    container = controller(objs)
    seen: dict = {}
    monkeypatch.setattr(
        operator, "run", lambda namespaces, **options: seen.update(options, namespaces=namespaces)
    )
    assert container["args"][0] == "run"
    assert cli.main(container["args"]) == 0
    assert seen["liveness_port"] == container["ports"][0]["containerPort"]
    peerings = by_kind(objs, "ClusterKopfPeering") + by_kind(objs, "KopfPeering")
    if seen["standalone"]:
        assert not peerings
    else:
        assert {p["metadata"]["name"] for p in peerings} == {seen["peering"]}
    given = yaml.safe_load(values.read_text()) if values else {}
    assert seen["namespaces"] == given.get("watchNamespaces", [])
    assert seen["log_format"] == given.get("logFormat", "text")


def test_metrics_port_reaches_the_container_and_its_service(render: Render) -> None:
    objs = render()
    container = controller(objs)
    args = container["args"]
    assert args[args.index("--metrics-port") + 1] == "9090"
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in container["ports"]
    (service,) = by_kind(objs, "Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pod_labels = deployment(objs)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_metrics_and_health_on_one_port_are_refused(helm_bin: Path) -> None:
    proc = run_helm(helm_bin, "template", RELEASE, str(CHART_DIR), "--set", "metrics.port=8080")
    assert proc.returncode != 0
    assert "metrics.port (8080) must differ from livenessProbe.port" in proc.stderr


def test_metrics_off_renders_no_port_and_no_service(render: Render) -> None:
    objs = render(None, "metrics.port=0")
    assert not by_kind(objs, "Service")
    assert all(port["name"] != "metrics" for port in controller(objs)["ports"])


def test_the_service_monitor_renders_only_where_its_api_is_served(helm_bin: Path) -> None:
    """Without prometheus-operator's CRDs a ServiceMonitor would fail the install ("no matches for
    kind"), so it is rendered only when the cluster serves monitoring.coreos.com/v1."""

    base = [
        "template",
        RELEASE,
        str(CHART_DIR),
        "--namespace",
        NAMESPACE,
        "--values",
        str(VALUES_DIR / "metrics.yaml"),
    ]
    without = run_helm(helm_bin, *base)
    assert without.returncode == 0, without.stderr
    assert "kind: ServiceMonitor" not in without.stdout
    served = run_helm(helm_bin, *base, "--api-versions", "monitoring.coreos.com/v1/ServiceMonitor")
    assert served.returncode == 0, served.stderr
    objs = [o for o in yaml.safe_load_all(served.stdout) if o]
    (monitor,) = by_kind(objs, "ServiceMonitor")
    (service,) = by_kind(objs, "Service")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s"}]
    assert service["spec"]["ports"][0]["port"] == 9191
