"""The real nodes serve what Ray on Kubernetes needs before any Ray runs: pods on both nodes,
cluster DNS for Services (ClusterIP and headless, as KubeRay's head Service is), kube-proxy
forwarding across nodes, the API server's `kubernetes` Service from inside a pod, and
`kubectl logs` through the kubelet."""

from __future__ import annotations

import json

import pytest

from localcluster.images import job_image_name
from localcluster.realcluster import RealCluster
from localcluster.realnodes import POOL_LABEL

from ..polling import eventually

pytestmark = pytest.mark.node

SERVER = """
import http.server, socket
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(socket.gethostname().encode())
http.server.HTTPServer(("", 8000), Hello).serve_forever()
"""
CLIENT = """
import json, ssl, urllib.request, urllib.error
import time
def get_once(url, context=None):
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""
    except OSError as err:
        return -1, repr(err)
def get(url, context=None):
    # kube-proxy on this pod's node programs a new Service's rules some time after its
    # endpoints are ready (a REJECT rule stands in until then), so retry as a client would.
    deadline = time.monotonic() + 60
    while True:
        answer = get_once(url, context)
        if answer[0] == 200 or time.monotonic() > deadline:
            return answer
        time.sleep(1)
ns = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
token = open("/var/run/secrets/kubernetes.io/serviceaccount/token").read()
context = ssl.create_default_context(cafile="/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
request = urllib.request.Request("https://kubernetes.default.svc/version", headers={"Authorization": "Bearer " + token})
print(json.dumps({
    "clusterip": get(f"http://hello.{ns}.svc.cluster.local"),
    "headless": get(f"http://hello-headless:8000"),
    "apiserver": get(request, context),
}), flush=True)
"""


def pod(name: str, pool: str, code: str, labels: dict[str, str] | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "nodeSelector": {POOL_LABEL: pool},
            "restartPolicy": "Never",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "main",
                    "image": job_image_name(),
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-c", code],
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ],
        },
    }


def service(name: str, headless: bool) -> dict:
    spec = {
        "selector": {"app": "hello"},
        "ports": [{"port": 80 if not headless else 8000, "targetPort": 8000}],
    }
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def test_pods_reach_services_across_nodes_by_cluster_dns(real_cluster: RealCluster, node_kubectl) -> None:
    namespace = "dns-check"
    assert node_kubectl("create", "namespace", namespace).returncode == 0
    objects = [
        pod("hello", "retrieval", SERVER, {"app": "hello"}),
        service("hello", headless=False),
        service("hello-headless", headless=True),
    ]
    for obj in objects:
        done = node_kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(obj))
        assert done.returncode == 0, done.stderr

    def serving() -> bool:
        done = node_kubectl(
            "-n", namespace, "get", "endpointslices", "-l", "kubernetes.io/service-name=hello", "-o", "json"
        )
        slices = json.loads(done.stdout)["items"] if done.returncode == 0 else []
        ready = [
            e for s in slices for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready")
        ]
        return bool(ready)

    eventually(serving, timeout=90, what="the hello pod Running and in its Service's endpoints")
    done = node_kubectl(
        "-n", namespace, "apply", "-f", "-", stdin=json.dumps(pod("client", "trainer", CLIENT))
    )
    assert done.returncode == 0, done.stderr

    def answered() -> dict | None:
        logs = node_kubectl("-n", namespace, "logs", "client")
        lines = [line for line in logs.stdout.splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if logs.returncode == 0 and lines else None

    result = eventually(
        answered, timeout=240, what="the client pod's answers in its log (kubectl logs via the kubelet)"
    )
    assert result["clusterip"] == [200, "hello"], result
    assert result["headless"] == [200, "hello"], result
    assert result["apiserver"][0] == 200, result  # the kubernetes Service, with the pod's own token

    nodes = {}
    for name in ("hello", "client"):
        body = json.loads(node_kubectl("-n", namespace, "get", "pod", name, "-o", "json").stdout)
        nodes[name] = body["spec"]["nodeName"]
    assert nodes["hello"] != nodes["client"], f"both pods on {nodes['hello']}: the check crossed no node"
    node_kubectl("delete", "namespace", namespace, "--wait=false")
