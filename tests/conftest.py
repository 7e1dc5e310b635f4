"""Fixtures shared by the tests: the session's twin (the same one the features use)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from drills.clients import Clients
from drills.target import Target, TwinTarget
from drills.twin.aws import AwsEndpoint, start_aws, stop_aws
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


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsEndpoint]:
    """A bare AWS endpoint (moto + fidelity layer) of this module's own, in its own process."""
    endpoint = start_aws(tmp_path_factory.mktemp("aws"))
    yield endpoint
    stop_aws(endpoint)


@pytest.fixture(scope="module")
def clients(aws: AwsEndpoint) -> Clients:
    """boto3 clients aimed at the module's AWS endpoint, in us-east-1."""
    return Clients.for_twin(aws.url, "us-east-1")
