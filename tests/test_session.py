"""Session logic: each xdist worker's slice of the twin's ports, what an error that ended a
drill means for its status and the run's exit code."""

from __future__ import annotations

import pytest

from drills.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_TARGET,
    BlastRadiusExceeded,
    ConfigError,
    FaultError,
    NotSteady,
    ObjectiveBreached,
    TargetNotAllowed,
)
from drills.evidence.model import Status
from drills.session import classify, share_ports_between_workers
from drills.twin.ports import free_ports, port_range


def test_each_worker_gets_a_slice_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three workers: three disjoint slices covering the default range in order."""
    monkeypatch.delenv("DRILLS_PORT_RANGE", raising=False)
    whole = port_range()
    slices = []
    for worker in ("gw0", "gw1", "gw2"):
        monkeypatch.delenv("DRILLS_PORT_RANGE", raising=False)
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
        share_ports_between_workers()
        slices.append(port_range())
    assert slices[0].start == whole.start
    assert [s.stop for s in slices[:2]] == [s.start for s in slices[1:]]
    assert slices[2].stop <= whole.stop
    assert all(len(s) == len(whole) // 3 for s in slices)


def test_a_range_given_is_kept_and_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """A DRILLS_PORT_RANGE set by the user wins over the worker's slice, and ports come
    from it."""
    monkeypatch.setenv("DRILLS_PORT_RANGE", "15000-15100")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
    share_ports_between_workers()
    assert port_range() == range(15000, 15100)
    assert all(15000 <= p < 15100 for p in free_ports(5))


def test_a_malformed_range_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRILLS_PORT_RANGE", "lots")
    with pytest.raises(ConfigError, match="DRILLS_PORT_RANGE='lots' must be LOW-HIGH"):
        port_range()


@pytest.mark.parametrize(("error", "status", "code"), [
    (BlastRadiusExceeded("refusing to terminate 2 instance(s)"), Status.ERROR, EXIT_BAD_INPUT),
    (TargetNotAllowed("refusing to drill"), Status.ERROR, EXIT_BAD_INPUT),
    (NotSteady("not steady"), Status.NOT_STEADY, EXIT_TARGET),
    (ObjectiveBreached("breached"), Status.FAILED, EXIT_FAILED),
    (FaultError("could not revert"), Status.ERROR, EXIT_FAILED),
])
def test_a_drill_refused_before_acting_means_bad_input(error: Exception, status: Status,
                                                       code: int) -> None:
    """A drill the guardrails refused (allow-list, blast radius) counts as bad input (2),
    not as a failed drill (1)."""
    assert classify(error)[::2] == (status, code)
