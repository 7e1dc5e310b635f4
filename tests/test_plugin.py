"""The plugin black-box, through pytester: an @expected_breach scenario passes only by
breaching at its last step (a pytest-bdd project of its own; no target is needed)."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

FEATURE = """\
Feature: Expected breaches
  @expected_breach
  Scenario: breaches at the last step
    Given a step that passes
    Then the objective is breached

  @expected_breach
  Scenario: breaches too early
    Given the objective is breached
    Then a step that passes

  @expected_breach
  Scenario: never breaches
    Given a step that passes
    Then a step that passes

  Scenario: an ordinary drill breaches
    Given a step that passes
    Then the objective is breached
"""

STEPS = """\
from pytest_bdd import given, scenarios, then
from drills.errors import ObjectiveBreached

scenarios("drills.feature")


@given("a step that passes")
@then("a step that passes")
def passes() -> None:
    pass


@given("the objective is breached")
@then("the objective is breached")
def breached() -> None:
    raise ObjectiveBreached("RPO breached: 3 of 10 acknowledged writes lost")
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".feature", drills=FEATURE)
    pytester.makepyfile(test_steps=STEPS)
    pytester.makeini("[pytest]\naddopts = -p no:locust\n")
    return pytester


def test_an_expected_breach_passes_only_at_its_last_step(project: pytest.Pytester) -> None:
    """At the last step: expected-breach (the run does not fail on it); earlier: failed;
    no breach: failed (the tag outlived the flaw, or the drill stopped detecting it); an
    ordinary drill's breach fails as usual."""
    reports = project.path / "reports"
    result = project.runpytest("--drills-reports", str(reports), "--drills-run-id", "r1",
                               "-p", "no:cacheprovider")
    result.assert_outcomes(xfailed=1, failed=3)
    report = json.loads((reports / "r1" / "report.json").read_text())
    status = {d["name"]: d["status"] for d in report["drills"]}
    assert status == {"breaches at the last step": "expected-breach",
                      "breaches too early": "failed", "never breaches": "failed",
                      "an ordinary drill breaches": "failed"}
    early = next(d for d in report["drills"] if d["name"] == "breaches too early")
    assert "before its last step" in early["error"]
    kinds = {f["drill"]: f["kind"] for f in report["findings"]}
    assert kinds["breaches at the last step"] == "procedure"


TWIN_ONLY = """\
Feature: Twin only
  @twin_only
  Scenario: deletes a key for good
    Given a step that passes

  Scenario: safe anywhere
    Given a step that passes
"""


def test_twin_only_scenarios_are_skipped_on_an_account(pytester: pytest.Pytester) -> None:
    """On --drills-target aws a @twin_only scenario is skipped with the reason, before
    anything runs; the others run. On the twin both run."""
    pytester.makefile(".feature", drills=TWIN_ONLY)
    pytester.makepyfile(test_steps=STEPS)
    pytester.makeini("[pytest]\naddopts = -p no:locust\n")
    reports = pytester.path / "reports"
    account = pytester.runpytest("--drills-reports", str(reports), "--drills-target", "aws",
                                 "-p", "no:cacheprovider", "-rs")
    account.assert_outcomes(passed=1, skipped=1)
    account.stdout.fnmatch_lines(["*@twin_only*runs only on the local twin*"])
    twin = pytester.runpytest("--drills-reports", str(reports), "-p", "no:cacheprovider")
    twin.assert_outcomes(passed=2)
