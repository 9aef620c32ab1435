"""Real Kubernetes nodes on this machine: containerd + kubelet + kube-proxy per node, CoreDNS.

Each node runs in its own network namespace (localcluster.network) with its own containerd
(root, state and socket under the node's directory), a kubelet registered as
`system:node:<name>` and kube-proxy (iptables mode) programming Services inside the node's
namespace. CoreDNS serves cluster DNS on the host's underlay address. Images are the ones
localcluster.images builds here, imported into every node's containerd; nothing is pulled.

Traps this machine sets (found by running pods by hand, kept here so nobody hunts again):
the VM refuses a negative oom_score_adj, which containerd's CRI gives every sandbox
(`restrict_oom_score_adj`); the kubelet refuses a loopback node IP (the underlay address);
`kubectl logs` needs the API server to reach the kubelet by InternalIP; there are no QoS
cgroups (`cgroupsPerQOS: false`, cgroupfs driver) and no swap check.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import network
from .controlplane import (
    Api,
    Component,
    ControlPlane,
    StartupError,
    free_port,
    http_ok,
    launch,
    stop_component,
    wait_until,
    write_kubeconfig,
)
from .images import PAUSE_IMAGE, base_runtime_spec, build_images
from .network import Network, NetworkPlan, NodeAddress, in_netns
from .pki import client_cert
from .toolchain import Toolchain, cni_bin_dir

#: Label that says which of the example's groups a node is for (the examples prefer it).
POOL_LABEL = "rag.finetune.dev/pool"
#: CNI network names start with this; libcni names the files it caches under /var/lib/cni after
#: the network, so each cluster has its own name (cni_network) and removes only its own entries.
CNI_NETWORK_PREFIX = "rag-pods"
CONTAINERD_NS = "k8s.io"


def cni_network(plan: NetworkPlan) -> str:
    """This cluster's CNI network name: two clusters (the tests' and a developer's) never share one."""
    return f"{CNI_NETWORK_PREFIX}-{plan.prefix}"


def node_pools(count: int) -> dict[str, str]:
    """Node name -> pool: the first for trainers, the second for retrieval, then general ones."""
    pools = ["trainer", "retrieval"] + ["general"] * max(0, count - 2)
    return {f"rag-node-{i}-{pool}": pool for i, pool in enumerate(pools[:count], start=1)}


@dataclass
class RealNodes:
    """Started nodes: the network, where each node keeps its files, and what runs."""

    plan: NetworkPlan
    directory: Path
    network: Network | None = None
    components: list[Component] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def node_dir(self, node: NodeAddress) -> Path:
        return self.directory / node.name

    @property
    def runtime_dir(self) -> Path:
        """Short paths for what holds unix sockets, containerd's and the kubelet's root (a socket
        path has at most 104 bytes; pytest's temporary directories are longer)."""
        return Path("/var/lib") / f"rag-{self.plan.prefix}"

    def kubelet_root(self, node: NodeAddress) -> Path:
        return self.runtime_dir / f"{node.netns}-kubelet"

    def socket(self, node: NodeAddress) -> Path:
        return self.runtime_dir / f"{node.netns}.sock"

    def state(self) -> dict[str, Any]:
        """What `cluster-down` needs to tear the nodes down from another Python."""
        return {
            "directory": str(self.directory),
            "prefix": self.plan.prefix,
            "octet": self.plan.octet,
            "nodes": list(self.plan.node_names),
            "components": [
                {"name": c.name, "pid": c.pid, "binary": c.binary, "log": str(c.log)} for c in self.components
            ],
        }


def start_real_nodes(plane: ControlPlane, toolchain: Toolchain, nodes: RealNodes) -> None:
    """Network, images, CoreDNS, then containerd, kubelet and kube-proxy per node, each waited
    for, until every node is Ready; on failure everything started is torn down."""
    try:
        _start(plane, toolchain, nodes)
    except BaseException:
        problems = teardown(nodes)
        if problems:
            print("real nodes: teardown after a failed start left:", *problems, sep="\n  ")
        raise


def _timed(nodes: RealNodes, step: str, started: float) -> None:
    nodes.timings[step] = time.monotonic() - started


def _launch(plane: ControlPlane, nodes: RealNodes, name: str, argv: list[Any], **kwargs: Any) -> Component:
    component = launch(plane, name, argv, **kwargs)
    plane.components.remove(component)  # the nodes stop their own, in their own order
    nodes.components.append(component)
    return component


