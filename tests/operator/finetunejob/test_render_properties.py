"""Property: whatever a user writes into a RagFinetuneJob, rendering either gives manifests that
KubeRay's schema and Kubernetes' pod and NetworkPolicy schemas accept, with every derived name
legal, or a SpecError naming fields; never a traceback, never a manifest Kubernetes would refuse.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

import jsonschema
import kubernetes_validate
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rag_operator.common.errors import SpecError
from rag_operator.common.k8s_types import DNS1035_LABEL, DNS1123_SUBDOMAIN, LABEL_VALUE
from rag_operator.common.sizing import no_kb_metadata
from rag_operator.finetunejob.render import rayjob_for, render_job_network_policy
from rag_operator.finetunejob.spec import parse_spec
from tests.operator.testlib import load_example

KUBE_VERSION = "1.34"
PATHS = [
    "metadata.name",
    "spec.image",
    "spec.imagePullPolicy",
    "spec.serviceAccountName",
    "spec.storage.pvc.claimName",
    "spec.storage.pvc.mountPath",
    "spec.trainers.replicas",
    "spec.trainers.gpusPerPod",
    "spec.trainers.cpu",
    "spec.trainers.memory",
    "spec.trainers.nodeSelector",
    "spec.trainers.tolerations",
    "spec.trainers.gpuResource",
    "spec.retrieval.replicas",
    "spec.retrieval.shards",
    "spec.retrieval.actorsPerPod",
    "spec.retrieval.memoryHeadroom",
    "spec.retrieval.indexSize",
    "spec.secrets",
    "spec.env",
    "spec.security.runAsUser",
    "spec.security.dashboardPeers",
    "spec.rayJob.ttlSecondsAfterFinished",
    "spec.rayJob.activeDeadlineSeconds",
    "spec.job.training.learning_rate",
    "spec.job.model.path",
]
TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["ok", "a-b", "nvidia.com/gpu", "/data", "3Gi", " 3Gi", "500m", "$(id)", "a\nb", "", "/"]
    ),
)
SCALAR = st.one_of(
    TEXT,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
VALUE = st.one_of(
    SCALAR,
    st.lists(SCALAR, max_size=3),
    st.dictionaries(TEXT, SCALAR, max_size=3),
    st.lists(
        st.dictionaries(st.sampled_from(["name", "secretName", "key", "value", "operator", "effect"]), TEXT),
        max_size=2,
    ),
)


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
    "spec.trainers.tolerations": [
        [{"operator": "Exists"}],
        [{"key": "k", "value": "v", "effect": "NoSchedule"}],
    ],
    "spec.trainers.gpuResource": ["amd.com/gpu"],
    "spec.retrieval.replicas": [1, 2],
    "spec.retrieval.shards": [1],
    "spec.retrieval.actorsPerPod": [1, 2],
    "spec.retrieval.memoryHeadroom": [1, 2.5],
    "spec.retrieval.indexSize": ["1Gi", "100Mi"],
    "spec.secrets": [[{"name": "T", "secretName": "s", "key": "k", "pods": ["retrieval", "submitter"]}]],
    "spec.env": [[{"name": "X", "value": "$(not a command)\n"}]],
    "spec.security.runAsUser": [1, 2**31 - 1],
    "spec.security.dashboardPeers": [[{"namespaceSelector": {"matchLabels": {"team": "ml"}}}]],
    "spec.rayJob.ttlSecondsAfterFinished": [0, 86400],
    "spec.rayJob.activeDeadlineSeconds": [1, None],
    "spec.job.training.learning_rate": [1e-5, 3.0],
    "spec.job.model.path": ["/data/$(x)/m", "facebook/rag-token-base", "s3://b/m"],
}
MUTATION = st.sampled_from(PATHS).flatmap(
    lambda path: st.tuples(st.just(path), st.one_of(st.sampled_from(PLAUSIBLE[path]), VALUE))
)


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[last] = value


def _pod(template: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", **template["metadata"]},
        "spec": template["spec"],
    }


def _check_rendered(doc: dict[str, Any], rayjob: dict[str, Any], schema: dict[str, Any]) -> None:
    jsonschema.Draft4Validator(schema).validate(rayjob)
    name = rayjob["metadata"]["name"]
    assert re.fullmatch(DNS1035_LABEL, name) and len(name) <= 47, name
    cluster = rayjob["spec"]["rayClusterSpec"]
    templates = [cluster["headGroupSpec"]["template"], rayjob["spec"]["submitterPodTemplate"]]
    templates += [group["template"] for group in cluster["workerGroupSpecs"]]
    for template in templates:
        kubernetes_validate.validate(copy.deepcopy(_pod(template)), KUBE_VERSION, strict=True)
        for value in template["metadata"]["labels"].values():
            assert re.fullmatch(LABEL_VALUE, value) and len(value) <= 63, value
    policy = render_job_network_policy(name, "ns", parse_spec(doc["spec"]))
    if policy is not None:
        kubernetes_validate.validate(copy.deepcopy(policy), KUBE_VERSION, strict=True)
        assert re.fullmatch(DNS1123_SUBDOMAIN, policy["metadata"]["name"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_any_spec_renders_valid_manifests_or_names_the_fields_to_fix(
    mutations: list[tuple[str, Any]], rayjob_schema: dict[str, Any]
) -> None:
    doc = copy.deepcopy(load_example("cpu"))
    for path, value in mutations:
        _set(doc, path, value)
    try:
        rayjob, plan = rayjob_for(doc, no_kb_metadata)
    except SpecError as err:
        event("refused naming fields")
        assert err.problems, "a SpecError must name at least one field"
        for field, message in err.problems:
            assert field.split(".")[0] in ("spec", "metadata", "apiVersion", "kind") and message, (
                field,
                message,
            )
        return
    event("rendered")
    _check_rendered(doc, rayjob, rayjob_schema)
    for number in (plan.job_config.training.learning_rate, plan.job_config.retrieval.actor_cpus):
        assert math.isfinite(number)
