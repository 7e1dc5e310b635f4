"""Session set-up that is pure logic: each xdist worker's slice of the twin's ports."""

from __future__ import annotations

import pytest

from drills.errors import ConfigError
from drills.session import share_ports_between_workers
from drills.twin.nats.spec import free_ports, port_range


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
