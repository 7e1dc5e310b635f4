"""A drill's load in figures: windows cut at the fault and the recovery, the per-second
series, the load objectives. Requests are written as ASCII timelines, one character per
tenth of a second: '.' an answered request, 'x' a failed one, ' ' nothing."""

from __future__ import annotations

import pytest

from drills.config import LoadSettings
from drills.load.analysis import AFTER, BEFORE, DURING, Marks, judge, percentile, series, windows
from drills.load.records import Request

STEP = 0.1


def requests(spec: str, start: float = 0.0, latency: float = 0.05) -> list[Request]:
    """One request per character completed at `start + i * STEP`."""
    return [Request(start + i * STEP, 0.0, latency * (1 + i % 3), "GET /vault/{id}",
                    "ok" if ch == "." else "busy", "n")
            for i, ch in enumerate(spec) if ch != " "]


def by_name(spec: str, marks: Marks, start: float = 0.0) -> dict[str, object]:
    return {w.name: w for w in windows(requests(spec, start), marks)}


def test_three_windows_cut_at_the_fault_and_the_recovery() -> None:
    """Before the fault, fault to recovery, after recovery: each counts its own requests."""
    #        0    .    1    .    2    .
    spec = "..........xxxxx.x...........   "
    marks = Marks(start=0.0, end=3.0, fault=1.0, recovered=1.7)
    got = by_name(spec, marks)
    before, during, after = got[BEFORE], got[DURING], got[AFTER]
    assert (before.requests, before.failures, before.error_rate) == (10, 0, 0.0)
    assert (during.requests, during.failures) == (7, 6)
    assert during.error_rate == pytest.approx(6 / 7, abs=1e-4)
    assert (after.requests, after.failures) == (11, 0)
    assert (before.start, before.end, during.end, after.end) == (-1.0, 0.0, 0.7, 2.0)
    assert before.throughput == pytest.approx(10.0)
    assert during.outcomes == {"busy": 6}


def test_latency_percentiles_cover_answered_requests_only() -> None:
    """A failure is in the error rate, never in the latency."""
    reqs = [Request(0.1 * i, 0, lat, "r", out, "n") for i, (lat, out) in enumerate(
        [(0.010, "ok"), (0.020, "ok"), (0.030, "ok"), (0.001, "no-responders"),
         (0.040, "ok")])]
    (win, *_) = windows(reqs, Marks(start=0.0, end=1.0))
    assert (win.p50, win.p95, win.p99) == (0.02, 0.04, 0.04)
    assert win.error_rate == pytest.approx(0.2)


def test_a_drill_without_a_fault_has_only_the_first_window() -> None:
    """The other two exist (three windows, always) but have no edges and no request."""
    got = by_name(".....", Marks(start=0.0, end=0.4))
    assert got[BEFORE].requests == 5  # the request at the very end counts
    assert got[DURING].start is None
    assert got[DURING].requests == 0
    assert got[AFTER].start is None
    assert got[AFTER].error_rate is None


def test_without_a_measured_recovery_the_fault_window_runs_to_the_end() -> None:
    """No recovery figure: from the fault to the drill's end, and no window after."""
    got = by_name("....xxxxxx", Marks(start=0.0, end=0.9, fault=0.4))
    assert got[DURING].requests == 6
    assert got[DURING].end == pytest.approx(0.5)
    assert got[AFTER].start is None


def test_requests_outside_the_drill_are_not_counted() -> None:
    """The load runs between drills too: a drill takes its own slice only."""
    got = by_name("xx....xx", Marks(start=0.2, end=0.55), start=0.0)
    assert got[BEFORE].requests == 4
    assert got[BEFORE].failures == 0


def test_series_counts_requests_and_errors_per_second_aligned_on_the_fault() -> None:
    """Seconds start at the fault (t = 0); earlier ones are negative."""
    reqs = [Request(t, 0, 0.01, "r", out, "n") for t, out in [
        (9.2, "ok"), (9.8, "ok"), (10.1, "busy"), (10.5, "ok"), (11.9, "busy"), (12.0, "ok")]]
    points = series(reqs, Marks(start=9.0, end=12.5, fault=10.0, recovered=12.0))
    assert [(p.t, p.requests, p.errors) for p in points] == [
        (-1.0, 2, 0), (0.0, 2, 1), (1.0, 1, 1), (2.0, 1, 0), (3.0, 0, 0)][:len(points)]
    assert sum(p.requests for p in points) == 6


def test_percentile_is_nearest_rank() -> None:
    """p95 of 1..100 is 95; of nothing, None."""
    assert percentile([float(v) for v in range(100, 0, -1)], 0.95) == 95.0
    assert percentile([], 0.5) is None


def test_error_rate_objective_breached_and_met() -> None:
    """max_error_rate_during_fault compares the fault window's error rate."""
    cut = windows(requests("....xx..xx......"), Marks(0.0, 1.5, fault=0.4, recovered=1.0))
    loose = judge(LoadSettings(users=1, max_error_rate_during_fault=0.7), cut)
    tight = judge(LoadSettings(users=1, max_error_rate_during_fault=0.5), cut)
    assert loose[0].measured == pytest.approx(4 / 6, abs=1e-4)
    assert loose[0].met
    assert not tight[0].met


def test_a_fault_window_without_requests_meets_the_error_rate_objective() -> None:
    """No outage the probes saw (recovered at the fault): nothing failed in it."""
    cut = windows(requests("......"), Marks(0.0, 0.5, fault=0.2, recovered=0.2))
    (result,) = judge(LoadSettings(users=1, max_error_rate_during_fault=0.0), cut)
    assert result.met
    assert result.measured is None
    assert "no load request" in result.note


def test_latency_objective_needs_answers_after_recovery() -> None:
    """p95_latency_after_recovery: unmet when nothing was answered after recovery."""
    cut = windows(requests("....xxxx"), Marks(0.0, 0.7, fault=0.4))
    (result,) = judge(LoadSettings(users=1, p95_latency_after_recovery=1.0), cut)
    assert not result.met
    assert result.measured is None
    fine = windows(requests("....xx....", latency=0.1), Marks(0.0, 0.9, fault=0.4,
                                                               recovered=0.6))
    (ok,) = judge(LoadSettings(users=1, p95_latency_after_recovery=0.3), fine)
    (slow,) = judge(LoadSettings(users=1, p95_latency_after_recovery=0.2), fine)
    assert ok.met
    assert not slow.met
