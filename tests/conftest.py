"""Fixtures shared by the tests: the session's twin (the same one the features use)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from drills.target import Target, TwinTarget
from drills.twin.manager import Twin


def wait_for(condition: Callable[[], Any], timeout: float, what: str,
             step: float = 0.1) -> Any:
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


@pytest.fixture(scope="session")
def twin(drills_target: Target) -> Twin:
    """The running twin of this test session (started by the drills plugin if needed)."""
    assert isinstance(drills_target, TwinTarget)
    return drills_target.twin


@pytest.fixture
def healthy_twin(twin: Twin) -> Twin:
    """The twin, after making sure it serves at desired capacity again (tests break it)."""
    from drills.twin.manager import _serving

    desired, _ = twin.in_service()
    wait_for(lambda: len(_serving(twin)) >= desired, 60, "the twin to serve at capacity")
    return twin
