"""The ASG controller on a running twin: instance refresh, failed launches, AMI checks, metrics.

References (AWS documentation): EC2 Auto Scaling User Guide, "How an instance refresh works"
(instances replaced in batches keeping MinHealthyPercentage of the desired capacity healthy;
"When the instance's health status changes to healthy and the specified warm-up time passes,
the instance is considered updated and is added to the percentage complete", from
API_InstanceRefresh PercentageComplete); "Troubleshoot EC2 instance launch failures" (failed
launches are retried); EC2 User Guide (an instance cannot boot without its AMI); "Health
checks for instances in an Auto Scaling group" (an instance whose status checks fail is
replaced, after the group's health check grace period); "Monitor
CloudWatch metrics for your Auto Scaling groups" (GroupInServiceInstances is published once
metrics collection is enabled).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from drills.procedures import enclave as procedure
from drills.twin import monitor
from drills.twin.controller import WORKER_MODULE, apply_group_profile, running_state_dirs
from drills.twin.manager import Twin
from drills.twin.procs import still_running
from drills.twin.timing import profile
from tests.conftest import wait_for

pytestmark = pytest.mark.twin
REGION = "us-east-1"


def _live(twin: Twin) -> set[str]:
    """InService instances whose enclave worker runs."""
    return set(twin.in_service()[1]) & set(twin.worker_pids())


def _refresh(twin: Twin, refresh_id: str) -> dict[str, Any]:
    return dict(twin.clients("autoscaling").describe_instance_refreshes(
        AutoScalingGroupName=twin.names.asg, InstanceRefreshIds=[refresh_id])[
        "InstanceRefreshes"][0])


def _log(twin: Twin) -> str:
    return (Path(twin.state.state_dir) / "activities.jsonl").read_text()


def test_the_profile_reaches_every_regions_group(twin: Twin) -> None:
    """The controller starts while `twin up` still makes the stacks: each region's loop
    applies the profile to its group before its first pass, the DR standby's too (grace
    period, target group health check); a group not made yet is reported, not an error."""
    timing = profile(twin.state.profile)
    for name, region in twin.state.regions.items():
        group = twin.clients("autoscaling", name).describe_auto_scaling_groups(
            AutoScalingGroupNames=[region.asg])["AutoScalingGroups"][0]
        assert group["HealthCheckGracePeriod"] == timing.health_check_grace_period, name
        check = twin.clients("elbv2", name).describe_target_groups(
            TargetGroupArns=group["TargetGroupARNs"])["TargetGroups"][0]
        assert (check["HealthCheckIntervalSeconds"], check["HealthyThresholdCount"]) == (
            timing.target_group.interval, timing.target_group.healthy), name
    missing = replace(twin.state.primary, asg=f"VettID-not-made-{uuid.uuid4().hex[:6]}")
    assert apply_group_profile(missing, timing, twin.clients) is False


@pytest.mark.parametrize(("min_healthy", "keep", "batches"), [(50, 1, 2), (0, 0, 1)])
def test_instance_refresh_replaces_every_instance_keeping_min_healthy(
        healthy_twin: Twin, min_healthy: int, keep: int, batches: int) -> None:
    """Every instance is replaced, in batches that keep MinHealthyPercentage of the desired
    capacity serving (50 % of 2: one at a time; 0 %: both at once); between batches the
    refresh waits for the replacements ("Waiting for remaining instances to be available");
    it goes InProgress -> Successful with PercentageComplete 100 and InstancesToUpdate 0."""
    twin = healthy_twin
    old = _live(twin)
    refresh_id = procedure.start_instance_refresh(twin.clients, twin.names.asg, REGION,
                                                  min_healthy)
    statuses: list[str] = []
    percentages: set[int] = set()
    reasons: set[str] = set()
    live: list[int] = []

    def finished() -> dict[str, Any] | None:  # samples the group while the refresh runs
        refresh = _refresh(twin, refresh_id)
        statuses.append(refresh["Status"])
        percentages.add(refresh["PercentageComplete"])
        reasons.add(refresh.get("StatusReason", ""))
        live.append(len(_live(twin)))
        return refresh if refresh["Status"] == "Successful" else None

    refresh = wait_for(finished, 90, "the refresh to succeed", step=0.05)
    lowest = min(live)
    assert (refresh["PercentageComplete"], refresh["InstancesToUpdate"]) == (100, 0)
    assert "EndTime" in refresh
    assert "InProgress" in statuses
    # while replacements boot: "Waiting for remaining instances to be available"
    assert any(r.startswith("Waiting for remaining instances") for r in reasons)
    assert lowest >= keep
    if batches == 2:
        assert 50 in percentages  # one of two replaced and warmed up
    assert f"replaced in {batches} batch(es)" in _log(twin)
    new = wait_for(lambda: (s := _live(twin)) and len(s) == 2 and s, 30, "two serving workers")
    assert not old & new


def test_a_cancelled_refresh_ends_cancelled(healthy_twin: Twin) -> None:
    """API_CancelInstanceRefresh: Cancelling, then Cancelled once the refresh stops."""
    twin = healthy_twin
    refresh_id = procedure.start_instance_refresh(twin.clients, twin.names.asg, REGION, 90)
    twin.clients("autoscaling").cancel_instance_refresh(AutoScalingGroupName=twin.names.asg)
    ended = wait_for(lambda: (r := _refresh(twin, refresh_id))["Status"] == "Cancelled" and r,
                     30, "the refresh to be Cancelled")
    assert "EndTime" in ended


def test_no_worker_boots_on_an_instance_whose_ami_does_not_exist(healthy_twin: Twin) -> None:
    """An instance attached with an AMI that does not exist never runs an enclave worker;
    failing its status check, it is taken out of service once the group's grace period has
    passed (it applies to attached instances too) and replaced from the template."""
    twin = healthy_twin
    grace = profile(twin.state.profile).health_check_grace_period
    ec2, autoscaling = twin.clients("ec2"), twin.clients("autoscaling")
    missing = "ami-0000000000deadbee"
    stray = ec2.run_instances(ImageId=missing, MinCount=1, MaxCount=1,
                              InstanceType="m5.xlarge")["Instances"][0]["InstanceId"]
    autoscaling.attach_instances(InstanceIds=[stray], AutoScalingGroupName=twin.names.asg)
    try:
        assert stray in twin.in_service()[1], "the attached instance starts InService"

        def gone() -> bool:
            assert stray not in twin.worker_pids(), "a worker booted without its AMI"
            return stray not in twin.in_service()[1]
        wait_for(gone, grace + 30, "the instance without an AMI to be replaced")
        assert f"its image {missing} does not exist" in _log(twin)
        activity = next(a for a in autoscaling.describe_scaling_activities(
            AutoScalingGroupName=twin.names.asg)["Activities"]
            if a["Description"] == f"Terminating EC2 instance: {stray}")
        assert "in response to an EC2 instance status check failure" in activity["Cause"]
    finally:
        autoscaling.set_desired_capacity(AutoScalingGroupName=twin.names.asg, DesiredCapacity=2)
    wait_for(lambda: len(_live(twin)) == 2, 30, "two serving workers again")


def test_a_scaled_in_instance_leaves_the_group_only_once_its_worker_has_stopped(
        healthy_twin: Twin) -> None:
    """"Amazon EC2 Auto Scaling instance lifecycle": a scaled-in instance is Terminating until
    it is shut down. A caller that waits for the group to empty (runbook 5.3 before its sync)
    must find nothing on the instance still answering: whenever an instance is missing from
    the list, its worker process is gone."""
    twin, dr = healthy_twin, "us-west-2"
    autoscaling, asg = twin.clients("autoscaling", dr), twin.state.regions[dr].asg
    autoscaling.set_desired_capacity(AutoScalingGroupName=asg, DesiredCapacity=1)
    try:
        iid, pid = wait_for(lambda: next(iter(twin.worker_pids(dr).items()), None), 60,
                            "a worker in the DR region")
        autoscaling.set_desired_capacity(AutoScalingGroupName=asg, DesiredCapacity=0)
        seen: set[str] = set()

        def left() -> bool:
            group = autoscaling.describe_auto_scaling_groups(
                AutoScalingGroupNames=[asg])["AutoScalingGroups"][0]
            listed = {i["InstanceId"]: i["LifecycleState"] for i in group["Instances"]}
            seen.update(listed.values())
            if iid in listed:
                return False
            assert not still_running(pid, WORKER_MODULE, iid), \
                "the instance left the group while its worker still ran"
            return True
        wait_for(left, 30, "the scaled-in instance to leave the group", step=0.02)
        assert "Terminating" in seen
    finally:
        autoscaling.set_desired_capacity(AutoScalingGroupName=asg, DesiredCapacity=0)


def test_failed_launches_are_retried_with_growing_delays(healthy_twin: Twin) -> None:
    """While the AMI is missing the group retries its launch, each retry a Failed activity,
    later retries further apart; once the parameter names an existing AMI the next retry
    restores the capacity."""
    twin = healthy_twin
    param = twin.names.param_current_ami
    procedure.use_ssm_ami(twin.clients, twin.names.asg, REGION, param)
    ssm, ec2 = twin.clients("ssm"), twin.clients("ec2")
    good = ssm.get_parameter(Name=param)["Parameter"]["Value"]
    gone = ec2.register_image(Name=f"gone-{uuid.uuid4().hex[:8]}")["ImageId"]
    ec2.deregister_image(ImageId=gone)
    ssm.put_parameter(Name=param, Value=gone, Type="String", Overwrite=True)
    try:
        victim = sorted(_live(twin))[0]
        twin.clients("autoscaling").terminate_instance_in_auto_scaling_group(
            InstanceId=victim, ShouldDecrementDesiredCapacity=False)

        def failures() -> list[datetime]:
            return sorted(a["StartTime"] for a in twin.clients("autoscaling")
                          .describe_scaling_activities(AutoScalingGroupName=twin.names.asg)[
                              "Activities"]
                          if a["StatusCode"] == "Failed" and gone in a["StatusMessage"])
        times = wait_for(lambda: (f := failures()) and len(f) >= 4 and f, 30,
                         "four failed launch attempts")
        gaps = [b - a for a, b in itertools.pairwise(times[1:])]  # the 1st is moto's own
        assert gaps[-1] > gaps[0] + timedelta(milliseconds=200)  # backing off
    finally:
        ssm.put_parameter(Name=param, Value=good, Type="String", Overwrite=True)
    wait_for(lambda: len(_live(twin)) == 2, 30, "the next retry to restore capacity")


def test_the_runbook_alarms_metrics_are_published(healthy_twin: Twin) -> None:
    """GroupInServiceInstances (once group metrics collection is enabled) and the NATS
    healthy-node count reach CloudWatch every metric interval, with the twin's values."""
    twin = healthy_twin
    monitor.provision(twin.clients, twin.names, REGION, twin.state.profile)
    cloudwatch = twin.clients("cloudwatch")
    interval = monitor.timing_for(twin.state.profile).metric_interval

    def latest(namespace: str, metric: str, dims: list[dict[str, str]]) -> float | None:
        now = datetime.now(UTC)
        points = cloudwatch.get_metric_statistics(
            Namespace=namespace, MetricName=metric, Dimensions=dims, Period=1,
            StartTime=now - timedelta(seconds=3 * interval + 2), EndTime=now + timedelta(
                seconds=1), Statistics=["Maximum"])["Datapoints"]
        return max(points, key=lambda p: p["Timestamp"])["Maximum"] if points else None

    group = [{"Name": "AutoScalingGroupName", "Value": twin.names.asg}]
    assert wait_for(lambda: latest("AWS/AutoScaling", "GroupInServiceInstances", group) == 2,
                    10 * interval, "GroupInServiceInstances = 2")
    assert wait_for(lambda: latest(monitor.NATS_NAMESPACE, monitor.NATS_METRIC, []) == 3,
                    10 * interval, "HealthyNodes = 3")


