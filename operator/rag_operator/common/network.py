"""The NetworkPolicy that fences a resource's Ray pods: Ray's ports (GCS, raylets, object transfer,
workers, the client port 10001) only for the pods of the same job or retrieval cluster, and the
dashboard with its job-submission API (8265) also for the KubeRay operator (which submits and polls
jobs through it), for our operator (which reads a retrieval cluster's actors there, and a job's
training progress on Ray's metrics port, 8080) and for peers the user lists, which also reach the
metrics port for scraping. Egress stays open (model hubs, object stores and the API server are the user's choice)."""

from __future__ import annotations

from typing import Any

from .models import SecuritySpec
from .names import LABEL_NAME, OPERATOR_NAME

DASHBOARD_PORT = 8265
#: KubeRay's default `metrics-export-port` on every Ray pod (container port "metrics"): what a
#: PodMonitor in a namespace listed in dashboardPeers scrapes.
METRICS_PORT = 8080
#: The label the KubeRay Helm chart puts on its operator pods.
KUBERAY_OPERATOR_PODS = {LABEL_NAME: "kuberay-operator"}
#: The label our chart puts on the operator pods.
OPERATOR_PODS = {LABEL_NAME: OPERATOR_NAME}


def network_policy_name(owner: str) -> str:
    """`<owner>-ray`: one policy per job or retrieval cluster."""
    return f"{owner}-ray"


def render_network_policy(
    owner: str, namespace: str | None, labels: dict[str, str], pods: dict[str, str], security: SecuritySpec
) -> dict[str, Any] | None:
    """The policy selecting `pods` (a label selector), or None when spec.security.networkPolicy is off."""
    if not security.network_policy:
        return None
    metadata: dict[str, Any] = {"name": network_policy_name(owner), "labels": labels}
    if namespace:
        metadata["namespace"] = namespace
    kuberay, ours = (
        [{"namespaceSelector": {}, "podSelector": {"matchLabels": dict(selector)}}]
        for selector in (KUBERAY_OPERATOR_PODS, OPERATOR_PODS)
    )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata,
        "spec": {
            "podSelector": {"matchLabels": dict(pods)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": dict(pods)}}]},
                {"from": kuberay, "ports": [{"protocol": "TCP", "port": DASHBOARD_PORT}]},
                {
                    "from": ours,
                    "ports": [
                        {"protocol": "TCP", "port": DASHBOARD_PORT},
                        {"protocol": "TCP", "port": METRICS_PORT},
                    ],
                },
                *(
                    [
                        {
                            "from": [peer.to_kube() for peer in security.dashboard_peers],
                            "ports": [
                                {"protocol": "TCP", "port": DASHBOARD_PORT},
                                {"protocol": "TCP", "port": METRICS_PORT},
                            ],
                        }
                    ]
                    if security.dashboard_peers
                    else []
                ),
            ],
        },
    }
