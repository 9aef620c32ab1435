"""Property: whatever pod override a user writes on a group, rendering either refuses it naming a
field inside that override, or gives pod templates that Kubernetes' and KubeRay's schemas accept
and that still carry everything the operator set (its labels, the storage volume and mount, the
resource limits, the image and ports); the other groups do not change at all."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rag_operator.common.errors import SpecError
from rag_operator.common.names import STORAGE_VOLUME
from rag_operator.common.sizing import no_kb_metadata
from rag_operator.finetunejob.render import rayjob_for
from tests.operator.properties import (
    KUBE_FIELDS,
    VALID_POD_OVERRIDE,
    check_against_crd_schema,
    check_pod_template,
)
from tests.operator.testlib import load_example, pod_templates

#: The spec field of each group and the templates it shapes (the submitter follows the head).
GROUPS = {"head": ("head", "submitter"), "trainers": ("trainer",), "retrieval": ("retrieval",)}
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BASELINE = pod_templates(rayjob_for(load_example("cpu"), no_kb_metadata)[0])


def _render(group: str, override: Any) -> dict[str, Any]:
    doc = copy.deepcopy(load_example("cpu"))
    doc["spec"][group]["pod"] = override
    return rayjob_for(doc, no_kb_metadata)[0]


def _keeps_what_the_operator_set(template: dict[str, Any], baseline: dict[str, Any]) -> None:
    labels = template["metadata"]["labels"]
    assert baseline["metadata"]["labels"].items() <= labels.items(), labels
    container, before = template["spec"]["containers"][0], baseline["spec"]["containers"][0]
    for key in ("name", "image", "resources", "ports"):
        assert container.get(key) == before.get(key), key
    if "volumes" in baseline["spec"]:
        assert template["spec"]["volumes"][0] == baseline["spec"]["volumes"][0]
        assert container["volumeMounts"][0] == before["volumeMounts"][0]
        assert [v["name"] for v in template["spec"]["volumes"]].count(STORAGE_VOLUME) == 1
    assert (
        template["spec"]["automountServiceAccountToken"] == baseline["spec"]["automountServiceAccountToken"]
    )


@SETTINGS
@given(group=st.sampled_from(sorted(GROUPS)), override=KUBE_FIELDS["pod"])
def test_any_override_renders_valid_pods_that_keep_the_operators_fields_or_names_the_field(
    group: str, override: Any, rayjob_schema: dict[str, Any]
) -> None:
    try:
        rayjob = _render(group, override)
    except SpecError as err:
        event("refused")
        assert all(field.startswith(f"spec.{group}.pod") for field in err.fields), err.problems
        return
    event("rendered")
    check_against_crd_schema(rayjob, rayjob_schema)
    for name, template in pod_templates(rayjob).items():
        check_pod_template(template)
        if name in GROUPS[group]:
            _keeps_what_the_operator_set(template, BASELINE[name])
        else:
            assert template == BASELINE[name], name


@SETTINGS
@given(group=st.sampled_from(sorted(GROUPS)), override=VALID_POD_OVERRIDE)
def test_every_valid_override_renders(group: str, override: dict[str, Any]) -> None:
    """The models refuse nothing Kubernetes takes but what they refuse on purpose (none of that is
    drawn here): a valid override always renders, with its labels and env on the pod."""
    templates = pod_templates(_render(group, override))
    template = templates[GROUPS[group][0]]
    assert override.get("labels", {}).items() <= template["metadata"]["labels"].items()
    env = {var["name"] for var in template["spec"]["containers"][0].get("env", [])}
    assert {var["name"] for var in override.get("env", [])} <= env
