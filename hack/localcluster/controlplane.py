"""Starts and stops a real Kubernetes control plane on loopback, without nodes.

etcd + kube-apiserver (RBAC, client-certificate admin, service-account token
signing so TokenRequest works) + kube-controller-manager (garbage collector,
service accounts, namespaces) + the KubeRay operator. This is what envtest
runs plus the controllers our tests rely on; kind cannot run here (no Docker
engine). Used by the pytest fixture and by `make cluster-up`.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .pki import Pki, make_pki
from .toolchain import Toolchain

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
KCM_CONTROLLERS = "garbagecollector,serviceaccount,serviceaccount-token,namespace,root-ca-cert-publisher"
#: What pods on real nodes also need: lifting new nodes' not-ready taint, Services' endpoints (CoreDNS,
#: Deployment, KubeRay's submitter Job.
WORKLOAD_CONTROLLERS = (
    "endpoint,endpointslice,deployment,replicaset,job,nodelifecycle,persistentvolume-binder"
)


@dataclass(frozen=True)
class PlaneOptions:
    """How a control plane serves: loopback only and no workload controllers (the default), or
    on an underlay address real nodes reach, with the controllers their pods need."""

    address: str = "127.0.0.1"
    workloads: bool = False

    @property
    def controllers(self) -> str:
        return f"{KCM_CONTROLLERS},{WORKLOAD_CONTROLLERS}" if self.workloads else KCM_CONTROLLERS


class StartupError(RuntimeError):
    """A component did not come up; the message carries its log tail."""


@dataclass
class Component:
    """One running process of the control plane and the file its output goes to."""

    name: str
    pid: int
    binary: str
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def exited(self) -> bool:
        """True once the process is gone (works for processes another Python started)."""
        if self.process is not None:
            return self.process.poll() is not None
        return not _pid_runs(self.pid, self.binary)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the component's log."""
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class ControlPlane:
    """A started control plane: where it serves, how to reach it, its processes."""

    directory: Path
    server: str
    kubeconfig: Path
    pki: Pki
    components: list[Component] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def log_tails(self, lines: int = 30) -> str:
        """Every component's log tail, for a failed test's report."""
        parts = [f"----- {c.name} ({c.log}) -----\n{c.log_tail(lines)}" for c in self.components]
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop the components, last started first."""
        for component in reversed(self.components):
            stop_component(component)
        self.components.clear()

    def api(self) -> Api:
        """An admin HTTPS client for the API server."""
        return Api(self.server, _client_context(self.pki))

    def state(self) -> dict[str, Any]:
        """What `cluster-down` needs to stop the processes from another Python."""
        return {
            "directory": str(self.directory),
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "components": [
                {"name": c.name, "pid": c.pid, "binary": c.binary, "log": str(c.log)} for c in self.components
            ],
        }


class Api:
    """Minimal JSON client (urllib) so starting the control plane needs no kubectl."""

    def __init__(self, server: str, context: ssl.SSLContext) -> None:
        self.server, self.context = server, context

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """Send one request; returns (HTTP status, decoded JSON or text)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.server + path, data=data, method=method)
        kind = "application/merge-patch+json" if method == "PATCH" else "application/json"
        request.add_header("Content-Type", kind)
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=10) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")


