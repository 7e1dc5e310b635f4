"""Findings: a breach becomes a finding with an id, carried until a run passes its drill."""

from __future__ import annotations

import pytest

from drills.evidence.findings import carry, finding_id, observed
from drills.evidence.model import (
    DrillRecord,
    Finding,
    Measurement,
    RunRecord,
    Status,
    StepRecord,
)
from tests.conftest import Runs

T0 = "2026-01-01T00:00:00.000Z"


@pytest.mark.twin
def test_breached_objective_becomes_a_finding(runs: Runs) -> None:
    """Each drill breaching the 0.2 s capacity objective yields one open, high finding."""
    data = runs.report("breach")
    assert runs.codes["breach"] == 1
    findings = data["findings"]
    assert len(findings) == len(data["drills"]) == 2
    for f in findings:
        assert f["status"] == "open"
        assert not f["carried_over"]
        assert f["kind"] == "rto"
        assert f["component"] == "Nitro Enclave ASG"
        assert f["severity"] == "high"  # P1 component
        assert f["objective"] == 0.2
        assert f["first_seen_run"] == data["run_id"]
        assert f["finding_id"] == finding_id(f["drill_key"], "rto",
                                             "capacity/Nitro Enclave ASG")


@pytest.mark.twin
def test_findings_are_carried_into_a_run_that_did_not_exercise_their_drill(runs: Runs) -> None:
    """The outage run did not run the breached drills: their findings stay open, carried."""
    before = {f["finding_id"]: f for f in runs.report("breach")["findings"]}
    carried = {f["finding_id"]: f for f in runs.report("outage")["findings"]}
    assert set(carried) == set(before)
    for fid, f in carried.items():
        assert f["status"] == "open"
        assert f["carried_over"]
        assert f["first_seen_run"] == before[fid]["first_seen_run"]


@pytest.mark.twin
def test_a_run_that_passes_the_drill_closes_its_findings(runs: Runs) -> None:
    """The monthly run passes the single-instance drills and closes both findings."""
    data = runs.report("monthly")
    passed = {d["feature_path"] + "::" + d["name"] for d in data["drills"]
              if d["status"] == "passed"}
    closed = [f for f in data["findings"] if f["finding_id"] in
              {x["finding_id"] for x in runs.report("breach")["findings"]}]
    assert len(closed) == 2
    for f in closed:
        assert f["drill_key"] in passed
        assert f["status"] == "closed"
        assert f["closed_by_run"] == data["run_id"]


def _run(status: Status, met: bool, run_id: str = "run-2") -> RunRecord:
    drill = DrillRecord("n", "Scenario", "Feature", "f.feature", ["enclave"], T0,
                        status=status)
    drill.measurements.append(Measurement(
        "service", "Nitro Enclave ASG", 300.0, "recovered" if met else "not-recovered",
        12.0 if met else None, 11.9 if met else None, 0.1 if met else None, 1.0, met, "f-1",
        "probes"))
    drill.steps.append(StepRecord("Then", "vault operations recover", T0,
                                  status=Status.PASSED if met else Status.FAILED))
    return RunRecord(run_id, "monthly", [], {"kind": "twin"}, "0", None, T0,
                     {"components": {"Nitro Enclave ASG": {"priority": "P1"}}},
                     status=status, drills=[drill])


def test_finding_ids_depend_on_what_failed_not_on_the_message() -> None:
    """The same breach in two runs has the same id; another drill or figure another id."""
    one = observed(_run(Status.FAILED, False, "a"), _run(Status.FAILED, False, "a").drills[0])
    two = observed(_run(Status.FAILED, False, "b"), _run(Status.FAILED, False, "b").drills[0])
    assert [f.finding_id for f in one] == [f.finding_id for f in two]
    assert finding_id("x::y", "rto", "service/A") != finding_id("x::y", "rto", "capacity/A")
    assert one[0].kind == "rto"  # the breach, not the step that reported it


def test_a_repeated_finding_keeps_its_first_sighting() -> None:
    """Seen again: occurrences grow, first-seen and remediation stay."""
    first = _run(Status.FAILED, False, "run-1")
    (earlier,) = observed(first, first.drills[0])
    earlier.occurrences = 2
    again = _run(Status.FAILED, False, "run-2")
    (merged,) = carry([earlier], observed(again, again.drills[0]), again)
    assert merged.first_seen_run == "run-1"
    assert merged.occurrences == 3
    assert merged.last_seen_run == "run-2"
    assert merged.status == "open"


def test_an_error_outside_any_measurement_is_a_step_finding() -> None:
    """A failed step without a breached figure becomes a 'step' finding naming the step."""
    run = _run(Status.FAILED, True)
    run.drills[0].steps[0].status = Status.FAILED
    run.drills[0].steps[0].error = "ObjectiveBreached: no failure seen"
    (f,) = observed(run, run.drills[0])
    assert f.kind == "step"
    assert "vault operations recover" in f.title


def test_an_unreverted_fault_is_a_critical_finding() -> None:
    """A revert error is a critical finding even when the drill otherwise passed."""
    from drills.evidence.model import FaultRecord

    run = _run(Status.PASSED, True)
    run.drills[0].faults.append(FaultRecord("f-1", "kms.disable", "key", "disable key", T0,
                                            None, "AccessDenied"))
    (f,) = observed(run, run.drills[0])
    assert f.kind == "revert"
    assert f.severity == "critical"


def test_open_findings_of_other_drills_are_not_closed() -> None:
    """Only a pass of the finding's own drill closes it."""
    other = Finding("F-00000000", "other.feature::X", "X", "Other", "rto", "high", "t", "d")
    run = _run(Status.PASSED, True)
    (kept,) = carry([other], [], run)
    assert kept.status == "open"
    assert kept.carried_over
