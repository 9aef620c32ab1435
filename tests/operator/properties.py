"""What the render property tests share: hypothesis strategies (arbitrary values, and Kubernetes
objects that are mostly valid and often wrong in one place) and the checks a rendered manifest
must pass (KubeRay's schema, Kubernetes' pod and NetworkPolicy schemas, legal names and labels,
the user's Affinity and peers arriving unchanged)."""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonschema
import kubernetes_validate
from hypothesis import strategies as st

from rag_operator.common.errors import SpecError
from rag_operator.common.k8s_types import DNS1035_LABEL, DNS1123_SUBDOMAIN, LABEL_VALUE

KUBE_VERSION = "1.34"

# --- arbitrary values -----------------------------------------------------------------------------

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


# --- Kubernetes objects: Affinity, NetworkPolicyPeer, Toleration --------------------------------------
# Each strategy draws a valid object, then half the time breaks it in one place (a leaf replaced
# by a known-bad or arbitrary value, a key dropped, a misspelt key added), so both outcomes are
# common and a refusal must name the one broken field.

LABEL_KEYS = [
    "pool",
    "rag.finetune.dev/pool",
    "kubernetes.io/hostname",
    "A_b.c-D",
    "a" * 63,
    "x.io/" + "b" * 63,
]
LABEL_VALUES = ["", "gpu", "a-b_c.d", "40", "A" * 63]
TOPOLOGY_KEYS = ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
#: Networks and strict subnets of each.
NETWORKS = {
    "10.0.0.0/8": ["10.1.0.0/16", "10.1.2.0/24", "10.255.255.255/32"],
    "0.0.0.0/0": ["10.0.0.0/8", "192.168.0.0/16"],
    "192.168.1.0/24": [],
    "fd00::/8": ["fd00:1::/32"],
    "2001:db8::/32": ["2001:db8:1::/48"],
}
BAD_LEAVES = [
    "", "bad key", "-pool", "pool-", "Example.com/x", "a/b/c", "a" * 64, "x/", "/x", "pool\n", "a b",
    "x" * 64, "9223372036854775808", "Maybe", "in", "exists", "Gt", "metadata.labels", "Node_1", "ML",
    "a.b", "10.0.0.1/8", "10.0.0.0", "10.0.0.0/33", "300.1.1.1/8", "fd00::/129", "10.0.0.0/255.0.0.0",
    "fe80::%eth0/64", " 10.0.0.0/8", "010.0.0.0/8", "11.0.0.0/16", 0, 101, -1, "50", True, 50.5, 2**31,
    2**63, None, [], {}, ["x"], ["7", "8"],
]  # fmt: skip
BAD_LEAF = st.one_of(st.sampled_from(BAD_LEAVES), st.sampled_from(BAD_LEAVES), VALUE)
MISSPELT_KEYS = ["nodeAfinity", "match_labels", "Key", "weights", "topologykey", "Except"]

LABEL_KEY = st.sampled_from(LABEL_KEYS)
LABEL_VALUE_S = st.sampled_from(LABEL_VALUES)


@st.composite
def _selector_requirement(draw: st.DrawFn, node: bool) -> dict[str, Any]:
    operators = ["In", "NotIn", "Exists", "DoesNotExist"] + (["Gt", "Lt"] if node else [])
    operator = draw(st.sampled_from(operators))
    requirement: dict[str, Any] = {"key": draw(LABEL_KEY), "operator": operator}
    if operator in ("In", "NotIn"):
        requirement["values"] = draw(st.lists(LABEL_VALUE_S, min_size=1, max_size=3))
    elif operator in ("Gt", "Lt"):
        requirement["values"] = [str(draw(st.integers(0, 2**63 - 1)))]
    elif draw(st.booleans()):
        requirement["values"] = []
    return requirement


