"""`python -m rag_operator {render,crd,run}`: print what the operator creates, the CRDs, or run it."""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

import yaml


def _render(args: argparse.Namespace) -> int:
    from .names import KIND, RRC_KIND
    from .plan import no_kb_metadata, read_kb_metadata
    from .render import rayjob_for, to_yaml
    from .render_cluster import cluster_for
    from .rrc_plan import cluster_from_manifest
    from .spec import SpecError

    docs: list[tuple[str, dict]] = []
    for file in args.file:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
        docs += [(file, doc) for doc in yaml.safe_load_all(text) if doc]
    if not docs:
        print(f"error: {', '.join(args.file)} holds no RagFinetuneJob", file=sys.stderr)
        return 2
    read_kb = no_kb_metadata if args.no_kb_metadata else read_kb_metadata
    out = []
    for file, doc in docs:
        try:
            if doc.get("kind") == RRC_KIND:
                raycluster, service, _ = cluster_for(doc, read_kb)
                out += [to_yaml(raycluster), to_yaml(service)]
                continue
            cluster = _referenced_cluster(doc, [d for _, d in docs], cluster_from_manifest)
            rayjob, _ = rayjob_for(doc, read_kb, cluster)
        except SpecError as err:
            kind = doc.get("kind") if doc.get("kind") == RRC_KIND else KIND
            print(f"error: {file}: invalid {kind}:", file=sys.stderr)
            for field, message in err.problems:
                print(f"  {field}: {message}", file=sys.stderr)
            return 1
        out.append(to_yaml(rayjob))
    sys.stdout.write("---\n".join(out))
    return 0


def _referenced_cluster(job: dict, docs: list[dict], parse) -> tuple | None:
    """The RagRetrievalCluster a job's retrievalClusterRef names, from the documents given."""
    from .names import RRC_KIND
    from .spec import SpecError

    ref = (job.get("spec") or {}).get("retrievalClusterRef")
    if not ref:
        return None
    for doc in docs:
        if doc.get("kind") == RRC_KIND and (doc.get("metadata") or {}).get("name") == ref:
            return parse(doc)
    raise SpecError(
        [
            (
                "spec.retrievalClusterRef",
                f"RagRetrievalCluster {ref!r} is not among the documents given: add its file "
                "with another -f (e.g. -f examples/rag-retrieval-cluster.yaml)",
            )
        ]
    )


def _crd(args: argparse.Namespace) -> int:
    from .crd import CRD_FILES, crd_yaml

    if args.out:
        for filename, kind in CRD_FILES.items():
            path = Path(args.out) / filename
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(crd_yaml(kind))
            print(f"wrote {path}")
    else:
        sys.stdout.write("---\n".join(crd_yaml(kind) for kind in CRD_FILES.values()))
    return 0


def _run(args: argparse.Namespace) -> int:
    import kopf

    from . import controller, rrc_controller  # noqa: F401  (registers the handlers)
    from .names import OPERATOR_NAME

    namespaces = args.namespace or []
    level = os.environ.get("RAG_OPERATOR_LOG_LEVEL", "INFO").upper()
    kopf.configure(debug=args.verbose or level == "DEBUG", quiet=level in ("WARNING", "ERROR", "CRITICAL"))
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=args.standalone,
        peering_name=None if args.standalone else (args.peering or OPERATOR_NAME),
        priority=args.priority if args.priority is not None else random.randint(1, 2**31 - 1),
        liveness_endpoint=f"http://0.0.0.0:{args.liveness_port}/healthz",
    )
    return 0


def _docs(args: argparse.Namespace) -> int:
    from .reference import reference_markdown

    text = reference_markdown()
    if args.out:
        from pathlib import Path

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rag_operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    render = sub.add_parser(
        "render",
        help="print the RayJob for a RagFinetuneJob, or the RayCluster and service RayJob for a "
        "RagRetrievalCluster (like helm template)",
    )
    render.add_argument(
        "-f",
        "--file",
        required=True,
        action="append",
        help="YAML file, or - for stdin; repeat it to give the RagRetrievalCluster a job references",
    )
    render.add_argument(
        "--no-kb-metadata",
        action="store_true",
        help="never read <knowledge_base>/kb.json from this machine (require spec.retrieval.indexSize)",
    )
    render.set_defaults(func=_render)

    crd = sub.add_parser("crd", help="print the operator's CRDs, or write them into --out DIR")
    crd.add_argument("--out", help="directory (the chart's crds/)")
    crd.set_defaults(func=_crd)

    docs = sub.add_parser(
        "docs", help="print the configuration reference (markdown), or write it to --out FILE"
    )
    docs.add_argument("--out", help="file to write (docs/configuration.md)")
    docs.set_defaults(func=_docs)

    run = sub.add_parser("run", help="run the controller (kopf)")
    run.add_argument(
        "--namespace", action="append", help="watch this namespace (repeatable); default: all namespaces"
    )
    run.add_argument("--liveness-port", type=int, default=8080, help="serves GET /healthz (default 8080)")
    peering = run.add_mutually_exclusive_group()
    peering.add_argument("--peering", help="kopf peering object name (default rag-finetune-operator)")
    peering.add_argument("--standalone", action="store_true", help="no peering (a single replica)")
    run.add_argument(
        "--priority",
        type=int,
        help="kopf peering priority; default random per process: replicas with equal priorities "
        "would all pause, distinct ones let the highest act and the next take over when it dies",
    )
    run.add_argument("--verbose", action="store_true", help="debug logging (or RAG_OPERATOR_LOG_LEVEL=DEBUG)")
    run.set_defaults(func=_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
