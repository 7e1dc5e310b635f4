"""Elastic Load Balancing target health on the twin: it follows the health checks' results.

References (AWS documentation):
- Elastic Load Balancing, "Health checks for Application Load Balancer target groups"
  (target-group-health-checks.html): "After your target is registered, it must pass one
  health check to be considered healthy"; out of service after UnhealthyThresholdCount
  consecutive failures, back after HealthyThresholdCount consecutive successes; target states
  `initial`, `healthy`, `unhealthy`, `unused` and their reason codes — "health checks guide";
- ELB API Reference, TargetHealth (API_TargetHealth.html): reason codes and descriptions;
- EC2 Auto Scaling User Guide, "Use Elastic Load Balancing to distribute incoming
  application traffic in your Auto Scaling group": instances launched by the group are
  registered, instances it terminates deregistered — "ASG and ELB guide".

The results themselves come from the twin's health checker (the ASG controller) through the
control route `elbv2/health-check-results`; here the tests report them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from drills.clients import Clients
from drills.twin.aws import AwsEndpoint
from drills.twin.control import request as control_request
from tests.twin.fidelity.conftest import REGION

ROUTE = "elbv2/health-check-results"


@dataclass
class TargetGroup:
    """A target group (healthy threshold 3, unhealthy threshold 2), optionally used by an
    internal ALB, and the means to report health check results for it."""

    arn: str
    aws: AwsEndpoint
    clients: Clients

    def report(self, target: str, *results: bool, reason: str = "Target.FailedHealthChecks",
               description: str | None = None) -> dict[str, Any]:
        body = {"region": REGION, "results": [
            {"target_group_arn": self.arn, "target_id": target, "ok": ok, "reason": reason,
             **({"description": description} if description else {})} for ok in results]}
        status, reply = control_request(self.aws.url, ROUTE, body)
        assert status == 200, reply
        return reply

    def health(self, target: str) -> dict[str, Any]:
        found = self.clients("elbv2").describe_target_health(
            TargetGroupArn=self.arn, Targets=[{"Id": target}])["TargetHealthDescriptions"]
        return dict(found[0]["TargetHealth"])

    def registered(self) -> set[str]:
        found = self.clients("elbv2").describe_target_health(
            TargetGroupArn=self.arn)["TargetHealthDescriptions"]
        return {d["Target"]["Id"] for d in found}


def _target_group(clients: Clients, aws: AwsEndpoint, *, in_use: bool) -> TargetGroup:
    ec2, elb = clients("ec2"), clients("elbv2")
    subnets = sorted(ec2.describe_subnets(Filters=[{"Name": "default-for-az",
                                                    "Values": ["true"]}])["Subnets"],
                     key=lambda s: s["AvailabilityZone"])
    tag = uuid.uuid4().hex[:8]
    group = elb.create_target_group(
        Name=f"tg-{tag}", Protocol="HTTP", Port=8080, VpcId=subnets[0]["VpcId"],
        HealthCheckPath="/health", HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=4,
        HealthyThresholdCount=3, UnhealthyThresholdCount=2)["TargetGroups"][0]
    if in_use:
        lb = elb.create_load_balancer(Name=f"lb-{tag}", Scheme="internal", Type="application",
                                      Subnets=[s["SubnetId"] for s in subnets[:2]])
        elb.create_listener(LoadBalancerArn=lb["LoadBalancers"][0]["LoadBalancerArn"],
                            Protocol="HTTP", Port=80, DefaultActions=[
                                {"Type": "forward", "TargetGroupArn": group["TargetGroupArn"]}])
    return TargetGroup(group["TargetGroupArn"], aws, clients)


@pytest.fixture
def target_group(clients: Clients, aws: AwsEndpoint) -> TargetGroup:
    """A target group an internal Application Load Balancer forwards to."""
    return _target_group(clients, aws, in_use=True)


def _instance(clients: Clients) -> str:
    image = clients("ec2").register_image(Name=f"img-{uuid.uuid4().hex[:8]}")["ImageId"]
    return str(clients("ec2").run_instances(ImageId=image, MinCount=1, MaxCount=1,
                                            InstanceType="m5.xlarge")["Instances"][0][
        "InstanceId"])


def _registered(clients: Clients, group: TargetGroup) -> str:
    iid = _instance(clients)
    clients("elbv2").register_targets(TargetGroupArn=group.arn, Targets=[{"Id": iid}])
    return iid


def test_a_new_target_is_initial_until_it_passes_one_check(clients: Clients,
                                                          target_group: TargetGroup) -> None:
    """Health checks guide: a registered target is `initial` (registration in progress, then
    initial health checks in progress) and healthy after passing ONE check, not
    HealthyThresholdCount (moto said `healthy` at once)."""
    iid = _registered(clients, target_group)
    assert target_group.health(iid) == {"State": "initial",
                                        "Reason": "Elb.RegistrationInProgress",
                                        "Description": "Target registration is in progress"}
    target_group.report(iid, False)
    assert target_group.health(iid) == {"State": "initial",
                                        "Reason": "Elb.InitialHealthChecking",
                                        "Description": "Initial health checks in progress"}
    reply = target_group.report(iid, True)
    assert target_group.health(iid) == {"State": "healthy"}
    assert reply["targets"][target_group.arn][iid]["State"] == "healthy"


def test_unhealthy_after_unhealthy_threshold_failures_with_their_reason(
        clients: Clients, target_group: TargetGroup) -> None:
    """Health checks guide: the target goes out of service after UnhealthyThresholdCount (2)
    consecutive failures, not one; TargetHealth gives the reason code and description."""
    iid = _registered(clients, target_group)
    target_group.report(iid, True)
    target_group.report(iid, False, reason="Target.ResponseCodeMismatch",
                        description="Health checks failed with these codes: [503]")
    assert target_group.health(iid)["State"] == "healthy"
    target_group.report(iid, True, False)  # a success in between restarts the count
    assert target_group.health(iid)["State"] == "healthy"
    target_group.report(iid, False, reason="Target.ResponseCodeMismatch",
                        description="Health checks failed with these codes: [503]")
    assert target_group.health(iid) == {
        "State": "unhealthy", "Reason": "Target.ResponseCodeMismatch",
        "Description": "Health checks failed with these codes: [503]"}


def test_an_initial_target_that_keeps_failing_becomes_unhealthy(
        clients: Clients, target_group: TargetGroup) -> None:
    """Health checks guide: initial checks that fail UnhealthyThresholdCount times make the
    target unhealthy (API_TargetHealth: `Target.Timeout`, "Request timed out")."""
    iid = _registered(clients, target_group)
    target_group.report(iid, False, False, reason="Target.Timeout")
    assert target_group.health(iid) == {"State": "unhealthy", "Reason": "Target.Timeout",
                                        "Description": "Request timed out"}


def test_healthy_again_only_after_healthy_threshold_successes(
        clients: Clients, target_group: TargetGroup) -> None:
    """Health checks guide: an unhealthy target is put back in service after
    HealthyThresholdCount (3) consecutive successes; fewer leave it unhealthy."""
    iid = _registered(clients, target_group)
    target_group.report(iid, True, False, False)
    target_group.report(iid, True, True)
    assert target_group.health(iid)["State"] == "unhealthy"
    target_group.report(iid, True)
    assert target_group.health(iid) == {"State": "healthy"}


def test_a_target_group_no_load_balancer_uses_has_unused_targets(
        clients: Clients, aws: AwsEndpoint) -> None:
    """API_TargetHealth: `unused`, Target.NotInUse, when the target group is not configured
    to receive traffic from a load balancer; results reported for it change nothing."""
    unused = _target_group(clients, aws, in_use=False)
    iid = _registered(clients, unused)
    unused.report(iid, False, False)
    assert unused.health(iid) == {
        "State": "unused", "Reason": "Target.NotInUse",
        "Description": "Target group is not configured to receive traffic from the load "
                       "balancer"}


def test_the_auto_scaling_group_registers_and_deregisters_its_instances(
        clients: Clients, target_group: TargetGroup) -> None:
    """ASG and ELB guide: instances the group launches are registered with its target group,
    and an instance it terminates is deregistered (moto left it registered and `healthy`)."""
    tag = uuid.uuid4().hex[:8]
    image = clients("ec2").register_image(Name=f"img-{tag}")["ImageId"]
    template = clients("ec2").create_launch_template(
        LaunchTemplateName=f"lt-{tag}", LaunchTemplateData={
            "ImageId": image, "InstanceType": "m5.xlarge"})["LaunchTemplate"]
    autoscaling = clients("autoscaling")
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=f"asg-{tag}", MinSize=0, MaxSize=4, DesiredCapacity=2,
        AvailabilityZones=["us-east-1a"], TargetGroupARNs=[target_group.arn],
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "$Default"})

    def members() -> set[str]:
        return {i["InstanceId"] for i in autoscaling.describe_auto_scaling_groups(
            AutoScalingGroupNames=[f"asg-{tag}"])["AutoScalingGroups"][0]["Instances"]}

    first = members()
    assert target_group.registered() == first
    victim = sorted(first)[0]
    autoscaling.terminate_instance_in_auto_scaling_group(InstanceId=victim,
                                                         ShouldDecrementDesiredCapacity=False)
    assert target_group.registered() == members()
    assert victim not in target_group.registered()
    autoscaling.set_desired_capacity(AutoScalingGroupName=f"asg-{tag}", DesiredCapacity=1)
    assert target_group.registered() == members()
    assert len(members()) == 1


def test_results_for_an_unknown_target_group_or_reason_are_refused(
        aws: AwsEndpoint, target_group: TargetGroup) -> None:
    """The control route names what it does not know (HTTP 400) instead of guessing."""
    status, reply = control_request(aws.url, ROUTE, {"region": REGION, "results": [
        {"target_group_arn": target_group.arn + "x", "target_id": "i-1", "ok": True}]})
    assert (status, reply["__type"]) == (400, "TargetGroupNotFound")
    status, reply = control_request(aws.url, ROUTE, {"region": REGION, "results": [
        {"target_group_arn": target_group.arn, "target_id": "i-1", "ok": False,
         "reason": "Target.Sulking"}]})
    assert (status, reply["__type"]) == (400, "ValidationException")
