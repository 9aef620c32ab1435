"""`make cluster-up` / `make cluster-down`: the test control plane, for a person.

Same code as the pytest fixtures; the processes outlive this command, and a state file in
the cache says which ones `down` stops. With `--real-nodes N` the cluster has real nodes
(containerd + kubelet + kube-proxy in network namespaces, CoreDNS) instead of kwok's
simulated ones, and the examples' `rag-data` volume, filled.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import typer

from . import network
from .controlplane import Component, ControlPlane, StartupError, start_control_plane
from .kwok import NODES, register_nodes, start_scheduler_and_kwok
from .network import NetworkError, NetworkPlan
from .realcluster import data_volume, fill_data_volume, start_real_cluster
from .realnodes import RealNodes, teardown
from .toolchain import (
    Toolchain,
    ToolchainMissing,
    cache_dir,
    find_toolchain,
    require_placement,
    require_real_nodes,
)

#: `make cluster-up`'s network (the tests use other names and ranges, so both can run);
#: RAG_CLUSTER_NETWORK=PREFIX:OCTET picks another, RAG_CLUSTER_DIR another state directory,
#: so that a second cluster can run beside the first.
CLI_PREFIX, CLI_OCTET = "rfou", 214


def state_file() -> Path:
    default = cache_dir() / "controlplane"
    return Path(os.environ.get("RAG_CLUSTER_DIR", default)) / "state.json"


def cli_network() -> tuple[str, int]:
    value = os.environ.get("RAG_CLUSTER_NETWORK")
    if not value:
        return CLI_PREFIX, CLI_OCTET
    prefix, _, octet = value.partition(":")
    return prefix, int(octet)


def load_components(state: dict) -> list[Component]:
    """The components a previous `up` started (no Popen: they belong to no Python now)."""
    return [
        Component(name=c["name"], pid=c["pid"], binary=c["binary"], log=Path(c["log"]))
        for c in state["components"]
    ]


def up(real_nodes: int = 0, example_data: bool = True) -> int:
    """Start the control plane unless one from a previous `up` still runs."""
    path = state_file()
    if path.exists():
        state = json.loads(path.read_text())
        if all(not c.exited() for c in load_components(state)):
            print(f"control plane already up; export KUBECONFIG={state['kubeconfig']}")
            return 0
        down()
    try:
        toolchain = find_toolchain()
    except ToolchainMissing as err:
        print(f"cluster-up: {err}", file=sys.stderr)
        return 1
    directory = path.parent / "run"
    shutil.rmtree(directory, ignore_errors=True)
    if real_nodes:
        return _up_real(toolchain, directory, real_nodes, example_data)
    try:
        plane: ControlPlane = start_control_plane(toolchain, directory)
    except StartupError as err:
        print(f"cluster-up: {err}", file=sys.stderr)
        return 1
    nodes = _add_simulated_nodes(plane, toolchain)
    path.write_text(json.dumps(plane.state(), indent=2))
    timings = ", ".join(f"{step} {seconds:.1f}s" for step, seconds in plane.timings.items())
    print(f"control plane up at {plane.server} ({timings})")
    print(f"logs: {directory / 'logs'}")
    print(nodes)
    print(f"next: export KUBECONFIG={plane.kubeconfig}; kubectl get rayjobs -A   (stop: make cluster-down)")
    return 0


def _up_real(toolchain: Toolchain, directory: Path, count: int, example_data: bool) -> int:
    try:
        require_real_nodes(toolchain)
    except ToolchainMissing as err:
        print(f"cluster-up: {err}", file=sys.stderr)
        return 1
    prefix, octet = cli_network()
    plan = NetworkPlan(prefix=prefix, octet=octet, node_names=tuple(node_names(count)))
    try:
        cluster = start_real_cluster(toolchain, directory, plan)
    except (StartupError, NetworkError) as err:
        print(f"cluster-up: {err}", file=sys.stderr)
        return 1
    state_file().write_text(json.dumps(cluster.state(), indent=2))
    timings = ", ".join(f"{step} {seconds:.1f}s" for step, seconds in cluster.timings.items())
    print(
        f"control plane up at {cluster.plane.server} with {count} real node(s): {', '.join(plan.node_names)}"
    )
    print(f"({timings}); logs: {directory / 'plane' / 'logs'}")
    if not example_data:
        print(f"next: export KUBECONFIG={cluster.plane.kubeconfig}   (stop: make cluster-down)")
        return 0
    print("filling the examples' rag-data volume (tiny model, knowledge base, index) ...")
    try:
        data_volume(cluster.plane.api(), "default", directory / "data")
        seconds = fill_data_volume(cluster.plane.api(), "default")
    except StartupError as err:
        print(f"cluster-up: {err} (the cluster stays up; `make cluster-down` stops it)", file=sys.stderr)
        return 1
    print(f"rag-data filled in {seconds:.0f} s ({directory / 'data'})")
    print(f"next: export KUBECONFIG={cluster.plane.kubeconfig}")
    print(
        "      helm install rag-finetune-operator charts/rag-finetune-operator -n rag-system --create-namespace"
    )
    print(
        "      kubectl apply -f examples/rag-finetune-job-cpu.yaml && kubectl get rfj -w   (stop: make cluster-down)"
    )
    return 0


def node_names(count: int) -> list[str]:
    from .realnodes import node_pools

    return list(node_pools(count))


def _add_simulated_nodes(plane: ControlPlane, toolchain: Toolchain) -> str:
    """kube-scheduler, kwok and the placement tests' nodes, when built; says what it did."""
    try:
        require_placement(toolchain)
        start_scheduler_and_kwok(plane, toolchain)
        register_nodes(plane, NODES)
    except (ToolchainMissing, StartupError) as err:
        return f"no simulated nodes (pods stay Pending): {err}"
    return f"simulated nodes (kwok): {', '.join(NODES)}"


