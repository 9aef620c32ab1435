"""`RagRetriever` subclasses for the three retrieval modes.

Each overrides `retrieve()` only and returns exactly what `RagRetriever.retrieve`
returns (doc embeddings [B, k, D], doc ids [B, k], doc dicts), so
`RagTokenForGeneration` and `RagSequenceForGeneration` work unchanged. Trainers keep
the passages dataset (memory-mapped Arrow, for titles and texts) but never load the
FAISS index in `ray` mode: that lives in the retrieval actors.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from transformers import RagConfig, RagRetriever, RagTokenizer
from transformers.models.rag.retrieval_rag import Index

from rag_job.retrieval.pool import RetrievalPool
from rag_job.retrieval.searcher import KnowledgeBaseSearcher, load_passages


class PassagesIndex(Index):
    """Titles and texts by doc id; searching is someone else's job."""

    def __init__(self, dataset):
        self.dataset = dataset.select_columns(["title", "text"])

    def get_doc_dicts(self, doc_ids: np.ndarray) -> list[dict]:
        return [self.dataset[np.maximum(row, 0).tolist()] for row in doc_ids]

    def get_top_docs(self, question_hidden_states: np.ndarray, n_docs: int = 5):
        raise NotImplementedError("PassagesIndex only looks passages up; search goes through the retriever")

    def is_initialized(self) -> bool:
        return True

    def init_index(self) -> None:
        return None


