"""The annual exercise (`features/annual/full_dr_exercise.feature`) as people run it:
`drills run` in a pseudo-terminal, the operators answering its human steps at the prompts,
the executor running runbook 5.2 step 1 with the aws CLI themselves; the report records
each acknowledgement, who made it and when, the MTTR phases and the soak.

(The same feature also runs through `steps/test_drills.py`, without a terminal: there every
human step is automated, which the suite's report of it shows.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drills.session import new_run_id
from drills.twin import manager
from drills.twin.manager import Twin
from tests.conftest import ROOT

pexpect = pytest.importorskip("pexpect")
pytestmark = [pytest.mark.twin, pytest.mark.long]

SELECTION = "annual"  # the tag: one drill, and an annual run's report
THINK = 1.0  # seconds an operator takes before answering a prompt


def _run_5_2_step_1(twin: Twin) -> None:
    """What the executor types: runbook 5.2 step 1 with the aws CLI, pointed at the twin
    as `eval "$(drills twin env --region us-west-2)"` points a shell."""
    names = twin.names
    env = dict(os.environ, **manager.env(Path(twin.state.state_dir), names.dr_region))
    subprocess.run(["aws", "autoscaling", "set-desired-capacity", "--auto-scaling-group-name",
                    names.dr_asg, "--desired-capacity", "2"], env=env, check=True,
                   capture_output=True, timeout=60)


def test_an_interactive_exercise_records_each_acknowledgement_and_its_time(
        healthy_twin: Twin, tmp_path: Path) -> None:
    """Every human step is prompted at the terminal with its runbook text; Enter answers
    as the operator of the step's role, a typed name as that person; the watched step ends
    when the DR ASG's desired capacity changes, after the executor ran the command. The
    report marks every step interactive, with who, when and how long it took, and carries
    the MTTR phases and a soak labelled as a rehearsal."""
    reports, run_id = tmp_path / "reports", new_run_id("annual")
    # What is under test is the people's side; a probe that waits 2 s, not 0.5 s, keeps a
    # loaded shared machine from turning slow answers into outages of the soak.
    objectives = tmp_path / "objectives.toml"
    objectives.write_text("[probes]\ntimeout = 2\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env.update(DRILLS_STATE_DIR=healthy_twin.state.state_dir,
               DRILLS_JOURNAL=str(tmp_path / "journal.jsonl"))
    child = pexpect.spawn(
        sys.executable, ["-m", "drills.cli", "run", SELECTION, "--soak", "5s", "--objectives",
                         str(objectives), "--reports",
                         str(reports), "--run-id", run_id, "--operator", "Lee:on-call-l1",
                         "--operator", "Dana:incident-commander", "--operator", "Sam:executor"],
        cwd=str(ROOT), env=env, encoding="utf-8", timeout=600, dimensions=(60, 220))
    child.logfile_read = (tmp_path / "terminal.log").open("w", encoding="utf-8")
    answers = [("acknowledge the page as L1", ""), ("acknowledge the page as L2", "Kim"),
               ("acknowledge the page as L3", ""), ("acknowledge the page as L4", ""),
               ("declare a disaster", ""), ("approve failover to the DR region", "")]
    try:
        for action, typed in answers:
            child.expect_exact(f"human step: {action}")
            child.expect_exact("> ")
            time.sleep(THINK)
            child.sendline(typed)
            child.expect_exact("acknowledged by")
        child.expect_exact("human step: scale up")
        child.expect_exact("aws autoscaling set-desired-capacity")
        child.expect_exact("watches for the effect")
        time.sleep(THINK)
        _run_5_2_step_1(healthy_twin)
        child.expect_exact("effect seen after")
        for action in ("confirm the smoke tests", "approve failback"):
            child.expect_exact(f"human step: {action}")
            child.expect_exact("> ")
            time.sleep(THINK)
            child.sendline("")
            child.expect_exact("acknowledged by")
        child.expect(pexpect.EOF, timeout=900)
    finally:
        child.close()
        child.logfile_read.close()
    terminal = (tmp_path / "terminal.log").read_text(encoding="utf-8")
    assert child.exitstatus == 0, terminal[-4000:]
    report = json.loads((reports / run_id / "report.json").read_text(encoding="utf-8"))
    (drill,) = report["drills"]
    steps = {h["key"]: h for h in drill["human_steps"]}
    assert list(steps) == ["ack-L1", "ack-L2", "ack-L3", "ack-L4", "declare",
                           "approve-failover", "run-failover", "confirm-smoke-tests",
                           "approve-failback"]
    assert {h["mode"] for h in steps.values()} == {"interactive"}
    assert [(steps[k]["by"], steps[k]["by_role"]) for k in
            ("ack-L1", "ack-L2", "approve-failover", "run-failover", "confirm-smoke-tests")] == [
        ("Lee", "on-call-l1"), ("Kim", "on-call-l2"), ("Dana", "incident-commander"),
        ("Sam", "executor"), ("Sam", "executor")]
    for human in steps.values():
        assert human["took"] >= THINK, human  # each waited for its person
        assert human["asked_utc"] < human["answered_utc"]
    answered = [h["answered_at"] for h in steps.values()]
    assert answered == sorted(answered)  # timed on the incident's clock, in order
    assert steps["run-failover"]["effect"] == "effect seen"
    assert "set-desired-capacity" in steps["run-failover"]["command"]
    levels = [(e["level"], e["after"]) for e in drill["escalation"]]
    assert [lvl for lvl, _ in levels] == ["L1", "L2", "L3", "L4"]
    assert [after for _, after in levels] == sorted(after for _, after in levels)
    mttr = drill["mttr"]
    phases = {p["name"]: p["duration"] for p in mttr["phases"]}
    assert phases["response"] >= THINK  # L1 took its time to acknowledge the page
    assert phases["diagnosis-and-decision"] >= 4 * THINK  # L2-L4, declare, approve
    assert mttr["met"]
    assert mttr["total"] == pytest.approx(sum(phases.values()), abs=0.01)
    soak = drill["soak"]
    assert soak["rehearsal"]
    assert soak["planned"] == 5.0
    assert soak["ran"] >= 5.0
    assert soak["outages"] == []
    assert {"name": "Lee", "role": "on-call-l1"} in report["participants"]
    html = (reports / run_id / "report.html").read_text(encoding="utf-8")
    assert "MTTR as people experienced it" in html
    assert "INTERACTIVE" in html
    comms = report["drills"][0]["comms"]  # runbook 7.3 item 4, read back from the channel
    assert [n["kind"] for n in comms["notifications"]] == ["initial", "resolution"]
    assert all(n["received_text"] == n["text"] for n in comms["notifications"])
    assert "Communications: incident" in html
    assert 'id="objectives-review"' in html  # runbook 7.3 item 5, from the run index
