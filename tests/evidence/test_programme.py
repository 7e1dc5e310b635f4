"""Exercise programme: runbook items mapped from features, and overdue by cadence."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pytest_bdd.parser import FeatureParser

from drills.evidence.analysis import exercises
from drills.evidence.fmt import parse_utc, utc_text
from drills.evidence.index import IndexedDrill, IndexEntry
from drills.evidence.model import CommsRecord, DrillRecord, NotificationRecord
from drills.evidence.programme import (
    BY_ID,
    MAX_AGE_DAYS,
    Exercise,
    compliance,
    history_text,
    items_for,
)
from drills.evidence.remediation import Attestation, TeamFile
from tests.conftest import Runs

FEATURES = Path(__file__).resolve().parents[2] / "features"
NOW = parse_utc("2026-06-30T12:00:00Z")

#: What the features of the foundation must map to (others map by the same table).
EXPECTED = {
    "One enclave instance is terminated and replaced by the ASG": {"7.1.5", "3.1"},
    "The enclave process crashes and the ASG health check replaces the instance":
        {"7.1.5", "3.1"},
    "Every instance is terminated and the ASG brings the service back": {"3.2", "4.1"},
    "Capacity forced to zero, recovered by runbook 4.1 step 4": {"3.2", "4.1"},
    # Runbook 7.1 items 1-3: one item each, though they share a feature (and its path)
    "Marker objects reach the replica bucket in us-west-2 with a lag under the objective "
    "(runbook 7.1 item 1)": {"7.1.1"},
    "Items written in either region reach the other, and a conflict converges on the later "
    "write (runbook 7.1 item 2, global table consistency)": {"7.1.2"},
    "A ciphertext of the sealing key decrypts through its multi-Region replica key (runbook "
    "7.1 item 3)": {"7.1.3"},
    "The multi-Region replica key decrypts while the sealing key's own region does not "
    "answer (runbook 7.1 item 3)": {"7.1.3"},
    "Every version of a vault's data object is deleted and the object copied back from the "
    "replica bucket in us-west-2 (runbook 4.4 step 3)": {"3.5", "4.4"},
    # Runbook 7.2: the quarterly exercise walks all six items (5.2 and 5.3 with it)
    "Planned failover to us-west-2 and failback to us-east-1":
        {"7.2.1", "7.2.2", "7.2.3", "7.2.4", "7.2.5", "7.2.6", "5.2", "5.3"},
    # Runbook 3.6, recovered by 5.2 and 5.3: a complete regional failover
    "us-east-1 goes dark while apps write; the service fails over to us-west-2":
        {"3.6", "5.2", "5.3", "7.2.3", "7.2.5", "7.3.1"},
}


def _drills() -> list[DrillRecord]:
    out = []
    for path in sorted(FEATURES.rglob("*.feature")):
        rel = str(path.relative_to(FEATURES))
        feature = FeatureParser(str(FEATURES), rel).parse()
        for name, scenario in feature.scenarios.items():
            out.append(DrillRecord("id", name, feature.name, rel,
                                   sorted(scenario.tags | feature.tags), "2026-01-01T00:00:00Z",
                                   description=feature.description))
    return out


def test_foundation_features_map_to_their_runbook_items() -> None:
    """The single-instance and complete-failure drills exercise 7.1.5/3.1 and 3.2/4.1; the
    DR region's checks 7.1.1-7.1.3 one each, and restoring from the replica 3.5/4.4."""
    mapped = {d.name: set(items_for(d)) for d in _drills()}
    for name, items in EXPECTED.items():
        assert mapped[name] == items, name


def test_every_feature_maps_to_at_least_one_runbook_item() -> None:
    """No drill in features/ is invisible to the programme (tag or text names its item)."""
    unmapped = [f"{d.feature_path}::{d.name}" for d in _drills() if not items_for(d)]
    assert not unmapped, f"add these to the table in drills/evidence/programme.py: {unmapped}"


