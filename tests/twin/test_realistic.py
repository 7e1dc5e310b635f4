"""One drill on the `realistic` timing profile, end to end, as a user runs it.

The profile's delays are AWS's documented ones (drills/twin/timing.py): EC2 status checks
every minute, ELB target group checks every 30 s, a 300 s grace period, a 110 s boot, NATS
pings every 2 minutes, 60 s alarm periods, a 5-minute PITR lag, a 60 s settle window. A twin
of this test's own starts on it (the instances the stack starts with count as booted long
ago, so start-up does not wait 110 s) and runs the shortest drill whose path crosses the
whole service: the sealing key disabled and re-enabled (runbook 4.3 step 1).

Its probes read every 0.25 s with a 2 s timeout instead of the defaults (50 ms, 0.5 s): on the
shared 2-core machine the suite runs on, probes that many and that impatient overload the
workers and time out in the machine's own stalls, and the profile's 60 s settle window then
keeps restarting; the AWS-side delays under test are unchanged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from drills.twin import control, manager
from drills.twin.manager import Twin
from drills.twin.timing import profile
from tests.conftest import drills_cli

pytestmark = pytest.mark.long

DRILL = "features/scenarios/kms_key_unavailable.feature"


@pytest.fixture(scope="module")
def realistic_twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twin]:
    """A twin of this module's own, started with `--timing realistic`."""
    state_dir = tmp_path_factory.mktemp("realistic") / "twin"
    twin = manager.up(state_dir, timing="realistic", vaults=8)
    try:
        yield twin
    finally:
        manager.down(state_dir)


def test_a_drill_passes_on_the_realistic_profile(realistic_twin: Twin, tmp_path: Path) -> None:
    """`drills run` on a realistic twin: the KMS drill passes, its report says it was a
    rehearsal on the `realistic` profile, and the twin carries the profile's AWS settings
    (grace period 300 s, target group checks 30 s / 5 s / 5 / 2, PITR lag 300 s)."""
    twin = realistic_twin
    timing = profile("realistic")
    group = twin.clients("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[twin.names.asg])["AutoScalingGroups"][0]
    assert (group["HealthCheckType"], group["HealthCheckGracePeriod"]) == ("ELB", 300)
    tg = twin.clients("elbv2").describe_target_groups(
        TargetGroupArns=group["TargetGroupARNs"])["TargetGroups"][0]
    assert (tg["HealthCheckIntervalSeconds"], tg["HealthCheckTimeoutSeconds"],
            tg["HealthyThresholdCount"], tg["UnhealthyThresholdCount"]) == (30, 5, 5, 2)
    pitr = control.post(twin.state.aws_url, "dynamodb/pitr-settings", {})
    assert pitr["latest_restorable_lag"] == timing.pitr_latest_restorable_lag == 300

    env = {k: v for k, v in os.environ.items() if k != "PYTEST_XDIST_WORKER"}
    env.update(DRILLS_STATE_DIR=twin.state.state_dir,
               DRILLS_JOURNAL=str(tmp_path / "journal.jsonl"))
    reports, objectives = tmp_path / "reports", tmp_path / "probes.toml"
    objectives.write_text("[probes]\ninterval = 0.25\ntimeout = 2.0\n", encoding="utf-8")
    done = drills_cli("run", "--reports", str(reports), "--objectives", str(objectives), DRILL,
                      "--", "-k", "disabled", env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(next(reports.glob("*/report.json")).read_text(encoding="utf-8"))
    assert report["target"]["timing_profile"] == "realistic"
    assert [d["status"] for d in report["drills"]] == ["passed"]
    service = next(m for m in report["drills"][0]["measurements"] if m["name"] == "service")
    assert service["met"]
    assert f"{timing.settle:g} s" in service["method"]  # the profile's settle window held