def free_port(address: str = "127.0.0.1") -> int:
    """A port on address (loopback by default) that is free now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def write_kubeconfig(
    path: Path, server: str, ca: Path, user: dict[str, str], namespace: str = "default"
) -> Path:
    """A kubeconfig with one cluster, one user (cert/key paths or a token) and one context."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "user", "user": user}],
        "contexts": [
            {"name": "local", "context": {"cluster": "local", "user": "user", "namespace": namespace}}
        ],
        "current-context": "local",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def start_control_plane(
    toolchain: Toolchain, directory: Path, options: PlaneOptions = PlaneOptions()
) -> ControlPlane:
    """Start every component under directory; on failure stop them and raise StartupError."""
    started = time.monotonic()
    directory.mkdir(parents=True, exist_ok=True)
    extra_ips = () if options.address == "127.0.0.1" else (options.address,)
    pki = make_pki(toolchain.openssl, directory / "pki", extra_ips)
    server = f"https://{options.address}:{free_port(options.address)}"
    kubeconfig = write_kubeconfig(
        directory / "admin.kubeconfig",
        server,
        pki.ca.cert,
        {"client-certificate": str(pki.admin.cert), "client-key": str(pki.admin.key)},
    )
    plane = ControlPlane(directory=directory, server=server, kubeconfig=kubeconfig, pki=pki)
    plane.timings["pki"] = time.monotonic() - started
    try:
        _start_all(plane, toolchain, options)
    except BaseException:
        plane.stop()
        raise
    plane.timings["total"] = time.monotonic() - started
    return plane


def _start_all(plane: ControlPlane, toolchain: Toolchain, options: PlaneOptions) -> None:
    directory, pki, api = plane.directory, plane.pki, plane.api()
    etcd_url = f"http://127.0.0.1:{free_port()}"
    peer_url = f"http://127.0.0.1:{free_port()}"
    etcd = launch(plane, "etcd", [
        toolchain.etcd, "--name=default", f"--data-dir={directory / 'etcd'}",
        f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
        f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=default={peer_url}", "--unsafe-no-fsync",
    ])  # fmt: skip
    timed(plane, "etcd", lambda: wait_until(etcd, lambda: http_ok(etcd_url + "/health")))

    apiserver = launch(plane, "kube-apiserver", [
        toolchain.kube_apiserver, f"--etcd-servers={etcd_url}",
        f"--bind-address={options.address}", f"--advertise-address={options.address}",
        f"--secure-port={plane.server.rsplit(':', 1)[1]}",
        f"--tls-cert-file={pki.serving.cert}", f"--tls-private-key-file={pki.serving.key}",
        f"--client-ca-file={pki.ca.cert}", "--authorization-mode=Node,RBAC",
        # kubectl logs/exec: the API server reaches a kubelet by its InternalIP, as admin.
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-client-certificate={pki.admin.cert}", f"--kubelet-client-key={pki.admin.key}",
        f"--service-account-key-file={pki.service_account.cert}",
        f"--service-account-signing-key-file={pki.service_account.key}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        "--service-cluster-ip-range=10.96.0.0/16", "--allow-privileged=true",
    ])  # fmt: skip
    timed(
        plane,
        "kube-apiserver",
        lambda: wait_until(apiserver, lambda: api.request("GET", "/readyz")[0] == 200),
    )

    kcm_port = free_port()
    kcm = launch(plane, "kube-controller-manager", [
        toolchain.kube_controller_manager, f"--kubeconfig={plane.kubeconfig}",
        "--bind-address=127.0.0.1", f"--secure-port={kcm_port}", f"--cert-dir={directory / 'kcm'}",
        "--leader-elect=false", f"--controllers={options.controllers}",
        f"--service-account-private-key-file={pki.service_account.key}", f"--root-ca-file={pki.ca.cert}",
    ])  # fmt: skip
    # kube-controller-manager starts while the (large) CRDs are being established.
    timed(plane, "crds", lambda: install_crds(api, toolchain.kuberay_crds, apiserver))
    probe = f"127.0.0.1:{free_port()}"
    operator = launch(
        plane,
        "ray-operator",
        [
            toolchain.ray_operator, f"--metrics-addr=127.0.0.1:{free_port()}",
            f"--health-probe-bind-address={probe}", "--enable-leader-election=false",
            "--log-stdout-encoder=console",
            # It runs on the host, outside cluster DNS: reach each head's dashboard through the
            # API server's service proxy, as it does from outside a cluster.
            *(["--use-kubernetes-proxy"] if options.workloads else []),
        ],
        env={"KUBECONFIG": str(plane.kubeconfig)},
    )  # fmt: skip
    kcm_health = f"https://127.0.0.1:{kcm_port}/healthz"
    timed(plane, "kube-controller-manager", lambda: wait_until(kcm, lambda: http_ok(kcm_health)))
    timed(plane, "ray-operator", lambda: wait_until(operator, lambda: http_ok(f"http://{probe}/readyz")))
    default_sa = "/api/v1/namespaces/default/serviceaccounts/default"
    timed(
        plane,
        "default-serviceaccount",
        lambda: wait_until(kcm, lambda: api.request("GET", default_sa)[0] == 200),
    )