LABEL_SELECTOR = st.fixed_dictionaries(
    {},
    optional={
        "matchLabels": st.dictionaries(LABEL_KEY, LABEL_VALUE_S, max_size=2),
        "matchExpressions": st.lists(_selector_requirement(node=False), max_size=2),
    },
)
NODE_SELECTOR_TERM = st.fixed_dictionaries(
    {},
    optional={
        "matchExpressions": st.lists(_selector_requirement(node=True), max_size=2),
        "matchFields": st.lists(
            st.fixed_dictionaries(
                {
                    "key": st.just("metadata.name"),
                    "operator": st.sampled_from(["In", "NotIn"]),
                    "values": st.sampled_from([["node-1"], ["ip-10-0-0-1.ec2.internal"]]),
                }
            ),
            max_size=1,
        ),
    },
)
WEIGHT = st.integers(1, 100)
NODE_AFFINITY = st.fixed_dictionaries(
    {},
    optional={
        "requiredDuringSchedulingIgnoredDuringExecution": st.fixed_dictionaries(
            {"nodeSelectorTerms": st.lists(NODE_SELECTOR_TERM, min_size=1, max_size=2)}
        ),
        "preferredDuringSchedulingIgnoredDuringExecution": st.lists(
            st.fixed_dictionaries({"weight": WEIGHT, "preference": NODE_SELECTOR_TERM}), max_size=2
        ),
    },
)


@st.composite
def _pod_affinity_term(draw: st.DrawFn) -> dict[str, Any]:
    term: dict[str, Any] = {"topologyKey": draw(st.sampled_from(TOPOLOGY_KEYS))}
    selector = draw(st.none() | LABEL_SELECTOR)
    if selector is not None:
        term["labelSelector"] = selector
        used = set(selector.get("matchLabels", {})) | {e["key"] for e in selector.get("matchExpressions", [])}
        free = [key for key in LABEL_KEYS if key not in used]
        match = draw(st.lists(st.sampled_from(free), max_size=2, unique=True)) if free else []
        if match:
            term["matchLabelKeys"] = match
        mismatch = draw(st.lists(st.sampled_from(LABEL_KEYS), max_size=2, unique=True))
        if [key for key in mismatch if key not in match]:
            term["mismatchLabelKeys"] = [key for key in mismatch if key not in match]
    if draw(st.booleans()):
        term["namespaceSelector"] = draw(LABEL_SELECTOR)
    if draw(st.booleans()):
        term["namespaces"] = draw(st.lists(st.sampled_from(["default", "ml"]), max_size=2))
    return term


POD_AFFINITY = st.fixed_dictionaries(
    {},
    optional={
        "requiredDuringSchedulingIgnoredDuringExecution": st.lists(_pod_affinity_term(), max_size=2),
        "preferredDuringSchedulingIgnoredDuringExecution": st.lists(
            st.fixed_dictionaries({"weight": WEIGHT, "podAffinityTerm": _pod_affinity_term()}), max_size=2
        ),
    },
)
VALID_AFFINITY = st.fixed_dictionaries(
    {}, optional={"nodeAffinity": NODE_AFFINITY, "podAffinity": POD_AFFINITY, "podAntiAffinity": POD_AFFINITY}
)
VALID_PEER = st.one_of(
    st.fixed_dictionaries({"podSelector": LABEL_SELECTOR}, optional={"namespaceSelector": LABEL_SELECTOR}),
    st.fixed_dictionaries({"namespaceSelector": LABEL_SELECTOR}),
    st.sampled_from(sorted(NETWORKS)).flatmap(
        lambda cidr: st.fixed_dictionaries(
            {"cidr": st.just(cidr)},
            optional={"except": st.lists(st.sampled_from(NETWORKS[cidr]), max_size=2)}
            if NETWORKS[cidr]
            else {},
        ).map(lambda block: {"ipBlock": block})
    ),
)


@st.composite
def _valid_toleration(draw: st.DrawFn) -> dict[str, Any]:
    toleration: dict[str, Any] = {}
    if draw(st.booleans()):
        toleration["key"] = draw(LABEL_KEY)
    operator = draw(st.sampled_from(["Exists", "Equal"])) if "key" in toleration else "Exists"
    if operator != "Equal" or draw(st.booleans()):
        toleration["operator"] = operator  # Equal is the default
    if operator == "Equal" and draw(st.booleans()):
        toleration["value"] = draw(LABEL_VALUE_S)
    effect = draw(st.sampled_from([None, "NoSchedule", "PreferNoSchedule", "NoExecute"]))
    if effect:
        toleration["effect"] = effect
    if effect == "NoExecute" and draw(st.booleans()):
        toleration["tolerationSeconds"] = draw(st.integers(0, 2**63 - 1))
    return toleration


def _places(value: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key or index) inside `value`."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, sub in items:
        out.append((value, key))
        _places(sub, out)
    return out


