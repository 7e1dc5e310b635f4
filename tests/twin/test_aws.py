"""The AWS twin: a real moto server process, driven through boto3 and the aws CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from drills.errors import TwinError
from drills.twin.aws import (
    AwsEndpoint,
    client_env,
    fake_credentials,
    is_running,
    reset,
    start_aws,
    stop_aws,
)

REGION = "eu-west-1"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(aws: AwsEndpoint) -> Callable[[str], Any]:
    creds = fake_credentials()

    def make(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=aws.url,
            region_name=REGION,
            aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=creds["AWS_SESSION_TOKEN"],
        )

    return make


def _process_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return True
    return state == "Z"  # exited; only its parent's bookkeeping is left


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _s3(client: Callable[[str], Any]) -> None:
    s3 = client("s3")
    s3.create_bucket(Bucket="vault-data", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="vault-data", Key="a/b.txt", Body=b"sealed")
    assert s3.get_object(Bucket="vault-data", Key="a/b.txt")["Body"].read() == b"sealed"


def _kms(client: Callable[[str], Any]) -> None:
    kms = client("kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"seal")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"seal"


def _ssm(client: Callable[[str], Any]) -> None:
    ssm = client("ssm")
    ssm.put_parameter(Name="/vault/mode", Value="active", Type="String")
    assert ssm.get_parameter(Name="/vault/mode")["Parameter"]["Value"] == "active"


def _dynamodb(client: Callable[[str], Any]) -> None:
    ddb = client("dynamodb")
    ddb.create_table(
        TableName="ledger",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="ledger", Item={"pk": {"S": "1"}})
    assert ddb.get_item(TableName="ledger", Key={"pk": {"S": "1"}})["Item"]["pk"]["S"] == "1"


def _autoscaling(client: Callable[[str], Any]) -> None:
    autoscaling = client("autoscaling")
    autoscaling.create_launch_configuration(
        LaunchConfigurationName="enclave", ImageId="ami-12c6146b", InstanceType="m5.xlarge"
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="enclave-asg",
        LaunchConfigurationName="enclave",
        MinSize=1,
        MaxSize=2,
        DesiredCapacity=1,
        AvailabilityZones=[f"{REGION}a"],
    )
    groups = autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"]
    assert [len(g["Instances"]) for g in groups] == [1]


@pytest.mark.parametrize("exercise", [_s3, _kms, _ssm, _dynamodb, _autoscaling])
def test_answers_the_services_drills_use(
    aws: AwsEndpoint, client: Callable[[str], Any], exercise: Callable[..., None]
) -> None:
    """S3 (path-style), KMS, SSM, DynamoDB and autoscaling all answer on the one port."""
    reset(aws)
    exercise(client)


def test_reset_forgets_every_resource(aws: AwsEndpoint, client: Callable[[str], Any]) -> None:
    """POST /moto-api/reset empties the twin."""
    client("ssm").put_parameter(Name="/forget/me", Value="x", Type="String")
    reset(aws)
    assert client("ssm").describe_parameters()["Parameters"] == []


def test_requests_are_not_logged_unless_verbose(
    aws: AwsEndpoint, client: Callable[[str], Any]
) -> None:
    """Without --verbose the log holds the start line, not one line per request."""
    client("sqs").list_queues()
    log = Path(aws.log_file).read_text()
    assert "listening on" in log
    assert "POST / HTTP" not in log


def test_client_env_sends_the_aws_cli_to_the_twin(
    aws: AwsEndpoint, client: Callable[[str], Any], tmp_path: Path
) -> None:
    """With client_env's variables alone, the plain `aws` CLI talks to the twin."""
    key_id = client("kms").create_key(Description="cli")["KeyMetadata"]["KeyId"]
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env |= client_env(aws, REGION)
    # No config files of the person running the tests may leak in.
    env |= {
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    done = subprocess.run(
        ["aws", "kms", "list-keys", "--output", "json"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert key_id in done.stdout


def test_client_env_names_endpoint_region_and_fake_credentials(aws: AwsEndpoint) -> None:
    """client_env carries the endpoint URL, both region variables and fake credentials."""
    env = client_env(aws, "us-west-2")
    assert env["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{aws.port}" == aws.url
    assert env["AWS_DEFAULT_REGION"] == env["AWS_REGION"] == "us-west-2"
    assert env["AWS_ACCESS_KEY_ID"] == "testing"


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    """stop_aws ends the server process, frees the port and removes the pid file."""
    endpoint = start_aws(tmp_path)
    pid = int(Path(endpoint.pid_file).read_text())
    stop_aws(endpoint)
    assert _process_gone(pid)
    assert not Path(endpoint.pid_file).exists()
    assert not _port_open(endpoint.port)
    assert not is_running(endpoint)


def test_another_process_can_stop_it_from_the_endpoint_fields(tmp_path: Path) -> None:
    """An AwsEndpoint rebuilt from the four fields, in another process, stops the twin."""
    endpoint = start_aws(tmp_path)
    fields = dataclasses.asdict(endpoint)
    assert AwsEndpoint(**fields) == endpoint
    script = (
        "import sys; from drills.twin.aws import AwsEndpoint, stop_aws; "
        f"stop_aws(AwsEndpoint(**{fields!r}))"
    )
    subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, check=True, timeout=30)
    assert not is_running(endpoint)
    assert not _port_open(endpoint.port)


def test_stop_is_idempotent(tmp_path: Path) -> None:
    """Stopping a stopped twin, or one that never started, is not an error."""
    endpoint = start_aws(tmp_path)
    stop_aws(endpoint)
    stop_aws(endpoint)
    stop_aws(AwsEndpoint("127.0.0.1", 1, str(tmp_path / "never.pid"), str(tmp_path / "x.log")))


def test_second_start_in_the_same_workdir_is_refused(aws: AwsEndpoint) -> None:
    """A workdir whose twin is running cannot start a second one."""
    with pytest.raises(TwinError, match="already running"):
        start_aws(Path(aws.pid_file).parent)
    assert is_running(aws)


def test_start_on_a_taken_port_raises_twin_error_with_the_log(tmp_path: Path) -> None:
    """A server that cannot bind exits; start_aws says so and shows the log tail."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TwinError, match="exited") as caught:
            start_aws(tmp_path, port=port, timeout=20)
    assert "Address already in use" in str(caught.value)


def _before_and_after_sharing(expression: str) -> tuple[object, object]:
    """The JSON value of `expression` in a fresh interpreter, before and after the
    server's `_share_lookups()`."""
    probe = (
        "import json, boto3.session\n"
        "import moto.backends, moto.core.utils\n"
        "from drills.twin.aws import _share_lookups\n"
        f"before = ({expression})\n"
        "_share_lookups()\n"
        f"after = ({expression})\n"
        "print(json.dumps([before, after]))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)
    before, after = json.loads(done.stdout)
    return before, after


def test_the_server_answers_region_lookups_as_fresh_sessions_do() -> None:
    """The server asks one shared boto3 session for the regions of a service (moto's EC2
    models ask three fresh ones at import): every partition's answer is unchanged."""
    asks = [("ec2", "aws"), ("ec2", "aws-us-gov"), ("ec2", "aws-cn"), ("kms", "aws")]
    fresh, shared = _before_and_after_sharing(
        f"[boto3.session.Session().get_available_regions(s, p) for s, p in {asks!r}]")
    assert shared == fresh
    assert isinstance(shared, list)
    assert "us-west-2" in shared[0]
    assert shared[2], "no region of the China partition"


def test_the_server_reads_moto_s_models_and_modules_as_before() -> None:
    """One model loader for the whole server (moto's, with its extras) and the module list
    computed once: each model and the list read the same as with a fresh loader. EC2's
    model has moto's extras, so a plain botocore loader would differ."""
    before, after = _before_and_after_sharing(
        "[moto.core.utils.create_loader().load_service_model(service, kind)"
        " for service, kind in [('ec2', 'service-2'), ('kms', 'service-2'),"
        " ('dynamodb', 'paginators-1')]]"
        " + [sorted(moto.backends.list_of_moto_modules())]")
    assert after == before
    assert isinstance(after, list)
    assert {"s3", "ec2"} <= set(after[-1])
