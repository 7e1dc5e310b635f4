"""Replication lag from observed events: brackets, percentiles and verdicts, from timelines."""

from __future__ import annotations

import pytest

from drills.config import Objective
from drills.errors import ConfigError
from drills.measure.replication import (
    Arrival,
    LagSummary,
    Tracker,
    lag_measurements,
    nearest_rank,
)
from drills.measure.timeline import Verdict

INTERVAL = 0.1
ROUND_TRIP = 0.01


def watched(**timelines: tuple[float, str]) -> Tracker:
    """Polls every INTERVAL from 0, each answered ROUND_TRIP later. Per key: (its ack, one
    character per poll: ' ' the key was not looked for, '.' missed, 'o' seen)."""
    tracker = Tracker()
    for key, (acked, _) in timelines.items():
        tracker.expect(key, acked)
    length = max(len(spec) for _, spec in timelines.values())
    for i in range(length):
        looked = [k for k, (_, spec) in timelines.items() if i < len(spec) and spec[i] != " "]
        seen = {k for k in looked if timelines[k][1][i] == "o"}
        tracker.observe(i * INTERVAL, i * INTERVAL + ROUND_TRIP, looked, seen)
    return tracker


def test_lag_runs_from_the_ack_to_the_first_sighting_bracketed_by_the_last_miss() -> None:
    """Acked at 0.05; missed by the polls sent at 0.1 and 0.2; seen by the one sent at 0.3
    (answered 0.31): lag 0.26 s, at least 0.15 s (the last miss was sent 0.15 s after)."""
    (lag,) = watched(a=(0.05, " ..o")).lags()
    assert lag.lag == pytest.approx(0.26)
    assert lag.lower == pytest.approx(0.15)


def test_a_copy_seen_by_the_first_poll_has_a_lower_bound_of_zero() -> None:
    """No poll missed it: it may have arrived at the ack itself."""
    (lag,) = watched(a=(0.05, " o")).lags()
    assert lag.lag == pytest.approx(0.06)
    assert lag.lower == 0.0


def test_a_poll_sent_before_the_ack_proves_nothing_about_the_write() -> None:
    """A poll that was already in flight when the write was acknowledged is ignored, whether
    it saw the copy or not: only the poll sent at 0.3 counts."""
    tracker = Tracker()
    tracker.expect("a", 0.25)
    tracker.observe(0.2, 0.21, ["a"], {"a"})  # sent before the ack: ignored
    assert tracker.pending() == ["a"]
    tracker.observe(0.3, 0.31, ["a"], {"a"})
    (lag,) = tracker.lags()
    assert lag.lag == pytest.approx(0.06)


def test_only_the_keys_a_poll_looked_for_are_judged() -> None:
    """A key acknowledged while a poll was in flight is not 'missed' by that poll."""
    tracker = Tracker()
    tracker.expect("a", 0.0)
    tracker.expect("b", 0.0)
    tracker.observe(0.1, 0.11, ["a"], set())
    lags = {x.key: x for x in tracker.lags()}
    assert lags["a"].last_miss == pytest.approx(0.1)
    assert lags["b"].last_miss is None


def test_a_key_is_tracked_once() -> None:
    """Two writes under one key would make their lags indistinguishable."""
    tracker = Tracker()
    tracker.expect("a", 0.0)
    with pytest.raises(ConfigError, match="already tracked"):
        tracker.expect("a", 1.0)


@pytest.mark.parametrize(("values", "q", "expected"), [
    (list(range(1, 101)), 0.5, 50),
    (list(range(1, 101)), 0.99, 99),
    (list(range(1, 101)), 1.0, 100),
    (list(range(1, 41)), 0.99, 40),  # fewer than 100 values: p99 is the maximum
    ([7.0], 0.5, 7.0),
    ([3, 1, 2], 0.5, 2),
])
def test_nearest_rank_percentiles(values: list[float], q: float, expected: float) -> None:
    """The smallest value with at least q of the values at or below it."""
    assert nearest_rank(values, q) == expected


def test_a_percentile_of_nothing_is_refused() -> None:
    with pytest.raises(ConfigError):
        nearest_rank([], 0.5)


def test_percentiles_carry_the_bracket_of_their_rank() -> None:
    """Three writes, seen 1, 2 and 4 polls after their ack: p50 is the middle lag, its lower
    end the middle of the lower ends; max the slowest."""
    summary = LagSummary.of(watched(a=(0.0, ".o"), b=(0.0, "..o"), c=(0.0, "....o")).lags(),
                            objective=1.0)
    p50, p99, worst = (summary.quantile(n) for n in ("p50", "p99", "max"))
    assert p50.lag == pytest.approx(0.21)
    assert p50.lower == pytest.approx(0.1)
    assert p50.uncertainty == pytest.approx(0.11)
    assert p99.lag == worst.lag == pytest.approx(0.41)
    assert worst.lower == pytest.approx(0.3)
    assert summary.met
    assert "p50 0.21 s" in summary.describe()


def test_a_copy_later_than_the_objective_is_late_and_breaches_it() -> None:
    """Seen after 0.41 s against an objective of 0.3 s: late, and the max breaches it."""
    summary = LagSummary.of(watched(a=(0.0, ".o"), b=(0.0, "....o")).lags(), objective=0.3)
    assert [x.key for x in summary.by_arrival(Arrival.LATE)] == ["b"]
    assert [x.key for x in summary.by_arrival(Arrival.WITHIN)] == ["a"]
    assert not summary.met


def test_a_copy_never_seen_makes_the_max_not_happen() -> None:
    """One of two copies never arrived: the max did not happen (nor the p99, the same rank
    here), the p50 is the copy that arrived; the objective is not met."""
    summary = LagSummary.of(watched(a=(0.0, ".o"), b=(0.0, ".....")).lags(), objective=10.0)
    assert summary.quantile("max").lag is None
    assert summary.quantile("p99").lag is None
    assert summary.quantile("p50").lag == pytest.approx(0.11)
    assert [x.key for x in summary.by_arrival(Arrival.MISSING)] == ["b"]
    assert not summary.met
    assert "1 never seen" in summary.describe()


def test_lag_measurements_are_one_figure_per_quantile_against_the_objective() -> None:
    """p50, p99 and max as evidence records: met when within the objective, not-reached when
    the quantile fell on a copy never seen."""
    objective = Objective("S3 Replication", 0.3)
    summary = LagSummary.of(watched(a=(0.0, ".o"), b=(0.0, ".o"), c=(0.0, ".....")).lags(),
                            objective.rto)
    p50, p99, worst = lag_measurements("replication lag", objective, summary, "markers")
    assert [m.name for m in (p50, p99, worst)] == ["replication lag p50",
                                                   "replication lag p99", "replication lag max"]
    assert p50.met
    assert p50.rto == pytest.approx(0.11)
    assert p50.uncertainty == pytest.approx(0.11)
    assert p50.component == "S3 Replication"
    assert p50.objective_rto == 0.3
    assert worst.verdict is Verdict.NOT_REACHED
    assert worst.rto is None
    assert not worst.met
