"""A region of the twin's AWS endpoint that stops answering (runbook 3.6, FIS cross-region
connectivity disruption): requests signed for it are held unanswered; other regions answer."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError

from drills.twin import control
from drills.twin.aws import AwsEndpoint, fake_credentials

_IMPATIENT = Config(read_timeout=1.5, connect_timeout=2, retries={"max_attempts": 1})


def _ssm(aws: AwsEndpoint, region: str):  # type: ignore[no-untyped-def]
    creds = fake_credentials()
    return boto3.session.Session(
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"]).client(
        "ssm", region_name=region, endpoint_url=aws.url, config=_IMPATIENT)


def test_an_isolated_region_stops_answering_and_the_others_do_not(aws: AwsEndpoint) -> None:
    """While us-east-1 is isolated its calls time out (held, never answered); us-west-2
    answers; once it returns, us-east-1 answers again with what it held before."""
    east, west = _ssm(aws, "us-east-1"), _ssm(aws, "us-west-2")
    east.put_parameter(Name="/t/region", Value="east", Type="String", Overwrite=True)
    assert control.post(aws.url, "regions/isolate",
                        {"region": "us-east-1", "isolated": True}) == {"isolated": ["us-east-1"]}
    try:
        with pytest.raises(ReadTimeoutError):
            east.get_parameter(Name="/t/region")
        west.put_parameter(Name="/t/region", Value="west", Type="String", Overwrite=True)
        assert west.get_parameter(Name="/t/region")["Parameter"]["Value"] == "west"
    finally:
        control.post(aws.url, "regions/isolate", {"region": "us-east-1", "isolated": False})
    assert east.get_parameter(Name="/t/region")["Parameter"]["Value"] == "east"


def test_a_bad_isolation_request_is_refused(aws: AwsEndpoint) -> None:
    """The route needs a region name and a boolean."""
    status, body = control.request(aws.url, "regions/isolate", {"region": "us-east-1"})
    assert status == 400
    assert "isolated" in body["message"]