def test_every_section_7_item_a_drill_exercises_has_a_feature() -> None:
    """Each runbook 7 checklist item a drill can exercise maps from some feature: the monthly,
    quarterly and annual runs together rehearse the whole section (7.3.2 by the annual's
    soak, 7.3.4 by its notifications, 7.3.3 and 7.3.5 by the annual run itself)."""
    by_runs = {"7.3.2", "7.3.3", "7.3.4", "7.3.5"}
    mapped = {item for d in _drills() for item in items_for(d, rehearsal=True)}
    section_7 = {i.item_id for i in BY_ID.values() if i.cadence} - by_runs
    assert section_7 - mapped == set()


def test_a_section_number_inside_another_does_not_match() -> None:
    """'7.3.1' in a description is not a reference to scenario 3.1."""
    d = DrillRecord("id", "Something", "Feature", "x.feature", [], "2026-01-01T00:00:00Z",
                    description="see runbook 7.3.1")
    assert "3.1" not in items_for(d)


@pytest.mark.parametrize("cadence", ["monthly", "quarterly", "annual"])
def test_cadence_items_are_overdue_after_their_allowed_age(cadence: str) -> None:
    """A monthly item is on schedule 31 days after its exercise and overdue a minute later
    (quarterly 92, annual 366 days)."""
    item = next(i for i in BY_ID.values() if i.cadence == cadence)
    days = MAX_AGE_DAYS[cadence]
    for age, status in [(timedelta(days=days), "ok"),
                        (timedelta(days=days, minutes=1), "overdue")]:
        done = Exercise(item.item_id, utc_text(NOW - age), "r", "passed", "account")
        row = next(r for r in compliance([done], NOW) if r.item_id == item.item_id)
        assert row.status == status, (cadence, age)
        assert row.due_utc == utc_text(NOW - age + timedelta(days=days))


def test_never_exercised_cadence_items_say_never() -> None:
    """With no evidence, cadence items are 'never' and scenarios 'not-exercised'."""
    rows = compliance([], NOW)
    assert {r.status for r in rows if r.cadence} == {"never"}
    assert {r.status for r in rows if not r.cadence} == {"not-exercised"}


def test_a_failed_attempt_does_not_count_and_says_so() -> None:
    """A drill that ran and failed exercises nothing: the item stays as it was (never, or
    overdue), and shows "last attempt failed on <date>"."""
    earlier = Exercise("7.1.5", utc_text(NOW - timedelta(days=40)), "a", "passed", "account")
    failed = Exercise("7.1.5", utc_text(NOW), "b", "failed", "account")
    rows = {r.item_id: r for r in compliance([failed], NOW)}
    assert rows["7.1.5"].status == "never"
    assert rows["7.1.5"].last_failed_utc == utc_text(NOW)
    rows = {r.item_id: r for r in compliance([earlier, failed], NOW)}
    assert rows["7.1.5"].status == "overdue"
    assert rows["7.1.5"].last_run_id == "a"
    assert "last attempt failed on" in history_text(rows["7.1.5"])


def test_twin_rehearsals_never_put_an_item_on_schedule() -> None:
    """A passing twin run is a rehearsal: listed beside the item, never 'ok'; with a passing
    account run the item is on schedule and the rehearsal is still shown."""
    rehearsal = Exercise("7.1.5", utc_text(NOW), "t", "passed", "twin")
    rows = {r.item_id: r for r in compliance([rehearsal], NOW)}
    assert rows["7.1.5"].status == "rehearsed"
    assert rows["7.1.5"].last_exercised_utc is None
    assert rows["7.1.5"].last_rehearsal_result == "passed"
    assert rows["3.1"].status == "not-exercised"
    scenario = Exercise("3.1", utc_text(NOW), "t", "passed", "twin")
    assert {r.item_id: r for r in compliance([scenario], NOW)}["3.1"].status == "rehearsed"
    account = Exercise("7.1.5", utc_text(NOW - timedelta(days=1)), "a", "passed", "account")
    rows = {r.item_id: r for r in compliance([account, rehearsal], NOW)}
    assert rows["7.1.5"].status == "ok"
    assert rows["7.1.5"].last_rehearsal_utc == utc_text(NOW)


