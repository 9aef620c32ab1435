"""Every user string that lands in a Kubernetes object is checked with that field's Kubernetes
rule before anything renders; numbers are finite and int32 where Kubernetes stores int32.
The same rules reach the CRD schema (checked against the real API server in
tests/operator/finetunejob/test_on_apiserver.py)."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from rag_operator.common.errors import SpecError
from rag_operator.common.sizing import check_name, no_kb_metadata
from rag_operator.finetunejob.render import rayjob_for
from tests.operator.testlib import load_example


def _with(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(load_example("cpu"))
    node = doc["spec"]
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return doc


def _problems(doc: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        rayjob_for(doc, no_kb_metadata)
    return dict(caught.value.problems)


BAD = [
    ("image", "ghcr.io/org/rag job:1", "spec.image", "image reference"),
    ("image", "GHCR.io/Org/Rag:1", "spec.image", "image reference"),
    ("image", "ghcr.io/org/rag:1\n", "spec.image", "image reference"),
    ("serviceAccountName", "Bad_Name", "spec.serviceAccountName", "DNS-1123 subdomain"),
    ("storage.pvc.claimName", "-data", "spec.storage.pvc.claimName", "DNS-1123 subdomain"),
    ("storage.pvc.mountPath", "/", "spec.storage.pvc.mountPath", "mount path"),
    ("storage.pvc.mountPath", "data", "spec.storage.pvc.mountPath", "mount path"),
    ("storage.pvc.mountPath", "/data:rw", "spec.storage.pvc.mountPath", "mount path"),
    (
        "secrets",
        [{"name": "TOKEN", "secretName": "hf token", "key": "t"}],
        "spec.secrets.0.secretName",
        "DNS-1123",
    ),
    ("secrets", [{"name": "TOKEN", "secretName": "hf", "key": "a/b"}], "spec.secrets.0.key", "Secret key"),
    (
        "secrets",
        [{"name": "1X", "secretName": "hf", "key": "t"}],
        "spec.secrets.0.name",
        "environment variable",
    ),
    ("trainers.gpuResource", "gpu", "spec.trainers.gpuResource", "extended resource"),
    (
        "trainers.nodeSelector",
        {"bad key!": "x"},
        "spec.trainers.nodeSelector",
        "key 'bad key!': 'bad key!' is not a qualified name",
    ),
    ("trainers.nodeSelector", {"pool": "a b"}, "spec.trainers.nodeSelector.pool", "label value"),
    (
        "trainers.tolerations",
        [{"key": "gpu", "operator": "Maybe"}],
        "spec.trainers.tolerations.0.operator",
        "Exists",
    ),
    ("trainers.tolerations", [{"kye": "gpu"}], "spec.trainers.tolerations.0.kye", "Extra inputs"),
    ("trainers.affinity", {"nodeAfinity": {}}, "spec.trainers.affinity", "nodeAffinity"),
    ("trainers.memory", " 3Gi", "spec.trainers.memory", "quantity"),
    ("trainers.memory", "3Gi ", "spec.trainers.memory", "quantity"),
    ("trainers.replicas", 2**31, "spec.trainers.replicas", "less than or equal to 2147483647"),
    ("retrieval.memoryHeadroom", math.inf, "spec.retrieval.memoryHeadroom", "finite"),
    ("retrieval.memoryHeadroom", math.nan, "spec.retrieval.memoryHeadroom", "finite"),
    ("job.training.learning_rate", math.inf, "spec.job.training.learning_rate", "finite"),
    ("job.retrieval.actor_cpus", math.nan, "spec.job.retrieval.actor_cpus", "finite"),
    ("rayJob.rayVersion", "2.60", "spec.rayJob.rayVersion", "Ray version"),
    ("rayJob.ttlSecondsAfterFinished", 2**40, "spec.rayJob.ttlSecondsAfterFinished", "2147483647"),
    ("storage", {"uri": "s3://bucket/a b"}, "spec.storage.uri", "pattern"),
]


@pytest.mark.parametrize(("path", "value", "field", "says"), BAD, ids=[f"{b[0]}={b[1]!r}" for b in BAD])
def test_a_value_kubernetes_would_refuse_is_rejected_naming_the_field(path, value, field, says) -> None:
    problems = _problems(_with(path, value))
    assert field in problems, problems
    assert says in problems[field], problems[field]


def test_a_string_rule_message_shows_a_valid_example() -> None:
    problems = _problems(_with("serviceAccountName", "Bad_Name"))
    assert "e.g. 'hf-token'" in problems["spec.serviceAccountName"]


GOOD = [
    ("image", "registry.local:5000/team/rag-job@sha256:" + "a" * 64),
    ("image", "rag-job"),
    ("trainers.nodeSelector", {"node.kubernetes.io/instance-type": "p4d.24xlarge", "pool": ""}),
    (
        "trainers.tolerations",
        [{"operator": "Exists"}, {"key": "k", "value": "v", "effect": "NoExecute", "tolerationSeconds": 5}],
    ),
    ("trainers.gpuResource", "amd.com/gpu"),
    ("secrets", [{"name": "HF_TOKEN", "secretName": "hf.tokens", "key": "token.v1"}]),
]


@pytest.mark.parametrize(("path", "value"), GOOD, ids=[g[0] for g in GOOD])
def test_valid_kubernetes_values_render(path, value) -> None:
    rayjob, _ = rayjob_for(_with(path, value), no_kb_metadata)
    assert rayjob["kind"] == "RayJob"


@pytest.mark.parametrize("name", ["abc\n", "abc\ndef", "Abc", "1abc", "abc-", "a" * 64])
def test_a_resource_name_that_is_no_dns1035_label_is_refused_even_with_a_trailing_newline(name: str) -> None:
    ((field, message),) = check_name(name, limit=63)
    assert field == "metadata.name" and "DNS-1035" in message


def test_a_dns1035_label_passes_the_name_check() -> None:
    assert check_name("rag-nq-lr3e5", limit=63) == []
