"""The rendered RBAC grants exactly the API calls the controller makes (the list the controller
exports in `rag_operator.permissions`), in both modes, and nothing broader: no `*`. Apart from
the controller's roles, two ClusterRoles for users extend Kubernetes' default `edit`/`admin` and
`view` roles with the chart's custom resources (aggregation labels)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from .conftest import CHART_DIR, VALUES_DIR, Render

Triple = tuple[str, str, str]  # (apiGroup, resource, verb)

#: Resources only a ClusterRole can grant (a Kubernetes fact, not a controller choice).
CLUSTER_SCOPED = {
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("", "namespaces"),
    ("kopf.dev", "clusterkopfpeerings"),
}
#: Verbs that hand out more power than any controller of ours needs.
ESCALATING_VERBS = {"escalate", "bind", "impersonate", "*"}


def triples(rules: list[dict[str, Any]]) -> set[Triple]:
    """Flatten RBAC rules into (group, resource, verb) triples, the unit a grant is checked in."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def needed(*, peering: bool, namespaced: bool) -> set[Triple]:
    """The calls the controller makes in one mode, from its own list
    (operator/rag_operator/permissions.py): kopf peers through a ClusterKopfPeering when it
    watches every namespace and a KopfPeering per namespace otherwise, and scans namespaces
    only when given --namespace."""
    from rag_operator import permissions

    rules = permissions.rules(clusterwide=not namespaced, peering=peering)
    assert rules, "rag_operator.permissions.rules() is empty"
    return triples(rules)


#: Label prefix by which kube-controller-manager folds a ClusterRole into a default user role.
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"
#: Verbs of the default roles' read-only half.
READ_VERBS = {"get", "list", "watch"}


def of_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Objects of one kind; for ClusterRoles only the controller's (not the users' aggregated ones)."""
    found = [o for o in objs if o["kind"] == kind]
    if kind == "ClusterRole":
        found = [o for o in found if not aggregated_to(o)]
    return found


def aggregated_to(role: dict[str, Any]) -> set[str]:
    """The default roles (edit, admin, view) a ClusterRole's labels aggregate it into."""
    labels = role["metadata"].get("labels") or {}
    return {
        key.removeprefix(AGGREGATE_TO)
        for key, value in labels.items()
        if key.startswith(AGGREGATE_TO) and value == "true"
    }


