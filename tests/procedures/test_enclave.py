"""Runbook 4.1 steps 1-2 automated, on a real moto server with the twin's fidelity layer."""

from __future__ import annotations

import json
import urllib.request
import uuid
from dataclasses import dataclass

import pytest

from drills.clients import Clients
from drills.errors import ConfigError, RecoveryError
from drills.procedures import enclave as procedure
from drills.twin.aws import AwsEndpoint

REGION = "us-east-1"


@dataclass
class Stack:
    asg: str
    param: str
    v1: str
    clients: Clients

    def ami(self, deregistered: bool = False) -> str:
        ec2 = self.clients("ec2")
        ami = str(ec2.register_image(Name=f"img-{uuid.uuid4().hex[:8]}")["ImageId"])
        if deregistered:
            ec2.deregister_image(ImageId=ami)
        return ami

    def release(self, ami: str) -> None:
        self.clients("ssm").put_parameter(Name=self.param, Value=ami, Type="String",
                                          Overwrite=True)

    def current(self) -> str:
        return str(self.clients("ssm").get_parameter(Name=self.param)["Parameter"]["Value"])


@pytest.fixture
def stack(clients: Clients) -> Stack:
    """A group whose launch template pins v1 (as the twin's CloudFormation stack does)."""
    tag = uuid.uuid4().hex[:8]
    param = f"/t/{tag}/current-ami"
    v1 = clients("ec2").register_image(Name=f"v1-{tag}")["ImageId"]
    clients("ssm").put_parameter(Name=param, Value=v1, Type="String")
    template = clients("ec2").create_launch_template(
        LaunchTemplateName=f"lt-{tag}", LaunchTemplateData={
            "ImageId": v1, "InstanceType": "m5.xlarge",
            "EnclaveOptions": {"Enabled": True}})["LaunchTemplate"]
    clients("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=f"asg-{tag}", MinSize=0, MaxSize=4, DesiredCapacity=2,
        AvailabilityZones=["us-east-1a"],
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "1"})
    return Stack(f"asg-{tag}", param, v1, clients)


def test_a_pinned_template_is_reported_with_what_to_change(stack: Stack) -> None:
    """Step 2 only works when the template resolves the parameter: a pinned ImageId is a
    ConfigError naming the template version, its ImageId and the fix."""
    with pytest.raises(ConfigError, match=r"version 1 .* has ImageId 'ami-.*resolve:ssm:"):
        procedure.require_ssm_ami(stack.clients, stack.asg, REGION, stack.param)


def test_use_ssm_ami_makes_a_new_default_version_and_is_idempotent(stack: Stack) -> None:
    """A new template version, the old one's data with ImageId resolve:ssm:<param>, becomes
    the default the group launches; running it again changes nothing."""
    assert procedure.use_ssm_ami(stack.clients, stack.asg, REGION, stack.param) is True
    template, version, image = procedure.launch_template_image(stack.clients, stack.asg, REGION)
    assert (version, image) == ("2", f"resolve:ssm:{stack.param}")
    data = stack.clients("ec2").describe_launch_template_versions(
        LaunchTemplateId=template, Versions=["2"])["LaunchTemplateVersions"][0][
        "LaunchTemplateData"]
    assert data["InstanceType"] == "m5.xlarge"
    assert data["EnclaveOptions"] == {"Enabled": True}
    procedure.require_ssm_ami(stack.clients, stack.asg, REGION, stack.param)
    assert procedure.use_ssm_ami(stack.clients, stack.asg, REGION, stack.param) is False