def test_on_call_participation_and_attestations_count() -> None:
    """7.3.3 is met by an annual run with an on-call participant; attested items by the file."""
    entry = IndexEntry("r", "annual", "2026-06-01T00:00:00Z", "2026-06-01T01:00:00Z", "passed",
                       "account", "us-east-1", "r",
                       participants=[{"name": "A", "role": "On-call engineer"}],
                       drills=[IndexedDrill("k", "n", "f", "skipped", ["7.1.5"])])
    team = TeamFile(attestations=[Attestation("7.2.2", "2026-06-10", "Support lead")])
    rows = {r.item_id: r for r in compliance(exercises([entry], team), NOW)}
    assert rows["7.3.3"].status == "ok"
    assert rows["7.2.2"].status == "ok"
    assert rows["7.2.2"].last_result == "attested"
    assert rows["7.1.5"].status == "never"  # a skipped drill exercised nothing


def test_an_annual_runs_objectives_review_rehearses_7_3_5_and_only_the_team_exercises_it(
        ) -> None:
    """7.3.5 (update RTO/RPO from the actual times) is the team's decision: the annual run's
    objectives review, even on an account, only rehearses it; the attestation exercises it."""
    entry = IndexEntry("r", "annual", "2026-06-01T00:00:00Z", "2026-06-01T01:00:00Z", "passed",
                       "account", "us-east-1", "r")
    rows = {r.item_id: r for r in compliance(exercises([entry], TeamFile()), NOW)}
    assert rows["7.3.5"].status == "rehearsed"
    assert rows["7.3.5"].last_rehearsal_result == "passed"
    team = TeamFile(attestations=[Attestation("7.3.5", "2026-06-10", "Platform architect")])
    rows = {r.item_id: r for r in compliance(exercises([entry], team), NOW)}
    assert rows["7.3.5"].status == "ok"
    failed = IndexEntry("f", "annual", "2026-06-01T00:00:00Z", "2026-06-01T01:00:00Z",
                        "failed", "twin", "us-east-1", "f")
    rows = {r.item_id: r for r in compliance(exercises([failed], TeamFile()), NOW)}
    assert (rows["7.3.5"].status, rows["7.3.5"].last_rehearsal_result) == ("never", "failed")


def test_notifications_seen_to_arrive_exercise_the_communication_procedures() -> None:
    """7.3.4: a drill whose notifications were sent and seen to arrive tests the
    communication procedures; sent but never seen to arrive does not."""
    def drill(received: str | None) -> DrillRecord:
        note = NotificationRecord("initial", 1, "initial", "s", "t", "2026-06-01T00:00:00Z",
                                  1.0, received_text=received)
        return DrillRecord("id", "n", "f", "x.feature", [], "2026-06-01T00:00:00Z",
                           comms=CommsRecord("sns", "INC-1", "", "", "", "",
                                             notifications=[note]))
    assert "7.3.4" in items_for(drill("t"))
    assert "7.3.4" not in items_for(drill(None))


@pytest.mark.twin
def test_reports_show_what_was_exercised_when(runs: Runs) -> None:
    """After only twin runs, the monthly report shows 7.1.5 rehearsed (this run), never on
    schedule, and the earlier runs' scenarios rehearsed; items nobody exercised are 'never'."""
    rows = {p["item_id"]: p for p in runs.report("monthly")["programme"]}
    assert rows["7.1.5"]["status"] == "rehearsed"
    assert rows["7.1.5"]["in_this_run"]
    assert rows["7.1.5"]["target_kind"] is None
    assert rows["7.1.5"]["last_rehearsal_result"] == "passed"
    assert rows["3.2"]["status"] == "rehearsed"
    assert rows["7.2.3"]["status"] == "never"
    assert not [p for p in rows.values() if p["status"] == "ok"]