def start_scheduler(plane: ControlPlane, toolchain: Toolchain) -> Component:
    """kube-scheduler against the plane, waited for; its log joins the plane's."""
    port = free_port()
    scheduler = launch(plane, "kube-scheduler", [
        toolchain.kube_scheduler, f"--kubeconfig={plane.kubeconfig}",
        f"--authentication-kubeconfig={plane.kubeconfig}", f"--authorization-kubeconfig={plane.kubeconfig}",
        "--bind-address=127.0.0.1", f"--secure-port={port}", "--leader-elect=false",
    ])  # fmt: skip
    timed(
        plane,
        "kube-scheduler",
        lambda: wait_until(scheduler, lambda: http_ok(f"https://127.0.0.1:{port}/healthz")),
    )
    return scheduler


def launch(plane: ControlPlane, name: str, argv: list[Any], env: dict[str, str] | None = None) -> Component:
    log = plane.directory / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(a) for a in argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # Ctrl-C in the test run reaches pytest only; teardown stops these
        )
    component = Component(name=name, pid=process.pid, binary=str(argv[0]), log=log, process=process)
    plane.components.append(component)
    return component


def timed(plane: ControlPlane, step: str, wait: Callable[[], None]) -> None:
    started = time.monotonic()
    wait()
    plane.timings[step] = time.monotonic() - started


def wait_until(component: Component, ready: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ready() until true; fail fast with the log tail if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if component.exited():
            raise StartupError(f"{component.name} exited during start-up:\n{component.log_tail()}")
        try:
            if ready():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise StartupError(f"{component.name} not ready after {timeout:.0f} s:\n{component.log_tail()}")


def http_ok(url: str) -> bool:
    """GET url (self-signed TLS accepted: health endpoints only) and report a 200."""
    context = ssl._create_unverified_context()  # loopback health probe, self-signed server
    with urllib.request.urlopen(url, context=context, timeout=2) as response:
        return response.status == 200


def _client_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    context.load_cert_chain(str(pki.admin.cert), str(pki.admin.key))
    return context


def install_crds(api: Api, files: tuple[Path, ...], apiserver: Component) -> None:
    """Create each CRD (POST: RayCluster's is too big for client-side apply) and wait until established."""
    names = []
    for path in files:
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd:
                continue
            status, body = api.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
            if status not in (201, 409):
                raise StartupError(f"creating the CRD from {path} failed ({status}): {body}")
            names.append(crd["metadata"]["name"])

    def established() -> bool:
        for name in names:
            status, body = api.request(
                "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
            )
            conditions = (body.get("status") or {}).get("conditions") or [] if status == 200 else []
            if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                return False
        return True

    wait_until(apiserver, established)


def stop_component(component: Component, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after grace seconds."""
    if component.exited():
        return
    try:
        os.kill(component.pid, 15)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not component.exited():
        time.sleep(0.1)
    if not component.exited():
        os.kill(component.pid, 9)
    if component.process is not None:
        component.process.wait(timeout=grace)


def _pid_runs(pid: int, binary: str) -> bool:
    """True if pid is alive and still runs binary (guards against a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return cmdline == binary and stat.rsplit(")", 1)[1].split()[0] != "Z"
