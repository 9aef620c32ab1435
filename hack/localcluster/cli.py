"""`make cluster-up` / `make cluster-down`: the test control plane, for a person.

Same code as the pytest fixture; the processes outlive this command, and a
state file in the cache says which ones `down` stops.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import typer

from .controlplane import Component, ControlPlane, StartupError, start_control_plane
from .kwok import NODES, register_nodes, start_scheduler_and_kwok
from .toolchain import Toolchain, ToolchainMissing, cache_dir, find_toolchain, require_placement


def state_file() -> Path:
    return cache_dir() / "controlplane" / "state.json"


def load_components(state: dict) -> list[Component]:
    """The components a previous `up` started (no Popen: they belong to no Python now)."""
    return [
        Component(name=c["name"], pid=c["pid"], binary=c["binary"], log=Path(c["log"]))
        for c in state["components"]
    ]


def up() -> int:
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
    return 0


app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode=None)


@app.command("up")
def up_command() -> None:
    """Start the control plane (and simulated nodes when built); print the KUBECONFIG to use."""
    raise typer.Exit(up())


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
