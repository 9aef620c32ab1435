"""The private network of the real test nodes: one network namespace per node, joined by a bridge.

Each node (containerd, kubelet, kube-proxy) runs in its own network namespace with one address
on an underlay bridge in the host namespace, where the control plane and CoreDNS listen. Pods
get addresses from the node's own /24 on a CNI bridge inside the node's namespace; static
routes join the pod ranges. No namespace has a default route and nothing is masqueraded to the
outside, so no packet leaves the machine. Everything made here is recorded, and `remove` (or
`sweep` from another process) deletes it: the namespaces (with the veths, CNI bridges and
kube-proxy's iptables rules inside them), the underlay bridge and the host routes.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

#: Where `ip netns add` mounts the namespaces.
NETNS_DIR = Path("/run/netns")
SERVICE_CIDR = "10.96.0.0/16"


class NetworkError(RuntimeError):
    """A namespace, link or route could not be made; the message has the `ip` command's error."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one `ip` command; raise NetworkError with its stderr when check and it fails."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


@dataclass(frozen=True)
class NodeAddress:
    """One node's place on the network."""

    name: str
    netns: str
    veth: str
    ip: str
    pod_cidr: str

    @property
    def pod_gateway(self) -> str:
        """The CNI bridge's address in the node's namespace (the pods' default gateway)."""
        return str(next(ipaddress.ip_network(self.pod_cidr).hosts()))


@dataclass(frozen=True)
class NetworkPlan:
    """Names and ranges of one cluster's network; `prefix` keeps two clusters apart.

    `octet` picks the ranges: underlay 172.31.<octet>.0/24 (host .1, node i .10+i) and pods
    10.<octet>.<i>.0/24. The tests and `make cluster-up` use different octets and prefixes.
    """

    prefix: str
    octet: int
    node_names: tuple[str, ...]

    @property
    def bridge(self) -> str:
        return f"{self.prefix}0"

    @property
    def host_ip(self) -> str:
        """The host's address on the underlay: API server, CoreDNS."""
        return f"172.31.{self.octet}.1"

    @property
    def underlay(self) -> str:
        return f"172.31.{self.octet}.0/24"

    @property
    def cluster_cidr(self) -> str:
        """Every pod range (kube-proxy's clusterCIDR)."""
        return f"10.{self.octet}.0.0/16"

    @property
    def nodes(self) -> tuple[NodeAddress, ...]:
        return tuple(
            NodeAddress(
                name=name,
                netns=f"{self.prefix}-n{i}",
                veth=f"{self.prefix}v{i}",
                ip=f"172.31.{self.octet}.{10 + i}",
                pod_cidr=f"10.{self.octet}.{i}.0/24",
            )
            for i, name in enumerate(self.node_names, start=1)
        )


@dataclass
class Network:
    """What `create` made, so that `remove` deletes exactly that."""

    plan: NetworkPlan
    namespaces: list[str] = field(default_factory=list)
    host_routes: list[str] = field(default_factory=list)
    bridge: str | None = None
    #: `ip netns add` makes /run/netns a mount point the first time; undo that too.
    mounted_netns_dir: bool = False

    def remove(self) -> list[str]:
        """Delete the namespaces, host routes and bridge; returns the problems (empty when clean)."""
        problems = []
        for route in self.host_routes:
            ip("route", "del", route, check=False)
        for netns in self.namespaces:
            done = ip("netns", "delete", netns, check=False)
            if done.returncode != 0 and netns_exists(netns):
                problems.append(f"netns {netns}: {done.stderr.strip()}")
        if self.bridge:
            done = ip("link", "delete", self.bridge, check=False)
            if done.returncode != 0 and link_exists(self.bridge):
                problems.append(f"bridge {self.bridge}: {done.stderr.strip()}")
        if self.mounted_netns_dir and not any(NETNS_DIR.iterdir()):
            subprocess.run(["umount", str(NETNS_DIR)], capture_output=True)
        self.namespaces.clear()
        self.host_routes.clear()
        self.bridge = None
        return problems


def is_mount_point(path: Path) -> bool:
    points = (line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines())
    return str(path) in points


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def link_exists(name: str) -> bool:
    return ip("link", "show", name, check=False).returncode == 0