@st.composite
def one_defect(draw: st.DrawFn, valid: st.SearchStrategy[Any]) -> Any:
    """A valid value, or half the time that value broken in one place."""
    value = copy.deepcopy(draw(valid))
    if draw(st.booleans()):
        return value
    places = _places(value, [])
    how = draw(st.sampled_from(["replace", "drop", "misspell"]))
    dicts = [container for container, _ in places if isinstance(container, dict)] + (
        [value] if isinstance(value, dict) else []
    )
    if how == "misspell" and dicts:
        draw(st.sampled_from(dicts))[draw(st.sampled_from(MISSPELT_KEYS))] = draw(BAD_LEAF)
    elif how == "drop" and [p for p in places if isinstance(p[0], dict)]:
        container, key = draw(st.sampled_from([p for p in places if isinstance(p[0], dict)]))
        del container[key]
    elif places:
        container, key = draw(st.sampled_from(places))
        container[key] = draw(BAD_LEAF)
    else:
        return draw(BAD_LEAF)
    return value


# --- a group's pod override (common/pod_override.py) ---------------------------------------------------
#: Names the API-server test creates (service account, PriorityClass, RuntimeClass): admission looks
#: them up when a pod is created.
POD_REFERENCED = {
    "serviceAccountName": "trainer-sa",
    "priorityClassName": "training",
    "runtimeClassName": "nvidia",
}
_NAMES = st.sampled_from(["a", "ray-conf", "a.b-c", "x" * 63])
_ITEMS = st.lists(
    st.fixed_dictionaries(
        {
            "key": st.sampled_from(["a.yaml", "token", "_k-1"]),
            "path": st.sampled_from(["a", "conf/a.yaml", ".x", "a..b"]),
        },
        optional={"mode": st.integers(0, 0o777)},
    ),
    max_size=2,
)
_VOLUME_SOURCE = st.one_of(
    st.fixed_dictionaries({"persistentVolumeClaim": st.fixed_dictionaries({"claimName": _NAMES}, optional={"readOnly": st.booleans()})}),
    st.fixed_dictionaries({"configMap": st.fixed_dictionaries({"name": _NAMES}, optional={"items": _ITEMS, "defaultMode": st.integers(0, 0o777), "optional": st.booleans()})}),
    st.fixed_dictionaries({"secret": st.fixed_dictionaries({"secretName": _NAMES}, optional={"items": _ITEMS, "optional": st.booleans()})}),
    st.fixed_dictionaries({"emptyDir": st.fixed_dictionaries({}, optional={"medium": st.sampled_from(["", "Memory"]), "sizeLimit": st.sampled_from(["1Gi", "500Mi", "1.5G"])})}),
    st.fixed_dictionaries({"csi": st.fixed_dictionaries({"driver": st.sampled_from(["secrets-store.csi.k8s.io", "Ab.c"])}, optional={"readOnly": st.booleans(), "volumeAttributes": st.dictionaries(st.sampled_from(["secretProviderClass", "x y"]), st.text(max_size=8), max_size=2)})}),
    st.fixed_dictionaries({"projected": st.fixed_dictionaries({"sources": st.lists(st.one_of(
        st.fixed_dictionaries({"configMap": st.fixed_dictionaries({"name": _NAMES}, optional={"items": _ITEMS})}),
        st.fixed_dictionaries({"secret": st.fixed_dictionaries({"name": _NAMES})}),
        st.fixed_dictionaries({"serviceAccountToken": st.fixed_dictionaries({"path": st.sampled_from(["token", "t/t"])}, optional={"audience": st.sampled_from(["sts.amazonaws.com", ""]), "expirationSeconds": st.integers(600, 2**32)})}),
    ), min_size=1, max_size=2)})}),
    st.fixed_dictionaries({"ephemeral": st.fixed_dictionaries({"volumeClaimTemplate": st.fixed_dictionaries(
        {"spec": st.fixed_dictionaries(
            {"accessModes": st.just(["ReadWriteOncePod"]) | st.lists(st.sampled_from(["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"]), min_size=1, max_size=2, unique=True),
             "resources": st.fixed_dictionaries({"requests": st.fixed_dictionaries({"storage": st.sampled_from(["1Gi", "100Gi"])})})},
            optional={"storageClassName": st.sampled_from(["local-nvme", "standard"])})},
        optional={"metadata": st.fixed_dictionaries({}, optional={"labels": st.dictionaries(LABEL_KEY, LABEL_VALUE_S, max_size=2), "annotations": st.dictionaries(st.sampled_from(["note"]), st.text(max_size=5), max_size=1)})},
    )})}),
)  # fmt: skip
_MOUNT_PATHS = ["/models", "/etc/rag", "/data/extra", "/dev/shm", "/a b"]


