"""The ASG controller follows the group's HealthCheckType, its target group and its grace period.

References (AWS documentation):
- EC2 Auto Scaling User Guide, "Health checks for instances in an Auto Scaling group": with
  EC2 health checks an instance is unhealthy when it is no longer `running` or its status
  checks are impaired; with ELB health checks also "when Elastic Load Balancing reports a
  registered instance as unhealthy", replaced "on its next periodic health check"; the
  activity's cause reads "an instance was taken out of service in response to an ELB system
  health check failure";
- "Set the health check grace period for an Auto Scaling group": the grace period is "the
  minimum amount of time (in seconds) to keep a new instance in service before terminating it
  if it's found to be unhealthy";
- Elastic Load Balancing, "Health checks for Application Load Balancer target groups": each
  target is checked every HealthCheckIntervalSeconds, unhealthy after UnhealthyThresholdCount
  consecutive failures, healthy again after HealthyThresholdCount successes.

A negative ("not replaced") is shown by what the controller did after it could have acted:
the group is scaled out and the new instance boots (many controller passes) while the crashed
one stays in service.
"""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from drills.errors import FaultError
from drills.faults import FaultContext
from drills.faults.health_check import SetHealthCheckType
from drills.twin import control
from drills.twin.controller import apply_profile, worker_record
from drills.twin.manager import Twin
from drills.twin.provision import HEALTH_CHECK_PATH, TARGET_GROUP
from drills.twin.timing import profile
from tests.conftest import wait_for, wait_serving

pytestmark = pytest.mark.twin
REGION = "us-east-1"