class _TimedRetriever(RagRetriever):
    """Common construction, and the per-call latency the training loop reports."""

    def __init__(self, config: RagConfig, tokenizer: RagTokenizer, kb_dir: str | Path, passages_path=None):
        self.kb_dir = str(kb_dir)
        self.latencies_ms: list[float] = []
        #: End-to-end training may set a `rag_job.retrieval.rerank.ContextReranker`.
        self.reranker = None
        super().__init__(
            config,
            question_encoder_tokenizer=tokenizer.question_encoder,
            generator_tokenizer=tokenizer.generator,
            index=PassagesIndex(load_passages(kb_dir, passages_path)),
            init_retrieval=False,
        )

    def _search(self, queries: np.ndarray, n_docs: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def retrieve(self, question_hidden_states: np.ndarray, n_docs: int):
        started = time.perf_counter()
        queries = np.asarray(question_hidden_states, dtype=np.float32)
        if self.reranker is not None and self.reranker.candidates > n_docs:
            doc_ids, _ = self._search(queries, self.reranker.candidates)
            self.latencies_ms.append((time.perf_counter() - started) * 1000)  # the search, not the rerank
            doc_ids, doc_embeds = self.reranker(queries, doc_ids, n_docs)
            return doc_embeds, doc_ids, self.index.get_doc_dicts(doc_ids)
        doc_ids, doc_embeds = self._search(queries, n_docs)
        self.latencies_ms.append((time.perf_counter() - started) * 1000)
        return doc_embeds, doc_ids, self.index.get_doc_dicts(doc_ids)

    def take_latencies(self) -> list[float]:
        """Latencies since the last call (the training loop drains them each step)."""
        taken, self.latencies_ms = self.latencies_ms, []
        return taken

    def take_retries(self) -> int:
        """Retrieval calls retried since the last call (only a remote pool retries)."""
        return 0


class RayRagRetriever(_TimedRetriever):
    """Asks the retrieval actors (least-loaded replica of every shard) over Ray."""

    def __init__(self, config, tokenizer, kb_dir, pool: RetrievalPool, passages_path=None):
        self.pool = pool
        super().__init__(config, tokenizer, kb_dir, passages_path)

    def _search(self, queries, n_docs):
        _, ids, embeds = self.pool.search(queries, n_docs)
        return ids, embeds

    def take_retries(self) -> int:
        return self.pool.take_retries()


class LocalRagRetriever(_TimedRetriever):
    """Searches an in-process copy of every shard: the floor no remote scheme can beat.

    It serves the knowledge base's current index version (`current.json`, version 0 when there
    is none), as the retrieval actors do; end-to-end training moves it with `switch_to`."""

    def __init__(self, config, tokenizer, kb_dir, passages_path=None):
        from rag_job.knowledge.versions import current_version

        self.searcher = KnowledgeBaseSearcher(kb_dir, version=current_version(kb_dir))
        super().__init__(config, tokenizer, kb_dir, passages_path)

    @property
    def version(self) -> int:
        """The index version this retriever searches."""
        return self.searcher.version

    def switch_to(self, version: int) -> None:
        """Open index `version` (checked against its manifest), then search it instead: a search
        running meanwhile finishes on the old searcher, whose files stay open until then."""
        if version == self.searcher.version:
            return
        opened = KnowledgeBaseSearcher(self.kb_dir, version=version)
        previous, self.searcher = self.searcher, opened
        previous.close()

    def _search(self, queries, n_docs):
        _, ids, embeds = self.searcher.search(queries, n_docs)
        return ids, embeds


class TorchDistributedRagRetriever(_TimedRetriever):
    """The baseline: gather every rank's queries to rank 0, search there, scatter the results.

    Uses its own gloo group (CPU tensors) even when training runs NCCL, like the
    published Hugging Face implementation. Every rank must call `retrieve` the same
    number of times (true in data-parallel training, where each step retrieves once).
    Rank 0 serves the knowledge base's current index version, as every other mode does.
    """

    def __init__(self, config, tokenizer, kb_dir, passages_path=None, group=None):
        import torch.distributed as dist

        from rag_job.knowledge.versions import current_version

        self.group = group if group is not None else dist.new_group(backend="gloo")
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.searcher = (
            KnowledgeBaseSearcher(kb_dir, version=current_version(kb_dir)) if self.rank == 0 else None
        )
        super().__init__(config, tokenizer, kb_dir, passages_path)

    def _search(self, queries, n_docs):
        import torch
        import torch.distributed as dist

        dim = queries.shape[1]
        size = torch.tensor([queries.shape[0]], dtype=torch.int64)
        sizes = [torch.zeros_like(size) for _ in range(self.world_size)]
        dist.all_gather(sizes, size, group=self.group)
        longest = int(max(s.item() for s in sizes))
        padded = torch.zeros(longest, dim, dtype=torch.float32)
        padded[: queries.shape[0]] = torch.from_numpy(queries)
        gathered = [torch.zeros_like(padded) for _ in range(self.world_size)] if self.rank == 0 else None
        dist.gather(padded, gather_list=gathered, dst=0, group=self.group)

        ids_out = torch.zeros(longest, n_docs, dtype=torch.int64)
        embeds_out = torch.zeros(longest, n_docs, dim, dtype=torch.float32)
        ids_list = embeds_list = None
        if self.rank == 0:
            all_queries = torch.cat(
                [g[: int(s.item())] for g, s in zip(gathered, sizes, strict=True)]
            ).numpy()
            _, ids, embeds = self.searcher.search(all_queries, n_docs)
            ids_list, embeds_list, offset = [], [], 0
            for s in sizes:
                count = int(s.item())
                ids_pad = torch.zeros(longest, n_docs, dtype=torch.int64)
                embeds_pad = torch.zeros(longest, n_docs, dim, dtype=torch.float32)
                ids_pad[:count] = torch.from_numpy(ids[offset : offset + count])
                embeds_pad[:count] = torch.from_numpy(embeds[offset : offset + count])
                ids_list.append(ids_pad)
                embeds_list.append(embeds_pad)
                offset += count
        dist.scatter(ids_out, scatter_list=ids_list, src=0, group=self.group)
        dist.scatter(embeds_out, scatter_list=embeds_list, src=0, group=self.group)
        count = queries.shape[0]
        return ids_out[:count].numpy(), embeds_out[:count].numpy()
