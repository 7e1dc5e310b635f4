"""MTTR phases (`drills.measure.mttr`): each phase between two observed moments, the total
against the objective, and a moment that never came."""

from __future__ import annotations

from drills.measure.mttr import Moments, mttr


def test_the_phases_cut_the_time_to_recovery_at_the_observed_moments() -> None:
    """Incident at 0, paged at 40 s, acknowledged at 100 s, decided at 400 s, recovered at
    700 s: four phases that add up to the total, within a 30-minute objective."""
    result = mttr(Moments(paged=40.0, acknowledged=100.0, decided=400.0, recovered=700.0),
                  objective=1800.0)
    assert [(p.name, p.start, p.end, p.duration) for p in result.phases] == [
        ("detection", 0.0, 40.0, 40.0), ("response", 40.0, 100.0, 60.0),
        ("diagnosis-and-decision", 100.0, 400.0, 300.0), ("recovery", 400.0, 700.0, 300.0)]
    assert sum(p.duration or 0 for p in result.phases) == result.total == 700.0
    assert result.met


def test_recovery_past_the_objective_is_not_met() -> None:
    """A total of 31 minutes breaches the 30-minute objective."""
    result = mttr(Moments(60.0, 120.0, 1500.0, 1860.0), objective=1800.0)
    assert result.total == 1860.0
    assert not result.met


def test_a_moment_that_never_came_leaves_its_phases_and_the_total_open() -> None:
    """Nobody acknowledged the page: response and diagnosis have no duration; and with no
    recovery there is no total, which does not meet the objective."""
    result = mttr(Moments(paged=30.0, acknowledged=None, decided=200.0, recovered=None),
                  objective=1800.0)
    durations = {p.name: p.duration for p in result.phases}
    assert durations == {"detection": 30.0, "response": None,
                         "diagnosis-and-decision": None, "recovery": None}
    assert result.total is None
    assert not result.met