def down() -> int:
    """Stop what `up` started; a no-op when nothing runs."""
    path = state_file()
    if not path.exists():
        print("no control plane is up")
        return 0
    state = json.loads(path.read_text())
    problems = _down_real(state["real_nodes"]) if "real_nodes" in state else []
    plane = ControlPlane(
        directory=Path(state["directory"]),
        server=state["server"],
        kubeconfig=Path(state["kubeconfig"]),
        pki=None,  # type: ignore[arg-type]  # stopping needs no keys
        components=load_components(state),
    )
    plane.stop()
    path.unlink()
    print(f"control plane stopped (data and logs kept in {state['directory']})")
    if problems:
        print("cluster-down: left behind:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    return 0


def _down_real(state: dict) -> list[str]:
    """Tear down the real nodes `up` started: pods, node processes, mounts, the network."""
    plan = NetworkPlan(prefix=state["prefix"], octet=state["octet"], node_names=tuple(state["nodes"]))
    nodes = RealNodes(
        plan=plan,
        directory=Path(state["directory"]),
        components=load_components(state),
        network=network.existing(plan, mounted_netns_dir=state.get("mounted_netns_dir", False)),
    )
    problems = teardown(nodes)
    print(f"real nodes stopped: {', '.join(plan.node_names)}")
    return problems


app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode=None)


@app.command("up")
def up_command(
    real_nodes: int = typer.Option(
        0, "--real-nodes", min=0, max=8, help="Real nodes (containerd + kubelet) instead of simulated ones."
    ),
    example_data: bool = typer.Option(
        True, help="With real nodes: make and fill the examples' rag-data volume in `default`."
    ),
) -> None:
    """Start the control plane (and simulated nodes when built); print the KUBECONFIG to use."""
    raise typer.Exit(up(real_nodes, example_data))


@app.command("down")
def down_command() -> None:
    """Stop what `up` started."""
    raise typer.Exit(down())


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0, 1 when the cluster cannot start, 2 for usage)."""
    try:
        app(args=argv, prog_name="python -m localcluster")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else int(done.code is not None)
    return 0