def _start(plane: ControlPlane, toolchain: Toolchain, nodes: RealNodes) -> None:
    started = time.monotonic()
    nodes.directory.mkdir(parents=True, exist_ok=True)
    if nodes.network is None:  # the caller makes it first when the API server serves on it
        nodes.network = network.create(nodes.plan)
    _timed(nodes, "network", started)

    started = time.monotonic()
    archives = build_images(nodes.directory / "images")
    _timed(nodes, "images", started)

    started = time.monotonic()
    coredns = _start_coredns(plane, toolchain, nodes)
    _timed(nodes, "coredns", started)

    for node in nodes.plan.nodes:
        started = time.monotonic()
        _start_containerd(plane, nodes, node)
        for archive in archives.values():
            _ctr(nodes, node, "images", "import", str(archive))
        _timed(nodes, f"{node.name}: containerd + images", started)
    kubelets = {}
    for node in nodes.plan.nodes:
        kubelets[node.name] = _start_kubelet(plane, toolchain, nodes, node)
        _start_kube_proxy(plane, toolchain, nodes, node)
    started = time.monotonic()
    _wait_ready(plane.api(), nodes, kubelets)
    _timed(nodes, "nodes Ready", started)
    if coredns.exited():
        raise StartupError(f"CoreDNS exited:\n{coredns.log_tail()}")


def _start_coredns(plane: ControlPlane, toolchain: Toolchain, nodes: RealNodes) -> Component:
    """Cluster DNS on the host's underlay address (the kubelets' clusterDNS); no upstream."""
    directory = nodes.directory / "coredns"
    directory.mkdir(exist_ok=True)
    health = f"{nodes.plan.host_ip}:{free_port(nodes.plan.host_ip)}"
    corefile = directory / "Corefile"
    corefile.write_text(
        f".:53 {{\n  bind {nodes.plan.host_ip}\n  errors\n  health {health}\n"
        f"  kubernetes cluster.local in-addr.arpa ip6.arpa {{\n"
        f"    kubeconfig {plane.kubeconfig} local\n    pods insecure\n"
        f"    fallthrough in-addr.arpa ip6.arpa\n  }}\n  cache 5\n}}\n"
    )
    coredns = _launch(plane, nodes, "coredns", [toolchain.coredns, "-conf", corefile])
    wait_until(coredns, lambda: http_ok(f"http://{health}/health"))
    return coredns


def _containerd_config(nodes: RealNodes, node: NodeAddress) -> str:
    base = nodes.node_dir(node) / "containerd"
    cni = cni_bin_dir()
    return f"""version = 2
root = "{base / "root"}"
state = "{base / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{nodes.socket(node)}"
[ttrpc]
  address = "{nodes.socket(node)}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{base / "opt"}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      base_runtime_spec = "{base / "base-spec.json"}"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{base / "runc"}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni}"
    conf_dir = "{base / "cni"}"
"""


def _cni_config(nodes: RealNodes, node: NodeAddress) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": cni_network(nodes.plan),
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": node.pod_cidr, "gateway": node.pod_gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(nodes.node_dir(node) / "cni-ipam"),
                },
            }
        ],
    }


def _start_containerd(plane: ControlPlane, nodes: RealNodes, node: NodeAddress) -> Component:
    base = nodes.node_dir(node) / "containerd"
    (base / "cni").mkdir(parents=True, exist_ok=True)
    nodes.runtime_dir.mkdir(exist_ok=True)
    config = base / "config.toml"
    config.write_text(_containerd_config(nodes, node))
    (base / "cni" / "10-pods.conflist").write_text(json.dumps(_cni_config(nodes, node), indent=1))
    base_runtime_spec("ctr", base / "base-spec.json")
    containerd = _launch(
        plane, nodes, f"containerd-{node.name}", in_netns(node.netns, ["containerd", "--config", str(config)])
    )
    containerd.binary = "containerd"  # nsenter execs it: the pid runs containerd itself
    wait_until(containerd, lambda: _ctr(nodes, node, "version", check=False).returncode == 0)
    return containerd


