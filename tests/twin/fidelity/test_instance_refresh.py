"""EC2 Auto Scaling instance refresh on the twin (moto has none).

References (AWS documentation, API Reference): StartInstanceRefresh, InstanceRefresh,
DescribeInstanceRefreshes, CancelInstanceRefresh, RefreshPreferences (default
MinHealthyPercentage 90).
"""

from __future__ import annotations

import pytest

from drills.twin.aws import AwsEndpoint
from drills.twin.control import request as control_request
from tests.twin.fidelity.conftest import REGION, Group, error_code


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


# ------------------------------------------------------------------ twin-only route


def test_refresh_progress_is_recorded_through_the_control_route(aws: AwsEndpoint,
                                                                group: Group) -> None:
    """The controller reports progress; DescribeInstanceRefreshes then shows it, and a
    terminal status sets EndTime (API_InstanceRefresh). Only active refreshes are listed
    to the controller, with the instances each must replace."""
    autoscaling = group.clients("autoscaling")
    refresh_id = autoscaling.start_instance_refresh(AutoScalingGroupName=group.name)[
        "InstanceRefreshId"]
    status, listed = control_request(aws.url, "autoscaling/instance-refreshes",
                             {"region": REGION, "group": group.name})
    assert status == 200
    assert listed["refreshes"][0]["to_replace"] == group.ids()
    for update in ({"status": "InProgress", "percentage": 50, "to_update": 1},
                   {"status": "Successful", "percentage": 100, "to_update": 0}):
        assert control_request(aws.url, "autoscaling/update-instance-refresh",
                       {"region": REGION, "group": group.name, "id": refresh_id,
                        **update})[0] == 200
    refresh = autoscaling.describe_instance_refreshes(AutoScalingGroupName=group.name)[
        "InstanceRefreshes"][0]
    assert (refresh["Status"], refresh["PercentageComplete"], refresh["InstancesToUpdate"]) == (
        "Successful", 100, 0)
    assert refresh["EndTime"] >= refresh["StartTime"]
    assert control_request(aws.url, "autoscaling/instance-refreshes",
                   {"region": REGION, "group": group.name})[1]["refreshes"] == []
