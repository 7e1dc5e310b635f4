"""EC2 Auto Scaling on the twin: AMIs from SSM, failed launches, scaling activities.

References (AWS documentation):
- EC2 User Guide, "Use a Systems Manager parameter instead of an AMI ID" (launch templates
  take `resolve:ssm:<name>`, resolved at launch) — "SSM AMI guide" below;
- EC2 Auto Scaling User Guide, "Troubleshoot EC2 instance launch failures"
  (ts-as-instancelaunchfailure.html): "The AMI ID ... does not exist. Launching EC2 instance
  failed." as the activity's status message — "launch failures guide";
- API Reference: DescribeScalingActivities, Activity;
- EC2 Auto Scaling User Guide, "Amazon EC2 Auto Scaling instance lifecycle"
  (ec2-auto-scaling-lifecycle.html): scale-in instances "are detached from the Auto Scaling
  group and enter the Terminating state", then Terminated — "lifecycle guide".

Instance refresh has its own module, test_instance_refresh.py.
"""

from __future__ import annotations

from drills.twin.aws import AwsEndpoint
from drills.twin.control import request as control_request
from tests.twin.fidelity.conftest import REGION, Group

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


# ------------------------------------------------------------------ twin-only routes


def test_fulfil_capacity_retries_failed_launches(aws: AwsEndpoint, group: Group) -> None:
    """The ASG keeps retrying a launch that failed: while the AMI is missing each retry is
    one more Failed activity; once the parameter names an AMI that exists, it launches."""
    group.point_at(group.new_ami(deregistered=True))
    group.clients("autoscaling").terminate_instance_in_auto_scaling_group(
        InstanceId=group.ids()[0], ShouldDecrementDesiredCapacity=False)
    status, result = control_request(aws.url, "autoscaling/fulfil-capacity",
                             {"region": REGION, "group": group.name})
    assert status == 200
    assert result["missing"] == 1
    assert result["launched"] == []
    assert "does not exist" in result["failed"]
    group.point_at(group.good)
    result = control_request(aws.url, "autoscaling/fulfil-capacity",
                     {"region": REGION, "group": group.name})[1]
    assert len(result["launched"]) == 1
    assert result["failed"] is None
    assert group.images() == [group.good, group.good]


def test_replace_instance_marks_it_unhealthy_and_records_the_cause(aws: AwsEndpoint,
                                                                   group: Group) -> None:
    """A health-check replacement: the instance leaves, a replacement launches, and the
    termination activity carries the health check's cause (as the AWS console shows)."""
    victim = group.ids()[0]
    status, _ = control_request(aws.url, "autoscaling/replace-instance", {
        "region": REGION, "instance_id": victim, "unhealthy": True,
        "cause": "in response to a health check indicating it is impaired (test)"})
    assert status == 200
    assert victim not in group.ids()
    assert len(group.ids()) == 2
    termination = next(a for a in group.activities()
                       if a["Description"] == f"Terminating EC2 instance: {victim}")
    assert termination["Cause"].endswith("in response to a health check indicating it is "
                                         "impaired (test).")


# ------------------------------------------------------------------ terminations


def _states(group: Group) -> dict[str, str]:
    return {i["InstanceId"]: i["LifecycleState"] for i in group.describe()["Instances"]}


def test_a_hosted_groups_scale_in_lists_instances_terminating_until_the_host_reports(
        aws: AwsEndpoint, group: Group) -> None:
    """Lifecycle guide: a scaled-in instance stays listed, Terminating, until it is shut
    down (its worker stopped, as the group's host reports); it never counts as capacity, and
    then leaves the list. moto dropped it in the SetDesiredCapacity call."""
    assert control_request(aws.url, "autoscaling/host",
                           {"region": REGION, "group": group.name})[0] == 200
    before = group.ids()
    group.clients("autoscaling").set_desired_capacity(AutoScalingGroupName=group.name,
                                                      DesiredCapacity=0)
    assert _states(group) == dict.fromkeys(before, "Terminating")
    assert group.describe()["DesiredCapacity"] == 0
    status, body = control_request(aws.url, "autoscaling/terminated",
                                   {"region": REGION, "instance_id": before[0]})
    assert (status, body["held"]) == (200, True)
    assert _states(group) == {before[1]: "Terminating"}
    control_request(aws.url, "autoscaling/terminated", {"region": REGION,
                                                        "instance_id": before[1]})
    assert group.ids() == []


def test_a_hosted_groups_replaced_instance_is_terminating_beside_its_replacement(
        aws: AwsEndpoint, group: Group) -> None:
    """Lifecycle guide: an instance replaced for its health is Terminating while its
    replacement is Pending/InService; capacity counts the replacement only."""
    control_request(aws.url, "autoscaling/host", {"region": REGION, "group": group.name})
    victim = group.ids()[0]
    control_request(aws.url, "autoscaling/replace-instance", {
        "region": REGION, "instance_id": victim, "unhealthy": True, "cause": "test"})
    states = _states(group)
    assert states[victim] == "Terminating"
    assert sorted(s for i, s in states.items() if i != victim) == ["InService", "InService"]


def test_an_unhosted_groups_terminations_leave_at_once(group: Group) -> None:
    """With nothing running on its instances (no host), there is nothing to shut down: a
    terminated instance leaves the list in the call, as moto had it."""
    group.clients("autoscaling").set_desired_capacity(AutoScalingGroupName=group.name,
                                                      DesiredCapacity=0)
    assert group.ids() == []


def test_control_routes_reject_unknown_groups_with_400(aws: AwsEndpoint) -> None:
    """Twin-only routes answer bad input with HTTP 400 and the AWS-style error type."""
    status, body = control_request(aws.url, "autoscaling/fulfil-capacity",
                           {"region": REGION, "group": "no-such-group"})
    assert (status, body["__type"]) == (400, "ValidationError")
