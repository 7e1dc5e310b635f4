"""`Drill.measure_probes` on synthetic probe timelines: the settle window, flapping, a
deadline, no outage (pure measurement logic; no system is touched, the target and the
injector are stand-ins holding only what the measurement reads)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from drills.config import ProbeSettings, Settings, runbook_objectives
from drills.drill import Drill
from drills.evidence.model import DrillRecord
from drills.evidence.observer import RunObserver
from drills.faults import ActiveFault
from drills.measure.timeline import Outcome, ProbeResult, Verdict

K = 3


def _timeline(origin: float, spec: list[tuple[float, bool]]) -> list[ProbeResult]:
    """Probe results completing at origin + t, ok or timed out."""
    return [ProbeResult(i, origin + t - 0.05, origin + t, "", Outcome.OK if ok else
                        Outcome.TIMEOUT, "" if ok else "timeout: no reply")
            for i, (t, ok) in enumerate(spec)]


@dataclass
class _Seen(RunObserver):
    measured_: list[Any] = field(default_factory=list)

    def measured(self, drill: DrillRecord, measurement: Any) -> None:
        self.measured_.append(measurement)


def _drill(origin: float, settle: float = 10.0, span: float = 0.0) -> tuple[Drill, _Seen]:
    fault = ActiveFault("f-test", SimpleNamespace(describe=lambda: "a fault"),  # type: ignore[arg-type]
                        "2026-12-01T00:00:00.000Z", origin, span)
    injector = SimpleNamespace(active=[fault])
    target = SimpleNamespace(settle=30.0)
    settings = Settings(objectives=runbook_objectives(),
                        probes=ProbeSettings(consecutive=K, settle=settle))
    record = DrillRecord("d", "n", "f", "p", [], "2026-12-01T00:00:00.000Z")
    seen = _Seen()
    drill = Drill(record, settings, target, injector, None, None, seen,  # type: ignore[arg-type]
                  path="nats")
    return drill, seen


def test_a_flapping_service_is_measured_to_its_last_stable_run() -> None:
    """K successes in a row happen early in this timeline (a first-K-run rule would call it
    recovered there); the verdict is flapping and the RTO is the first success after the last
    failure (~79.9 s), every outage kept as evidence."""
    origin = time.monotonic() - 100
    spec = [(t / 10, (t % 7) != 0) for t in range(1, 800)]
    spec += [(80 + t / 10, True) for t in range(1, 150)]
    results = _timeline(origin, spec)
    drill, seen = _drill(origin)
    m = drill.measure_probes("NATS Cluster", lambda: results, interval=0.1, method="m")
    last_failure = max(r.done for r in results if not r.ok) - origin
    assert m.verdict is Verdict.FLAPPING
    assert m.rto == pytest.approx(last_failure + 0.1, abs=0.01)
    assert m.met
    assert len(m.outages) > 100
    assert m.path == "nats"
    assert drill.record.measurements == [m] == seen.measured_


def test_a_service_still_flapping_at_the_deadline_is_not_recovered() -> None:
    """If failures continue past the measurement window (twice the 300 s objective) plus the
    settle window, the verdict is not-recovered with no RTO, and the objective is breached."""
    origin = time.monotonic() - 700  # window 600 s + settle 10 s already behind us
    results = _timeline(origin, [(t, t % 2 == 0) for t in range(1, 700)])
    drill, _ = _drill(origin)
    m = drill.measure_probes("NATS Cluster", lambda: results, interval=0.1, method="m")
    assert (m.verdict, m.rto, m.met) == (Verdict.NOT_RECOVERED, None, False)


def test_no_failure_at_all_is_no_outage_once_settled() -> None:
    """A service that never failed after the fault reads no-outage, RTO 0, met."""
    origin = time.monotonic() - 20
    results = _timeline(origin, [(t / 10, True) for t in range(1, 190)])
    drill, _ = _drill(origin)
    m = drill.measure_probes("NATS Cluster", lambda: results, interval=0.1, method="m")
    assert (m.verdict, m.rto, m.met) == (Verdict.NO_OUTAGE, 0.0, True)


def test_the_settle_window_defaults_to_the_targets() -> None:
    """Without [probes] settle, a drill settles for its target's window (the twin's profile)."""
    drill, _ = _drill(0.0, settle=None)  # type: ignore[arg-type]
    assert drill.settle == 30.0


def test_the_fault_s_acting_time_widens_the_bracket() -> None:
    """The recorded lower bound moves down by the time the fault took to act."""
    origin = time.monotonic() - 50
    spec = [(t / 10, t > 20) for t in range(1, 400)]
    results = _timeline(origin, spec)
    plain, _ = _drill(origin)
    spanned, _ = _drill(origin, span=0.3)
    a = plain.measure_probes("NATS Cluster", lambda: results, interval=0.1, method="m")
    b = spanned.measure_probes("NATS Cluster", lambda: results, interval=0.1, method="m")
    assert a.rto == b.rto
    assert b.uncertainty == pytest.approx(a.uncertainty + 0.3)
