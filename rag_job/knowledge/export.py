"""Export a trained RAG model with its knowledge base as one directory plain transformers loads.

A trained model points at a knowledge base somewhere else (absolute paths in its config.json)
whose index may be split into shards that only rag_job's retrieval reads. The export is
self-contained:

    OUT/config.json                 RagConfig: index_name="custom", passages_path="passages",
                                    index_path="index.faiss" (relative, see below)
    OUT/model.safetensors, ...      the model's own files, copied
    OUT/question_encoder_tokenizer/, OUT/generator_tokenizer/
    OUT/passages/                   the knowledge base's datasets `save_to_disk` directory, copied
    OUT/index.faiss                 ONE FAISS index over every passage (the shards merged)
    OUT/export.json                 where it came from: the index version, its context encoder
    OUT/README.md                   how to load it

Index versions: end-to-end retriever training re-encodes the passages into index versions
(`rag_job.knowledge.versions`). Exporting version N takes N's index shards, and writes the
passages with N's embeddings in their `embeddings` column: RagRetriever returns that column as
the retrieved documents' vectors, which RAG scores against the question, so the column must be
the index's own. Version 0 is kb.json's index, and its passages are copied unchanged.

Why relative paths: transformers hands `passages_path` to `datasets.load_from_disk` and
`index_path` to `fsspec.open` unchanged, so a relative path resolves against the working
directory, never against the export. No path in config.json survives a move from everywhere:
absolute ones break (or silently load a stale copy) once the directory moves; relative ones
work from inside it, and the README's one-liner passes explicit paths from anywhere else.

Merging shards: flat shards are concatenated exactly; IVF shards are merged with FAISS
`merge_from` only when every shard holds the same trained coarse quantizer and codebooks
(build-index trains each shard on its own, so it refuses those: retraining would give a
different index from the one the model was trained against); HNSW graphs cannot be merged, so
an HNSW knowledge base is rebuilt with the same parameters from the vectors its shards store.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag_job.knowledge.digest import verify_files
from rag_job.knowledge.layout import (
    PASSAGES_DIR,
    KnowledgeBaseLayoutError,
    KnowledgeBaseMeta,
    index_path,
    load_meta,
    passages_path,
)

logger = logging.getLogger(__name__)

EXPORT_INDEX_FILE = "index.faiss"
EXPORT_README = "README.md"
#: OUT/EXPORT_META_FILE: the index version exported and where its embeddings came from.
EXPORT_META_FILE = "export.json"
#: Files and folders of the export that come from the knowledge base or are written here, never
#: from the model directory.
_NOT_FROM_MODEL = {"config.json", PASSAGES_DIR, EXPORT_INDEX_FILE, EXPORT_README, EXPORT_META_FILE}
#: Queries of the check that a merged index answers as the shards do.
_CHECK_QUERIES = 16


class ExportError(ValueError):
    """The model or knowledge base cannot be exported; the message names the path and what to do."""


@dataclass(frozen=True)
class ExportSummary:
    out_dir: Path
    model_class: str
    num_passages: int
    dim: int
    index_type: str
    shards: int
    #: How the single index was made: "copied" (one shard), "merged" or "rebuilt" (HNSW).
    index_method: str
    index_bytes: int
    #: The index version exported (0: kb.json's) and the context encoder that encoded it.
    index_version: int = 0
    ctx_encoder: str = ""


def export_model(
    model_dir: str | Path,
    knowledge_base_dir: str | Path,
    out_dir: str | Path,
    version: int = 0,
    provenance: dict | None = None,
) -> ExportSummary:
    """Write OUT (see the module docstring) from index version `version`; nothing appears at OUT
    unless the export is complete. `provenance` goes into export.json as it is (a training run
    says which step's encoder wrote the version)."""
    from transformers import RagConfig

    model_dir, kb_dir, out_dir = Path(model_dir), Path(knowledge_base_dir), Path(out_dir)
    model_config = _checked_model(model_dir)
    meta = _checked_knowledge_base(kb_dir, version)
    encoder_dim = _question_encoder_dim(model_config)
    if encoder_dim is not None and encoder_dim != meta.dim:
        raise ExportError(
            f"model {model_dir} encodes questions as {encoder_dim}-d vectors, but knowledge base {kb_dir} "
            f"holds {meta.dim}-d embeddings: the index was built with another encoder; export the "
            "knowledge base the model was trained with"
        )
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ExportError(f"{out_dir} already exists and is not an empty directory; choose a new --out")

    staging = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        staging.mkdir()
        method = _write_single_index(kb_dir, meta, staging / EXPORT_INDEX_FILE)  # first: it may refuse
        shutil.copytree(
            model_dir,
            staging,
            ignore=lambda d, names: _model_files_to_skip(model_dir, d, names),
            dirs_exist_ok=True,
        )
        rag_config = RagConfig.from_pretrained(str(model_dir))
        rag_config.index_name = "custom"
        rag_config.passages_path = PASSAGES_DIR
        rag_config.index_path = EXPORT_INDEX_FILE
        rag_config.retrieval_vector_size = meta.dim
        rag_config.save_pretrained(str(staging))
        _write_passages(kb_dir, version, staging / PASSAGES_DIR)
        summary = ExportSummary(
            out_dir=out_dir,
            model_class=(model_config.get("architectures") or ["RagTokenForGeneration"])[0],
            num_passages=meta.num_passages,
            dim=meta.dim,
            index_type=meta.index_type,
            shards=len(meta.shards),
            index_method=method,
            index_bytes=(staging / EXPORT_INDEX_FILE).stat().st_size,
            index_version=version,
            ctx_encoder=meta.ctx_encoder,
        )
        (staging / EXPORT_README).write_text(readme_text(summary, model_dir, kb_dir))
        (staging / EXPORT_META_FILE).write_text(export_meta_text(summary, model_dir, kb_dir, provenance))
        if out_dir.exists():
            out_dir.rmdir()  # empty, checked above
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary


def _model_files_to_skip(model_dir: Path, directory: str, names: list[str]) -> set[str]:
    """Top-level names the export writes itself (a model saved with its own passages, say)."""
    return set(names) & _NOT_FROM_MODEL if Path(directory) == model_dir else set()


def _checked_model(model_dir: Path) -> dict:
    """The model's config.json, after the same checks `train` runs on `model.path`."""
    from rag_job.train.preflight import Preflight, check_model

    if not model_dir.is_dir():
        raise ExportError(
            f"model directory {model_dir} does not exist; pass the directory a training run wrote "
            "(OUTPUT_DIR/model) or any save_pretrained RAG checkpoint"
        )
    result = Preflight()
    check_model(str(model_dir), result)
    if result.problems:
        raise ExportError("; ".join(message for _, message in result.problems))
    return json.loads((model_dir / "config.json").read_text())


def _question_encoder_dim(model_config: dict) -> int | None:
    """The width of the question vectors the model searches with (DPR: projection or hidden size)."""
    encoder = model_config.get("question_encoder") or {}
    dim = encoder.get("projection_dim") or encoder.get("hidden_size")
    return int(dim) if dim else None


def _checked_knowledge_base(kb_dir: Path, version: int = 0) -> KnowledgeBaseMeta:
    """kb.json with version `version`'s index files, after checking every file the export reads
    (the passages, the version's index and embeddings): an export must not copy a damaged index."""
    from rag_job.knowledge.versions import load_version, verify_version

    try:
        meta = load_meta(kb_dir)
        chosen = load_version(kb_dir, version, meta) if version else None
    except KnowledgeBaseLayoutError as err:
        raise ExportError(str(err)) from err
    checks = [verify_files(kb_dir, meta, "fingerprint", shards=[] if chosen else None)]
    if chosen is not None:
        checks.append(verify_version(kb_dir, chosen))
    for check in checks:
        for warning in check.warnings:
            logger.warning("%s", warning)
        if not check.ok:
            raise ExportError(check.message())
    return chosen.as_meta(meta) if chosen else meta


def _write_passages(kb_dir: Path, version: int, target: Path) -> None:
    """The passages as `save_to_disk`, their embeddings column version `version`'s (see the
    module docstring); version 0's are the knowledge base's own, copied."""
    if version == 0:
        shutil.copytree(passages_path(kb_dir), target)
        return
    from rag_job.knowledge.index import with_embeddings
    from rag_job.knowledge.versions import version_embeddings
    from rag_job.retrieval.searcher import load_passages

    with_embeddings(load_passages(kb_dir), version_embeddings(kb_dir, version)).save_to_disk(str(target))


def _write_single_index(kb_dir: Path, meta: KnowledgeBaseMeta, target: Path) -> str:
    """Write one index over every passage to `target`; returns how it was made."""
    import faiss

    from rag_job.retrieval.searcher import read_faiss_index

    if len(meta.shards) == 1:
        shutil.copyfile(index_path(kb_dir, meta, 0), target)
        method = "copied"
    else:
        index, method = merged_index(kb_dir, meta)
        faiss.write_index(index, str(target))
        del index
    written = read_faiss_index(target)
    if written.ntotal != meta.num_passages or written.d != meta.dim:
        raise ExportError(
            f"the index written to {target} holds {written.ntotal} vectors of dimension {written.d}, "
            f"but knowledge base {kb_dir} has {meta.num_passages} of dimension {meta.dim}"
        )
    if method == "merged":
        _check_against_shards(kb_dir, meta, written)
    return method


def merged_index(kb_dir: str | Path, meta: KnowledgeBaseMeta):
    """One FAISS index over every shard, global ids in order; returns (index, "merged" or "rebuilt").

    Refuses (ExportError) where a merge would not answer as the shards do.
    """
    import faiss

    from rag_job.retrieval.searcher import read_faiss_index

    kb_dir = Path(kb_dir)
    paths = [index_path(kb_dir, meta, s) for s in range(len(meta.shards))]
    first = read_faiss_index(paths[0])
    kind = type(faiss.downcast_index(first)).__name__
    where = f"knowledge base {kb_dir} ({meta.index_type}, {len(paths)} shards, FAISS {kind})"
    if _is_ivf(first):
        return _merged_ivf(paths, where), "merged"
    if isinstance(faiss.downcast_index(first), faiss.IndexFlat):
        merged = faiss.IndexFlat(first.d, first.metric_type)
        for path in paths:
            merged.add(_all_vectors(read_faiss_index(path)))
        return merged, "merged"
    if isinstance(faiss.downcast_index(first), faiss.IndexHNSWFlat):
        return _rebuilt_hnsw(first, paths), "rebuilt"
    raise ExportError(
        f"{where}: shards of this index type cannot be merged into one index; build the knowledge base "
        "with `python -m rag_job build-index --shards 1` and export that"
    )


def _is_ivf(index) -> bool:
    import faiss

    try:
        faiss.extract_index_ivf(index)
    except RuntimeError:
        return False
    return True


def _all_vectors(index) -> np.ndarray:
    return index.reconstruct_n(0, index.ntotal)


def _merged_ivf(paths: list[Path], where: str):
    """`merge_from` of every shard into the first, ids shifted to global ones; only with one training.

    An IVF code means something only under the coarse quantizer and codebooks it was encoded with,
    so shards trained separately (what build-index writes) cannot be merged, and retraining on the
    union would make a different index from the one the model was trained against.
    """
    import faiss

    # Read in full, not memory-mapped: merge_from moves the inverted lists out of its argument.
    shards = [faiss.read_index(str(path)) for path in paths]
    ivfs = [faiss.extract_index_ivf(shard) for shard in shards]
    reference = _training_of(ivfs[0])
    for path, ivf in zip(paths[1:], ivfs[1:], strict=True):
        if not _same_training(reference, _training_of(ivf)):
            raise ExportError(
                f"{where}: each shard was trained on its own vectors (its own coarse quantizer and "
                f"product-quantizer codebooks; {paths[0].name} and {path.name} differ), so their codes "
                "cannot be merged into one index, and retraining would not be the index the model was "
                "trained with. Build the knowledge base with `python -m rag_job build-index --index-type "
                "ivfpq --shards 1` (or --index-type flat with any --shards), train against it, and export that"
            )
    merged = shards[0]
    offset = merged.ntotal
    for shard in shards[1:]:
        count = shard.ntotal
        faiss.extract_index_ivf(merged).merge_from(faiss.extract_index_ivf(shard), offset)
        offset += count
    merged.ntotal = faiss.extract_index_ivf(merged).ntotal
    return merged


def _training_of(ivf) -> list[np.ndarray]:
    """What an IVF index learnt in `train`: its coarse centroids, and PQ/SQ codebooks if any."""
    import faiss

    parts = [np.asarray([ivf.nlist, ivf.code_size, ivf.metric_type, int(ivf.by_residual)])]
    parts.append(faiss.downcast_index(ivf.quantizer).reconstruct_n(0, ivf.nlist))
    downcast = faiss.downcast_index(ivf)
    if hasattr(downcast, "pq"):
        parts.append(faiss.vector_to_array(downcast.pq.centroids))
    if hasattr(downcast, "sq"):
        parts.append(faiss.vector_to_array(downcast.sq.trained))
    return parts


def _same_training(first: list[np.ndarray], second: list[np.ndarray]) -> bool:
    return len(first) == len(second) and all(
        a.shape == b.shape and np.array_equal(a, b) for a, b in zip(first, second, strict=True)
    )


def _rebuilt_hnsw(first, paths: list[Path]):
    """A new HNSW graph over every shard's stored vectors, with the shards' M, metric and ef settings."""
    import faiss

    from rag_job.retrieval.searcher import read_faiss_index

    template = faiss.downcast_index(first)
    merged = faiss.IndexHNSWFlat(template.d, template.hnsw.nb_neighbors(1), template.metric_type)
    merged.hnsw.efConstruction = template.hnsw.efConstruction
    merged.hnsw.efSearch = template.hnsw.efSearch
    for path in paths:
        merged.add(_all_vectors(read_faiss_index(path)))
    return merged


def _check_against_shards(kb_dir: Path, meta: KnowledgeBaseMeta, merged) -> None:
    """The merged index must return what searching each shard and merging by score returns."""
    from rag_job.retrieval.searcher import merge_top_k, read_faiss_index

    queries = np.random.default_rng(0).standard_normal((_CHECK_QUERIES, meta.dim)).astype(np.float32)
    k = min(10, meta.num_passages)
    per_shard = []
    for number, info in enumerate(meta.shards):
        scores, ids = read_faiss_index(index_path(kb_dir, meta, number)).search(queries, k)
        ids = np.where(ids >= 0, ids + info.start, -1)
        per_shard.append((scores, ids, np.zeros((*ids.shape, 0), dtype=np.float32)))
    want_scores, want_ids, _ = merge_top_k(per_shard, k)
    got_scores, got_ids = merged.search(queries, k)
    tied = np.isclose(want_scores[:, 1:], want_scores[:, :-1], rtol=1e-5, atol=1e-6)
    tied = np.pad(tied, ((0, 0), (1, 0))) | np.pad(tied, ((0, 0), (0, 1)))
    if not (
        np.allclose(got_scores, want_scores, rtol=1e-5, atol=1e-5) and ((got_ids == want_ids) | tied).all()
    ):
        raise ExportError(
            f"the index merged from the shards of {kb_dir} does not return the shards' top-{k}; "
            "this is a bug, please report it with the knowledge base's kb.json"
        )


def readme_text(summary: ExportSummary, model_dir: Path, kb_dir: Path) -> str:
    """The export's README: how plain transformers loads it, and where it came from."""
    built = {
        "copied": "the knowledge base's single index file, copied",
        "merged": f"its {summary.shards} shards merged; it returns what searching each shard and "
        "merging by score returns",
        "rebuilt": f"one HNSW graph rebuilt over the vectors of its {summary.shards} shards, with their "
        "M and ef settings",
    }[summary.index_method]
    return f"""# RAG model with its knowledge base

Exported by `python -m rag_job export` on {time.strftime("%Y-%m-%d", time.gmtime())}.

- model: `{model_dir}`
- knowledge base: `{kb_dir}`, {summary.num_passages} passages, {summary.dim}-d embeddings
- index version: {_version_words(summary)} (`export.json` says more)
- index: {summary.index_type}, {built}

It needs transformers, datasets, faiss and torch, and no rag_job. Load it like this:

```python
from transformers import RagRetriever, RagTokenizer, {summary.model_class}

d = "PATH/TO/THIS/DIRECTORY"
retriever = RagRetriever.from_pretrained(
    d, index_name="custom", passages_path=f"{{d}}/passages", index_path=f"{{d}}/index.faiss"
)
model = {summary.model_class}.from_pretrained(d, retriever=retriever)
tokenizer = RagTokenizer.from_pretrained(d)
inputs = tokenizer(["your question here"], return_tensors="pt")
answers = tokenizer.batch_decode(model.generate(input_ids=inputs["input_ids"]), skip_special_tokens=True)
```

`config.json` names the passages and the index with paths relative to this directory
(`passages_path="passages"`, `index_path="index.faiss"`). transformers resolves them against the
working directory, so `RagRetriever.from_pretrained(".")` works from inside this directory; from
anywhere else pass the two paths as above. The directory can be moved or copied as a whole.

Files:
- `config.json`, the weights, `question_encoder_tokenizer/`, `generator_tokenizer/`: the model
  (`save_pretrained` layout)
- `passages/`: the passages (`datasets` `save_to_disk`: title, text, embeddings; row i is doc id i)
- `index.faiss`: one FAISS index over all passages ({summary.index_bytes} bytes)
- `export.json`: where the index came from (its version and context encoder)
"""


def _version_words(summary: ExportSummary) -> str:
    if summary.index_version == 0:
        return "0, the knowledge base's own index (kb.json)"
    return (
        f"{summary.index_version}, re-encoded by end-to-end training with the context encoder "
        f"`{summary.ctx_encoder}`; the passages' `embeddings` column is that version's"
    )


def export_meta_text(summary: ExportSummary, model_dir: Path, kb_dir: Path, provenance: dict | None) -> str:
    """export.json: what was exported, for a reader (or a script) to tell which index this is."""
    meta = {
        "index_version": summary.index_version,
        "ctx_encoder": summary.ctx_encoder,
        "knowledge_base": str(kb_dir),
        "model": str(model_dir),
        "num_passages": summary.num_passages,
        "dim": summary.dim,
        "index_type": summary.index_type,
        "index_method": summary.index_method,
        **(provenance or {}),
    }
    return json.dumps(meta, indent=2) + "\n"
