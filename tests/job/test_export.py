"""`export`: one directory that plain transformers loads after a move, with one merged FAISS index."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rag_job.cli import main
from rag_job.knowledge.export import EXPORT_INDEX_FILE, EXPORT_README, ExportError, export_model
from rag_job.knowledge.index import write_faiss_index, write_knowledge_base
from rag_job.knowledge.ingest import Passage
from rag_job.knowledge.layout import KB_META_FILE, load_meta
from rag_job.retrieval.searcher import KnowledgeBaseSearcher, load_passages
from tests.job.helpers import K, exact_top_k
from tests.job.kb_files import synthetic_kb


def _export(model: Path, kb: Path, out: Path) -> int:
    return main(["export", "--model", str(model), "--kb", str(kb), "--out", str(out)])


@pytest.fixture(scope="module")
def moved_export(tiny_assets, tmp_path_factory) -> Path:
    """The tiny model with the 2-shard flat knowledge base, exported through the CLI, then moved."""
    root = tmp_path_factory.mktemp("export")
    assert _export(tiny_assets.rag, tiny_assets.kb_flat_2shards, root / "written") == 0
    moved = root / "moved" / "rag-export"
    moved.parent.mkdir()
    shutil.move(root / "written", moved)
    assert not (root / "written").exists()
    return moved


def _kb_passages(kb_dir: Path) -> tuple[list[Passage], np.ndarray]:
    """The passages and embeddings of a session knowledge base, to write other index types over them."""
    dataset = load_passages(kb_dir)
    passages = [
        Passage(row["id"], row["title"], row["text"])
        for row in dataset.select_columns(["id", "title", "text"])
    ]
    return passages, np.asarray(dataset.with_format("numpy")["embeddings"], dtype=np.float32)


def _assert_same_top_k(got_scores, got_ids, want_scores, want_ids) -> None:
    """Same scores, and the same ids wherever the scores do not tie (ties may come in either order)."""
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5, atol=1e-5)
    tied = np.isclose(want_scores[:, 1:], want_scores[:, :-1], rtol=1e-5, atol=1e-6)
    tied = np.pad(tied, ((0, 0), (1, 0))) | np.pad(tied, ((0, 0), (0, 1)))
    assert ((got_ids == want_ids) | tied).all(), f"ids differ:\n{got_ids}\n{want_ids}"


def test_moved_export_loads_and_generates_in_plain_transformers(
    moved_export, tiny_assets, question_vectors, tmp_path
):
    """The README's own snippet runs, in a process that never imports rag_job, from elsewhere and from inside."""
    snippet = re.search(r"```python\n(.*?)```", (moved_export / EXPORT_README).read_text(), re.S).group(1)
    assert 'd = "PATH/TO/THIS/DIRECTORY"' in snippet
    queries_file = tmp_path / "queries.npy"
    np.save(queries_file, question_vectors[:8])
    script = snippet.replace("PATH/TO/THIS/DIRECTORY", str(moved_export)) + textwrap.dedent(f"""
        import json, os, sys
        import numpy as np

        assert len(answers) == 1 and isinstance(answers[0], str)
        queries = np.load({str(queries_file)!r})
        embeds, ids, docs = retriever.retrieve(queries, {K})
        os.chdir(d)  # config.json's relative paths, with no overrides
        embeds_inside, ids_inside, _ = RagRetriever.from_pretrained(".").retrieve(queries, {K})
        assert "rag_job" not in sys.modules, "the export needed rag_job"
        print(json.dumps({{
            "ids": ids.tolist(), "embeds": embeds.tolist(), "titles": [doc["title"] for doc in docs],
            "ids_inside": ids_inside.tolist(), "config_n_docs": model.config.n_docs,
        }}))
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])

    queries = question_vectors[:8]
    want_scores, want_ids, _ = KnowledgeBaseSearcher(tiny_assets.kb_flat_2shards).search(queries, K)
    ids, embeds = np.asarray(got["ids"]), np.asarray(got["embeds"], dtype=np.float32)
    _assert_same_top_k(np.einsum("bd,bkd->bk", queries, embeds), ids, want_scores, want_ids)
    np.testing.assert_array_equal(np.asarray(got["ids_inside"]), ids)
    titles = load_passages(tiny_assets.kb_flat_2shards)["title"]
    assert got["titles"] == [[titles[i] for i in row] for row in ids.tolist()]


def test_merged_flat_index_returns_the_top_k_of_the_sharded_knowledge_base(
    moved_export, tiny_assets, question_vectors
):
    import faiss

    kb = tiny_assets.kb_flat_2shards
    meta = load_meta(kb)
    merged = faiss.read_index(str(moved_export / EXPORT_INDEX_FILE))
    assert isinstance(faiss.downcast_index(merged), faiss.IndexFlatIP)
    assert merged.ntotal == meta.num_passages
    for k in (1, K, 20):
        want_scores, want_ids, _ = KnowledgeBaseSearcher(kb).search(question_vectors, k)
        got_scores, got_ids = merged.search(question_vectors, k)
        _assert_same_top_k(got_scores, got_ids, want_scores, want_ids)
    # The comparison means something only if results come from both shards.
    second_start = meta.shards[1].start
    assert (got_ids < second_start).any() and (got_ids >= second_start).any()


def test_export_config_names_passages_and_index_by_relative_paths(moved_export, tiny_assets):
    config = json.loads((moved_export / "config.json").read_text())
    assert (config["index_name"], config["passages_path"], config["index_path"]) == (
        "custom", "passages", "index.faiss",
    )  # fmt: skip
    assert config["retrieval_vector_size"] == load_meta(tiny_assets.kb_flat_2shards).dim
    assert str(tiny_assets.root) not in (moved_export / "config.json").read_text()
    for name in ("question_encoder_tokenizer", "generator_tokenizer", "passages"):
        assert (moved_export / name).is_dir(), name
    assert (moved_export / "model.safetensors").is_file()
    assert len(load_passages(moved_export)) == load_meta(tiny_assets.kb_flat_2shards).num_passages


def test_single_shard_index_is_copied_byte_for_byte(tiny_assets, tmp_path, capsys):
    assert _export(tiny_assets.rag, tiny_assets.kb_hnsw, tmp_path / "out") == 0
    assert "hnsw, copied (one shard)" in capsys.readouterr().out
    source = tiny_assets.kb_hnsw / load_meta(tiny_assets.kb_hnsw).shards[0].file
    assert (tmp_path / "out" / EXPORT_INDEX_FILE).read_bytes() == source.read_bytes()


def test_two_hnsw_shards_are_rebuilt_into_one_graph_with_their_settings(
    tiny_assets, tmp_path, question_vectors
):
    import faiss

    passages, embeddings = _kb_passages(tiny_assets.kb_flat)
    kb = tmp_path / "kb-hnsw2"
    write_knowledge_base(passages, embeddings, kb, "hnsw", shards=2)
    summary = export_model(tiny_assets.rag, kb, tmp_path / "out")
    assert summary.index_method == "rebuilt"
    read = faiss.read_index(str(tmp_path / "out" / EXPORT_INDEX_FILE))
    index = faiss.downcast_index(read)  # a view: `read` must stay alive
    assert isinstance(index, faiss.IndexHNSWFlat)
    assert index.ntotal == len(passages)
    assert (index.hnsw.nb_neighbors(1), index.hnsw.efSearch, index.metric_type) == (
        32, 128, faiss.METRIC_INNER_PRODUCT,
    )  # fmt: skip
    scores, _ = index.search(question_vectors, K)
    _, exact_embeds = exact_top_k(kb, question_vectors, K)
    kth_best = np.einsum("bd,bkd->bk", question_vectors, exact_embeds)[:, -1:]
    found = np.mean(scores >= kth_best - 1e-4)
    print(f"rebuilt hnsw: {found:.3f} of the top-{K} scores reach the exact k-th best")
    assert found > 0.95


def test_ivfpq_shards_trained_separately_are_refused_naming_the_type_and_the_fix(tiny_assets, tmp_path):
    passages, embeddings = _kb_passages(tiny_assets.kb_flat)
    kb = tmp_path / "kb-ivfpq2"
    write_knowledge_base(passages, embeddings, kb, "ivfpq", shards=2)
    with pytest.raises(ExportError) as refused:
        export_model(tiny_assets.rag, kb, tmp_path / "out")
    message = str(refused.value)
    assert "ivfpq, 2 shards" in message
    assert "each shard was trained on its own vectors" in message
    assert "--index-type ivfpq --shards 1" in message
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["kb-ivfpq2"], "a partial export was left behind"


def test_ivfpq_shards_that_share_one_training_merge_to_the_sharded_top_k(
    tiny_assets, tmp_path, question_vectors
):
    """Shards encoded under one trained quantizer (not what build-index writes) merge natively."""
    import faiss

    from rag_job.knowledge.index import build_faiss_index

    passages, embeddings = _kb_passages(tiny_assets.kb_flat)
    kb = tmp_path / "kb-ivfpq-shared"
    meta = write_knowledge_base(passages, embeddings, kb, "ivfpq", shards=2)
    trained = build_faiss_index(embeddings, "ivfpq")
    trained.reset()
    shards = []
    for info in meta.shards:
        shard = faiss.clone_index(trained)
        shard.add(embeddings[info.start : info.end])
        digest = write_faiss_index(shard, kb, info.file)
        shards.append(info.model_copy(update={"bytes": digest.bytes, "sha256": digest.sha256,
                                              "fingerprint": digest.fingerprint}))  # fmt: skip
    (kb / KB_META_FILE).write_text(
        meta.model_copy(update={"shards": shards}).model_dump_json(exclude_none=True)
    )

    assert export_model(tiny_assets.rag, kb, tmp_path / "out").index_method == "merged"
    merged = faiss.read_index(str(tmp_path / "out" / EXPORT_INDEX_FILE))
    assert isinstance(faiss.downcast_index(merged), faiss.IndexIVFPQ)
    want_scores, want_ids, _ = KnowledgeBaseSearcher(kb).search(question_vectors, K)
    got_scores, got_ids = merged.search(question_vectors, K)
    _assert_same_top_k(got_scores, got_ids, want_scores, want_ids)


def test_missing_kb_json_is_an_error_naming_it_with_exit_code_1(tiny_assets, tmp_path, capsys):
    kb = shutil.copytree(tiny_assets.kb_flat, tmp_path / "kb")
    (kb / KB_META_FILE).unlink()
    assert _export(tiny_assets.rag, kb, tmp_path / "out") == 1
    assert f"{kb / KB_META_FILE} is missing" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_model_directory_that_is_no_rag_checkpoint_is_refused(tiny_assets, tmp_path, capsys):
    out = tmp_path / "out"
    assert _export(tiny_assets.ctx_encoder, tiny_assets.kb_flat, out) == 1
    assert "holds a dpr model, not a RAG checkpoint" in capsys.readouterr().err
    assert _export(tmp_path / "nope", tiny_assets.kb_flat, out) == 1
    assert "model directory" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_knowledge_base_of_another_dimension_is_refused(tiny_assets, tmp_path):
    kb = synthetic_kb(tmp_path / "kb8", dim=8)
    with pytest.raises(
        ExportError, match=r"encodes questions as 64-d vectors, but knowledge base .* holds 8-d"
    ):
        export_model(tiny_assets.rag, kb, tmp_path / "out")


def test_an_existing_output_directory_is_never_overwritten(tiny_assets, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="already exists and is not an empty directory"):
        export_model(tiny_assets.rag, tiny_assets.kb_flat, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_a_damaged_shard_is_refused_before_anything_is_written(tiny_assets, tmp_path):
    kb = shutil.copytree(tiny_assets.kb_flat_2shards, tmp_path / "kb")
    shard = kb / load_meta(kb).shards[1].file
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(ExportError, match=re.escape(shard.name)):
        export_model(tiny_assets.rag, kb, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_served_index_version_is_exported_with_its_own_vectors_and_says_so(
    tiny_assets, tmp_path, question_vectors, capsys
):
    """End-to-end training finishes on index version N (its trained context encoder's): the export
    holds N's vectors, in index.faiss and in the passages' embeddings column RagRetriever returns,
    and export.json names N. Version 0 is still exported on request, unchanged."""
    from transformers import RagRetriever

    from rag_job.knowledge.export import EXPORT_META_FILE
    from rag_job.knowledge.reindex import write_index_version
    from rag_job.knowledge.versions import set_current_version, version_embeddings
    from rag_job.retrieval.searcher import read_faiss_index
    from tests.job.helpers import permuted, stored_embeddings
    from tests.job.kb_files import copy_kb

    kb = copy_kb(tiny_assets.kb_flat_2shards, tmp_path / "kb")
    version0 = stored_embeddings(kb)
    write_index_version(kb, permuted(version0, seed=5), ctx_encoder="/encoders/step-40")
    set_current_version(kb, 1)
    served = version_embeddings(kb, 1)
    assert not np.array_equal(served, version0)

    assert _export(tiny_assets.rag, kb, tmp_path / "out") == 0  # default: the served version
    assert "index version 1" in capsys.readouterr().out
    out = tmp_path / "out"
    meta = json.loads((out / EXPORT_META_FILE).read_text())
    assert (meta["index_version"], meta["ctx_encoder"]) == (1, "/encoders/step-40")
    assert "index version: 1, re-encoded by end-to-end training" in (out / EXPORT_README).read_text()
    index = read_faiss_index(out / EXPORT_INDEX_FILE)
    np.testing.assert_array_equal(index.reconstruct_n(0, index.ntotal), served)
    np.testing.assert_array_equal(stored_embeddings(out), served)
    assert load_passages(out)["text"] == load_passages(kb)["text"]

    retriever = RagRetriever.from_pretrained(
        str(out),
        index_name="custom",
        passages_path=str(out / "passages"),
        index_path=str(out / "index.faiss"),
    )
    embeds, ids, _ = retriever.retrieve(question_vectors[:8], K)
    np.testing.assert_array_equal(embeds, served[ids])
    scores = question_vectors[:8] @ served.T
    np.testing.assert_allclose(
        np.sort(scores, axis=1)[:, ::-1][:, :K], np.take_along_axis(scores, ids, 1), rtol=1e-5
    )

    assert main(["export", "--model", str(tiny_assets.rag), "--kb", str(kb), "--out", str(tmp_path / "v0"),
                 "--index-version", "0"]) == 0  # fmt: skip
    assert json.loads((tmp_path / "v0" / EXPORT_META_FILE).read_text())["index_version"] == 0
    np.testing.assert_array_equal(stored_embeddings(tmp_path / "v0"), version0)
