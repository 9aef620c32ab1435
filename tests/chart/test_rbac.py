"""The rendered RBAC grants exactly the API calls the controller makes (the list the controller
exports in `rag_operator.permissions`), in both modes, and nothing broader: no `*`."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import VALUES_DIR, Render

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


def of_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


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