@st.composite
def _volumes_and_mounts(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(
        st.lists(st.sampled_from(["models", "conf", "tls", "x" * 63, "a1"]), max_size=3, unique=True)
    )
    volumes = [{"name": name, **draw(_VOLUME_SOURCE)} for name in names]
    paths = draw(st.lists(st.sampled_from(_MOUNT_PATHS), max_size=len(names), unique=True))
    mounts = []
    for path in paths:
        mount: dict[str, Any] = {"name": draw(st.sampled_from(names)), "mountPath": path}
        if draw(st.booleans()):
            mount["readOnly"] = draw(st.booleans())
        if draw(st.booleans()):
            mount["subPath"] = draw(st.sampled_from(["a", "a/b", "..a", "a.."]))
        mounts.append(mount)
    return {"volumes": volumes, "volumeMounts": mounts} if names else {}


_ENV_SOURCE = st.one_of(
    st.fixed_dictionaries({"secretKeyRef": st.fixed_dictionaries({"name": _NAMES, "key": st.sampled_from(["token", "a.b"])}, optional={"optional": st.booleans()})}),
    st.fixed_dictionaries({"configMapKeyRef": st.fixed_dictionaries({"name": _NAMES, "key": st.sampled_from(["k"])})}),
    st.fixed_dictionaries({"fieldRef": st.fixed_dictionaries({"fieldPath": st.sampled_from(["status.podIP", "spec.nodeName", "metadata.name"])}, optional={"apiVersion": st.just("v1")})}),
)  # fmt: skip
_ENV = st.lists(st.sampled_from(["WANDB_PROJECT", "X", "LOG_LEVEL", "_a1"]), max_size=3, unique=True).flatmap(
    lambda names: st.tuples(*[
        st.one_of(st.fixed_dictionaries({"name": st.just(n)}, optional={"value": st.text(max_size=10)}),
                  st.fixed_dictionaries({"name": st.just(n), "valueFrom": _ENV_SOURCE}))
        for n in names
    ]).map(list)
)  # fmt: skip
_ENV_FROM = st.lists(
    st.one_of(
        st.fixed_dictionaries({"configMapRef": st.fixed_dictionaries({"name": _NAMES})}, optional={"prefix": st.sampled_from(["RAG_", "_"])}),
        st.fixed_dictionaries({"secretRef": st.fixed_dictionaries({"name": _NAMES}, optional={"optional": st.booleans()})}),
    ),
    max_size=2,
)  # fmt: skip
_IDS = st.integers(0, 2**31 - 1)
#: A user id: not root, which the hardened runAsNonRoot refuses (a refusal tested on its own).
_UIDS = st.integers(1, 2**31 - 1)
_SECCOMP = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["RuntimeDefault", "Unconfined"])}),
    st.fixed_dictionaries(
        {"type": st.just("Localhost"), "localhostProfile": st.sampled_from(["profiles/ray.json"])}
    ),
)
_CAPS = st.lists(
    st.sampled_from(["NET_BIND_SERVICE", "CHOWN", "CAP_NET_RAW", "ALL"]), max_size=2, unique=True
)
_POD_SECURITY = st.fixed_dictionaries(
    {},
    optional={
        "runAsUser": _UIDS, "runAsGroup": _IDS, "runAsNonRoot": st.booleans(), "fsGroup": _IDS,
        "fsGroupChangePolicy": st.sampled_from(["OnRootMismatch", "Always"]),
        "supplementalGroups": st.lists(_IDS, max_size=2), "seccompProfile": _SECCOMP,
    },
)  # fmt: skip
_CONTAINER_SECURITY = st.fixed_dictionaries(
    {},
    optional={
        "runAsUser": _UIDS, "runAsGroup": _IDS, "runAsNonRoot": st.booleans(),
        "allowPrivilegeEscalation": st.booleans(), "readOnlyRootFilesystem": st.booleans(),
        "capabilities": st.fixed_dictionaries({}, optional={"add": _CAPS, "drop": _CAPS}), "seccompProfile": _SECCOMP,
    },
)  # fmt: skip


