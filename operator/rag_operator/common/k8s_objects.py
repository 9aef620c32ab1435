"""Kubernetes objects a user writes inside our specs and the operator copies into pods and
NetworkPolicies: a pod's Affinity and a NetworkPolicy's peers, with their label selectors,
node selector terms and IP blocks.

Each is a model with exactly the fields of its Kubernetes v1 type and the API server's own
rules (k8s.io/kubernetes v1.34 pkg/apis/core/validation `validateAffinity`, apimachinery
`ValidateLabelSelector`, pkg/apis/networking/validation `ValidateNetworkPolicyPeer`), so a bad
value is refused naming its field (`spec.trainers.affinity.nodeAffinity...values.0`) with a
valid example before KubeRay would fail to create the pod. A few rules are stricter than the API
server, each for a value that cannot do what was meant: a CIDR with bits set past its prefix
length (Kubernetes warns it is ambiguous) or a leading zero in an octet (it warns that will be
invalid in a future release), a `Gt`/`Lt`
node requirement whose value is not an integer (the scheduler cannot compare it), label values
in preferred node terms (no node label can match an invalid one), a key in both matchLabelKeys
and labelSelector (forbidden by the API's documentation, checked by the server only after it
merged the pod's labels), and null where an object is expected (our CRD refuses it too).
tests/operator/finetunejob/test_on_apiserver.py shows the server takes each of these.

Lists are bounded (`maxItems`), so the CRD's CEL rule on every `matchLabels` map stays inside
the API server's cost budget; the bounds are far above what a placement needs.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from .k8s_types import INT64_MAX, DnsLabel, DnsSubdomain, LabelValue, QualifiedName

#: Bounds on the lists and maps inside these objects (the CRD needs them for its CEL cost estimate).
MAX_TERMS = 16
MAX_REQUIREMENTS = 32
MAX_VALUES = 64
MAX_LABELS = 64
MAX_PEERS = 16


class K8sModel(BaseModel):
    """camelCase keys, unknown keys rejected (a typo must not be silently dropped), finite numbers."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, allow_inf_nan=False
    )

    @model_validator(mode="before")
    @classmethod
    def _nulls_as_omitted(cls, value: Any) -> Any:
        # The API server prunes a null field of a custom resource (our CRDs mark none nullable)
        # before it applies defaults; `render` on a file must read `operator: null` the same way.
        if isinstance(value, dict) and any(item is None for item in value.values()):
            return {key: item for key, item in value.items() if item is not None}
        return value


class KubeObject(K8sModel):
    """A Kubernetes API type: its camelCase field names only, and a message with an example."""

    #: What the object is called in messages, and a valid one in YAML flow style.
    kube_type: ClassVar[str]
    example: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _an_object_with_known_keys(cls, value: Any) -> Any:
        if isinstance(value, BaseModel):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"must be a Kubernetes {cls.kube_type} object, e.g. {cls.example}")
        known = [field.alias or name for name, field in cls.model_fields.items()]
        unknown = sorted(str(key) for key in value if key not in known)
        if unknown:
            raise ValueError(
                f"unknown keys {unknown}: a Kubernetes {cls.kube_type} has only {', '.join(known)}, "
                f"e.g. {cls.example}"
            )
        return value

    def to_kube(self) -> dict[str, Any]:
        """The object as the Kubernetes API takes it (camelCase, unset fields left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- label selectors (metav1.LabelSelector) -------------------------------------------------------


class LabelSelectorRequirement(KubeObject):
    """One `matchExpressions` entry of a label selector."""

    kube_type = "LabelSelectorRequirement"
    example = "{key: team, operator: In, values: [ml]}"

    key: QualifiedName = Field(description="The label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[LabelValue] | None = Field(
        default=None,
        max_length=MAX_VALUES,
        validate_default=True,
        description="Label values: at least one with In/NotIn, none with Exists/DoesNotExist.",
    )

    @field_validator("values")
    @classmethod
    def _values_fit_the_operator(cls, values: list[str] | None, info: ValidationInfo) -> list[str] | None:
        return _values_for(info.data.get("operator"), values, cls.example)


def _values_for(operator: str | None, values: list[str] | None, example: str) -> list[str] | None:
    """The API server's rule on `values` for a selector operator (None: the operator was invalid)."""
    if operator in ("In", "NotIn") and not values:
        raise ValueError(f"must list at least one value with operator {operator}, e.g. {example}")
    if operator in ("Exists", "DoesNotExist") and values:
        raise ValueError(f"must be empty with operator {operator}, e.g. {{key: team, operator: {operator}}}")
    if operator in ("Gt", "Lt"):
        if values is None or len(values) != 1:
            raise ValueError(
                f"must be exactly one integer with operator {operator}, e.g. "
                f"{{key: example.com/gpu-memory-gb, operator: {operator}, values: ['40']}}"
            )
        if not re.fullmatch(r"[0-9]+", values[0]) or int(values[0]) > INT64_MAX:
            raise ValueError(
                f"{values[0]!r} is not an integer: operator {operator} compares the node label as one, "
                "e.g. values: ['40']"
            )
    return values