def _ctr(
    nodes: RealNodes, node: NodeAddress, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["ctr", f"--address={nodes.socket(node)}", f"--namespace={CONTAINERD_NS}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and done.returncode != 0:
        raise StartupError(f"ctr {' '.join(args)} on {node.name}: {done.stderr.strip()}")
    return done


def _kubeconfig(path: Path, plane: ControlPlane, cert: Path, key: Path) -> Path:
    return write_kubeconfig(
        path, plane.server, plane.pki.ca.cert, {"client-certificate": str(cert), "client-key": str(key)}
    )


def _start_kubelet(
    plane: ControlPlane, toolchain: Toolchain, nodes: RealNodes, node: NodeAddress
) -> Component:
    directory = nodes.node_dir(node) / "kubelet"
    directory.mkdir(parents=True, exist_ok=True)
    identity = client_cert(
        toolchain.openssl, plane.pki, f"kubelet-{node.name}", f"/O=system:nodes/CN=system:node:{node.name}"
    )
    kubeconfig = _kubeconfig(directory / "kubeconfig", plane, identity.cert, identity.key)
    resolv = directory / "resolv.conf"
    resolv.write_text("options ndots:5\n")  # pods get the search path; no host resolver leaks in
    healthz = 10248
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "containerRuntimeEndpoint": f"unix://{nodes.socket(node)}",
        "address": node.ip,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz,
        "readOnlyPort": 0,
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "failSwapOn": False,
        "clusterDNS": [nodes.plan.host_ip],
        "clusterDomain": "cluster.local",
        "resolvConf": str(resolv),
        "podLogsDir": str(nodes.node_dir(node) / "pod-logs"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(plane.pki.ca.cert)},
        },
        "authorization": {"mode": "Webhook"},
        # The machine's disk and memory are shared with the rest of the tests: never evict a
        # test pod or collect an imported image (nothing could pull it back).
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "maxPods": 30,
        "registerNode": True,
    }
    config_path = directory / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    labels = f"{POOL_LABEL}={node_pools(len(nodes.plan.node_names))[node.name]}"
    kubelet = _launch(
        plane,
        nodes,
        f"kubelet-{node.name}",
        in_netns(node.netns, [
            str(toolchain.kubelet), f"--config={config_path}", f"--kubeconfig={kubeconfig}",
            f"--root-dir={nodes.kubelet_root(node)}", f"--cert-dir={directory / 'pki'}",
            f"--hostname-override={node.name}", f"--node-ip={node.ip}", f"--node-labels={labels}",
        ]),
    )  # fmt: skip
    kubelet.binary = str(toolchain.kubelet)
    return kubelet


def _start_kube_proxy(
    plane: ControlPlane, toolchain: Toolchain, nodes: RealNodes, node: NodeAddress
) -> Component:
    directory = nodes.node_dir(node) / "kube-proxy"
    directory.mkdir(parents=True, exist_ok=True)
    identity = client_cert(toolchain.openssl, plane.pki, f"proxy-{node.name}", "/CN=system:kube-proxy")
    kubeconfig = _kubeconfig(directory / "kubeconfig", plane, identity.cert, identity.key)
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node.name,
        "bindAddress": node.ip,
        "clusterCIDR": nodes.plan.cluster_cidr,
        "mode": "iptables",
        # No br_netfilter here: bridged replies would skip conntrack, so a pod reaching a
        # Service backed by a pod on the same bridge needs its source rewritten.
        "iptables": {"masqueradeAll": True},
        # Host-wide conntrack sysctls are not a node's to change.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
    }
    config_path = directory / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    proxy = _launch(
        plane,
        nodes,
        f"kube-proxy-{node.name}",
        in_netns(node.netns, [str(toolchain.kube_proxy), f"--config={config_path}"]),
    )
    proxy.binary = str(toolchain.kube_proxy)
    return proxy