@st.composite
def _valid_pod_override(draw: st.DrawFn) -> dict[str, Any]:
    override = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "labels": st.dictionaries(st.sampled_from(["team", "example.com/cost-center", *LABEL_KEYS[3:]]), LABEL_VALUE_S, max_size=3),
                "annotations": st.dictionaries(st.sampled_from(["example.com/owner", "note", "prometheus.io/scrape"]), st.text(max_size=20), max_size=2),
                "imagePullSecrets": st.lists(st.fixed_dictionaries({"name": _NAMES}), max_size=2),
                **{key: st.just(value) for key, value in POD_REFERENCED.items()},
                "schedulerName": st.sampled_from(["default-scheduler"]),
                "env": _ENV,
                "envFrom": _ENV_FROM,
                "securityContext": _POD_SECURITY,
                "containerSecurityContext": _CONTAINER_SECURITY,
            },
        )
    )  # fmt: skip
    return {**override, **draw(_volumes_and_mounts())}


#: Pod overrides that the models accept (valid Kubernetes, no owned key, no mount at /data).
VALID_POD_OVERRIDE = _valid_pod_override()
AFFINITY = one_defect(VALID_AFFINITY)
NETWORK_PEERS = one_defect(st.lists(VALID_PEER, max_size=3))
TOLERATIONS = one_defect(st.lists(_valid_toleration(), max_size=3))
#: Strategies for the fields holding Kubernetes objects, by their last path segment.
KUBE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "affinity": AFFINITY,
    "tolerations": TOLERATIONS,
    "dashboardPeers": NETWORK_PEERS,
    "pod": one_defect(VALID_POD_OVERRIDE),
}


# --- mutating a manifest and checking what renders --------------------------------------------------


def set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    """Set `a.b.c` in doc, making the parents mappings where they are not."""
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[last] = value


def get_path(doc: dict[str, Any], path: str) -> Any:
    node: Any = doc
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def assert_names_fields(err: SpecError) -> None:
    """A SpecError names at least one field, each a path into the manifest, with a message."""
    assert err.problems, "a SpecError must name at least one field"
    for field, message in err.problems:
        assert field.split(".")[0] in ("spec", "metadata", "apiVersion", "kind") and message, (field, message)


def check_against_crd_schema(obj: dict[str, Any], schema: dict[str, Any]) -> None:
    """KubeRay's schema (strict about unknown fields) accepts obj."""
    jsonschema.Draft4Validator(schema).validate(obj)


def check_kubernetes(obj: dict[str, Any]) -> None:
    """Kubernetes' own OpenAPI schema (strict) accepts a built-in object."""
    kubernetes_validate.validate(copy.deepcopy(obj), KUBE_VERSION, strict=True)


def check_pod_template(template: dict[str, Any]) -> None:
    """A pod template is a valid Pod with legal label values."""
    check_kubernetes(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", **template["metadata"]},
            "spec": template["spec"],
        }
    )
    for value in template["metadata"]["labels"].values():
        assert re.fullmatch(LABEL_VALUE, value) and len(value) <= 63, value


def check_network_policy(policy: dict[str, Any] | None, peers: Any) -> None:
    """The NetworkPolicy is valid, legally named, and carries the user's dashboard peers unchanged."""
    if policy is None:
        return
    check_kubernetes(policy)
    name = policy["metadata"]["name"]
    assert re.fullmatch(DNS1123_SUBDOMAIN, name) and len(name) <= 253, name
    rendered = [peer for rule in policy["spec"]["ingress"][3:] for peer in rule["from"]]
    assert rendered == without_nones(peers or []), (rendered, peers)


def check_rayjob_name(name: str, limit: int = 47) -> None:
    assert re.fullmatch(DNS1035_LABEL, name) and len(name) <= limit, name


def without_nones(value: Any) -> Any:
    """`value` with every null-valued key dropped (what `exclude_none` leaves of the user's object)."""
    if isinstance(value, dict):
        return {key: without_nones(sub) for key, sub in value.items() if sub is not None}
    if isinstance(value, list):
        return [without_nones(sub) for sub in value]
    return value


def check_placement(template: dict[str, Any], written: Any) -> None:
    """A group's pods carry the affinity the user wrote for it, unchanged (or none)."""
    affinity = (written or {}).get("affinity") if isinstance(written, dict) else None
    assert template["spec"].get("affinity") == (without_nones(affinity) or None), (
        template["spec"].get("affinity"),
        affinity,
    )
