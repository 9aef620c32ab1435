"""The Kubernetes objects inside our specs (a pod's Affinity, NetworkPolicy peers, tolerations) are
checked with the API server's rules before anything renders: a bad one is refused naming its
field path with a valid example, a good one reaches the pods and the NetworkPolicy unchanged.
(The real API server judges the same values in finetunejob/test_on_apiserver.py.)"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel

from rag_operator.common import k8s_objects
from rag_operator.common.errors import SpecError
from rag_operator.common.k8s_objects import KubeObject
from rag_operator.common.models import Toleration
from rag_operator.common.sizing import no_kb_metadata
from rag_operator.finetunejob import render
from rag_operator.retrievalcluster.render import cluster_for, render_cluster_network_policy
from rag_operator.retrievalcluster.spec import parse_rrc_spec
from tests.operator.testlib import RRC_EXAMPLE, load_example

K8S_SCHEMAS = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / "v1.34.0-local-strict"
#: Each model and the Kubernetes v1 type it stands for.
KUBERNETES_TYPE = {
    k8s_objects.Affinity: "affinity-v1",
    k8s_objects.NodeAffinity: "nodeaffinity-v1",
    k8s_objects.NodeSelector: "nodeselector-v1",
    k8s_objects.NodeSelectorTerm: "nodeselectorterm-v1",
    k8s_objects.NodeSelectorRequirement: "nodeselectorrequirement-v1",
    k8s_objects.NodeFieldSelectorRequirement: "nodeselectorrequirement-v1",
    k8s_objects.PreferredSchedulingTerm: "preferredschedulingterm-v1",
    k8s_objects.PodAffinity: "podaffinity-v1",
    k8s_objects.PodAntiAffinity: "podantiaffinity-v1",
    k8s_objects.PodAffinityTerm: "podaffinityterm-v1",
    k8s_objects.WeightedPodAffinityTerm: "weightedpodaffinityterm-v1",
    k8s_objects.LabelSelector: "labelselector-meta-v1",
    k8s_objects.LabelSelectorRequirement: "labelselectorrequirement-meta-v1",
    k8s_objects.NetworkPolicyPeer: "networkpolicypeer-networking-v1",
    k8s_objects.IPBlock: "ipblock-networking-v1",
    Toleration: "toleration-v1",
}
#: Where our model requires a field Kubernetes leaves optional, and why.
STRICTER_REQUIRED = {
    # matchFields allows only In/NotIn, each with exactly one value
    k8s_objects.NodeFieldSelectorRequirement: {"values"},
}


def _aliases(model: type[BaseModel], required: bool = False) -> set[str]:
    return {
        field.alias or name
        for name, field in model.model_fields.items()
        if not required or field.is_required()
    }


@pytest.mark.parametrize("model", list(KUBERNETES_TYPE), ids=lambda m: m.__name__)
def test_each_model_has_exactly_the_fields_of_its_kubernetes_type(model: type[BaseModel]) -> None:
    """Nothing Kubernetes accepts is refused as unknown, nothing unknown to Kubernetes is accepted."""
    schema = json.loads((K8S_SCHEMAS / f"{KUBERNETES_TYPE[model]}.json").read_text())
    assert _aliases(model) == set(schema["properties"])
    assert _aliases(model, required=True) == set(schema.get("required", [])) | STRICTER_REQUIRED.get(
        model, set()
    )


def test_every_kubernetes_object_is_modelled() -> None:
    objects = {
        cls for cls in vars(k8s_objects).values() if isinstance(cls, type) and issubclass(cls, KubeObject)
    }
    assert objects - {KubeObject} <= set(KUBERNETES_TYPE)


@pytest.mark.parametrize("model", sorted(set(KUBERNETES_TYPE) - {Toleration}, key=lambda m: m.__name__))
def test_the_example_each_message_shows_is_itself_valid(model: type[KubeObject]) -> None:
    model.model_validate(yaml.safe_load(model.example))


# --- through a whole RagFinetuneJob: the path named, an example shown --------------------------------

AFFINITY = "spec.trainers.affinity"
NODE_REQUIRED = f"{AFFINITY}.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
TERM0 = f"{NODE_REQUIRED}.nodeSelectorTerms.0"
POD_TERM0 = f"{AFFINITY}.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution.0"
PEER0 = "spec.security.dashboardPeers.0"


def node_required(
    *requirements: dict[str, Any], fields: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    term: dict[str, Any] = {"matchExpressions": list(requirements)}
    if fields is not None:
        term["matchFields"] = fields
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


def pod_anti(**term: Any) -> dict[str, Any]:
    return {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"topologyKey": "kubernetes.io/hostname", **term}
            ]
        }
    }


def peers(*peer: Any) -> dict[str, Any]:
    return {"dashboardPeers": list(peer)}


BAD: list[tuple[str, str, Any, str, str]] = [
    # (what, spec key, value, field named, message says)
    ("affinity typo", "affinity", {"nodeAfinity": {}}, AFFINITY, "has only nodeAffinity, podAffinity"),
    ("affinity not an object", "affinity", ["nodeAffinity"], AFFINITY, "must be a Kubernetes Affinity"),
    (
        "no node selector terms",
        "affinity",
        {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}},
        f"{NODE_REQUIRED}.nodeSelectorTerms",
        "at least 1 item",
    ),
    (
        "node label key",
        "affinity",
        node_required({"key": "pool name", "operator": "Exists"}),
        f"{TERM0}.matchExpressions.0.key",
        "not a qualified name",
    ),
    (
        "node operator",
        "affinity",
        node_required({"key": "pool", "operator": "Equals", "values": ["a"]}),
        f"{TERM0}.matchExpressions.0.operator",
        "'In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt' or 'Lt'",
    ),
    (
        "In without values",
        "affinity",
        node_required({"key": "pool", "operator": "In"}),
        f"{TERM0}.matchExpressions.0.values",
        "at least one value with operator In",
    ),
    (
        "Exists with values",
        "affinity",
        node_required({"key": "pool", "operator": "Exists", "values": ["gpu"]}),
        f"{TERM0}.matchExpressions.0.values",
        "must be empty with operator Exists",
    ),
    (
        "Gt with a word",
        "affinity",
        node_required({"key": "example.com/gpu-memory", "operator": "Gt", "values": ["forty"]}),
        f"{TERM0}.matchExpressions.0.values",
        "is not an integer",
    ),
    (
        "Lt with two values",
        "affinity",
        node_required({"key": "example.com/gpu-memory", "operator": "Lt", "values": ["1", "2"]}),
        f"{TERM0}.matchExpressions.0.values",
        "exactly one integer",
    ),
    (
        "node label value",
        "affinity",
        node_required({"key": "pool", "operator": "In", "values": ["gpu a100"]}),
        f"{TERM0}.matchExpressions.0.values.0",
        "not a label value",
    ),
    (
        "matchFields key",
        "affinity",
        node_required(fields=[{"key": "metadata.labels", "operator": "In", "values": ["a"]}]),
        f"{TERM0}.matchFields.0.key",
        "'metadata.name'",
    ),
    (
        "matchFields two nodes",
        "affinity",
        node_required(fields=[{"key": "metadata.name", "operator": "In", "values": ["a", "b"]}]),
        f"{TERM0}.matchFields.0.values",
        "at most 1 item",
    ),
    (
        "weight out of range",
        "affinity",
        {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 101, "preference": {}}]}},
        f"{AFFINITY}.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution.0.weight",
        "less than or equal to 100",
    ),
    (
        "weight as text",
        "affinity",
        {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": "5", "preference": {}}]}},
        f"{AFFINITY}.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution.0.weight",
        "valid integer",
    ),
    ("no topology key", "affinity", {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{}]}},
     f"{AFFINITY}.podAffinity.requiredDuringSchedulingIgnoredDuringExecution.0.topologyKey", "Field required"),
    (
        "selector label key",
        "affinity",
        pod_anti(labelSelector={"matchLabels": {"app name": "rag"}}),
        f"{POD_TERM0}.labelSelector.matchLabels",
        "key 'app name'",
    ),
    (
        "selector label value",
        "affinity",
        pod_anti(labelSelector={"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["-rag"]}]}),
        f"{POD_TERM0}.labelSelector.matchExpressions.0.values.0",
        "not a label value",
    ),
    (
        "selector operator Gt",
        "affinity",
        pod_anti(labelSelector={"matchExpressions": [{"key": "app", "operator": "Gt", "values": ["1"]}]}),
        f"{POD_TERM0}.labelSelector.matchExpressions.0.operator",
        "'In', 'NotIn', 'Exists' or 'DoesNotExist'",
    ),
    ("namespace", "affinity", pod_anti(namespaces=["Team_A"]), f"{POD_TERM0}.namespaces.0", "DNS-1123 label"),
    (
        "matchLabelKeys without labelSelector",
        "affinity",
        pod_anti(matchLabelKeys=["rag.finetune.dev/job"]),
        f"{POD_TERM0}.matchLabelKeys",
        "without labelSelector",
    ),
    (
        "matchLabelKeys in the selector too",
        "affinity",
        pod_anti(labelSelector={"matchLabels": {"app": "rag"}}, matchLabelKeys=["app"]),
        f"{POD_TERM0}.matchLabelKeys",
        "also in labelSelector",
    ),
    (
        "matchLabelKeys and mismatchLabelKeys overlap",
        "affinity",
        pod_anti(labelSelector={}, matchLabelKeys=["team"], mismatchLabelKeys=["team"]),
        f"{POD_TERM0}.mismatchLabelKeys",
        "also in matchLabelKeys",
    ),
    ("toleration without key", "tolerations", [{"value": "gpu"}], "spec.trainers.tolerations.0", "operator must be Exists"),
    ("toleration {}", "tolerations", [{}], "spec.trainers.tolerations.0", "operator must be Exists"),
    ("empty peer", "security", peers({}), PEER0, "must set podSelector, namespaceSelector or ipBlock"),
    ("peer typo", "security", peers({"namespaceSelectors": {}}), PEER0, "has only podSelector, namespaceSelector, ipBlock"),
    (
        "ipBlock with a selector",
        "security",
        peers({"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}),
        PEER0,
        "cannot be combined",
    ),
    ("no cidr", "security", peers({"ipBlock": {}}), f"{PEER0}.ipBlock.cidr", "Field required"),
    ("cidr without prefix", "security", peers({"ipBlock": {"cidr": "10.0.0.1"}}), f"{PEER0}.ipBlock.cidr", "is not a CIDR"),
    ("cidr netmask", "security", peers({"ipBlock": {"cidr": "10.0.0.0/255.0.0.0"}}), f"{PEER0}.ipBlock.cidr", "is not a CIDR"),
    ("cidr prefix", "security", peers({"ipBlock": {"cidr": "10.0.0.0/33"}}), f"{PEER0}.ipBlock.cidr", "is not a CIDR"),
    ("cidr address", "security", peers({"ipBlock": {"cidr": "10.0.0.256/32"}}), f"{PEER0}.ipBlock.cidr", "is not a CIDR"),
    (
        "cidr host bits",
        "security",
        peers({"ipBlock": {"cidr": "10.1.2.3/8"}}),
        f"{PEER0}.ipBlock.cidr",
        "write '10.0.0.0/8' for the network or '10.1.2.3/32' for the one address",
    ),
    (
        "except outside cidr",
        "security",
        peers({"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24"]}}),
        f"{PEER0}.ipBlock.except",
        "strict subset of cidr",
    ),
    (
        "except equal to cidr",
        "security",
        peers({"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.0.0/16"]}}),
        f"{PEER0}.ipBlock.except",
        "strict subset of cidr",
    ),
    (
        "except of the other family",
        "security",
        peers({"ipBlock": {"cidr": "0.0.0.0/0", "except": ["fd00::/8"]}}),
        f"{PEER0}.ipBlock.except",
        "strict subset of cidr",
    ),
    (
        "peer selector key",
        "security",
        peers({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name/x": "a"}}}),
        f"{PEER0}.namespaceSelector.matchLabels",
        "not a qualified name",
    ),
    ("too many peers", "security", peers(*[{"podSelector": {}}] * 17), "spec.security.dashboardPeers", "at most 16"),
]  # fmt: skip


def _job_with(key: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(load_example("cpu"))
    if key == "security":
        doc["spec"]["security"] = value
    else:
        doc["spec"]["trainers"][key] = value
    return doc


@pytest.mark.parametrize(("what", "key", "value", "field", "says"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_kubernetes_object_is_refused_naming_the_field_with_a_valid_example(
    what: str, key: str, value: Any, field: str, says: str
) -> None:
    with pytest.raises(SpecError) as caught:
        render.rayjob_for(_job_with(key, value), no_kb_metadata)
    problems = dict(caught.value.problems)
    assert field in problems, problems
    assert says in problems[field], problems[field]
    assert "e.g." in problems[field], problems[field]


GOOD_AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {
                    "matchExpressions": [
                        {
                            "key": "node.kubernetes.io/instance-type",
                            "operator": "In",
                            "values": ["p4d.24xlarge"],
                        },
                        {"key": "example.com/gpu-memory-gb", "operator": "Gt", "values": ["40"]},
                        {"key": "spot", "operator": "DoesNotExist"},
                    ]
                },
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["gpu-node-1"]}]},
            ]
        },
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 1,
                "preference": {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["b"]}]},
            }
        ],
    },
    "podAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 100,
                "podAffinityTerm": {
                    "labelSelector": {"matchLabels": {"rag.finetune.dev/group": "retrieval"}},
                    "namespaceSelector": {},
                    "topologyKey": "topology.kubernetes.io/zone",
                },
            }
        ]
    },
    "podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {
                "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["rag"]}]},
                "namespaces": ["ml", "default"],
                "matchLabelKeys": ["rag.finetune.dev/job"],
                "mismatchLabelKeys": ["team"],
                "topologyKey": "kubernetes.io/hostname",
            }
        ]
    },
}
GOOD_PEERS = [
    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
    {"podSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}, "namespaceSelector": {}},
    {"ipBlock": {"cidr": "10.20.0.0/16", "except": ["10.20.5.0/24", "10.20.6.7/32"]}},
    {"ipBlock": {"cidr": "fd00::/8"}},
]  # fmt: skip


def test_a_valid_affinity_reaches_the_pods_unchanged() -> None:
    doc = copy.deepcopy(load_example("cpu"))
    for group in ("head", "trainers", "retrieval"):
        doc["spec"][group]["affinity"] = GOOD_AFFINITY
    rayjob, _ = render.rayjob_for(doc, no_kb_metadata)
    cluster = rayjob["spec"]["rayClusterSpec"]
    templates = [cluster["headGroupSpec"]["template"], rayjob["spec"]["submitterPodTemplate"]]
    templates += [group["template"] for group in cluster["workerGroupSpecs"]]
    assert len(templates) == 4
    for template in templates:
        assert template["spec"]["affinity"] == GOOD_AFFINITY


def test_valid_dashboard_peers_reach_both_network_policies_unchanged() -> None:
    doc = copy.deepcopy(load_example("cpu"))
    doc["spec"]["security"] = {"dashboardPeers": GOOD_PEERS}
    policy = render.render_job_network_policy("j", "ns", render.parse_spec(doc["spec"]))
    assert policy["spec"]["ingress"][3]["from"] == GOOD_PEERS
    rrc = yaml.safe_load(RRC_EXAMPLE.read_text())
    rrc["spec"]["security"] = {"dashboardPeers": GOOD_PEERS}
    cluster_for(rrc, no_kb_metadata)  # renders
    policy = render_cluster_network_policy("wiki-dpr", "ns", parse_rrc_spec(rrc["spec"]))
    assert policy["spec"]["ingress"][3]["from"] == GOOD_PEERS


def test_a_retrieval_cluster_names_the_field_of_a_bad_affinity_too() -> None:
    rrc = yaml.safe_load(RRC_EXAMPLE.read_text())
    rrc["spec"]["retrieval"]["affinity"] = node_required({"key": "pool", "operator": "NotIn"})
    with pytest.raises(SpecError) as caught:
        cluster_for(rrc, no_kb_metadata)
    field = TERM0.replace(AFFINITY, "spec.retrieval.affinity") + ".matchExpressions.0.values"
    assert field in caught.value.fields
