"""Fixtures for the operator tests (helpers live in rfj_testlib.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.operator.testlib import EXAMPLES, FakeMemo, load_rayjob_schema


@pytest.fixture(params=sorted(EXAMPLES))
def example_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def rayjob_schema() -> dict[str, Any]:
    return load_rayjob_schema()


@pytest.fixture
def memo() -> FakeMemo:
    """A fresh in-memory Kubernetes API in kopf's memo (no API server runs on these machines)."""
    return FakeMemo()
