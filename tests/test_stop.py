"""Stop conditions: the alarm watch on real CloudWatch alarms (the twin's AWS endpoint, which
evaluates alarms and keeps their history), then a real `drills run` on the twin stopped
mid-drill by an alarm set to ALARM: every fault reverted, exit 4, `stopped` in the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from drills.clients import Clients
from drills.errors import EXIT_STOPPED
from drills.journal import FaultState, Journal
from drills.stop import AlarmWatch, Tripped
from drills.twin.manager import Twin
from tests.conftest import ROOT, wait_for


def _alarm(clients: Clients) -> str:
    """A new alarm on a metric nobody publishes (it stays out of ALARM by itself)."""
    name = f"Drills-Stop-{uuid.uuid4().hex[:8]}"
    clients("cloudwatch").put_metric_alarm(
        AlarmName=name, Namespace="Drills/Test", MetricName=name, Statistic="Sum",
        Period=60, EvaluationPeriods=1, Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="notBreaching")
    return name


def _set(clients: Clients, name: str, state: str) -> None:
    clients("cloudwatch").set_alarm_state(AlarmName=name, StateValue=state,
                                          StateReason=f"set to {state} by the test")


def _watch(clients: Clients, alarms: tuple[str, ...],
           expected: frozenset[str] = frozenset()) -> AlarmWatch:
    return AlarmWatch(clients("cloudwatch"), alarms, 0.2, lambda: expected, lambda _: None)


def test_an_alarm_in_alarm_trips_the_watch(clients: Clients) -> None:
    """OK: nothing; ALARM: the alarm, with CloudWatch's reason."""
    name = _alarm(clients)
    watch = _watch(clients, (name,))
    assert watch.check() is None
    _set(clients, name, "ALARM")
    tripped = watch.check()
    assert isinstance(tripped, Tripped)
    assert (tripped.alarm, tripped.reason) == (name, "set to ALARM by the test")
    assert f"CloudWatch alarm {name} went to ALARM" in str(tripped)


def test_an_alarm_back_to_ok_between_two_reads_still_trips(clients: Clients) -> None:
    """ALARM then OK before the next read: found in the alarm's history."""
    name = _alarm(clients)
    watch = _watch(clients, (name,))
    assert watch.check() is None
    _set(clients, name, "ALARM")
    _set(clients, name, "OK")
    tripped = watch.check()
    assert tripped is not None
    assert tripped.alarm == name


def test_an_alarm_the_drills_faults_raise_does_not_trip(clients: Clients) -> None:
    """An alarm the injected faults are expected to raise is the drill's own doing."""
    name, other = _alarm(clients), _alarm(clients)
    watch = _watch(clients, (name, other), expected=frozenset({name}))
    _set(clients, name, "ALARM")
    assert watch.check() is None
    _set(clients, other, "ALARM")
    tripped = watch.check()
    assert tripped is not None
    assert tripped.alarm == other


def test_the_watch_calls_on_stop_once_from_its_thread(clients: Clients) -> None:
    """Started, the watch polls; the first trip calls `on_stop` and ends the watch."""
    name = _alarm(clients)
    seen: list[Tripped] = []
    called = threading.Event()

    def on_stop(tripped: Tripped) -> None:
        seen.append(tripped)
        called.set()

    watch = AlarmWatch(clients("cloudwatch"), (name,), 0.2, frozenset, on_stop).start()
    try:
        _set(clients, name, "ALARM")
        assert called.wait(30), "the watch did not trip within 30 s"
        assert [t.alarm for t in seen] == [name]
        assert watch.tripped == seen[0]
    finally:
        watch.stop()
    assert len(seen) == 1


# -- end to end on the twin ------------------------------------------------------------------
@pytest.mark.twin
def test_a_stop_alarm_mid_drill_reverts_at_once_and_stops_the_run(
        healthy_twin: Twin, tmp_path: Path) -> None:
    """`drills run` of the freeze drill with a [stop] alarm: once its fault is journaled,
    the alarm is set to ALARM; the run reverts the fault, exits 4, the report says `stopped`
    with the alarm, and the journal has nothing pending. The twin is production here
    ([allow] production_accounts), so the run needs --allow-production, which the report
    records."""
    twin = healthy_twin
    clients = twin.clients
    name = _alarm(clients)
    objectives = tmp_path / "objectives.toml"
    objectives.write_text(f'[stop]\nalarms = ["{name}"]\npoll = "0.5s"\n'
                          f'[allow]\nproduction_accounts = ["{twin.names.account_id}"]\n')
    journal = Journal(tmp_path / "journal.jsonl")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env.update(DRILLS_JOURNAL=str(journal.path), DRILLS_STATE_DIR=twin.state.state_dir)
    log = tmp_path / "run.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "drills.cli", "run", "--objectives", str(objectives),
             "--allow-production", "--reports", str(tmp_path / "reports"),
             "features/scenarios/nats_node_failure.feature", "--", "-k", "freezes"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        def injected() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"the run ended before injecting:\n{log.read_text()}")
            return any(e.state is FaultState.INJECTED for e in journal.entries())

        wait_for(injected, 240, "the drill's fault to be injected", step=0.2)
        _set(clients, name, "ALARM")
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = log.read_text()
    assert code == EXIT_STOPPED, output
    assert f"CloudWatch alarm {name} went to ALARM" in output
    assert journal.pending() == []
    assert [e.state for e in journal.entries()] == [FaultState.REVERTED]
    report = json.loads(Path(output.strip().splitlines()[-1]).read_text())
    assert report["status"] == "stopped"
    assert report["stop"]["alarm"] == name
    assert report["stop"]["reason"] == "set to ALARM by the test"
    assert report["stop"]["revert_errors"] == []
    [drill] = report["drills"]
    assert drill["status"] == "stopped"
    assert name in drill["error"]
    assert drill["faults"][0]["reverted_utc"]
    assert report["target"]["production"] is True
    assert report["target"]["allow_production"] is True