class LabelSelector(KubeObject):
    """A label selector: every `matchLabels` pair and every `matchExpressions` entry must hold."""

    kube_type = "LabelSelector"
    example = "{matchLabels: {team: ml}}"

    match_labels: dict[QualifiedName, LabelValue] | None = Field(
        default=None, max_length=MAX_LABELS, description="Label key and value pairs."
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None, max_length=MAX_REQUIREMENTS, description="Label requirements."
    )

    def keys(self) -> set[str]:
        return set(self.match_labels or {}) | {req.key for req in self.match_expressions or []}


# --- node affinity (v1.NodeAffinity) --------------------------------------------------------------


class NodeSelectorRequirement(KubeObject):
    """One `matchExpressions` entry of a node selector term: a node label requirement."""

    kube_type = "NodeSelectorRequirement"
    example = "{key: pool, operator: In, values: [gpu]}"

    key: QualifiedName = Field(description="The node label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    values: list[LabelValue] | None = Field(
        default=None,
        max_length=MAX_VALUES,
        validate_default=True,
        description="At least one with In/NotIn, none with Exists/DoesNotExist, one integer with Gt/Lt.",
    )

    @field_validator("values")
    @classmethod
    def _values_fit_the_operator(cls, values: list[str] | None, info: ValidationInfo) -> list[str] | None:
        return _values_for(info.data.get("operator"), values, cls.example)


class NodeFieldSelectorRequirement(KubeObject):
    """One `matchFields` entry: the node's name (the only field Kubernetes selects nodes by)."""

    kube_type = "NodeSelectorRequirement (matchFields)"
    example = "{key: metadata.name, operator: In, values: [node-1]}"

    key: Literal["metadata.name"]
    operator: Literal["In", "NotIn"]
    values: list[DnsSubdomain] = Field(min_length=1, max_length=1, description="Exactly one node name.")


class NodeSelectorTerm(KubeObject):
    """Node requirements that must all hold (terms of a node selector are ORed)."""

    kube_type = "NodeSelectorTerm"
    example = "{matchExpressions: [{key: pool, operator: In, values: [gpu]}]}"

    match_expressions: list[NodeSelectorRequirement] | None = Field(
        default=None, max_length=MAX_REQUIREMENTS, description="Requirements on node labels."
    )
    match_fields: list[NodeFieldSelectorRequirement] | None = Field(
        default=None, max_length=MAX_REQUIREMENTS, description="Requirements on node fields."
    )


class NodeSelector(KubeObject):
    """At least one node selector term; a node that matches any term qualifies."""

    kube_type = "NodeSelector"
    example = "{nodeSelectorTerms: [{matchExpressions: [{key: pool, operator: In, values: [gpu]}]}]}"

    node_selector_terms: list[NodeSelectorTerm] = Field(
        min_length=1, max_length=MAX_TERMS, description="Terms, ORed."
    )


