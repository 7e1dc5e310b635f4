"""EC2 Auto Scaling on the twin: AMIs from SSM, failed launches, activities, instance refresh.

References (AWS documentation):
- EC2 User Guide, "Use a Systems Manager parameter instead of an AMI ID" (launch templates
  take `resolve:ssm:<name>`, resolved at launch) — "SSM AMI guide" below;
- EC2 Auto Scaling User Guide, "Troubleshoot EC2 instance launch failures"
  (ts-as-instancelaunchfailure.html): "The AMI ID ... does not exist. Launching EC2 instance
  failed." as the activity's status message — "launch failures guide";
- API Reference: DescribeScalingActivities, Activity, StartInstanceRefresh, InstanceRefresh,
  DescribeInstanceRefreshes, CancelInstanceRefresh, RefreshPreferences (default
  MinHealthyPercentage 90).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError

from drills.clients import Clients
from drills.twin.aws import AwsEndpoint

REGION = "us-east-1"


@dataclass
class Group:
    """An ASG whose template resolves its AMI from an SSM parameter, and its images."""

    name: str
    param: str
    good: str
    clients: Clients

    def describe(self) -> dict[str, Any]:
        return dict(self.clients("autoscaling").describe_auto_scaling_groups(
            AutoScalingGroupNames=[self.name])["AutoScalingGroups"][0])

    def ids(self) -> list[str]:
        return sorted(i["InstanceId"] for i in self.describe()["Instances"])

    def images(self) -> list[str]:
        ids = self.ids()
        found = self.clients("ec2").describe_instances(InstanceIds=ids)["Reservations"]
        return [i["ImageId"] for r in found for i in r["Instances"]]

    def activities(self, **kwargs: Any) -> list[dict[str, Any]]:
        return list(self.clients("autoscaling").describe_scaling_activities(
            AutoScalingGroupName=self.name, **kwargs)["Activities"])

    def new_ami(self, deregistered: bool = False) -> str:
        ec2 = self.clients("ec2")
        ami = ec2.register_image(Name=f"img-{uuid.uuid4().hex[:8]}")["ImageId"]
        if deregistered:
            ec2.deregister_image(ImageId=ami)
        return str(ami)

    def point_at(self, ami: str) -> None:
        self.clients("ssm").put_parameter(Name=self.param, Value=ami, Type="String",
                                          Overwrite=True)


@pytest.fixture
def group(clients: Clients) -> Group:
    """A fresh group of 2 launched from the AMI its parameter names."""
    tag = uuid.uuid4().hex[:8]
    param = f"/test/{tag}/current-ami"
    good = clients("ec2").register_image(Name=f"good-{tag}")["ImageId"]
    clients("ssm").put_parameter(Name=param, Value=good, Type="String")
    template = clients("ec2").create_launch_template(
        LaunchTemplateName=f"lt-{tag}", LaunchTemplateData={
            "ImageId": f"resolve:ssm:{param}", "InstanceType": "m5.xlarge"})["LaunchTemplate"]
    clients("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=f"asg-{tag}", MinSize=0, MaxSize=6, DesiredCapacity=2,
        AvailabilityZones=["us-east-1a"],
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "$Default"})
    return Group(f"asg-{tag}", param, good, clients)


def control(aws: AwsEndpoint, route: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST to a twin-only control endpoint; (HTTP status, JSON body)."""
    request = urllib.request.Request(f"{aws.url}/drills-twin/{route}",
                                     data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def error_code(call: Callable[[], object]) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return str(caught.value.response["Error"]["Code"])


# ------------------------------------------------------------------ launches


def test_instances_launch_from_the_ami_the_ssm_parameter_names(group: Group) -> None:
    """SSM AMI guide: `resolve:ssm:<parameter>` is resolved when an instance launches, so
    the instance's ImageId is the parameter's value (moto passed the literal string on)."""
    assert group.images() == [group.good, group.good]


def test_a_new_parameter_value_is_used_by_the_next_launch(group: Group) -> None:
    """SSM AMI guide: the parameter is resolved at every launch; instances already running
    keep their AMI."""
    newer = group.new_ami()
    group.point_at(newer)
    group.clients("autoscaling").set_desired_capacity(AutoScalingGroupName=group.name,
                                                      DesiredCapacity=3)
    assert sorted(group.images()) == sorted([group.good, group.good, newer])


def test_launching_from_a_deregistered_ami_fails_as_a_scaling_activity(group: Group) -> None:
    """Launch failures guide: the API call that needs capacity succeeds; the launch fails
    asynchronously, as an activity with StatusCode Failed whose StatusMessage names the
    image; the group stays below its desired capacity."""
    gone = group.new_ami(deregistered=True)
    group.point_at(gone)
    group.clients("autoscaling").set_desired_capacity(AutoScalingGroupName=group.name,
                                                      DesiredCapacity=3)
    assert group.describe()["DesiredCapacity"] == 3
    assert len(group.ids()) == 2
    failed = group.activities()[0]
    assert failed["StatusCode"] == "Failed"
    assert failed["StatusMessage"] == (f"The image id '[{gone}]' does not exist. Launching EC2 "
                                       "instance failed.")
    assert failed["Description"].startswith("Launching a new EC2 instance.  Status Reason: ")
    assert "a user request explicitly set group desired capacity changing the desired " \
           "capacity from 2 to 3" in failed["Cause"]
    assert "increasing the capacity from 2 to 3" in failed["Cause"]


def test_replacing_a_terminated_instance_fails_while_the_ami_is_missing(group: Group) -> None:
    """A terminated instance is replaced at once (ShouldDecrementDesiredCapacity false);
    with the AMI gone that launch fails and is recorded, and nothing else launches."""
    group.point_at(group.new_ami(deregistered=True))
    victim = group.ids()[0]
    group.clients("autoscaling").terminate_instance_in_auto_scaling_group(
        InstanceId=victim, ShouldDecrementDesiredCapacity=False)
    assert victim not in group.ids()
    assert len(group.ids()) == 1
    newest, termination = group.activities()[:2]
    assert newest["StatusCode"] == "Failed"
    assert termination["Description"] == f"Terminating EC2 instance: {victim}"
    assert termination["Cause"].endswith("an instance was taken out of service in response to "
                                         "a user request.")


# ------------------------------------------------------------------ activities


def test_activities_record_launches_and_terminations_newest_first(group: Group) -> None:
    """API_DescribeScalingActivities: activities of the group, sorted by start time, newest
    first; each with ActivityId, Description, Cause, StatusCode, Progress, times (moto: [])."""
    group.clients("autoscaling").set_desired_capacity(AutoScalingGroupName=group.name,
                                                      DesiredCapacity=1)
    activities = group.activities()
    assert [a["Description"].split(":")[0] for a in activities] == [
        "Terminating EC2 instance", "Launching a new EC2 instance",
        "Launching a new EC2 instance"]
    starts = [a["StartTime"] for a in activities]
    assert starts == sorted(starts, reverse=True)
    scale_in = activities[0]
    assert scale_in["StatusCode"] == "Successful"
    assert scale_in["Progress"] == 100
    assert "shrinking the capacity from 2 to 1" in scale_in["Cause"]
    assert all(a["AutoScalingGroupName"] == group.name and a["ActivityId"] for a in activities)


def test_activities_page_with_max_records_and_next_token(group: Group) -> None:
    """API_DescribeScalingActivities: MaxRecords limits a page, NextToken continues it (what
    `aws autoscaling describe-scaling-activities --max-items 5` relies on)."""
    first = group.clients("autoscaling").describe_scaling_activities(
        AutoScalingGroupName=group.name, MaxRecords=1)
    assert len(first["Activities"]) == 1
    assert first["NextToken"]
    rest = group.clients("autoscaling").describe_scaling_activities(
        AutoScalingGroupName=group.name, MaxRecords=1, NextToken=first["NextToken"])
    assert rest["Activities"][0]["ActivityId"] != first["Activities"][0]["ActivityId"]
    assert "NextToken" not in rest


# ------------------------------------------------------------------ instance refresh


def test_start_instance_refresh_is_pending_with_aws_default_preferences(group: Group) -> None:
    """API_StartInstanceRefresh / API_InstanceRefresh: the call returns an id; the refresh
    starts Pending, every instance still to update, MinHealthyPercentage defaulting to 90."""
    autoscaling = group.clients("autoscaling")
    refresh_id = autoscaling.start_instance_refresh(AutoScalingGroupName=group.name)[
        "InstanceRefreshId"]
    refresh = autoscaling.describe_instance_refreshes(AutoScalingGroupName=group.name)[
        "InstanceRefreshes"][0]
    assert refresh["InstanceRefreshId"] == refresh_id
    assert (refresh["Status"], refresh["PercentageComplete"], refresh["InstancesToUpdate"]) == (
        "Pending", 0, 2)
    assert refresh["Preferences"]["MinHealthyPercentage"] == 90
    assert refresh["Preferences"]["SkipMatching"] is False


def test_a_second_refresh_while_one_is_active_is_refused(group: Group) -> None:
    """API_StartInstanceRefresh Errors: InstanceRefreshInProgress while one is active."""
    autoscaling = group.clients("autoscaling")
    autoscaling.start_instance_refresh(AutoScalingGroupName=group.name)
    assert error_code(lambda: autoscaling.start_instance_refresh(
        AutoScalingGroupName=group.name)) == "InstanceRefreshInProgress"


@pytest.mark.parametrize("percentage", [101, 150])  # botocore itself refuses < 0
def test_min_healthy_percentage_outside_0_to_100_is_refused(group: Group,
                                                            percentage: int) -> None:
    """API_RefreshPreferences: MinHealthyPercentage "Value range is 0 to 100"."""
    assert error_code(lambda: group.clients("autoscaling").start_instance_refresh(
        AutoScalingGroupName=group.name,
        Preferences={"MinHealthyPercentage": percentage})) == "ValidationError"


def test_skip_matching_leaves_instances_already_on_the_launch_ami(group: Group) -> None:
    """API_RefreshPreferences SkipMatching: instances that already match the desired
    configuration (here: the AMI the template resolves to now) are not replaced."""
    autoscaling = group.clients("autoscaling")
    group.point_at(group.new_ami())
    autoscaling.set_desired_capacity(AutoScalingGroupName=group.name, DesiredCapacity=3)
    autoscaling.start_instance_refresh(AutoScalingGroupName=group.name,
                                       Preferences={"SkipMatching": True})
    refresh = autoscaling.describe_instance_refreshes(AutoScalingGroupName=group.name)[
        "InstanceRefreshes"][0]
    assert refresh["InstancesToUpdate"] == 2  # the two on the old AMI, not the new one


def test_cancel_instance_refresh(group: Group) -> None:
    """API_CancelInstanceRefresh: an active refresh goes to Cancelling; with none active the
    call fails with ActiveInstanceRefreshNotFound."""
    autoscaling = group.clients("autoscaling")
    assert error_code(lambda: autoscaling.cancel_instance_refresh(
        AutoScalingGroupName=group.name)) == "ActiveInstanceRefreshNotFound"
    refresh_id = autoscaling.start_instance_refresh(AutoScalingGroupName=group.name)[
        "InstanceRefreshId"]
    assert autoscaling.cancel_instance_refresh(AutoScalingGroupName=group.name)[
        "InstanceRefreshId"] == refresh_id
    status = autoscaling.describe_instance_refreshes(AutoScalingGroupName=group.name)[
        "InstanceRefreshes"][0]["Status"]
    assert status == "Cancelling"


# ------------------------------------------------------------------ twin-only routes


def test_refresh_progress_is_recorded_through_the_control_route(aws: AwsEndpoint,
                                                                group: Group) -> None:
    """The controller reports progress; DescribeInstanceRefreshes then shows it, and a
    terminal status sets EndTime (API_InstanceRefresh). Only active refreshes are listed
    to the controller, with the instances each must replace."""
    autoscaling = group.clients("autoscaling")
    refresh_id = autoscaling.start_instance_refresh(AutoScalingGroupName=group.name)[
        "InstanceRefreshId"]
    status, listed = control(aws, "autoscaling/instance-refreshes",
                             {"region": REGION, "group": group.name})
    assert status == 200
    assert listed["refreshes"][0]["to_replace"] == group.ids()
    for update in ({"status": "InProgress", "percentage": 50, "to_update": 1},
                   {"status": "Successful", "percentage": 100, "to_update": 0}):
        assert control(aws, "autoscaling/update-instance-refresh",
                       {"region": REGION, "group": group.name, "id": refresh_id,
                        **update})[0] == 200
    refresh = autoscaling.describe_instance_refreshes(AutoScalingGroupName=group.name)[
        "InstanceRefreshes"][0]
    assert (refresh["Status"], refresh["PercentageComplete"], refresh["InstancesToUpdate"]) == (
        "Successful", 100, 0)
    assert refresh["EndTime"] >= refresh["StartTime"]
    assert control(aws, "autoscaling/instance-refreshes",
                   {"region": REGION, "group": group.name})[1]["refreshes"] == []


def test_fulfil_capacity_retries_failed_launches(aws: AwsEndpoint, group: Group) -> None:
    """The ASG keeps retrying a launch that failed: while the AMI is missing each retry is
    one more Failed activity; once the parameter names an AMI that exists, it launches."""
    group.point_at(group.new_ami(deregistered=True))
    group.clients("autoscaling").terminate_instance_in_auto_scaling_group(
        InstanceId=group.ids()[0], ShouldDecrementDesiredCapacity=False)
    status, result = control(aws, "autoscaling/fulfil-capacity",
                             {"region": REGION, "group": group.name})
    assert status == 200
    assert result["missing"] == 1
    assert result["launched"] == []
    assert "does not exist" in result["failed"]
    group.point_at(group.good)
    result = control(aws, "autoscaling/fulfil-capacity",
                     {"region": REGION, "group": group.name})[1]
    assert len(result["launched"]) == 1
    assert result["failed"] is None
    assert group.images() == [group.good, group.good]


def test_replace_instance_marks_it_unhealthy_and_records_the_cause(aws: AwsEndpoint,
                                                                   group: Group) -> None:
    """A health-check replacement: the instance leaves, a replacement launches, and the
    termination activity carries the health check's cause (as the AWS console shows)."""
    victim = group.ids()[0]
    status, _ = control(aws, "autoscaling/replace-instance", {
        "region": REGION, "instance_id": victim, "unhealthy": True,
        "cause": "in response to a health check indicating it is impaired (test)"})
    assert status == 200
    assert victim not in group.ids()
    assert len(group.ids()) == 2
    termination = next(a for a in group.activities()
                       if a["Description"] == f"Terminating EC2 instance: {victim}")
    assert termination["Cause"].endswith("in response to a health check indicating it is "
                                         "impaired (test).")


def test_control_routes_reject_unknown_groups_with_400(aws: AwsEndpoint) -> None:
    """Twin-only routes answer bad input with HTTP 400 and the AWS-style error type."""
    status, body = control(aws, "autoscaling/fulfil-capacity",
                           {"region": REGION, "group": "no-such-group"})
    assert (status, body["__type"]) == (400, "ValidationError")