def _group(twin: Twin) -> dict[str, Any]:
    return dict(twin.clients("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[twin.names.asg])["AutoScalingGroups"][0])


def _target_group(twin: Twin) -> str:
    return str(twin.clients("elbv2").describe_target_groups(
        Names=[TARGET_GROUP])["TargetGroups"][0]["TargetGroupArn"])


def _health(twin: Twin, iid: str) -> dict[str, Any]:
    """The target's health as `aws elbv2 describe-target-health` reports it."""
    found = twin.clients("elbv2").describe_target_health(
        TargetGroupArn=_target_group(twin), Targets=[{"Id": iid}])["TargetHealthDescriptions"]
    return dict(found[0]["TargetHealth"])


def _is_healthy(twin: Twin, iid: str) -> bool:
    return bool(_health(twin, iid)["State"] == "healthy")


def _in_service(twin: Twin, iid: str) -> bool:
    return any(i["InstanceId"] == iid and i["LifecycleState"] == "InService"
               and i["HealthStatus"] == "Healthy" for i in _group(twin)["Instances"])


def _termination_causes(twin: Twin, iid: str) -> list[str]:
    return [a["Cause"] for a in twin.clients("autoscaling").describe_scaling_activities(
        AutoScalingGroupName=twin.names.asg)["Activities"]
        if a["Description"] == f"Terminating EC2 instance: {iid}"]


def _scale_out_and_boot(twin: Twin) -> None:
    """Desired 3, and wait until the new instance's worker runs: the controller has made
    many passes (a boot delay's worth) since this was called."""
    before = {i["InstanceId"] for i in _group(twin)["Instances"]}
    twin.clients("autoscaling").set_desired_capacity(AutoScalingGroupName=twin.names.asg,
                                                     DesiredCapacity=3)
    wait_for(lambda: set(twin.worker_pids()) - before, 60, "the third instance's worker")


def _restore(twin: Twin) -> None:
    twin.clients("autoscaling").set_desired_capacity(AutoScalingGroupName=twin.names.asg,
                                                     DesiredCapacity=2)
    wait_for(lambda: len(twin.worker_pids()) == 2 and len(twin.in_service()[1]) == 2, 90,
             "two instances with live workers again")
    wait_serving(twin)


@pytest.fixture
def ec2_checks(healthy_twin: Twin) -> Iterator[SetHealthCheckType]:
    """The group switched to EC2 health checks by the drills' fault; reverted after."""
    fault = SetHealthCheckType(FaultContext(healthy_twin.clients, healthy_twin),
                               {"region": REGION, "asg": healthy_twin.names.asg, "to": "EC2"})
    fault.prepare()
    fault.inject()
    try:
        yield fault
    finally:
        fault.revert()


def test_each_worker_answers_its_target_group_health_check_on_its_recorded_port(
        healthy_twin: Twin) -> None:
    """The controller starts every worker with a health port of its own, records it in the
    worker record, and the target group checks it: every InService instance is a healthy
    target of VettID-Enclave-TG, whose health check is the worker's own GET /health."""
    twin = healthy_twin
    group = _group(twin)
    assert group["HealthCheckType"] == "ELB"
    assert group["TargetGroupARNs"] == [_target_group(twin)]
    described = twin.clients("elbv2").describe_target_groups(Names=[TARGET_GROUP])
    assert described["TargetGroups"][0]["HealthCheckPath"] == HEALTH_CHECK_PATH
    assert described["TargetGroups"][0]["LoadBalancerArns"]  # in use: ELB checks its targets
    for iid in twin.in_service()[1]:
        record = json.loads(worker_record(twin.state, iid).read_text())
        url = f"http://127.0.0.1:{record['health_port']}{HEALTH_CHECK_PATH}"
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                url, timeout=5) as answer:
            assert answer.status == 200
            assert json.loads(answer.read())["instance_id"] == iid
    for iid in twin.in_service()[1]:
        wait_for(partial(_is_healthy, twin, iid), 60, f"{iid} to be a healthy target")


def test_the_timing_profile_is_applied_to_the_group_its_target_group_and_pitr(
        healthy_twin: Twin) -> None:
    """At start-up the controller applies the profile where AWS keeps each setting: the
    group's HealthCheckGracePeriod, the target group's health check, the PITR lag."""
    twin = healthy_twin
    timing = profile(twin.state.profile)
    apply_profile(twin.state, timing, twin.clients)  # idempotent: what start-up did
    assert _group(twin)["HealthCheckGracePeriod"] == timing.health_check_grace_period
    tg = twin.clients("elbv2").describe_target_groups(Names=[TARGET_GROUP])["TargetGroups"][0]
    check = timing.target_group
    assert (tg["HealthCheckIntervalSeconds"], tg["HealthCheckTimeoutSeconds"],
            tg["HealthyThresholdCount"], tg["UnhealthyThresholdCount"]) == (
        check.interval, check.timeout, check.healthy, check.unhealthy)
    pitr = control.post(twin.state.aws_url, "dynamodb/pitr-settings", {})
    assert pitr["latest_restorable_lag"] == timing.pitr_latest_restorable_lag


def test_an_ec2_only_group_does_not_replace_an_instance_whose_enclave_crashed(
        ec2_checks: SetHealthCheckType, healthy_twin: Twin) -> None:
    """HealthCheckType EC2: the instance keeps running, so its crashed enclave goes
    unnoticed: the target group sees it (unhealthy) but the group keeps it InService and
    Healthy while it boots a whole new instance; back on ELB checks, it is replaced."""
    twin = healthy_twin
    assert _group(twin)["HealthCheckType"] == "EC2"
    victim, pid = sorted(twin.worker_pids().items())[0]
    os.kill(pid, signal.SIGKILL)
    try:
        wait_for(lambda: _health(twin, victim)["State"] == "unhealthy", 60,
                 "the target group to report the crashed enclave unhealthy")
        _scale_out_and_boot(twin)
        assert _in_service(twin, victim), "an EC2-only group replaced a running instance"
        assert victim not in twin.worker_pids()
        assert not _termination_causes(twin, victim)
        ec2_checks.revert()  # ELB again: the next periodic health check acts on it
        wait_for(lambda: not _in_service(twin, victim), 60, "the crashed instance to go")
        assert any("in response to an ELB system health check failure" in c
                   for c in _termination_causes(twin, victim))
    finally:
        _restore(twin)


def test_an_elb_group_replaces_a_crashed_enclave_once_its_grace_period_has_passed(
        healthy_twin: Twin) -> None:
    """HealthCheckType ELB: the crashed enclave fails its target group's checks and, after
    UnhealthyThresholdCount of them, is reported unhealthy; within the grace period the group
    keeps it; once the grace period has passed it is replaced, with AWS's cause."""
    twin = healthy_twin
    asg = twin.clients("autoscaling")
    grace = _group(twin)["HealthCheckGracePeriod"]
    asg.update_auto_scaling_group(AutoScalingGroupName=twin.names.asg,
                                  HealthCheckGracePeriod=86400)  # every instance is "new"
    try:
        victim, pid = sorted(twin.worker_pids().items())[0]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: _health(twin, victim) == {
            "State": "unhealthy", "Reason": "Target.FailedHealthChecks",
            "Description": "Health checks failed"}, 60, "the target to be reported unhealthy")
        _scale_out_and_boot(twin)
        assert _in_service(twin, victim), "replaced within the grace period"
    finally:
        asg.update_auto_scaling_group(AutoScalingGroupName=twin.names.asg,
                                      HealthCheckGracePeriod=grace)
    try:
        wait_for(lambda: not _in_service(twin, victim), 60, "the crashed instance to go")
        causes = _termination_causes(twin, victim)
        assert any("in response to an ELB system health check failure" in c for c in causes)
    finally:
        _restore(twin)


def test_target_health_reports_a_hung_enclave_unhealthy_then_healthy(
        ec2_checks: SetHealthCheckType, healthy_twin: Twin) -> None:
    """describe-target-health tells the truth both ways: a frozen enclave times out its
    checks (unhealthy, Target.Timeout) and, thawed, passes HealthyThresholdCount of them
    (healthy). EC2 checks keep the group from replacing it meanwhile."""
    twin = healthy_twin
    victim, pid = sorted(twin.worker_pids().items())[0]
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: _health(twin, victim) == {
            "State": "unhealthy", "Reason": "Target.Timeout",
            "Description": "Request timed out"}, 60, "the frozen target to be unhealthy")
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: _health(twin, victim) == {"State": "healthy"}, 60,
             "the thawed target to be healthy again")
    assert _in_service(twin, victim)
    assert twin.worker_pids()[victim] == pid


def test_the_health_check_type_fault_names_the_types_that_exist(healthy_twin: Twin) -> None:
    """A type AWS does not have is refused before anything is journaled or changed."""
    fault = SetHealthCheckType(FaultContext(healthy_twin.clients, healthy_twin),
                               {"region": REGION, "asg": healthy_twin.names.asg, "to": "NLB"})
    with pytest.raises(FaultError, match="use one of EC2, ELB"):
        fault.prepare()
    assert _group(healthy_twin)["HealthCheckType"] == "ELB"
