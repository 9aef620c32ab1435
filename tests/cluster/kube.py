"""Small helpers the cluster tests share for reading state through kubectl."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest


def eventually(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll check() until it returns something truthy; fail naming what never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    pytest.fail(f"{what} not reached within {timeout:.0f} s")


def get_json(kubectl, *args: str) -> dict[str, Any]:
    """`kubectl get ARGS -o json`, decoded; fails the test with kubectl's error."""
    done = kubectl("get", *args, "-o", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