#: strict: a string or a boolean is refused, as the API server refuses it for an int32.
Weight = Annotated[
    int, Field(strict=True, ge=1, le=100, description="1-100, added to a node's score when matched.")
]


class PreferredSchedulingTerm(KubeObject):
    """A node selector term with a weight."""

    kube_type = "PreferredSchedulingTerm"
    example = "{weight: 50, preference: {matchExpressions: [{key: pool, operator: In, values: [gpu]}]}}"

    weight: Weight
    preference: NodeSelectorTerm

    @model_validator(mode="before")
    @classmethod
    def _a_preference(cls, value: Any) -> Any:
        # The API server takes a weight alone (an empty term, which prefers no node): refused here.
        if isinstance(value, dict) and value.get("preference") is None:
            raise ValueError(
                f"has no preference: a weight alone prefers no node; add one, e.g. {cls.example}"
            )
        return value


class NodeAffinity(KubeObject):
    """Which nodes the pod must or should run on."""

    kube_type = "NodeAffinity"
    example = (
        "{requiredDuringSchedulingIgnoredDuringExecution: "
        "{nodeSelectorTerms: [{matchExpressions: [{key: pool, operator: In, values: [gpu]}]}]}}"
    )

    required_during_scheduling_ignored_during_execution: NodeSelector | None = None
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] | None = Field(
        default=None, max_length=MAX_TERMS
    )


# --- pod affinity (v1.PodAffinity, v1.PodAntiAffinity) --------------------------------------------


class PodAffinityTerm(KubeObject):
    """Pods (by labelSelector, in namespaces) that the pod must or should share a topology domain with."""

    kube_type = "PodAffinityTerm"
    example = "{labelSelector: {matchLabels: {app: rag}}, topologyKey: kubernetes.io/hostname}"

    label_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    namespaces: list[DnsLabel] | None = Field(default=None, max_length=MAX_VALUES)
    topology_key: QualifiedName = Field(description="Node label of the topology domain.")
    match_label_keys: list[QualifiedName] | None = Field(
        default=None, max_length=MAX_REQUIREMENTS, validate_default=True
    )
    mismatch_label_keys: list[QualifiedName] | None = Field(
        default=None, max_length=MAX_REQUIREMENTS, validate_default=True
    )

    @field_validator("match_label_keys", "mismatch_label_keys")
    @classmethod
    def _label_keys_need_a_selector(cls, keys: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if not keys:
            return keys
        selector = info.data.get("label_selector")
        if selector is None:
            raise ValueError(
                "must not be set without labelSelector, e.g. "
                "{labelSelector: {matchLabels: {app: rag}}, matchLabelKeys: [rag.finetune.dev/job], "
                "topologyKey: kubernetes.io/hostname}"
            )
        if info.field_name == "match_label_keys":
            both = sorted(set(keys) & selector.keys())
            if both:
                raise ValueError(f"{both} also in labelSelector: a key may be in only one of them")
        else:
            both = sorted(set(keys) & set(info.data.get("match_label_keys") or []))
            if both:
                raise ValueError(f"{both} also in matchLabelKeys: a key may be in only one of them")
        return keys


class WeightedPodAffinityTerm(KubeObject):
    """A pod affinity term with a weight."""

    kube_type = "WeightedPodAffinityTerm"
    example = (
        "{weight: 50, podAffinityTerm: {labelSelector: {matchLabels: {app: rag}}, "
        "topologyKey: kubernetes.io/hostname}}"
    )

    weight: Weight
    pod_affinity_term: PodAffinityTerm


class PodAffinity(KubeObject):
    """Pods this pod must or should run near."""

    kube_type = "PodAffinity"
    example = (
        "{requiredDuringSchedulingIgnoredDuringExecution: "
        "[{labelSelector: {matchLabels: {app: rag}}, topologyKey: kubernetes.io/hostname}]}"
    )

    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] | None = Field(
        default=None, max_length=MAX_TERMS
    )
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] | None = Field(
        default=None, max_length=MAX_TERMS
    )


class PodAntiAffinity(PodAffinity):
    """Pods this pod must or should run away from."""

    kube_type = "PodAntiAffinity"


