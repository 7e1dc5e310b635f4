"""One run's load: a drill's slice of it becomes evidence (windows, series, the load users'
RPO), load objectives fail a passing drill, and a locust that died is reported from when."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from drills.config import SERVICE_COMPONENT, LoadSettings, runbook_objectives
from drills.errors import ObjectiveBreached
from drills.evidence.model import DrillRecord, Status
from drills.journal import utc_now
from drills.load.analysis import AFTER, BEFORE, DURING, Marks
from drills.load.run import LoadRun, Verifier
from drills.load.verify import VaultReader
from tests.load.fakeapi import FakeApi

SETTINGS = LoadSettings(users=3, spawn_rate=3, think_time=(0.1, 0.3), request_timeout=2.0,
                        max_duration=120)
OBJECTIVE = runbook_objectives().for_component(SERVICE_COMPONENT)


class StubTarget:
    """What LoadRun asks of a target: where the API is, its CA, its ledger (none here)."""

    def __init__(self, api: FakeApi) -> None:
        self.api = api

    def api_url(self) -> str:
        return self.api.url

    def ca_bundle(self) -> Path:
        return self.api.ca

    def ledger(self) -> None:
        return None

    def resolver(self) -> None:
        return None  # the system's DNS (the fake API's URL is an address)


def record() -> DrillRecord:
    return DrillRecord("d", "a drill", "f", "f.feature", [], utc_now())


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def load_run(fake_api: FakeApi, tmp_path: Path) -> Iterator[Callable[..., LoadRun]]:
    runs: list[LoadRun] = []

    def start(settings: LoadSettings = SETTINGS) -> LoadRun:
        run = LoadRun(settings, StubTarget(fake_api), tmp_path, lambda m: None)  # type: ignore[arg-type]
        runs.append(run)
        run.start()
        return run

    yield start
    for run in runs:
        run.stop()


def requests_after(run: LoadRun, moment: float, ok: bool | None = None) -> int:
    return sum(r.at > moment and (ok is None or r.ok is ok)
               for r in run.processes.log.read().requests)


def test_a_drill_under_load_gets_three_windows_a_series_and_a_second_rpo(
        fake_api: FakeApi, load_run: Callable[..., LoadRun]) -> None:
    """An outage between the fault and the recovery shows in the middle window only, and
    the load users' acknowledged writes are all found again."""
    run = load_run()
    start = time.monotonic()
    wait_until(lambda: requests_after(run, start, ok=True) >= 3, 60, "load before the fault")
    fault = time.monotonic()
    fake_api.vaults.down = True
    wait_until(lambda: requests_after(run, fault, ok=False) >= 3, 60, "failures")
    fake_api.vaults.down = False
    recovered = time.monotonic()
    wait_until(lambda: requests_after(run, recovered, ok=True) >= 3, 60, "load after recovery")
    drill = record()
    breach = run.figure(drill, Marks(start, time.monotonic(), fault, recovered), OBJECTIVE,
                        Verifier(VaultReader(fake_api.url, fake_api.ca, timeout=2.0)))
    assert breach is None
    load = drill.load
    assert load is not None
    windows = {w.name: w for w in load.windows}
    assert windows[BEFORE].failures == 0
    assert windows[DURING].failures >= 3
    assert windows[DURING].outcomes.get("no-responders", 0) >= 1
    assert windows[AFTER].requests >= 3
    assert sum(p.requests for p in load.series) == sum(w.requests for w in load.windows)
    assert load.recovered_at == pytest.approx(recovered - fault, abs=1e-3)
    assert load.rpo is not None
    assert load.rpo.acknowledged > 0
    assert load.rpo.lost == 0
    assert load.requests_file == "load/requests.jsonl"
    assert (run.report_dir / load.requests_file).exists()


def test_a_missed_load_objective_fails_a_passing_drill(
        fake_api: FakeApi, load_run: Callable[..., LoadRun]) -> None:
    """The error rate from the fault to recovery above the objective is a breach, said in
    the drill's error; a drill that failed already keeps its own error."""
    run = load_run(replace(SETTINGS, max_error_rate_during_fault=0.1))
    fault = time.monotonic()
    fake_api.vaults.down = True
    wait_until(lambda: requests_after(run, fault, ok=False) >= 3, 60, "failures")
    fake_api.vaults.down = False
    marks = Marks(fault - 1.0, time.monotonic(), fault, time.monotonic())
    drill = record()
    breach = run.figure(drill, marks, OBJECTIVE, None)
    assert isinstance(breach, ObjectiveBreached)
    assert drill.status is Status.FAILED
    assert "max error rate during fault" in (drill.error or "")
    failed = record()
    failed.status, failed.error = Status.ERROR, "its own error"
    assert run.figure(failed, marks, OBJECTIVE, None) is None
    assert failed.error == "its own error"


def test_a_locust_that_dies_mid_drill_is_reported_from_when(
        load_run: Callable[..., LoadRun]) -> None:
    """The drill goes on; its load record says when locust stopped, and the next drill's
    says it had no load."""
    said: list[str] = []
    run = load_run()
    run.say = said.append
    start = time.monotonic()
    wait_until(lambda: requests_after(run, start) >= 1, 60, "a request")
    os.kill(run.processes.pids["locust"], signal.SIGKILL)
    wait_until(lambda: run.processes.stopped is not None, 30, "the death to be noticed")
    drill = record()
    run.figure(drill, Marks(start, time.monotonic(), start), OBJECTIVE, None)
    assert drill.load is not None
    assert drill.load.stopped_at is not None
    assert drill.load.stopped_at >= 0
    assert any("went on without load" in n for n in drill.load.notes)
    assert any("exited" in m for m in said)
    later = record()
    begin = time.monotonic()
    run.figure(later, Marks(begin, begin + 1.0, begin), OBJECTIVE, None)
    assert later.load is not None
    assert any("no load during this drill" in n for n in later.load.notes)
