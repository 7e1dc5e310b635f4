"""What the fidelity tests of EC2 Auto Scaling share: a group launched from an SSM AMI."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError

from drills.clients import Clients

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


def error_code(call: Callable[[], object]) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return str(caught.value.response["Error"]["Code"])
