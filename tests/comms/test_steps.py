"""The communication steps black-box on the twin: a pytest-bdd project of its own (pytester,
in a subprocess, as a team would write an annual feature) declares an incident, sends updates
until the resolution, and checks arrival and timing; the report holds every message as sent
and as read back from the twin's topic, and no secret of the twin."""

from __future__ import annotations

import json
import os

import pytest

from drills.twin.manager import Twin
from tests.conftest import CREDS_PARAM, ROOT

pytestmark = pytest.mark.twin
pytest_plugins = ["pytester"]

FEATURE = """\
Feature: Communications
  Scenario: The incident's notifications reach the channel at the promised cadence
    Given vault probes are running
    When the incident is declared and the initial notification is sent
    And an update is sent every 1s until recovery
    And 2 updates have gone out
    And the resolution notification is sent with the actual RTO
    Then every notification arrived on the communication channel
    And the first notification went out within 30s of the declaration
    And the updates kept the promised cadence
"""


def test_notifications_arrive_on_the_twins_topic_and_go_into_the_report(
        pytester: pytest.Pytester, twin: Twin, monkeypatch: pytest.MonkeyPatch) -> None:
    """Initial, at least two updates and the resolution are read back from the twin's
    topic exactly as sent, the first within the limit, the updates within [comms]
    update_every; the report and its HTML show them, with the appendix's gap as a finding,
    and no file holds the twin's NATS password."""
    pytester.makefile(".feature", comms=FEATURE)
    pytester.makeconftest('pytest_plugins = ["steps.common", "steps.comms"]\n')
    pytester.makepyfile(test_comms='from pytest_bdd import scenarios\n\n'
                                   'scenarios("comms.feature")\n')
    pytester.makeini("[pytest]\naddopts = -p no:locust\n")
    objectives = pytester.path / "objectives.toml"
    objectives.write_text('[comms]\nupdate_every = "5s"\n', encoding="utf-8")
    for name in [k for k in os.environ if k.startswith("PYTEST_XDIST")]:
        monkeypatch.delenv(name)  # the twin's state directory is used as it is given
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    reports = pytester.path / "reports"
    result = pytester.runpytest_subprocess(
        "--drills-reports", str(reports), "--drills-run-id", "comms-1",
        "--drills-objectives", str(objectives), "--drills-state-dir", twin.state.state_dir,
        "--drills-journal", str(pytester.path / "journal.jsonl"), "-p", "no:cacheprovider",
        timeout=300)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*notification sent: initial #1*"])

    report = json.loads((reports / "comms-1" / "report.json").read_text(encoding="utf-8"))
    (drill,) = report["drills"]
    comms = drill["comms"]
    kinds = [n["kind"] for n in comms["notifications"]]
    assert kinds[0] == "initial"
    assert kinds[-1] == "resolution"
    assert kinds.count("update") >= 2
    for n in comms["notifications"]:
        assert n["received_text"] == n["text"]
        assert n["delivered_after"] is not None
    assert comms["channel"].startswith("SNS topic arn:aws:sns:us-east-1:")
    assert comms["first_notification"] <= comms["first_notification_limit"] == 30
    assert comms["promised_cadence"] == 5
    assert comms["cadence_met"] is True
    assert "vault operations failed in the last 10 s" in comms["impact"]
    assert "no RTO measured in this drill" in comms["notifications"][-1]["text"]
    assert [f["section"] for f in drill["runbook_findings"]] == [
        "Appendix: Communication Templates"]
    assert any(f["kind"] == "runbook" for f in report["findings"])
    html = (reports / "comms-1" / "report.html").read_text(encoding="utf-8")
    assert f"Communications: incident {comms['incident_id']}" in html

    creds = twin.clients("ssm").get_parameter(Name=CREDS_PARAM, WithDecryption=True)[
        "Parameter"]["Value"]
    password = json.loads(creds)["password"]
    for path in (p for p in (reports / "comms-1").rglob("*") if p.is_file()):
        assert password.encode() not in path.read_bytes(), f"the NATS password is in {path}"