def user_roles(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The aggregated ClusterRoles by name."""
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == "ClusterRole" and aggregated_to(o)}


def chart_custom_resources() -> set[tuple[str, str]]:
    """(group, plural) of every CRD in the chart's own crds/ (not the subchart's kopf CRDs)."""
    crds = [yaml.safe_load(path.read_text()) for path in sorted((CHART_DIR / "crds").glob("*.yaml"))]
    return {(crd["spec"]["group"], crd["spec"]["names"]["plural"]) for crd in crds}


def assert_exact(granted: set[Triple], want: set[Triple], where: str) -> None:
    assert want - granted == set(), f"{where} misses calls the controller makes: {sorted(want - granted)}"
    assert granted - want == set(), f"{where} grants more than the controller uses: {sorted(granted - want)}"


@pytest.mark.parametrize(("values", "peering"), [(None, True), ("single-replica.yaml", False)])
def test_cluster_role_grants_exactly_the_controller_calls(
    render: Render, values: str | None, peering: bool
) -> None:
    objs = render(VALUES_DIR / values if values else None)
    (role,) = of_kind(objs, "ClusterRole")
    assert not of_kind(objs, "Role")
    assert_exact(triples(role["rules"]), needed(peering=peering, namespaced=False), "the ClusterRole")


@pytest.mark.parametrize(
    ("values", "peering"), [("watch-namespaces.yaml", True), ("watch-namespaces-standalone.yaml", False)]
)
def test_roles_grant_exactly_the_namespaced_calls_in_each_namespace(
    render: Render, values: str, peering: bool
) -> None:
    objs = render(VALUES_DIR / values)
    want = needed(peering=peering, namespaced=True)
    roles = of_kind(objs, "Role")
    assert roles, "namespaced mode must render a Role per watched namespace"
    for role in roles:
        namespaced_want = {t for t in want if (t[0], t[1]) not in CLUSTER_SCOPED}
        assert_exact(triples(role["rules"]), namespaced_want, f"the Role in {role['metadata']['namespace']}")
    (cluster_role,) = of_kind(objs, "ClusterRole")
    cluster_want = {t for t in want if (t[0], t[1]) in CLUSTER_SCOPED}
    assert_exact(triples(cluster_role["rules"]), cluster_want, "the namespaced mode's ClusterRole")


@pytest.mark.parametrize("values", [None, "watch-namespaces.yaml", "single-replica.yaml"])
def test_no_rule_uses_a_wildcard_or_an_escalating_verb(render: Render, values: str | None) -> None:
    objs = render(VALUES_DIR / values if values else None)
    for obj in of_kind(objs, "ClusterRole") + of_kind(objs, "Role"):
        for rule in obj["rules"]:
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(key, []), f"{obj['kind']} {obj['metadata']['name']}: '*' in {key}"
            assert not set(rule["verbs"]) & ESCALATING_VERBS, rule
            assert "nonResourceURLs" not in rule, rule
            assert "secrets" not in rule["resources"], "the controller never reads Secrets"


def test_controller_rules_use_no_wildcard() -> None:
    every_mode = needed(peering=True, namespaced=True) | needed(peering=True, namespaced=False)
    for group, resource, verb in every_mode:
        assert "*" not in (group, resource, verb), (group, resource, verb)


def test_triples_flattening_detects_a_broader_grant() -> None:
    """The comparison really bites: one extra verb shows up as a difference."""
    base = [{"apiGroups": ["ray.io"], "resources": ["rayjobs"], "verbs": ["get", "create"]}]
    broader = [{"apiGroups": ["ray.io"], "resources": ["rayjobs"], "verbs": ["get", "create", "update"]}]
    assert triples(broader) - triples(base) == {("ray.io", "rayjobs", "update")}


@pytest.mark.parametrize("values", [None, "watch-namespaces.yaml", "single-replica.yaml"])
def test_aggregated_roles_give_default_edit_and_view_the_custom_resources(
    render: Render, values: str | None
) -> None:
    """`<fullname>-edit` joins `edit` and `admin` with write access to every custom resource of the
    chart and read access to its status; `<fullname>-view` joins `view`, read-only. The resources
    come from the chart's crds/, so a new CRD without a grant here fails."""
    objs = render(VALUES_DIR / values if values else None)
    (deployment,) = [o for o in objs if o["kind"] == "Deployment"]
    fullname = deployment["metadata"]["name"]
    roles = user_roles(objs)
    assert set(roles) == {f"{fullname}-edit", f"{fullname}-view"}
    edit, view = roles[f"{fullname}-edit"], roles[f"{fullname}-view"]
    assert aggregated_to(edit) == {"edit", "admin"}
    assert aggregated_to(view) == {"view"}
    resources = chart_custom_resources()
    assert {plural for _, plural in resources} == {"ragfinetunejobs", "ragretrievalclusters"}
    write = {"create", "update", "patch", "delete"}
    status = {(group, f"{plural}/status", "get") for group, plural in resources}
    assert (
        triples(edit["rules"])
        == {(group, plural, verb) for group, plural in resources for verb in write | READ_VERBS} | status
    )
    assert (
        triples(view["rules"])
        == {(group, plural, verb) for group, plural in resources for verb in READ_VERBS} | status
    )


def test_aggregated_roles_can_be_turned_off(render: Render) -> None:
    assert not user_roles(render(None, "rbac.aggregateToDefaultRoles=false"))
    assert of_kind(render(None, "rbac.aggregateToDefaultRoles=false"), "ClusterRole"), (
        "turning the users' roles off must keep the controller's"
    )
    assert not user_roles(render(VALUES_DIR / "rbac-disabled.yaml"))
