"""End-to-end retriever training on the multi-node Ray cluster: the context encoder learns, the
index is re-encoded and hot-swapped while training runs, and a resumed job keeps both."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.job.test_training import make_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def e2e_config(
    tiny_assets,
    tmp_path,
    kb_dir,
    name: str,
    refresh_every_steps: int = 2,
    rerank_candidates=None,
    refresh_at_end: bool = True,
    encode_on: str = "retrieval_nodes",
    **overrides,
):
    return make_config(
        tiny_assets,
        tmp_path,
        name,
        retrieval__knowledge_base=str(kb_dir),
        retrieval__end_to_end={
            "refresh_every_steps": refresh_every_steps,
            "ctx_encoder": str(tiny_assets.ctx_encoder),
            "encode_on": encode_on,
            **({"encode_actors": 2} if encode_on == "retrieval_nodes" else {}),
            "encode_batch_size": 16,
            "rerank_candidates": rerank_candidates,
            "refresh_at_end": refresh_at_end,
        },
        **{"export_knowledge_base": "never", **overrides},
    )


def _weights(directory) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(directory / "model.safetensors"))


def _plant_unfinished_version(kb_dir, version: int) -> None:
    """What a rank 0 that died while its refresh wrote `version` leaves: files, an encoder, no manifest."""
    from rag_job.knowledge.versions import version_dir
    from rag_job.train.refresh import encoder_dir

    version_dir(kb_dir, version).mkdir(parents=True)
    (version_dir(kb_dir, version) / "shard-00-of-02.faiss").write_bytes(b"cut short")
    encoder_dir(kb_dir, version).mkdir(parents=True)


def test_context_encoder_learns_and_the_index_is_swapped_while_training_runs(
    ray_cluster, tiny_assets, kb_copy, tmp_path
):
    from rag_job.knowledge.export import EXPORT_INDEX_FILE, EXPORT_META_FILE
    from rag_job.knowledge.index import encode_passages
    from rag_job.knowledge.ingest import Passage
    from rag_job.knowledge.versions import (
        current_version,
        list_versions,
        version_embeddings,
        version_numbers_on_disk,
    )
    from rag_job.retrieval.searcher import load_passages, read_faiss_index
    from rag_job.train.driver import run_training
    from rag_job.train.refresh import ENCODERS_DIR

    _plant_unfinished_version(kb_copy, 9)  # an earlier job's rank 0 died mid-refresh
    # A refresh takes a few seconds here, 15-30 tiny steps: several steps run over the old index.
    steps = 40
    config = e2e_config(
        tiny_assets, tmp_path, kb_copy, "e2e", 8, training__max_steps=steps, checkpoint__every_steps=20,
        evaluation={"at_end": True, "max_samples": 8, "batch_size": 8}, export_knowledge_base="always",
    )  # fmt: skip
    summary = run_training(config)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    e2e = metrics["end_to_end"]

    # (a) at least one refresh wrote a version and the pool swapped to it; none failed.
    assert e2e["refresh_count"] >= 1, e2e
    assert e2e["failures"] == []
    served = current_version(kb_copy)
    assert served >= 1 and e2e["index_version"] == served
    assert all(r["encode_seconds"] > 0 and r["swap_seconds"] > 0 for r in e2e["refreshes"])
    assert e2e["step_time_s_otherwise"] is not None

    # (b) the context encoder's weights changed, and it is saved beside the model, not inside it.
    start, trained = _weights(tiny_assets.ctx_encoder), _weights(tmp_path / "out" / "ctx_encoder")
    assert start.keys() == trained.keys()
    assert any(not np.array_equal(start[k], trained[k]) for k in start)
    assert not [k for k in _weights(tmp_path / "out" / "model") if "ctx_encoder" in k]

    # (c) retrieval answered every step of both ranks; no restart.
    assert [h["step"] for h in summary.history] == list(range(1, steps + 1))
    assert all(h["retrieval_calls"] >= 1 for h in summary.history)
    assert metrics["restarts"] == 0
    # Steps ran while a refresh did, and the other rank's pool followed each swap within two steps.
    assert any(h["refresh_overlapped"] for h in summary.history)
    by_step = {h["step"]: h["index_version_by_rank"] for h in summary.history}
    followed = [r for r in e2e["refreshes"] if r["finished_at_step"] + 2 <= steps]
    assert followed, e2e["refreshes"]
    for refresh in followed:
        assert min(by_step[refresh["finished_at_step"] + 2]) >= refresh["version"], by_step

    # (d) only version 0 (kb.json's, never deleted) and the served one are left on disk.
    assert list_versions(kb_copy) == [0, served]
    assert version_numbers_on_disk(kb_copy) == [served]
    assert (kb_copy / "kb.json").is_file()
    encoders = sorted(p.name for p in (kb_copy / "index" / ENCODERS_DIR).iterdir())
    assert encoders == [f"v{served}"]
    # The unfinished v9 was deleted when the refresher started, saying why.
    (orphan,) = e2e["orphans_deleted"]
    assert orphan.startswith(f"{kb_copy / 'index' / 'v9'}: never finished")

    # (e) the last refresh, synchronous, used the final encoder; the final evaluation ran on its index.
    last = e2e["refreshes"][-1]
    assert (last["version"], last["encoded_at_step"], last["finished_at_step"]) == (served, steps, steps)
    assert e2e["final_index"] == {
        "version": served,
        "encoded_at_step": steps,
        "step": steps,
        "refresh_at_end": "done",
    }
    assert summary.history[-1]["index_version"] == served and metrics["eval_after"]

    # (f) the export holds that version, the trained context encoder's index, not version 0's.
    export = tmp_path / "out" / "export"
    assert metrics["export"]["index_version"] == served
    meta = json.loads((export / EXPORT_META_FILE).read_text())
    assert meta["index_version"] == served and meta["end_to_end"]["encoded_at_step"] == steps
    exported = read_faiss_index(export / EXPORT_INDEX_FILE)
    vectors = exported.reconstruct_n(0, exported.ntotal)
    np.testing.assert_array_equal(vectors, version_embeddings(kb_copy, served))
    assert not np.allclose(vectors, version_embeddings(kb_copy, 0), atol=1e-3)
    passages = [Passage(str(i), r["title"], r["text"]) for i, r in enumerate(load_passages(kb_copy))]
    again = encode_passages(passages, tmp_path / "out" / "ctx_encoder", batch_size=16, progress=False)
    np.testing.assert_allclose(vectors, again, atol=1e-4)

    # (g) model/config.json names the export's passages and index, so RagRetriever loaded from the
    # model directory retrieves with that version, the one its question encoder was trained against.
    from transformers import RagRetriever

    from tests.job.helpers import assert_exact_top_k_in

    rag = json.loads((tmp_path / "out" / "model" / "config.json").read_text())
    assert (rag["passages_path"], rag["index_path"]) == (
        str((export / "passages").resolve()), str((export / EXPORT_INDEX_FILE).resolve())
    )  # fmt: skip
    assert metrics["export"]["model_config_index"] == f"version {served} (the export's)"
    queries = np.random.default_rng(0).standard_normal((4, vectors.shape[1])).astype(np.float32)
    embeds, ids, _ = RagRetriever.from_pretrained(str(tmp_path / "out" / "model")).retrieve(queries, 3)
    assert_exact_top_k_in(vectors, queries, ids, embeds, k=3)  # the top 3 under the served version


def test_trainers_encode_their_slices_and_rank_0_builds_and_swaps_the_version(
    ray_cluster, tiny_assets, kb_copy, tmp_path
):
    """encode_on: trainers: at each refresh both ranks pause to encode their halves of the passages;
    the version rank 0 builds from the halves equals one encode of every passage with the encoder
    of that step, the other rank follows the swap, and no part file is left behind."""
    from rag_job.knowledge.index import encode_passages
    from rag_job.knowledge.ingest import Passage
    from rag_job.knowledge.lease import lease_path
    from rag_job.knowledge.versions import current_version, version_embeddings
    from rag_job.retrieval.searcher import load_passages
    from rag_job.train.driver import run_training, start_encoders
    from rag_job.train.refresh import ENCODERS_DIR

    steps = 9
    config = e2e_config(
        tiny_assets, tmp_path, kb_copy, "e2e-trainers", 4, encode_on="trainers", training__max_steps=steps,
        checkpoint__every_steps=9,
    )  # fmt: skip
    assert start_encoders(config) is None  # no encode actors: the trainers encode
    summary = run_training(config)
    e2e = json.loads((tmp_path / "out" / "metrics.json").read_text())["end_to_end"]

    assert e2e["failures"] == [] and e2e["skipped_steps"] == []
    # Refreshes after steps 4 and 8 (each built and swapped in the background), and the final one at 9.
    assert [r["encoded_at_step"] for r in e2e["refreshes"]] == [4, 8, 9]
    assert all(r["encoded_on"] == "trainers" and r["trainer_pause_seconds"] > 0 for r in e2e["refreshes"])
    assert e2e["trainer_pause_seconds_total"] == pytest.approx(
        sum(r["trainer_pause_seconds"] for r in e2e["refreshes"])
    )
    paused = {h["step"] for h in summary.history if h.get("trainer_encode_seconds")}
    assert paused == {4, 8, 9}
    served = current_version(kb_copy)
    assert e2e["final_index"]["version"] == served and e2e["final_index"]["encoded_at_step"] == steps
    # rank 1 followed the first swap before the second refresh.
    by_step = {h["step"]: h["index_version_by_rank"] for h in summary.history}
    assert min(by_step[8]) >= e2e["refreshes"][0]["version"], by_step

    # The version is both ranks' halves, in order: one encode of every passage with the final encoder.
    passages = [Passage(str(i), r["title"], r["text"]) for i, r in enumerate(load_passages(kb_copy))]
    whole = encode_passages(passages, tmp_path / "out" / "ctx_encoder", batch_size=16, progress=False)
    np.testing.assert_allclose(version_embeddings(kb_copy, served), whole, atol=1e-4)
    assert not list((kb_copy / "index" / ENCODERS_DIR).glob("*/parts"))
    assert not lease_path(kb_copy).exists()  # released when training ended


def test_local_mode_every_trainer_switches_its_own_copy_at_the_same_step(
    ray_cluster, tiny_assets, kb_copy, tmp_path
):
    """retrieval.mode local: no retrieval actors; rank 0 opens each new version in the background,
    every other rank switches its in-process copy at the step rank 0 did, and a version is deleted
    only once no rank searches it."""
    from rag_job.knowledge.versions import current_version, list_versions, version_numbers_on_disk
    from rag_job.train.driver import run_training

    steps = 10
    config = e2e_config(
        tiny_assets, tmp_path, kb_copy, "e2e-local", 3, retrieval__mode="local", training__max_steps=steps,
        checkpoint__every_steps=10, evaluation={"at_end": True, "max_samples": 8, "batch_size": 8},
    )  # fmt: skip
    summary = run_training(config)
    e2e = json.loads((tmp_path / "out" / "metrics.json").read_text())["end_to_end"]

    # The refresh of step 3 cannot be skipped (none runs before it) and is collected by the end at
    # the latest; later ones may be skipped while one runs (timing); the final one always runs.
    assert e2e["failures"] == [] and e2e["refresh_count"] >= 2, e2e
    served = current_version(kb_copy)
    assert e2e["final_index"] == {
        "version": served,
        "encoded_at_step": steps,
        "step": steps,
        "refresh_at_end": "done",
    }
    by_step = [h["index_version_by_rank"] for h in summary.history]
    assert all(len(set(versions)) == 1 for versions in by_step), by_step  # never two versions at once
    assert by_step[-1] == [served, served]
    assert by_step[0] == [0, 0] and served >= 2  # the refresh of step 3 (at least), then the final one
    assert list_versions(kb_copy) == [0, served] and version_numbers_on_disk(kb_copy) == [served]


def test_resumed_job_loads_the_context_encoder_and_index_version_from_its_checkpoint(
    ray_cluster, tiny_assets, kb_copy, tmp_path
):
    from rag_job.knowledge.export import EXPORT_META_FILE
    from rag_job.train.driver import run_training

    config = e2e_config(
        tiny_assets, tmp_path, kb_copy, "e2e-resume", training__max_steps=6, checkpoint__every_steps=3,
        rerank_candidates=6, refresh_at_end=False, export_knowledge_base="always",
    )  # fmt: skip
    run_training(config, fail_at_step=4)  # the restarted rank 0 takes its run's lease back at once
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == 3 and metrics["restarts"] == 1
    first, resumed = metrics["end_to_end"]["starts"]
    assert first["step"] == 0 and first["ctx_encoder"] == str(tiny_assets.ctx_encoder.resolve())
    # The resumed rank 0 took the context encoder from the checkpoint, and the served index was
    # not older than the checkpoint's, so nothing was re-encoded at the restart.
    assert resumed["step"] == 3 and resumed["ctx_encoder"].endswith("/ctx_encoder")
    assert resumed["ctx_encoder"] != first["ctx_encoder"]
    assert resumed["refreshed"] is False
    assert metrics["end_to_end"]["index_version"] >= resumed["served_version"]

    # refresh_at_end off: no re-encode at the end; metrics.json and the export say which index was used.
    final = metrics["end_to_end"]["final_index"]
    assert final["refresh_at_end"] == "off (refresh_at_end: false)" and final["step"] == 6
    assert final["version"] == metrics["end_to_end"]["index_version"] >= 1
    assert final["encoded_at_step"] in (2, 4)
    assert all(r["encoded_at_step"] < 6 for r in metrics["end_to_end"]["refreshes"])
    exported = json.loads((tmp_path / "out" / "export" / EXPORT_META_FILE).read_text())
    assert exported["index_version"] == final["version"]
    assert exported["end_to_end"] == {
        "encoded_at_step": final["encoded_at_step"], "trained_steps": 6, "refresh_at_end": final["refresh_at_end"],
    }  # fmt: skip


def test_orphaned_index_versions_are_deleted_and_nothing_served_or_held_is(pool_factory, kb_copy, caplog):
    """A failed swap or a rank 0 that died mid-refresh leaves version directories nothing serves:
    a resumed refresher deletes them, one log line each saying why, and keeps version 0, the
    served version, the checkpoint's, and a finished one a retrieval actor still holds."""
    import logging
    from types import SimpleNamespace

    import ray

    from rag_job.config import EndToEndConfig
    from rag_job.knowledge.layout import load_meta
    from rag_job.knowledge.reindex import write_index_version
    from rag_job.knowledge.versions import current_version, version_numbers_on_disk
    from rag_job.retrieval.swap import swap_index
    from rag_job.train.refresh import IndexRefresher, encoder_dir
    from tests.job.helpers import permuted, stored_embeddings

    table = stored_embeddings(kb_copy)
    pool = pool_factory(kb_copy, replicas=1, shards=2)
    for version in (1, 2):  # v1: the checkpoint's (kept on disk); v2: served since
        write_index_version(kb_copy, permuted(table, seed=version))
        swap_index(pool, kb_copy, version, delete_previous=False)
    for version in (3, 4):  # v3: loaded by the actors; v4: its swap failed before any actor loaded it
        write_index_version(kb_copy, permuted(table, seed=version))
        encoder_dir(kb_copy, version).mkdir(parents=True)
    ray.get([actor.prepare.remote(3) for _, actor in pool.actors()])
    _plant_unfinished_version(kb_copy, 5)

    retriever = SimpleNamespace(pool=pool, ctx_encoder_tokenizer=None)
    encoders = SimpleNamespace(wait_idle=lambda timeout_s: True)
    refresher = IndexRefresher(EndToEndConfig(refresh_every_steps=2), retriever, encoders, str(kb_copy))
    with caplog.at_level(logging.INFO, logger="rag_job.train.refresh"):
        refresher.restore({"version": 1}, "ckpt/ctx_encoder", resumed=True, model=None, step=3)

    assert version_numbers_on_disk(kb_copy) == [1, 2, 3] and current_version(kb_copy) == 2
    assert all((kb_copy / shard.file).is_file() for shard in load_meta(kb_copy).shards)  # version 0
    assert not encoder_dir(kb_copy, 4).exists() and not encoder_dir(kb_copy, 5).exists()
    assert encoder_dir(kb_copy, 3).is_dir()
    lines = [r.getMessage() for r in caplog.records if "deleted orphaned index version" in r.getMessage()]
    assert len(lines) == 2, lines
    assert "index/v4: finished, but neither served nor held by a retrieval actor" in lines[0]
    assert "index/v5: never finished (no manifest" in lines[1]
    assert [r.getMessage() for r in caplog.records if "index version 3 kept" in r.getMessage()]
    assert len(refresher.state()["orphans_deleted"]) == 2

    # Once no actor holds v3, the clean before the next refresh deletes it; v1 stays: the checkpoint's.
    ray.get([actor.drop.remote(3) for _, actor in pool.actors()])
    refresher.clean_orphans("before the refresh of step 4")
    assert version_numbers_on_disk(kb_copy) == [1, 2]
    assert not encoder_dir(kb_copy, 3).exists()