def _wait_ready(api: Api, nodes: RealNodes, kubelets: dict[str, Component], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    pending = set(kubelets)
    while pending:
        for name in sorted(pending):
            if kubelets[name].exited():
                raise StartupError(f"kubelet of {name} exited:\n{kubelets[name].log_tail()}")
            status, body = api.request("GET", f"/api/v1/nodes/{name}")
            if status == 200 and _ready(body) and not _not_ready_taint(body):
                pending.discard(name)
        if pending and time.monotonic() > deadline:
            tails = "\n".join(kubelets[n].log_tail(15) for n in sorted(pending))
            raise StartupError(f"nodes not Ready after {timeout:.0f} s: {sorted(pending)}\n{tails}")
        time.sleep(0.5)


def _ready(node: dict[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _not_ready_taint(node: dict[str, Any]) -> bool:
    taints = (node.get("spec") or {}).get("taints") or []
    return any(t.get("key") == "node.kubernetes.io/not-ready" for t in taints)


# ---------------------------------------------------------------------------------------------
# Teardown: pods first (so containerd's shims clean up their mounts and sandboxes), then the
# node processes, then whatever is still mounted under the nodes' directory, then the network.


def teardown(nodes: RealNodes) -> list[str]:
    """Stop and remove everything the nodes made; returns what could not be removed."""
    problems: list[str] = []
    started = time.monotonic()
    by_name = {c.name: c for c in nodes.components}
    for node in nodes.plan.nodes:
        for name in (f"kubelet-{node.name}", f"kube-proxy-{node.name}"):
            if name in by_name:
                stop_component(by_name[name])
    _timed(nodes, "teardown: kubelets", started)
    started = time.monotonic()
    for node in nodes.plan.nodes:
        if nodes.socket(node).exists():
            _remove_containers(nodes, node)
    _timed(nodes, "teardown: containers", started)
    started = time.monotonic()
    for component in reversed(nodes.components):
        stop_component(component)
    nodes.components.clear()
    _kill_shims(nodes)
    _timed(nodes, "teardown: containerd", started)
    started = time.monotonic()
    problems += _unmount_under(nodes.directory) + _unmount_under(nodes.runtime_dir)
    _remove_log_links(nodes.directory)
    _remove_log_links(nodes.runtime_dir)
    shutil.rmtree(nodes.runtime_dir, ignore_errors=True)
    _remove_cni_cache(cni_network(nodes.plan))
    if nodes.network is not None:
        problems += nodes.network.remove()
    else:
        problems += network.sweep(nodes.plan)
    _timed(nodes, "teardown: mounts and network", started)
    return problems


def _remove_containers(nodes: RealNodes, node: NodeAddress) -> None:
    """Kill every task (containers and sandboxes) and delete it: the shim unmounts its rootfs."""
    tasks = [
        line.split()[0] for line in _ctr(nodes, node, "tasks", "ls", check=False).stdout.splitlines()[1:]
    ]
    for task in tasks:
        _ctr(nodes, node, "tasks", "kill", "--all", "--signal", "SIGKILL", task, check=False)
    for task in tasks:
        _ctr(nodes, node, "tasks", "delete", "--force", task, check=False)
    containers = _ctr(nodes, node, "containers", "ls", "--quiet", check=False).stdout.split()
    if containers:
        _ctr(nodes, node, "containers", "delete", *containers, check=False)


def _kill_shims(nodes: RealNodes) -> None:
    """containerd's shims outlive it by design; kill the ones serving these nodes."""
    sockets = {str(nodes.socket(node)) for node in nodes.plan.nodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if argv and argv[0].endswith("containerd-shim-runc-v2") and any(s in argv for s in sockets):
            with suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below directory, deepest first."""
    root = str(directory.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == root or point.startswith(root + "/"):
            points.append(point)
    return sorted(set(points), key=len, reverse=True)


def _unmount_under(directory: Path) -> list[str]:
    problems = []
    for _ in range(3):
        points = mounts_under(directory)
        if not points:
            return []
        for point in points:
            subprocess.run(["umount", "--lazy", point], capture_output=True)
    problems = [f"still mounted: {point}" for point in mounts_under(directory)]
    return problems


def _remove_log_links(directory: Path) -> None:
    """The kubelet links every container log into /var/log/containers (a fixed path)."""
    links = Path("/var/log/containers")
    if not links.is_dir():
        return
    root = str(directory.resolve())
    for link in links.iterdir():
        if link.is_symlink() and os.readlink(link).startswith(root):
            link.unlink()


def _remove_cni_cache(network_name: str) -> None:
    """libcni caches each attachment's result under /var/lib/cni, named after the network; pods
    killed with their node never get the CNI DEL that would remove theirs."""
    for cache in (Path("/var/lib/cni/results"), Path("/var/lib/cni/cache/results")):
        if cache.is_dir():
            for entry in cache.glob(f"{network_name}-*"):
                entry.unlink(missing_ok=True)


@contextmanager
def real_nodes(
    plane: ControlPlane, toolchain: Toolchain, plan: NetworkPlan, directory: Path
) -> Iterator[RealNodes]:
    """Nodes Ready for the block's duration; torn down after (raises if anything is left)."""
    nodes = RealNodes(plan=plan, directory=directory)
    start_real_nodes(plane, toolchain, nodes)
    try:
        yield nodes
    finally:
        problems = teardown(nodes)
        if problems:
            raise RuntimeError("real nodes left behind:\n  " + "\n  ".join(problems))


def host_snapshot() -> dict[str, list[str]]:
    """What a teardown must leave as it found: namespaces, links, routes, mounts, rules, processes."""

    def lines(*argv: str) -> list[str]:
        done = subprocess.run(list(argv), capture_output=True, text=True)
        return sorted(done.stdout.splitlines())

    processes = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv0 = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if re.search(r"(containerd|kubelet|kube-proxy|coredns|/pause)$", argv0):
                processes.append(f"{proc.name} {argv0}")
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    iptables = [
        line for line in lines("iptables-save") if not line.startswith("#") and not line.startswith(":")
    ]
    return {
        "netns": sorted(p.name for p in network.NETNS_DIR.iterdir()) if network.NETNS_DIR.exists() else [],
        "links": [line.split(":")[1].strip() for line in lines("ip", "-o", "link", "show")],
        "routes": lines("ip", "-4", "route", "show"),
        "mounts": sorted(mounts),
        "iptables": iptables,
        "processes": sorted(processes),
        "cni_cache": sorted(str(p) for p in Path("/var/lib/cni").rglob(f"{CNI_NETWORK_PREFIX}-*"))
        if Path("/var/lib/cni").exists()
        else [],
        "log_links": sorted(str(p) for p in Path("/var/log/containers").iterdir())
        if Path("/var/log/containers").exists()
        else [],
    }
