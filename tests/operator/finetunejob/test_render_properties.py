"""Property: whatever a user writes into a RagFinetuneJob (pod overrides included), rendering either
gives manifests that KubeRay's schema and Kubernetes' pod and NetworkPolicy schemas accept, with
every derived name legal and the user's Affinity and dashboard peers arriving unchanged, or a
SpecError naming fields; never a traceback, never a manifest Kubernetes would refuse.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rag_operator.common import names
from rag_operator.common.changes import rejected_changes_of
from rag_operator.common.defaults import fill_defaults
from rag_operator.common.errors import SpecError
from rag_operator.common.sizing import no_kb_metadata
from rag_operator.finetunejob.controller import MUTABLE_PATHS
from rag_operator.finetunejob.plan import SPEC_DEFAULTS
from rag_operator.finetunejob.render import rayjob_for, render_job_network_policy
from rag_operator.finetunejob.spec import parse_spec
from tests.operator.properties import (
    KUBE_FIELDS,
    VALUE,
    assert_names_fields,
    check_against_crd_schema,
    check_network_policy,
    check_placement,
    check_pod_template,
    check_rayjob_name,
    get_path,
    set_path,
)
from tests.operator.testlib import load_example

#: Values Kubernetes would take, so that a good share of the examples renders and is checked.
PLAUSIBLE: dict[str, list[Any]] = {
    "metadata.name": ["a", "rag-" + "x" * 43, "job-2"],
    "spec.image": ["registry.local:5000/a/b:1", "rag@sha256:" + "0" * 64],
    "spec.imagePullPolicy": ["Always", "Never"],
    "spec.serviceAccountName": ["ray-jobs", "a.b"],
    "spec.storage.pvc.claimName": ["data-1"],
    "spec.storage.pvc.mountPath": ["/mnt/x", "/a b"],
    "spec.trainers.replicas": [1, 3, 2**31 - 1],
    "spec.trainers.gpusPerPod": [0],
    "spec.trainers.cpu": ["250m", 2, "1.5"],
    "spec.trainers.memory": ["512Mi", "1Ti"],
    "spec.trainers.nodeSelector": [{"pool": "cpu", "example.com/zone": ""}],
    "spec.trainers.gpuResource": ["amd.com/gpu"],
    "spec.retrieval.replicas": [1, 2],
    "spec.retrieval.shards": [1],
    "spec.retrieval.actorsPerPod": [1, 2],
    "spec.retrieval.memoryHeadroom": [1, 2.5],
    "spec.retrieval.indexSize": ["1Gi", "100Mi"],
    "spec.secrets": [[{"name": "T", "secretName": "s", "key": "k", "pods": ["retrieval", "submitter"]}]],
    "spec.env": [[{"name": "X", "value": "$(not a command)\n"}]],
    "spec.security.runAsUser": [1, 2**31 - 1],
    "spec.rayJob.ttlSecondsAfterFinished": [0, 86400],
    "spec.rayJob.activeDeadlineSeconds": [1, None],
    "spec.job.training.learning_rate": [1e-5, 3.0],
    "spec.job.model.path": ["/data/$(x)/m", "facebook/rag-token-base", "s3://b/m"],
}
#: Fields holding Kubernetes objects: drawn from their own strategies (mostly valid, often not).
KUBE_PATHS = [
    "spec.head.affinity",
    "spec.head.tolerations",
    "spec.trainers.affinity",
    "spec.trainers.tolerations",
    "spec.retrieval.affinity",
    "spec.retrieval.tolerations",
    "spec.security.dashboardPeers",
    "spec.head.pod",
    "spec.trainers.pod",
    "spec.retrieval.pod",
]
MUTATION = st.one_of(
    st.sampled_from(sorted(PLAUSIBLE)).flatmap(
        lambda path: st.tuples(st.just(path), st.one_of(st.sampled_from(PLAUSIBLE[path]), VALUE))
    ),
    st.sampled_from(KUBE_PATHS).flatmap(
        lambda path: st.tuples(st.just(path), KUBE_FIELDS[path.rsplit(".", 1)[-1]])
    ),
)


def _check_rendered(doc: dict[str, Any], rayjob: dict[str, Any], schema: dict[str, Any]) -> None:
    check_against_crd_schema(rayjob, schema)
    name = rayjob["metadata"]["name"]
    check_rayjob_name(name)
    cluster = rayjob["spec"]["rayClusterSpec"]
    groups = {group["groupName"]: group["template"] for group in cluster["workerGroupSpecs"]}
    placements = {
        "head": cluster["headGroupSpec"]["template"],
        "submitter": rayjob["spec"]["submitterPodTemplate"],
        **groups,
    }
    written = {"submitter": "head", "head": "head", "trainer": "trainers", "retrieval": "retrieval"}
    for group, template in placements.items():
        check_pod_template(template)
        check_placement(template, get_path(doc, f"spec.{written[group]}"))
    policy = render_job_network_policy(name, "ns", parse_spec(doc["spec"]))
    check_network_policy(policy, get_path(doc, "spec.security.dashboardPeers"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_any_spec_renders_valid_manifests_or_names_the_fields_to_fix(
    mutations: list[tuple[str, Any]], rayjob_schema: dict[str, Any]
) -> None:
    doc = copy.deepcopy(load_example("cpu"))
    for path, value in mutations:
        set_path(doc, path, value)
    try:
        rayjob, plan = rayjob_for(doc, no_kb_metadata)
    except SpecError as err:
        event("refused naming fields")
        assert_names_fields(err)
        return
    event("rendered")
    _check_rendered(doc, rayjob, rayjob_schema)
    for number in (plan.job_config.training.learning_rate, plan.job_config.retrieval.actor_cpus):
        assert math.isfinite(number)


def _outcome(doc: dict[str, Any]) -> tuple[str, Any]:
    """What the operator makes of a job: the RayJob (but the applied-spec annotation) and its plan,
    or the problems it names."""
    try:
        rayjob, plan = rayjob_for(doc, no_kb_metadata)
    except SpecError as err:
        return "refused", sorted(err.problems)
    rayjob["metadata"]["annotations"].pop(names.ANNOTATION_APPLIED_SPEC)
    return "rendered", (rayjob, plan)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_the_crd_defaults_the_api_server_fills_change_nothing_the_operator_does(
    mutations: list[tuple[str, Any]],
) -> None:
    """A job as written and as the API server stores it (its CRD's defaults filled in) render the
    same RayJob, or are refused naming the same fields, and read as no spec change."""
    doc = copy.deepcopy(load_example("cpu"))
    for path, value in mutations:
        set_path(doc, path, value)
    filled = {**doc, "spec": fill_defaults(doc["spec"], SPEC_DEFAULTS)}
    written, stored = _outcome(doc), _outcome(filled)
    event(written[0])
    assert stored == written
    if written[0] == "rendered":
        child = {"metadata": {"annotations": rayjob_for(doc, no_kb_metadata)[0]["metadata"]["annotations"]}}
        assert rejected_changes_of(child, parse_spec(filled["spec"]), MUTABLE_PATHS, SPEC_DEFAULTS) == []