def preflight(plan: NetworkPlan) -> None:
    """Refuse to start over a previous run's leftovers or a range the host already routes."""
    leftovers = [n.netns for n in plan.nodes if netns_exists(n.netns)]
    if link_exists(plan.bridge):
        leftovers.append(f"bridge {plan.bridge}")
    if leftovers:
        raise NetworkError(
            f"left over from an earlier run: {', '.join(leftovers)} (run `make cluster-down`, "
            f"or `ip netns delete` / `ip link delete` them)"
        )
    routes = ip("-4", "route", "show").stdout
    wanted = [ipaddress.ip_network(plan.underlay), ipaddress.ip_network(plan.cluster_cidr)]
    for line in routes.splitlines():
        target = line.split()[0]
        if target == "default":
            continue
        network = ipaddress.ip_network(target, strict=False)
        if any(network.overlaps(w) for w in wanted):
            raise NetworkError(f"the host already routes {target}, which overlaps {plan.underlay} or "
                               f"{plan.cluster_cidr}: pick another octet")  # fmt: skip


def create(plan: NetworkPlan) -> Network:
    """Make the bridge, one namespace per node, the veths and routes; undo all on failure."""
    preflight(plan)
    network = Network(plan, mounted_netns_dir=not is_mount_point(NETNS_DIR))
    try:
        _create(plan, network)
    except BaseException:
        network.remove()
        raise
    return network


def _create(plan: NetworkPlan, network: Network) -> None:
    prefix_len = ipaddress.ip_network(plan.underlay).prefixlen
    ip("link", "add", plan.bridge, "type", "bridge")
    network.bridge = plan.bridge
    ip("addr", "add", f"{plan.host_ip}/{prefix_len}", "dev", plan.bridge)
    ip("link", "set", plan.bridge, "up")
    for node in plan.nodes:
        ip("netns", "add", node.netns)
        network.namespaces.append(node.netns)
        ip("link", "add", node.veth, "type", "veth", "peer", "name", "eth0", "netns", node.netns)
        ip("link", "set", node.veth, "master", plan.bridge, "up")
        ns = ("-n", node.netns)
        ip(*ns, "link", "set", "lo", "up")
        ip(*ns, "addr", "add", f"{node.ip}/{prefix_len}", "dev", "eth0")
        ip(*ns, "link", "set", "eth0", "up")
        # Service addresses must be routable for kube-proxy's DNAT of a node's own connections.
        ip(*ns, "route", "add", SERVICE_CIDR, "dev", "eth0")
        for other in plan.nodes:
            if other.name != node.name:
                ip(*ns, "route", "add", other.pod_cidr, "via", other.ip)
        sysctl(node.netns, "net.ipv4.ip_forward", "1")
        ip("route", "add", node.pod_cidr, "via", node.ip)
        network.host_routes.append(node.pod_cidr)


def sysctl(netns: str, key: str, value: str) -> None:
    """Set a per-namespace sysctl inside netns."""
    path = "/proc/sys/" + key.replace(".", "/")
    done = subprocess.run(
        ["nsenter", f"--net={NETNS_DIR / netns}", "sh", "-c", f'echo {value} > "$1"', "sh", path],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise NetworkError(f"sysctl {key}={value} in {netns}: {done.stderr.strip()}")


def in_netns(netns: str, argv: list[str]) -> list[str]:
    """argv run inside netns's network namespace only (mounts stay shared with the host, which
    the kubelet and containerd need: the kubelet's volume mounts must be seen by the runtime)."""
    return ["nsenter", f"--net={NETNS_DIR / netns}", "--", *argv]


def existing(plan: NetworkPlan, mounted_netns_dir: bool = False) -> Network:
    """What of plan's network exists now (for `cluster-down`, from another process)."""
    return Network(
        plan,
        namespaces=[n.netns for n in plan.nodes if netns_exists(n.netns)],
        host_routes=[n.pod_cidr for n in plan.nodes],
        bridge=plan.bridge if link_exists(plan.bridge) else None,
        mounted_netns_dir=mounted_netns_dir,
    )


def sweep(plan: NetworkPlan) -> list[str]:
    """Delete whatever of plan's network exists."""
    return existing(plan).remove()
