"""The soak in the DR region (`drills.measure.soak`): what it watches in its window, its
outages (each a finding), the rehearsal label, and progress on the long wait."""

from __future__ import annotations

import time

from drills.measure.canary import CanaryWrite
from drills.measure.soak import REQUIRED, Soak
from drills.measure.timeline import Outcome, ProbeResult

INTERVAL = 0.1


def timeline(spec: str, start: float) -> list[ProbeResult]:
    """Probes answered every INTERVAL from `start`: '.' success, 'x' failure."""
    return [ProbeResult(i, start + i * INTERVAL - 0.01, start + i * INTERVAL, "",
                        Outcome.OK if ch == "." else Outcome.ERROR,
                        "" if ch == "." else "503 no enclave")
            for i, ch in enumerate(spec)]


def writes(acked: str, start: float) -> list[CanaryWrite]:
    """Canary writes done every INTERVAL from `start`: 'a' acknowledged, '-' not."""
    return [CanaryWrite(i, f"v{i}", 1, "", start + i * INTERVAL - 0.05, start + i * INTERVAL,
                        "", ch == "a") for i, ch in enumerate(acked)]


def test_outages_in_the_window_are_listed_from_the_incident() -> None:
    """Two groups of at least K failures separated by K successes are two outages, timed
    from the exercise's origin; a lone failure is noted, not an outage; probes and writes
    outside the window are not counted."""
    origin = 100.0
    probes = timeline("xx......xxx.....x.x.x.....x....", start=200.0)
    soak = Soak("us-west-2", 60.0, lambda: probes, lambda: writes("aa-aa", 200.0), None,
                origin, consecutive=3)
    record = soak.summary(200.15, 203.05)  # leaves out the first two failures
    assert [(o.start, o.end, o.failures) for o in record.outages] == [
        (100.8, 101.0, 3), (101.6, 102.0, 3)]
    assert record.outages[0].first_error == "503 no enclave"
    assert (record.probes, record.probe_failures) == (29, 7)
    assert record.notes[-1] == ("1 failed probe(s) in groups of fewer than 3: not counted "
                                "as an outage")
    assert (record.canary_acknowledged, record.canary_failed) == (2, 1)
    assert record.start_at == 100.15


def test_a_soak_shorter_than_four_hours_is_a_rehearsal_and_says_so() -> None:
    """It runs for its duration, reads the backlog each sample, reports progress with the
    rehearsal label, and records the time actually run against the 4 hours required."""
    lines: list[str] = []
    backlog = iter(range(100))
    start = time.monotonic()
    probes = timeline("." * 20, start)
    soak = Soak("us-west-2", 0.5, lambda: probes, lambda: [], lambda: next(backlog), start,
                sample=0.1, progress=lines.append)
    record = soak.run()
    assert 0.5 <= record.ran < 2.0
    assert record.planned == 0.5
    assert record.rehearsal
    assert record.required == REQUIRED == 4 * 3600
    assert record.outages == []
    assert record.replication_samples >= 4
    assert record.replication_backlog_max == record.replication_samples - 1
    assert lines
    assert "(rehearsal: the runbook requires 4h)" in lines[0]
    assert "replication backlog" in lines[-1]


def test_without_a_backlog_reader_the_soak_says_replication_was_not_observable() -> None:
    """A target that cannot read the backlog: no samples, and a note saying what to watch."""
    record = Soak("us-west-2", REQUIRED, lambda: [], lambda: [], None, None).summary(0.0, 1.0)
    assert record.replication_samples == 0
    assert record.replication_backlog_max is None
    assert "OperationsPendingReplication" in record.notes[0]
    assert record.start_at is None
