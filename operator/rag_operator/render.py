"""`python -m rag_operator render`: the manifests of one or more YAML files of both kinds.

A RagFinetuneJob with `retrievalClusterRef` needs its RagRetrievalCluster among the documents
given (the controller reads it from the API instead).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from .common import names
from .common.errors import SpecError
from .common.manifests import to_yaml
from .common.sizing import no_kb_metadata
from .common.sizing import read_kb_metadata as read_kb_from_disk
from .finetunejob.render import rayjob_for
from .retrievalcluster.render import cluster_for
from .retrievalcluster.spec import cluster_from_manifest


class RenderError(ValueError):
    """A file that cannot be rendered; the message names the file and every field to fix."""


def render_documents(files: list[str], read_kb_metadata: bool = True) -> str:
    """Every rendered manifest as one multi-document YAML string; RenderError says what is wrong."""
    docs: list[tuple[str, dict[str, Any]]] = []
    for file in files:
        docs += [(file, doc) for doc in _documents(file)]
    if not docs:
        raise RenderError(f"{', '.join(files)} holds no RagFinetuneJob or RagRetrievalCluster")
    read_kb = read_kb_from_disk if read_kb_metadata else no_kb_metadata
    out = []
    for file, doc in docs:
        kind = doc.get("kind")
        try:
            if kind == names.RRC_KIND:
                raycluster, service, _ = cluster_for(doc, read_kb)
                out += [to_yaml(raycluster), to_yaml(service)]
                continue
            rayjob, _ = rayjob_for(doc, read_kb, _referenced_cluster(doc, [d for _, d in docs]))
        except SpecError as err:
            lines = [f"{file}: invalid {kind if kind == names.RRC_KIND else names.KIND}:"]
            lines += [f"  {field}: {message}" for field, message in err.problems]
            raise RenderError("\n".join(lines)) from err
        out.append(to_yaml(rayjob))
    return "---\n".join(out)


def _documents(file: str) -> list[dict[str, Any]]:
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
    except OSError as err:
        raise RenderError(f"cannot read {file}: {err.strerror or err}") from err
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc]
    except yaml.YAMLError as err:
        raise RenderError(f"{file} is not valid YAML: {err}") from err


def _referenced_cluster(job: dict[str, Any], docs: list[dict[str, Any]]) -> Any:
    """The (name, spec) of the RagRetrievalCluster a job's retrievalClusterRef names, from the documents."""
    ref = (job.get("spec") or {}).get("retrievalClusterRef")
    if not ref:
        return None
    for doc in docs:
        if doc.get("kind") == names.RRC_KIND and (doc.get("metadata") or {}).get("name") == ref:
            return cluster_from_manifest(doc)
    raise SpecError(
        [
            (
                "spec.retrievalClusterRef",
                f"RagRetrievalCluster {ref!r} is not among the documents given: add its file "
                "with another -f (e.g. -f examples/rag-retrieval-cluster.yaml)",
            )
        ]
    )
