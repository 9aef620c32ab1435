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
from .finetunejob.render import rayjob_for, render_job_network_policy
from .finetunejob.spec import parse_spec
from .retrievalcluster.render import cluster_for, render_cluster_network_policy
from .retrievalcluster.spec import cluster_from_manifest, parse_rrc_spec


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
                policy = render_cluster_network_policy(*_name_and_namespace(doc), parse_rrc_spec(doc["spec"]))
                out += [to_yaml(m) for m in (raycluster, service, policy) if m]
                continue
            rayjob, _ = rayjob_for(doc, read_kb, _referenced_cluster(doc, [d for _, d in docs]))
            policy = render_job_network_policy(*_name_and_namespace(doc), parse_spec(doc["spec"]))
        except SpecError as err:
            lines = [f"{file}: invalid {kind if kind == names.RRC_KIND else names.KIND}:"]
            lines += [f"  {field}: {message}" for field, message in err.problems]
            raise RenderError("\n".join(lines)) from err
        out += [to_yaml(m) for m in (rayjob, policy) if m]
    return "---\n".join(out)


def _name_and_namespace(doc: dict[str, Any]) -> tuple[str, str | None]:
    return doc["metadata"]["name"], doc["metadata"].get("namespace")


def _documents(file: str) -> list[dict[str, Any]]:
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except OSError as err:
        raise RenderError(f"cannot read {file}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise RenderError(f"{file} is not UTF-8 text (byte {err.start}): give a YAML manifest") from err
    try:
        docs = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as err:
        raise RenderError(f"{file} is not valid YAML: {err}") from err
    for number, doc in enumerate(docs, 1):
        if not isinstance(doc, dict):
            raise RenderError(
                f"{file}: document {number} is a {type(doc).__name__}, not a manifest "
                "(a mapping with apiVersion, kind, metadata and spec)"
            )
    return docs


def _referenced_cluster(job: dict[str, Any], docs: list[dict[str, Any]]) -> Any:
    """The (name, spec) of the RagRetrievalCluster a job's retrievalClusterRef names, from the documents."""
    spec = job.get("spec")
    ref = spec.get("retrievalClusterRef") if isinstance(spec, dict) else None
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