class Affinity(KubeObject):
    """A pod's Affinity: node affinity, pod affinity and pod anti-affinity."""

    kube_type = "Affinity"
    example = (
        "{nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: "
        "{nodeSelectorTerms: [{matchExpressions: [{key: pool, operator: In, values: [gpu]}]}]}}}"
    )

    node_affinity: NodeAffinity | None = None
    pod_affinity: PodAffinity | None = None
    pod_anti_affinity: PodAntiAffinity | None = None


# --- NetworkPolicy peers (networking/v1.NetworkPolicyPeer) ----------------------------------------

#: The shape of a CIDR for the CRD (the address itself is checked by ipaddress).
CIDR_PATTERN = r"^[0-9a-fA-F.:]+/[0-9]{1,3}$"
_CIDR_EXAMPLE = "e.g. '10.20.0.0/16' or 'fd00::/8'"


def _cidr(value: str) -> str:
    """An IPv4 or IPv6 network in CIDR notation, with no bits set past its prefix length."""
    if not re.fullmatch(CIDR_PATTERN, value):
        raise ValueError(f"{value!r} is not a CIDR (address/prefix length), {_CIDR_EXAMPLE}")
    address = value.split("/")[0]
    if re.search(r"(^|\.)0[0-9]", address) and ":" not in address:
        raise ValueError(
            f"{value!r} has a leading zero in an IPv4 octet (ambiguous: decimal or octal?), {_CIDR_EXAMPLE}"
        )
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError as err:
        raise ValueError(f"{value!r} is not a CIDR ({err}), {_CIDR_EXAMPLE}") from None
    if network.network_address != ipaddress.ip_address(address):
        raise ValueError(
            f"{value!r} has bits set past its prefix length (ambiguous): write {str(network)!r} for the "
            f"network or '{address}/{network.max_prefixlen}' for the one address"
        )
    return value


Cidr = Annotated[
    str,
    AfterValidator(_cidr),
    WithJsonSchema({"type": "string", "pattern": CIDR_PATTERN, "maxLength": 64}),
]


class IPBlock(KubeObject):
    """Addresses outside the cluster (or pod IPs, which the policy may not see after SNAT)."""

    kube_type = "IPBlock"
    example = "{cidr: 10.20.0.0/16, except: [10.20.5.0/24]}"

    cidr: Cidr = Field(description="The network, e.g. 10.20.0.0/16.")
    except_: list[Cidr] | None = Field(
        default=None,
        alias="except",
        max_length=MAX_REQUIREMENTS,
        validate_default=True,
        description="Networks inside cidr that are left out.",
    )

    @field_validator("except_")
    @classmethod
    def _inside_cidr(cls, excepts: list[str] | None, info: ValidationInfo) -> list[str] | None:
        cidr = info.data.get("cidr")
        if not excepts or cidr is None:
            return excepts
        outer = ipaddress.ip_network(cidr)
        for index, text in enumerate(excepts):
            inner = ipaddress.ip_network(text)
            if inner.version != outer.version or not inner.subnet_of(outer) or inner == outer:  # type: ignore[arg-type]
                raise ValueError(
                    f"item {index} ({text!r}) must be a strict subset of cidr {cidr!r}, e.g. {cls.example}"
                )
        return excepts


class NetworkPolicyPeer(KubeObject):
    """Pods (podSelector, in namespaces chosen by namespaceSelector) or an ipBlock, not both."""

    kube_type = "NetworkPolicyPeer"
    example = "{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}"

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None

    @model_validator(mode="after")
    def _one_kind_of_peer(self) -> NetworkPolicyPeer:
        if self.pod_selector is None and self.namespace_selector is None and self.ip_block is None:
            raise ValueError(f"must set podSelector, namespaceSelector or ipBlock, e.g. {self.example}")
        if self.ip_block is not None and (
            self.pod_selector is not None or self.namespace_selector is not None
        ):
            raise ValueError(
                "ipBlock cannot be combined with podSelector or namespaceSelector: list them as two peers"
            )
        return self