def test_diagnosis_shows_the_missing_ami_and_the_failed_launches(stack: Stack) -> None:
    """Runbook 4.1 step 1: template, current-ami, whether describe-images lists it, and
    the last 5 activities, the newest a Failed launch naming the image."""
    procedure.use_ssm_ami(stack.clients, stack.asg, REGION, stack.param)
    gone = stack.ami(deregistered=True)
    stack.release(gone)
    stack.clients("autoscaling").set_desired_capacity(AutoScalingGroupName=stack.asg,
                                                      DesiredCapacity=3)
    found = procedure.diagnose(stack.clients, stack.asg, REGION, stack.param)
    assert (found.desired, found.in_service, found.current_ami) == (3, 2, gone)
    assert found.ami_exists is False
    assert found.ami_missing is True
    assert len(found.activities) <= 5
    assert found.failing_launches
    assert "DOES NOT EXIST" in found.summary()


def test_healthy_diagnosis_does_not_claim_a_missing_ami(stack: Stack) -> None:
    """With the AMI present nothing points at it: `ami_missing` is False."""
    found = procedure.diagnose(stack.clients, stack.asg, REGION, stack.param)
    assert found.ami_exists is True
    assert found.ami_missing is False


def test_previous_known_good_ami_skips_values_whose_image_is_gone(stack: Stack) -> None:
    """From the parameter's history: the newest earlier value whose image still exists
    (v1 here, since v2 was deregistered too)."""
    v2, v3 = stack.ami(deregistered=True), stack.ami(deregistered=True)
    stack.release(v2)
    stack.release(v3)
    assert procedure.previous_known_good_ami(stack.clients, REGION, stack.param) == stack.v1


def test_previous_known_good_ami_without_history_is_a_recovery_error(stack: Stack) -> None:
    """A parameter that only ever named the current AMI offers nothing to roll back to."""
    with pytest.raises(RecoveryError, match="no earlier value"):
        procedure.previous_known_good_ami(stack.clients, REGION, stack.param)


def test_roll_back_refuses_an_ami_that_does_not_exist(stack: Stack) -> None:
    """put-parameter to a missing image would fix nothing: refused, parameter unchanged."""
    with pytest.raises(RecoveryError, match="does not exist either"):
        procedure.roll_back_ami(stack.clients, REGION, stack.param,
                                stack.ami(deregistered=True))
    assert stack.current() == stack.v1


def test_roll_back_and_refresh(aws: AwsEndpoint, stack: Stack) -> None:
    """Runbook 4.1 step 2: the parameter names the known-good AMI again and an instance
    refresh with the given MinHealthyPercentage is started; waiting returns its end."""
    stack.release(stack.ami(deregistered=True))
    procedure.roll_back_ami(stack.clients, REGION, stack.param, stack.v1)
    assert stack.current() == stack.v1
    refresh_id = procedure.start_instance_refresh(stack.clients, stack.asg, REGION, 50)
    pending = procedure.wait_for_instance_refresh(stack.clients, stack.asg, REGION, refresh_id,
                                                  timeout=0.0, progress=lambda _: None)
    assert (pending.status, pending.reason) == ("Pending", "still Pending after 0s")
    body = {"region": REGION, "group": stack.asg, "id": refresh_id, "status": "Successful",
            "percentage": 100, "to_update": 0}  # what the twin's controller reports
    urllib.request.urlopen(urllib.request.Request(
        f"{aws.url}/drills-twin/autoscaling/update-instance-refresh",
        data=json.dumps(body).encode(), method="POST"), timeout=10).read()
    done = procedure.wait_for_instance_refresh(stack.clients, stack.asg, REGION, refresh_id,
                                               timeout=10.0, progress=lambda _: None)
    assert (done.status, done.percentage, done.statuses_seen) == ("Successful", 100,
                                                                  ("Successful",))
    preferences = stack.clients("autoscaling").describe_instance_refreshes(
        AutoScalingGroupName=stack.asg)["InstanceRefreshes"][0]["Preferences"]
    assert preferences["MinHealthyPercentage"] == 50


def test_instance_images_lists_the_ami_of_each_instance(stack: Stack) -> None:
    """InService instance id -> its AMI, from describe-instances."""
    images = procedure.instance_images(stack.clients, stack.asg, REGION)
    assert len(images) == 2
    assert set(images.values()) == {stack.v1}
