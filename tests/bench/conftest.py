"""The benchmark tests run on the suite's shared multi-node Ray cluster (tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def bench_cluster(ray_cluster):
    """Trainer and retrieval nodes; the bench functions use the cluster this process drives."""
    return ray_cluster