def test_monitoring_is_provisioned_once_and_the_pager_queue_gets_the_page(
        healthy_twin: Twin) -> None:
    """The runbook's two alarms exist with their SNS action; provisioning again changes no
    alarm (no new ConfigurationUpdate); a state change reaches the pager queue through the
    topic (SNS -> SQS)."""
    twin = healthy_twin
    enclave_alarm, nats_alarm = twin.names.alarms
    made = monitor.provision(twin.clients, twin.names, REGION, twin.state.profile)
    cloudwatch, sqs = twin.clients("cloudwatch"), twin.clients("sqs")
    found = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(
        AlarmNames=list(made.alarms))["MetricAlarms"]}
    assert set(found) == {enclave_alarm, nats_alarm}
    assert all(a["AlarmActions"] == [made.topic_arn] for a in found.values())
    assert found[enclave_alarm]["Dimensions"] == [
        {"Name": "AutoScalingGroupName", "Value": twin.names.asg}]
    configs = len(cloudwatch.describe_alarm_history(
        AlarmName=enclave_alarm, HistoryItemType="ConfigurationUpdate")[
        "AlarmHistoryItems"])
    assert monitor.provision(twin.clients, twin.names, REGION, twin.state.profile) == made
    assert len(cloudwatch.describe_alarm_history(
        AlarmName=enclave_alarm, HistoryItemType="ConfigurationUpdate")[
        "AlarmHistoryItems"]) == configs
    sqs.purge_queue(QueueUrl=made.pager_queue_url)
    cloudwatch.set_alarm_state(AlarmName=nats_alarm, StateValue="ALARM",
                               StateReason="testing the pager path")

    def paged() -> list[dict[str, Any]]:
        got = sqs.receive_message(QueueUrl=made.pager_queue_url, WaitTimeSeconds=1)
        return [json.loads(json.loads(m["Body"])["Message"]) for m in got.get("Messages", [])]
    page = wait_for(paged, 15, "the page in the pager queue")[0]
    assert (page["AlarmName"], page["NewStateValue"]) == (nats_alarm, "ALARM")
    # the next evaluation puts the alarm back from the data (NATS is healthy)
    wait_for(lambda: cloudwatch.describe_alarms(AlarmNames=[nats_alarm])[
        "MetricAlarms"][0]["StateValue"] == "OK", 60, "the NATS alarm to be OK again")


def test_running_state_dirs_reads_each_controller_s_command_line(tmp_path: Path) -> None:
    """A process whose command line is a controller's (`-m drills.twin.controller
    --state-dir DIR`) is listed by its state dir; once it is gone, it is not."""
    state_dir = tmp_path / "elsewhere"
    imitation = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "-m",
                                  "drills.twin.controller", "--state-dir", str(state_dir)])
    try:
        wait_for(lambda: state_dir in running_state_dirs(), 10, "the imitation to be listed")
    finally:
        imitation.kill()
        imitation.wait()
    assert state_dir not in running_state_dirs()
