"""Ground truth for retrieval tests."""

from __future__ import annotations

import numpy as np

K = 5


def stored_embeddings(kb_dir) -> np.ndarray:
    """Every passage's embedding as build-index stored it (index version 0's)."""
    from rag_job.retrieval.searcher import load_passages

    return np.asarray(load_passages(kb_dir).with_format("numpy")["embeddings"], dtype=np.float32)


def exact_top_k(kb_dir, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute force over every stored embedding: the ground truth (ids, embeddings)."""
    table = stored_embeddings(kb_dir)
    ids = np.argsort(-(queries @ table.T), axis=1, kind="stable")[:, :k]
    return ids, table[ids]


def assert_exact_top_k(kb_dir, queries: np.ndarray, ids: np.ndarray, embeds: np.ndarray, k: int = K) -> None:
    """`ids`/`embeds` are an exact top-k over the knowledge base's stored embeddings."""
    assert_exact_top_k_in(stored_embeddings(kb_dir), queries, ids, embeds, k)


def assert_exact_top_k_in(
    table: np.ndarray, queries: np.ndarray, ids: np.ndarray, embeds: np.ndarray, k: int = K
) -> None:
    """`ids`/`embeds` are an exact top-k over `table`: the brute-force scores, each id's own row.

    Passages whose scores tie to float rounding may come in either order (FAISS and numpy
    sum in different orders), so ids are compared through their scores, and each row must
    hold k distinct passages.
    """
    all_scores = queries @ table.T
    expected_ids = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
    got_scores = np.take_along_axis(all_scores, ids, axis=1)
    want_scores = np.take_along_axis(all_scores, expected_ids, axis=1)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(embeds, table[ids])
    assert all(len(set(row.tolist())) == k for row in ids), "a passage appears twice in one top-k"


def permuted(table: np.ndarray, seed: int) -> np.ndarray:
    """Embeddings that give other passages the top scores: only an index over them returns them."""
    return table[np.random.default_rng(seed).permutation(len(table))]


def flip_middle_byte(path) -> None:
    """Change a file's content, not its size (only a checksum can tell)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
