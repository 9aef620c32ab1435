"""Kubernetes API permissions the controller uses, as RBAC rules (the chart grants exactly these).

Only what really gets called: the controllers (finetunejob/, retrievalcluster/) through the kubernetes client, and kopf itself
(watching, progress annotations, status patches, peering, its own events, resource scanning).
Grouped the way the chart grants them (files/rbac-rules.yaml): `WORKLOAD` in the watched
namespaces, `CLUSTER` cluster-wide in every mode, `CLUSTER_WHEN_NAMESPACED` cluster-wide only
with `--namespace`, and the peering rules of the chosen peering mode.
"""

from __future__ import annotations

from .common import names

Rule = dict[str, list[str]]

WORKLOAD: list[Rule] = [
    # kopf lists/watches RagFinetuneJobs and patches its progress annotations on them;
    # the RayJob status handler reads the owning RagFinetuneJob; a RagRetrievalCluster's
    # deletion guard lists the jobs that reference it.
    {"apiGroups": [names.GROUP], "resources": [names.PLURAL], "verbs": ["get", "list", "watch", "patch"]},
    # status written by kopf (`patch.status`) and by the RayJob status mirror.
    {"apiGroups": [names.GROUP], "resources": [f"{names.PLURAL}/status"], "verbs": ["get", "patch"]},
    # create the owned RayJob (and a RagRetrievalCluster's service RayJob), find it after a
    # restart, watch its status, patch `suspend`.
    # No delete: ownerReferences let the garbage collector cascade.
    {
        "apiGroups": [names.RAY_GROUP],
        "resources": [names.RAYJOB_PLURAL],
        "verbs": ["get", "list", "watch", "create", "patch"],
    },
    # RagRetrievalClusters: kopf lists/watches them (handlers, timer) and patches its progress
    # annotations and its finalizer on them; a job with retrievalClusterRef reads its cluster.
    {
        "apiGroups": [names.GROUP],
        "resources": [names.RRC_PLURAL],
        "verbs": ["get", "list", "watch", "patch"],
    },
    # their status, written by kopf (`patch.status`) and by the RayCluster/service status refresh.
    {"apiGroups": [names.GROUP], "resources": [f"{names.RRC_PLURAL}/status"], "verbs": ["get", "patch"]},
    # create the owned RayCluster, find it after a restart, watch its status (ready pods).
    # No patch (spec changes are refused), no delete (ownerReferences cascade).
    {
        "apiGroups": [names.RAY_GROUP],
        "resources": [names.RAYCLUSTER_PLURAL],
        "verbs": ["get", "list", "watch", "create"],
    },
    # the NetworkPolicy of a job or retrieval cluster: created once (owned, so it is deleted with
    # it), found again after a restart. No patch or delete.
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["get", "create"]},
    # a started job's pods, read by its job label to report the ones the scheduler cannot place.
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    # a queued job's Kueue Workload, read for the reason Kueue holds it (status.message).
    {"apiGroups": ["kueue.x-k8s.io"], "resources": ["workloads"], "verbs": ["list"]},
    # events on RagFinetuneJobs and RagRetrievalClusters, posted by the handlers and by kopf.
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]

CLUSTER: list[Rule] = [
    # kopf's resource scanning watches CRDs so a RayJob CRD installed later is picked up
    # (without it kopf logs a warning and only scans at start-up).
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["list", "watch"],
    },
]

CLUSTER_WHEN_NAMESPACED: list[Rule] = [
    # with --namespace, kopf lists and watches namespaces to follow them (not when cluster-wide).
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
]

PEERING_CLUSTERWIDE: list[Rule] = [
    {
        "apiGroups": ["kopf.dev"],
        "resources": ["clusterkopfpeerings"],
        "verbs": ["get", "list", "watch", "patch"],
    },
]

PEERING_NAMESPACED: list[Rule] = [
    {"apiGroups": ["kopf.dev"], "resources": ["kopfpeerings"], "verbs": ["get", "list", "watch", "patch"]},
]


def rules(*, clusterwide: bool = True, peering: bool = True) -> list[Rule]:
    """Every rule the controller needs in one mode (what the chart's roles must add up to)."""
    needed = [*WORKLOAD, *CLUSTER]
    if not clusterwide:
        needed += CLUSTER_WHEN_NAMESPACED
    if peering:
        needed += PEERING_CLUSTERWIDE if clusterwide else PEERING_NAMESPACED
    return [{key: list(values) for key, values in rule.items()} for rule in needed]
