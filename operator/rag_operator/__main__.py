"""`python -m rag_operator`: render what the operator creates, print the CRDs or the reference, run it.

Exit codes (both CLIs, rag_job's too): 0 done, 1 the input or the work failed (an invalid
manifest, a file that cannot be read), 2 the command line itself is wrong.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from . import __version__

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help=__doc__,
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rag_operator {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Turns RagFinetuneJob and RagRetrievalCluster resources into KubeRay RayJobs and RayClusters."""


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


@app.command()
def render(
    file: Annotated[
        list[str],
        typer.Option(
            "--file",
            "-f",
            metavar="FILE",
            help="YAML file, or - for stdin; repeat it to give the RagRetrievalCluster a job references.",
        ),
    ],
    no_kb_metadata: Annotated[
        bool,
        typer.Option(
            "--no-kb-metadata",
            help="Never read <knowledge_base>/kb.json from this machine (require spec.retrieval.indexSize).",
        ),
    ] = False,
) -> None:
    """Print the RayJob of each RagFinetuneJob, the RayCluster and service RayJob of each
    RagRetrievalCluster (like helm template)."""
    from .render import RenderError, render_documents

    try:
        sys.stdout.write(render_documents(file, read_kb_metadata=not no_kb_metadata))
    except RenderError as err:
        _fail(str(err))


@app.command()
def crd(
    out: Annotated[Path | None, typer.Option(help="Directory to write into (the chart's crds/).")] = None,
) -> None:
    """Print the operator's CRDs, or write one file per CRD into --out."""
    from .crd import CRD_FILES, crd_yaml

    if out is None:
        sys.stdout.write("---\n".join(crd_yaml(kind) for kind in CRD_FILES.values()))
        return
    for filename, kind in CRD_FILES.items():
        path = out / filename
        _write(path, crd_yaml(kind))
        typer.echo(f"wrote {path}")


def _write(path: Path, text: str) -> None:
    """Write an output file, or fail with the OS's reason and the path (exit 1), never a traceback."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as err:
        _fail(f"cannot write {path}: {err.strerror or err}")


@app.command()
def docs(
    out: Annotated[Path | None, typer.Option(help="File to write (docs/configuration.md).")] = None,
) -> None:
    """Print the configuration reference (markdown), or write it to --out."""
    from .reference import reference_markdown

    text = reference_markdown()
    if out is None:
        sys.stdout.write(text)
        return
    _write(out, text)
    typer.echo(f"wrote {out}")


class LogFormat(StrEnum):
    """`run --log-format`: kopf's text lines, or one JSON object per line for log collectors."""

    text = "text"
    json = "json"


@app.command()
def run(
    namespace: Annotated[
        list[str] | None,
        typer.Option(metavar="NAMESPACE", help="Watch this namespace (repeatable); default: all namespaces."),
    ] = None,
    liveness_port: Annotated[
        int, typer.Option(min=1, max=65535, metavar="PORT", help="Serves GET /healthz.")
    ] = 8080,
    metrics_port: Annotated[
        int, typer.Option(min=0, max=65535, metavar="PORT", help="Serves GET /metrics (Prometheus); 0: off.")
    ] = 9090,
    peering: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="kopf peering object name; default rag-finetune-operator."),
    ] = None,
    standalone: Annotated[bool, typer.Option("--standalone", help="No peering (a single replica).")] = False,
    priority: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="kopf peering priority; default random per process: replicas with equal priorities "
            "would all pause, distinct ones let the highest act and the next take over when it dies.",
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Debug logging (or RAG_OPERATOR_LOG_LEVEL=DEBUG).")
    ] = False,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            help="text: '[time] logger [LEVEL] message' lines; json: one JSON object per line "
            "(message, severity, timestamp, the Kubernetes object it concerns)."
        ),
    ] = LogFormat.text,
) -> None:
    """Run the controllers (kopf) until stopped."""
    if standalone and peering:
        raise typer.BadParameter("--peering and --standalone exclude each other", param_hint="--peering")
    from . import operator

    level = os.environ.get("RAG_OPERATOR_LOG_LEVEL", "INFO").upper()
    operator.run(
        namespace or [],
        standalone=standalone,
        peering=peering,
        priority=priority,
        liveness_port=liveness_port,
        metrics_port=metrics_port,
        debug=verbose or level == "DEBUG",
        quiet=level in ("WARNING", "ERROR", "CRITICAL"),
        log_format=log_format.value,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0, 1 for a failed input or run, 2 for usage)."""
    try:
        app(args=argv, prog_name="python -m rag_operator")
    except SystemExit as done:  # typer always exits; the code is what main returns
        return done.code if isinstance(done.code, int) else int(done.code is not None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
