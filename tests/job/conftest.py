"""Session fixtures for the job side: tiny models and knowledge bases built once, one Ray cluster.

The Ray cluster emulates the Kubernetes layout on one machine with
`ray.cluster_utils.Cluster`: a head with no CPUs (driver only), one node with
`rag_trainer` and two nodes with `rag_retrieval`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DATA = REPO / "examples" / "data"
EXAMPLE_KB = EXAMPLE_DATA / "knowledge_base.jsonl"


@dataclass(frozen=True)
class TinyAssets:
    root: Path
    rag: Path
    ctx_encoder: Path
    kb_flat: Path
    kb_flat_2shards: Path
    kb_hnsw: Path
    qa_train: Path


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory) -> TinyAssets:
    """Tiny RAG checkpoint and three knowledge bases over the shipped example passages."""
    from rag_job.knowledge.index import encode_passages, write_knowledge_base
    from rag_job.knowledge.ingest import ingest
    from rag_job.local.tiny_models import build_tiny_models

    root = tmp_path_factory.mktemp("tiny")
    report = ingest(EXAMPLE_KB)
    qa_train = EXAMPLE_DATA / "qa_train.jsonl"
    from rag_job.train.data import read_qa_texts

    corpus = [f"{p.title} {p.text}" for p in report.passages] + read_qa_texts(qa_train)
    paths = build_tiny_models(corpus, root / "models")  # no DPR warm-up: tests need no good retrieval
    embeddings = encode_passages(report.passages, paths.ctx_encoder, progress=False)
    kbs = {}
    for name, index_type, shards in (("flat", "flat", 1), ("flat2", "flat", 2), ("hnsw", "hnsw", 1)):
        kbs[name] = root / f"kb-{name}"
        write_knowledge_base(report.passages, embeddings, kbs[name], index_type, shards)
    return TinyAssets(
        root=root,
        rag=paths.rag,
        ctx_encoder=paths.ctx_encoder,
        kb_flat=kbs["flat"],
        kb_flat_2shards=kbs["flat2"],
        kb_hnsw=kbs["hnsw"],
        qa_train=qa_train,
    )


@pytest.fixture
def kb_copy(tiny_assets, tmp_path) -> Path:
    """A private copy of the two-shard knowledge base, for tests that write index versions into it."""
    import shutil

    return shutil.copytree(tiny_assets.kb_flat_2shards, tmp_path / "kb")


@pytest.fixture(scope="session")
def question_vectors(tiny_assets) -> np.ndarray:
    """The tiny DPR question encoder's embeddings of the shipped training questions."""
    import torch
    from transformers import RagTokenForGeneration, RagTokenizer

    from rag_job.train.data import read_examples

    questions = [ex.question for ex in read_examples(tiny_assets.qa_train)][:64]
    model = RagTokenForGeneration.from_pretrained(tiny_assets.rag)
    tokenizer = RagTokenizer.from_pretrained(tiny_assets.rag).question_encoder
    with torch.inference_mode():
        inputs = tokenizer(questions, padding=True, return_tensors="pt")
        vectors = model.rag.question_encoder(inputs["input_ids"], attention_mask=inputs["attention_mask"])[0]
    return vectors.numpy().astype(np.float32)


@pytest.fixture
def pool_factory(ray_cluster):
    """Start retrieval pools under unique names and kill their actors afterwards."""
    import ray

    from rag_job.retrieval.actor import start_retrieval_actors
    from rag_job.retrieval.pool import PoolSpec, RetrievalPool

    started = []

    def make(kb_dir, replicas: int, shards: int) -> RetrievalPool:
        spec = PoolSpec(
            name_prefix=f"test-{len(started)}-{np.random.randint(1 << 30)}", shards=shards, replicas=replicas
        )
        handles = start_retrieval_actors(str(kb_dir), shards, replicas, spec.name_prefix, actor_cpus=0.5)
        pool = RetrievalPool(spec, handles, retry_seconds=60)
        pool.wait_ready()
        started.append(handles)
        return pool

    yield make
    for handles in started:
        for row in handles:
            for handle in row:
                ray.kill(handle, no_restart=True)
