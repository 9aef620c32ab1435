"""A real Kueue (controller manager and admission webhooks) on a test control plane.

The binary, CRDs and webhook configurations are Kueue's own, built and copied from its module by
`make toolchain`. What differs from Kueue's manifests, because it runs as a host process beside
the API server rather than as a Deployment:

- the API server calls the webhooks at https://127.0.0.1:PORT (a `url` clientConfig and a serving
  certificate from the plane's CA) instead of through a Service with Kueue's internal cert manager;
- only the RayJob integration is on, and only the webhooks of Kueue's own kinds and of RayJob are
  registered (a registered hook for an integration that is off, pods say, would refuse every pod);
- VisibilityOnDemand is off (an aggregated API nothing here registers) and so is the metrics
  server; Kueue still reads a metrics certificate from the fixed path /etc/kueue/metrics/certs
  when its cert manager is off, so a throwaway pair is put there if the path is free, and removed
  at stop.
"""

from __future__ import annotations

import base64
import copy
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .controlplane import (
    Component,
    ControlPlane,
    free_port,
    http_ok,
    install_crds,
    launch,
    stop_component,
    wait_until,
)
from .pki import loopback_serving_cert

KUEUE_GROUP = "kueue.x-k8s.io"
METRICS_CERTS = Path("/etc/kueue/metrics/certs")
ADMISSION = "/apis/admissionregistration.k8s.io/v1"
WEBHOOK_KINDS = {
    "MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
    "ValidatingWebhookConfiguration": "validatingwebhookconfigurations",
}


@dataclass
class Kueue:
    """A started Kueue: its process, the webhook configurations it answers, what it put on the host."""

    component: Component
    webhook_configurations: list[tuple[str, str]] = field(default_factory=list)  # (resource, name)
    created: Path | None = None  # the first directory of METRICS_CERTS this run created


def kueue_config(health: str, webhook_port: int, cert_dir: Path) -> dict[str, Any]:
    """Kueue's Configuration: Kueue's defaults but for what a host process needs."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "health": {"healthProbeBindAddress": health},
        "metrics": {"bindAddress": "0"},
        "webhook": {"host": "127.0.0.1", "port": webhook_port, "certDir": str(cert_dir)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "integrations": {"frameworks": ["ray.io/rayjob"]},
        "featureGates": {"VisibilityOnDemand": False},
    }


def _served(hook: dict[str, Any]) -> bool:
    """A webhook of Kueue's own kinds or of RayJob (the integration that is on)."""
    for rule in hook.get("rules") or []:
        groups, resources = set(rule.get("apiGroups") or []), set(rule.get("resources") or [])
        if groups != {KUEUE_GROUP} and (groups, resources) != ({"ray.io"}, {"rayjobs"}):
            return False
    return True


def webhook_configurations(manifests: str, port: int, ca_bundle: bytes, prefix: str) -> list[dict[str, Any]]:
    """Kueue's webhook configurations, keeping the hooks it serves here, each called by URL."""
    out = []
    for doc in yaml.safe_load_all(manifests):
        if not doc or doc.get("kind") not in WEBHOOK_KINDS:
            continue
        doc = copy.deepcopy(doc)
        doc["metadata"] = {"name": f"{prefix}-{doc['metadata']['name']}"}
        hooks = [hook for hook in doc.get("webhooks") or [] if _served(hook)]
        for hook in hooks:
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {
                "url": f"https://127.0.0.1:{port}{path}",
                "caBundle": base64.b64encode(ca_bundle).decode(),
            }
        doc["webhooks"] = hooks
        out.append(doc)
    return out


def _metrics_certs(source: Path) -> Path | None:
    """Put a throwaway pair at METRICS_CERTS unless something is there; the directory created."""
    if METRICS_CERTS.exists():
        return None
    created = next(p for p in reversed([METRICS_CERTS, *METRICS_CERTS.parents]) if not p.exists())
    METRICS_CERTS.mkdir(parents=True)
    for name in ("tls.crt", "tls.key"):
        shutil.copyfile(source / name, METRICS_CERTS / name)
    return created


def start_kueue(plane: ControlPlane, kueue_dir: Path, openssl: Path, timeout: float = 120.0) -> Kueue:
    """Install Kueue's CRDs, start its manager on the host and register its webhooks; returns once
    a webhook has answered the API server. On failure whatever started is stopped again."""
    api = plane.api()
    apiserver = next(c for c in plane.components if c.name == "kube-apiserver")
    install_crds(api, tuple(sorted((kueue_dir / "config" / "crds").glob("*.yaml"))), apiserver)
    directory = plane.directory / "kueue"
    certs = loopback_serving_cert(openssl, plane.pki, directory / "certs")
    port, health = free_port(), f"127.0.0.1:{free_port()}"
    config = directory / "config.yaml"
    config.write_text(yaml.safe_dump(kueue_config(health, port, certs.cert.parent)))
    created = _metrics_certs(certs.cert.parent)
    component = launch(
        plane,
        "kueue",
        [kueue_dir / "kueue", f"--config={config}"],
        env={"KUBECONFIG": str(plane.kubeconfig)},
    )
    kueue = Kueue(component=component, created=created)
    try:
        wait_until(component, lambda: http_ok(f"http://{health}/readyz"), timeout=timeout)
        manifests = (kueue_dir / "config" / "webhook" / "manifests.yaml").read_text()
        for doc in webhook_configurations(manifests, port, plane.pki.ca.cert.read_bytes(), "rag-test"):
            resource = WEBHOOK_KINDS[doc["kind"]]
            status, body = api.request("POST", f"{ADMISSION}/{resource}", doc)
            if status != 201:
                raise RuntimeError(f"registering Kueue's {doc['metadata']['name']} failed ({status}): {body}")
            kueue.webhook_configurations.append((resource, doc["metadata"]["name"]))
        # A dry-run create goes through the mutating and validating hooks of ResourceFlavor.
        probe = {
            "apiVersion": f"{KUEUE_GROUP}/v1beta2",
            "kind": "ResourceFlavor",
            "metadata": {"name": "probe"},
        }
        path = f"/apis/{KUEUE_GROUP}/v1beta2/resourceflavors?dryRun=All"
        wait_until(component, lambda: api.request("POST", path, probe)[0] == 201, timeout=timeout)
    except BaseException:
        stop_kueue(plane, kueue)
        raise
    return kueue


def stop_kueue(plane: ControlPlane, kueue: Kueue) -> None:
    """Unregister the webhooks first (a hook nobody answers refuses every RayJob), then stop it."""
    api = plane.api()
    for resource, name in kueue.webhook_configurations:
        api.request("DELETE", f"{ADMISSION}/{resource}/{name}")
    kueue.webhook_configurations.clear()
    stop_component(kueue.component)
    if kueue.component in plane.components:
        plane.components.remove(kueue.component)
    if kueue.created is not None:
        shutil.rmtree(kueue.created, ignore_errors=True)
        kueue.created = None
