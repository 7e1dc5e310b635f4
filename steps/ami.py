"""Steps for runbook 4.1 steps 1-2: the enclave AMI is gone; roll back and refresh."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from pytest_bdd import given, parsers, then, when

from drills.drill import Drill
from drills.errors import ObjectiveBreached, RecoveryError
from drills.evidence.fmt import secs
from drills.faults import ActiveFault
from drills.faults.ami import DeregisterCurrentAmi
from drills.procedures import enclave as procedure

DETECT_TIMEOUT = 60.0
REFRESH_POLL = 0.5  # how often the refresh is polled: the figure's uncertainty


@dataclass(frozen=True, slots=True)
class RefreshStarted:
    """The instance refresh runbook 4.1 step 2 started, and the AMI it rolled back to."""

    refresh_id: str
    rolled_back_to: str
    started_at: float  # time.monotonic()


@given(parsers.parse('the enclave launch template takes its AMI from "{param}"'))
def template_uses_parameter(drill: Drill, param: str) -> None:
    """Precondition of runbook 4.1 step 2: the template's ImageId is resolve:ssm:<param>
    (the twin is provisioned so); a template pinning an AMI fails with what to change."""
    param = drill.target.names.named(param)  # as configured
    target = drill.target
    procedure.require_ssm_ami(target.clients, target.asg_name(), target.region, param)


@when("the current enclave AMI is deregistered")
def ami_deregistered(drill: Drill) -> Iterator[ActiveFault]:
    """Release a new AMI as current-ami (runbook 6.2), then deregister it; reverted at teardown."""
    names = drill.target.names
    active = drill.inject(DeregisterCurrentAmi, asg=drill.target.asg_name(),
                          current_param=names.param_current_ami,
                          latest_param=names.param_latest_ami)
    yield active
    drill.revert(active)


@then(parsers.parse('enclave instance launches fail with "{text}"'))
def launches_fail(drill: Drill, text: str) -> None:
    """A scaling activity after the last fault has StatusCode Failed and mentions `text`."""
    fault = drill.last_fault
    target, asg = drill.target, drill.target.asg_name()
    autoscaling = target.clients("autoscaling", target.region)
    deadline = time.monotonic() + DETECT_TIMEOUT
    since = datetime.fromisoformat(fault.injected_utc)
    while True:
        failed = [a for a in autoscaling.describe_scaling_activities(
            AutoScalingGroupName=asg, MaxRecords=20)["Activities"]
            if a["StatusCode"] == "Failed" and a["StartTime"] >= since
            and text in f"{a.get('StatusMessage', '')} {a.get('Description', '')}"]
        if failed:
            drill.progress(f"launch failed: {failed[-1].get('StatusMessage')} "
                           f"({len(failed)} failed launch activities)", every=0.0)
            return
        if time.monotonic() > deadline:
            raise ObjectiveBreached(f"no failed launch mentioning {text!r} in the scaling "
                                    f"activities of {asg} within {DETECT_TIMEOUT:g}s of the "
                                    "fault")
        drill.progress(f"waiting for a failed launch in the scaling activities of {asg}")
        time.sleep(0.25)


@when("the operator diagnoses the failed launches (runbook 4.1 step 1)",
      target_fixture="launch_diagnosis")
def diagnose(drill: Drill) -> procedure.LaunchDiagnosis:
    """Launch template version, current-ami and whether it exists, recent activities."""
    target = drill.target
    found = procedure.diagnose(target.clients, target.asg_name(), target.region,
                               target.names.param_current_ami)
    drill.progress(f"runbook 4.1 step 1: {found.summary()}", every=0.0)
    if not found.ami_missing:
        raise RecoveryError(f"the diagnosis does not show the missing AMI the runbook's step 2 "
                            f"is for: {found.summary()}")
    return found


@when(parsers.re(r"the operator rolls back to the previous known-good AMI and starts an "
                 r"instance refresh(?: with MinHealthyPercentage (?P<pct>\d+))? "
                 r"\(runbook 4\.1 step 2\)"),
      converters={"pct": lambda v: int(v) if v else None}, target_fixture="instance_refresh")
def roll_back_and_refresh(drill: Drill, pct: int | None) -> RefreshStarted:
    """put-parameter current-ami = the previous known-good AMI, then start-instance-refresh."""
    target = drill.target
    param = target.names.param_current_ami
    previous = procedure.previous_known_good_ami(target.clients, target.region, param)
    procedure.roll_back_ami(target.clients, target.region, param, previous)
    refresh = procedure.start_instance_refresh(target.clients, target.asg_name(),
                                               target.region, pct)
    drill.progress(f"runbook 4.1 step 2: {param} = {previous}; instance refresh {refresh} "
                   "started", every=0.0)
    return RefreshStarted(refresh, previous, time.monotonic())


@then(parsers.parse('the instance refresh completes within the "{component}" objective'))
def refresh_completes(drill: Drill, component: str, instance_refresh: RefreshStarted) -> None:
    """The refresh reaches Successful at 100 % before the component's objective runs out."""
    objective = drill.settings.objectives.for_component(component)
    fault = drill.last_fault
    target = drill.target
    outcome = procedure.wait_for_instance_refresh(
        target.clients, target.asg_name(), target.region, instance_refresh.refresh_id,
        objective.remaining(fault.injected_at), drill.progress)
    done = time.monotonic() - fault.injected_at
    ok = outcome.status == "Successful" and outcome.percentage == 100
    drill.assert_met(drill.record_event(
        "instance-refresh", component, done if ok else None, REFRESH_POLL,
        "polled describe-instance-refreshes every 0.5 s from start-instance-refresh to "
        f"Successful; statuses seen {' -> '.join(outcome.statuses_seen)}, PercentageComplete "
        f"{outcome.percentages_seen}; took "
        f"{secs(time.monotonic() - instance_refresh.started_at)}"))


@then("every enclave instance runs the previous known-good AMI")
def instances_on_known_good(drill: Drill, instance_refresh: RefreshStarted) -> None:
    """Every InService instance was launched from the AMI step 2 rolled back to."""
    target = drill.target
    images = procedure.instance_images(target.clients, target.asg_name(), target.region)
    wrong = {i: a for i, a in images.items() if a != instance_refresh.rolled_back_to}
    if not images or wrong:
        raise ObjectiveBreached(f"instances not on {instance_refresh.rolled_back_to}: "
                                f"{wrong or 'no instance in service'}")
