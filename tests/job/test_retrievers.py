"""The RagRetriever subclasses: same outputs in every mode, and plain transformers compatibility."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch.multiprocessing as mp

from tests.job.helpers import K, assert_exact_top_k


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torch_worker(rank: int, world: int, port: int, rag_dir: str, kb_dir: str, queries, out: str) -> None:
    import torch.distributed as dist
    from transformers import RagConfig, RagTokenizer

    from rag_job.retrieval.retrievers import TorchDistributedRagRetriever

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        retriever = TorchDistributedRagRetriever(
            RagConfig.from_pretrained(rag_dir), RagTokenizer.from_pretrained(rag_dir), kb_dir
        )
        # Unequal batch sizes per rank exercise the padding of gather/scatter.
        mine = queries[:5] if rank == 0 else queries[5:]
        embeds, ids, docs = retriever.retrieve(mine, K)
        np.savez(f"{out}-{rank}.npz", ids=ids, embeds=embeds, titles=np.array(docs[0]["title"]))
    finally:
        dist.destroy_process_group()


def test_torch_distributed_retriever_matches_exact_search_across_two_processes(
    tiny_assets, question_vectors, tmp_path
):
    queries = question_vectors[:12]
    out = str(tmp_path / "rank")
    mp.spawn(
        _torch_worker,
        args=(2, _free_port(), str(tiny_assets.rag), str(tiny_assets.kb_flat_2shards), queries, out),
        nprocs=2,
        join=True,
    )
    rank0, rank1 = np.load(f"{out}-0.npz"), np.load(f"{out}-1.npz")
    ids = np.concatenate([rank0["ids"], rank1["ids"]])
    assert_exact_top_k(
        tiny_assets.kb_flat_2shards, queries, ids, np.concatenate([rank0["embeds"], rank1["embeds"]])
    )


def test_every_in_process_mode_serves_the_current_index_version(tiny_assets, question_vectors, tmp_path):
    """A knowledge base an end-to-end job has re-encoded serves its current version (current.json)
    in torch and local mode alike, as the retrieval actors do, not version 0."""
    from transformers import RagConfig, RagTokenizer

    from rag_job.knowledge.reindex import write_index_version
    from rag_job.knowledge.versions import set_current_version, version_embeddings
    from rag_job.retrieval.retrievers import LocalRagRetriever
    from tests.job.helpers import assert_exact_top_k_in, permuted, stored_embeddings
    from tests.job.kb_files import copy_kb

    kb = copy_kb(tiny_assets.kb_flat_2shards, tmp_path / "kb")
    write_index_version(kb, permuted(stored_embeddings(kb), seed=3), ctx_encoder="/encoders/step-9")
    set_current_version(kb, 1)
    served = version_embeddings(kb, 1)
    queries = question_vectors[:12]

    local = LocalRagRetriever(
        RagConfig.from_pretrained(tiny_assets.rag), RagTokenizer.from_pretrained(tiny_assets.rag), kb
    )
    embeds, ids, _ = local.retrieve(queries, K)
    assert local.version == 1
    assert_exact_top_k_in(served, queries, ids, embeds)

    out = str(tmp_path / "rank")
    mp.spawn(
        _torch_worker,
        args=(2, _free_port(), str(tiny_assets.rag), str(kb), queries, out),
        nprocs=2,
        join=True,
    )
    ids = np.concatenate([np.load(f"{out}-{r}.npz")["ids"] for r in (0, 1)])
    embeds = np.concatenate([np.load(f"{out}-{r}.npz")["embeds"] for r in (0, 1)])
    assert_exact_top_k_in(served, queries, ids, embeds)


def test_local_retriever_returns_passages_of_exact_search(tiny_assets, question_vectors):
    from transformers import RagConfig, RagTokenizer

    from rag_job.retrieval.retrievers import LocalRagRetriever
    from rag_job.retrieval.searcher import load_passages

    retriever = LocalRagRetriever(
        RagConfig.from_pretrained(tiny_assets.rag),
        RagTokenizer.from_pretrained(tiny_assets.rag),
        tiny_assets.kb_flat,
    )
    embeds, ids, docs = retriever.retrieve(question_vectors[:4], K)
    assert_exact_top_k(tiny_assets.kb_flat, question_vectors[:4], ids, embeds)
    passages = load_passages(tiny_assets.kb_flat)
    assert docs[0]["title"] == [passages[int(i)]["title"] for i in ids[0]]


def test_plain_transformers_rag_retriever_reads_the_knowledge_base(tiny_assets, question_vectors):
    """A model trained here must also work with RagRetriever(index_name="custom", ...)."""
    from transformers import RagRetriever

    retriever = RagRetriever.from_pretrained(
        str(tiny_assets.rag),
        index_name="custom",
        passages_path=str(tiny_assets.kb_flat / "passages"),
        index_path=str(tiny_assets.kb_flat / "index.faiss"),
    )
    embeds, ids, _ = retriever.retrieve(question_vectors[:8], K)
    assert_exact_top_k(tiny_assets.kb_flat, question_vectors[:8], ids, embeds)


@pytest.mark.ray
@pytest.mark.parametrize("model_class", ["RagTokenForGeneration", "RagSequenceForGeneration"])
def test_ray_retriever_gives_the_same_loss_as_the_local_retriever(tiny_assets, pool_factory, model_class):
    import torch
    import transformers
    from transformers import RagConfig, RagTokenizer

    from rag_job.retrieval.retrievers import LocalRagRetriever, RayRagRetriever

    config, tokenizer = (
        RagConfig.from_pretrained(tiny_assets.rag),
        RagTokenizer.from_pretrained(tiny_assets.rag),
    )
    pool = pool_factory(tiny_assets.kb_flat_2shards, replicas=1, shards=2)
    inputs = tokenizer(
        ["What is the capital of France?", "Which planet is largest?"], return_tensors="pt", padding=True
    )
    labels = tokenizer.generator(["Paris", "Jupiter"], return_tensors="pt", padding=True)["input_ids"]
    losses = []
    for retriever in (
        LocalRagRetriever(config, tokenizer, tiny_assets.kb_flat_2shards),
        RayRagRetriever(config, tokenizer, tiny_assets.kb_flat_2shards, pool),
    ):
        model = getattr(transformers, model_class).from_pretrained(tiny_assets.rag, retriever=retriever)
        with torch.no_grad():
            losses.append(model(**inputs, labels=labels).loss.sum().item())
        assert retriever.latencies_ms, "the retriever was not called"
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
