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


def _on_an_account(pytester: pytest.Pytester, feature: str, steps: str
                   ) -> pytest.RunResult:
    """Run a project of `feature` and `steps` with --drills-target aws, skip reasons shown."""
    pytester.makefile(".feature", drills=feature)
    pytester.makepyfile(test_steps=steps)
    pytester.makeini("[pytest]\naddopts = -p no:locust\n")
    return pytester.runpytest("--drills-reports", str(pytester.path / "reports"),
                              "--drills-target", "aws", "-p", "no:cacheprovider", "-rs")


def test_twin_only_scenarios_are_skipped_on_an_account(pytester: pytest.Pytester) -> None:
    """On --drills-target aws a @twin_only scenario is skipped with the reason, before
    anything runs; the others run. On the twin both run."""
    account = _on_an_account(pytester, TWIN_ONLY, STEPS)
    account.assert_outcomes(passed=1, skipped=1)
    account.stdout.fnmatch_lines(["*needs disposable (@twin_only), which the account target "
                                  "lacks; runs on the local twin*"])
    twin = pytester.runpytest("--drills-reports", str(pytester.path / "reports"),
                              "-p", "no:cacheprovider")
    twin.assert_outcomes(passed=2)


NEEDS = """\
Feature: Needs
  Scenario: kills a NATS node
    Given a step that passes
    When a step injects a NATS fault

  Scenario: reads the backlog
    Given a step that passes
    Then a step reads the replication backlog

  Scenario: safe anywhere
    Given a step that passes
"""

NEEDS_STEPS = STEPS + """
from drills.capabilities import Capability, needs
from drills.faults.nats import KillNodes
from pytest_bdd import when


@when("a step injects a NATS fault")
def inject_nats():
    raise AssertionError(f"{KillNodes.kind} must not run on an account")


@then("a step reads the replication backlog")
@needs(Capability.CONTROL)
def backlog():
    raise AssertionError("must not run on an account")
"""


def test_scenarios_needing_what_the_target_lacks_are_skipped(
        pytester: pytest.Pytester) -> None:
    """A scenario whose steps inject a fault requiring a capability, or declare one with
    @needs, is skipped on an account with the capability named, before any step runs."""
    account = _on_an_account(pytester, NEEDS, NEEDS_STEPS)
    account.assert_outcomes(passed=1, skipped=2)
    account.stdout.fnmatch_lines_random([
        "*needs processes, which the account target lacks; runs on the local twin*",
        "*needs control, which the account target lacks; runs on the local twin*"])
