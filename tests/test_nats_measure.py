"""Measuring a service that flaps: recovered only once no probe failed for a settle window,
and the RTO taken at the first success after the last failure (pure logic on synthetic
probe timelines; no system is touched)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from drills.config import Settings, runbook_objectives
from drills.measure import Outcome, ProbeResult
from drills.nats_measure import _stable, measure_service_stable

K = 3


def _timeline(origin: float, spec: list[tuple[float, bool]]) -> list[ProbeResult]:
    """Probe results completing at origin + t, ok or timed out."""
    return [ProbeResult(i, origin + t - 0.05, origin + t, "", Outcome.OK if ok else
                        Outcome.TIMEOUT, "" if ok else "timeout: no reply")
            for i, (t, ok) in enumerate(spec)]


@dataclass
class _Probes:
    items: list[ProbeResult]

    def results(self) -> list[ProbeResult]:
        return list(self.items)


@dataclass
class _Fault:
    injected_at: float
    fault_id: str = "f-test"


@dataclass
class _Record:
    measurements: list[Any] = field(default_factory=list)


class _Observer:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def measured(self, record: Any, measurement: Any) -> None:
        self.seen.append(measurement)


class _Drill:
    """The parts of `Drill` the NATS measurements use."""

    def __init__(self, injected_at: float, results: list[ProbeResult]) -> None:
        self.settings = Settings(objectives=runbook_objectives())
        self.probes = _Probes(results)
        self.last_fault = _Fault(injected_at)
        self.record = _Record()
        self.observer = _Observer()

    def progress(self, message: str, *, every: float = 1.0) -> None:
        pass

    def record_measurement(self, measurement: Any) -> Any:
        self.record.measurements.append(measurement)
        self.observer.measured(self.record, measurement)
        return measurement


def _flapping(now: float) -> tuple[float, list[ProbeResult]]:
    """Every seventh probe fails for 80 s after the fault (six successes in a row between
    failures, more than K), then 15 s of successes."""
    origin = now - 100
    spec = [(t / 10, (t % 7) != 0) for t in range(1, 800)]
    spec += [(80 + t / 10, True) for t in range(1, 150)]
    return origin, _timeline(origin, spec)


def test_stable_needs_the_settle_window_and_k_successes() -> None:
    """Not stable while the last failure is younger than the window or fewer than K
    successes followed it; stable once both hold."""
    now = time.monotonic()
    young = _timeline(now - 5, [(1, False), (2, True), (3, True), (4, True)])
    assert not _stable(young, now - 5, settle=10, k=K)
    old = _timeline(now - 30, [(1, False), (2, True), (3, True), (4, True)])
    assert _stable(old, now - 30, settle=10, k=K)
    too_few = _timeline(now - 30, [(1, False), (2, True)])
    assert not _stable(too_few, now - 30, settle=10, k=K)


def test_flapping_service_is_measured_at_its_last_failure() -> None:
    """K successes in a row happen within the first second of this flapping timeline (a
    first-K-run rule would call it recovered there); the measurement ignores them and
    reports recovery just after the last failure (~79.9 s), every outage kept as evidence."""
    origin, results = _flapping(time.monotonic())
    drill = _Drill(origin, results)
    m = measure_service_stable(drill, "NATS Cluster")  # type: ignore[arg-type]
    last_failure = max(r.done for r in results if not r.ok) - origin
    assert m.verdict == "recovered"
    assert m.rto == pytest.approx(last_failure + 0.1, abs=0.01)
    assert m.met
    assert len(m.outages) > 100
    assert drill.record.measurements == [m] == drill.observer.seen


def test_a_service_still_flapping_at_the_deadline_is_not_recovered() -> None:
    """If failures continue past the measurement window (twice the 300 s objective) plus the
    settle window, the verdict is not-recovered with no RTO, and the objective is breached."""
    now = time.monotonic()
    origin = now - 700  # window 600 s + settle 10 s already behind us
    results = _timeline(origin, [(t, t % 2 == 0) for t in range(1, 700)])
    m = measure_service_stable(_Drill(origin, results), "NATS Cluster")  # type: ignore[arg-type]
    assert (m.verdict, m.rto, m.met) == ("not-recovered", None, False)


def test_no_failure_at_all_is_no_outage() -> None:
    """A service that never failed after the fault reads no-outage, RTO 0, met."""
    now = time.monotonic()
    origin = now - 20
    results = _timeline(origin, [(t / 10, True) for t in range(1, 190)])
    m = measure_service_stable(_Drill(origin, results), "NATS Cluster")  # type: ignore[arg-type]
    assert (m.verdict, m.rto, m.met) == ("no-outage", 0.0, True)
