"""drills.twin.software: what EC2 does when it boots the group's instances, played beside an
AWS endpoint the twin did not provision (the whole of it runs in tests/test_examples_aws_run.py)."""

from __future__ import annotations

from pathlib import Path

from drills.environment import Names
from drills.twin.aws import AwsEndpoint
from drills.twin.software import ServiceSoftware


def test_a_launch_templates_ssm_image_is_resolved_as_ec2_does(aws: AwsEndpoint,
                                                             tmp_path: Path) -> None:
    """moto keeps `resolve:ssm:<parameter>` as the instance's ImageId; the software boots the
    AMI the parameter names, and takes a plain AMI id as it is."""
    software = ServiceSoftware(tmp_path, aws.url, Names())
    software.clients("ssm").put_parameter(Name="/test/current-ami", Value="ami-12345678",
                                          Type="String", Overwrite=True)
    assert software._resolve("resolve:ssm:/test/current-ami") == "ami-12345678"
    assert software._resolve("ami-87654321") == "ami-87654321"


def test_no_group_boots_nothing(aws: AwsEndpoint, tmp_path: Path) -> None:
    """A region without the enclave group (not deployed) has no instances to boot."""
    software = ServiceSoftware(tmp_path, aws.url, Names(asg="No-Such-Group"))
    software.reconcile(first=True)
    assert software.instances == {}
