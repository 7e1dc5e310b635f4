"""SSM Run Command on the twin runs its commands, checked against what AWS documents.

References: SSM API Reference, SendCommand (Errors: InvalidInstanceId), GetCommandInvocation
(ResponseCode: "-1 ... the command hasn't started running"; StatusDetails), Command
(Status), and "Understanding command statuses",
https://docs.aws.amazon.com/systems-manager/latest/userguide/monitor-commands.html.
The agent on a NATS instance acts on a real nats-server process of the twin.
"""

from __future__ import annotations

import fnmatch
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from drills.twin.aws import AwsEndpoint, fake_credentials
from drills.twin.fidelity.ssm_run_command import NatsAgent, run_script
from drills.twin.nats import Backend, NatsCluster, NodeState, allocate, cluster_for
from drills.twin.nats.instances import ensure_instances, nats_instances

REGION = "us-east-1"
TERMINAL = ("Success", "Failed", "Cancelled", "TimedOut")


class _Clients:
    """The `Clients` call shape (`clients(service, region)`) over one endpoint."""

    def __init__(self, aws: AwsEndpoint) -> None:
        creds = fake_credentials()
        self.kwargs = {"endpoint_url": aws.url, "aws_access_key_id": creds["AWS_ACCESS_KEY_ID"],
                       "aws_secret_access_key": creds["AWS_SECRET_ACCESS_KEY"]}

    def __call__(self, service: str, region: str | None = None) -> Any:
        return boto3.client(service, region_name=region or REGION, **self.kwargs)


@pytest.fixture(scope="module")
def clients(aws: AwsEndpoint) -> _Clients:
    return _Clients(aws)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """A one-node NATS cluster of real nats-server processes."""
    spec = allocate(REGION, tmp_path_factory.mktemp("nats") / "n", Backend.PROCESS, "u", "p",
                    size=1, cluster_name=f"t-{uuid.uuid4().hex[:8]}")
    cluster = cluster_for(spec)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def instance(aws: AwsEndpoint, clients: _Clients, node: NatsCluster) -> str:
    """The node's EC2 instance, tagged as runbook 4.2 looks for it, with its SSM agent."""
    return ensure_instances(clients, aws.url, node.spec)[node.spec.nodes[0].name]


def _send(clients: _Clients, instance_ids: list[str], commands: list[str]) -> dict[str, Any]:
    return dict(clients("ssm").send_command(
        InstanceIds=instance_ids, DocumentName="AWS-RunShellScript",
        Parameters={"commands": commands})["Command"])


def _finished(clients: _Clients, command_id: str, instance_id: str) -> dict[str, Any]:
    """The invocation once it reached a terminal status (polled, 30 s deadline)."""
    ssm, deadline = clients("ssm"), time.monotonic() + 30
    while True:
        got = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
        if got["Status"] in TERMINAL:
            return dict(got)
        assert time.monotonic() < deadline, f"invocation still {got['Status']} after 30s"
        time.sleep(0.05)


def _pid(cluster: NatsCluster) -> str | None:
    return cluster.describe()[0].handle


def test_ensure_instances_tags_them_as_the_runbook_filters(clients: _Clients, aws: AwsEndpoint,
                                                            node: NatsCluster,
                                                            instance: str) -> None:
    """The NATS instance is found by runbook 4.2's own filter (tag Application=vettid-nats,
    running), runs an x86_64 Amazon Linux 2 image, and ensure_instances is idempotent."""
    found = clients("ec2").describe_instances(Filters=[
        {"Name": "tag:Application", "Values": ["vettid-nats"]},
        {"Name": "instance-state-name", "Values": ["running"]}])
    images = {i["InstanceId"]: i["ImageId"] for r in found["Reservations"] for i in r["Instances"]}
    assert instance in images
    image = clients("ec2").describe_images(ImageIds=[images[instance]])["Images"][0]
    assert fnmatch.fnmatch(image["Name"], "amzn2-ami-hvm-*-x86_64-gp2"), image["Name"]
    assert ensure_instances(clients, aws.url, node.spec) == {node.spec.nodes[0].name: instance}
    assert nats_instances(clients, node.spec) == {node.spec.nodes[0].name: instance}


def test_restart_runs_on_the_node_and_succeeds(clients: _Clients, node: NatsCluster,
                                               instance: str) -> None:
    """SendCommand answers `Pending` at once; the invocation then ends `Success` with
    ResponseCode 0 and execution times, and nats-server really was restarted (new pid)."""
    before = _pid(node)
    command = _send(clients, [instance], ["sudo systemctl restart nats-server"])
    assert command["Status"] == "Pending"
    done = _finished(clients, command["CommandId"], instance)
    assert (done["Status"], done["StatusDetails"], done["ResponseCode"]) == (
        "Success", "Success", 0)
    assert done["ExecutionEndDateTime"] >= done["ExecutionStartDateTime"] != ""
    assert _pid(node) not in (None, before)
    node.wait_healthy(timeout=20)
    listed = clients("ssm").list_commands(CommandId=command["CommandId"])["Commands"][0]
    assert listed["Status"] == "Success"


def test_a_command_runs_only_where_it_was_sent(clients: _Clients, node: NatsCluster,
                                              instance: str) -> None:
    """AWS runs a command on the InstanceIds it names; moto would add every instance of
    the region. Sent to another instance, a restart leaves this node's process alone."""
    ec2 = clients("ec2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    other = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    before = _pid(node)
    command = _send(clients, [other], ["sudo systemctl restart nats-server"])
    assert command["InstanceIds"] == [other]
    _finished(clients, command["CommandId"], other)
    with pytest.raises(ClientError) as caught:
        clients("ssm").get_command_invocation(CommandId=command["CommandId"],
                                              InstanceId=instance)
    assert caught.value.response["Error"]["Code"] == "InvocationDoesNotExist"
    assert _pid(node) == before


def test_targets_select_the_nats_instances_by_tag(clients: _Clients, instance: str) -> None:
    """Targets (Key=tag:Application, Values=vettid-nats) reach the tagged instance."""
    command = dict(clients("ssm").send_command(
        Targets=[{"Key": "tag:Application", "Values": ["vettid-nats"]}],
        DocumentName="AWS-RunShellScript",
        Parameters={"commands": ["systemctl is-active nats-server"]})["Command"])
    assert instance in command["InstanceIds"]
    assert _finished(clients, command["CommandId"], instance)["Status"] == "Success"


def test_is_active_of_a_stopped_unit_fails_with_code_3(clients: _Clients, node: NatsCluster,
                                                       instance: str) -> None:
    """`systemctl is-active` exits 3 for an inactive unit; AWS marks an invocation whose
    result code is not zero `Failed`. After `start`, it is active again (exit 0)."""
    node.stop_node(node.spec.nodes[0].name)
    try:
        command = _send(clients, [instance], ["systemctl is-active nats-server"])
        done = _finished(clients, command["CommandId"], instance)
        assert (done["Status"], done["ResponseCode"]) == ("Failed", 3)
        assert done["StandardOutputContent"] == "inactive"
        started = _send(clients, [instance], ["sudo systemctl start nats-server",
                                              "systemctl is-active nats-server"])
        done = _finished(clients, started["CommandId"], instance)
        assert (done["Status"], done["ResponseCode"]) == ("Success", 0)
        assert node.node_state(node.spec.nodes[0].name) is NodeState.RUNNING
    finally:
        node.start_node(node.spec.nodes[0].name)
        node.wait_healthy(timeout=20)


def test_a_command_the_twin_cannot_run_fails_and_touches_nothing(
        clients: _Clients, node: NatsCluster, instance: str) -> None:
    """Anything but systemctl on nats-server fails (exit 127, stderr says why) instead of
    pretending to succeed, and the node is left as it was."""
    before = _pid(node)
    command = _send(clients, [instance], ["sudo reboot"])
    done = _finished(clients, command["CommandId"], instance)
    assert (done["Status"], done["ResponseCode"]) == ("Failed", 127)
    assert "systemctl" in done["StandardErrorContent"]
    assert _pid(node) == before


def test_an_instance_without_agent_is_undeliverable(clients: _Clients, instance: str) -> None:
    """AWS: an invocation on a node no agent answers ends `Undeliverable`; the command,
    not having succeeded everywhere, is not `Success`."""
    ec2 = clients("ec2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    bare = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    command = _send(clients, [bare, instance], ["systemctl is-active nats-server"])
    done = _finished(clients, command["CommandId"], bare)
    assert (done["Status"], done["StatusDetails"], done["ResponseCode"]) == (
        "Failed", "Undeliverable", -1)
    assert _finished(clients, command["CommandId"], instance)["Status"] == "Success"
    deadline = time.monotonic() + 10
    while (status := clients("ssm").list_commands(
            CommandId=command["CommandId"])["Commands"][0]["Status"]) not in TERMINAL:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert status == "Failed"


@pytest.mark.parametrize("state", ["missing", "terminated"])
def test_send_command_refuses_a_missing_or_terminated_instance(clients: _Clients,
                                                                state: str) -> None:
    """AWS SendCommand errors: InvalidInstanceId when the node does not exist or is in an
    invalid state (shutting-down, terminated); nothing runs."""
    ec2 = clients("ec2")
    if state == "missing":
        target = "i-0123456789abcdef0"
    else:
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        target = ec2.run_instances(ImageId=image, MinCount=1,
                                   MaxCount=1)["Instances"][0]["InstanceId"]
        ec2.terminate_instances(InstanceIds=[target])
    with pytest.raises(ClientError) as caught:
        _send(clients, [target], ["systemctl restart nats-server"])
    assert caught.value.response["Error"]["Code"] == "InvalidInstanceId"


def test_registering_an_agent_needs_an_existing_instance(aws: AwsEndpoint,
                                                         node: NatsCluster) -> None:
    """The twin-only route refuses an instance EC2 does not know, with a 400."""
    body = {"region": REGION, "instance_id": "i-0123456789abcdef0",
            "node": node.spec.nodes[0].name, "cluster": node.spec.to_dict()}
    request = urllib.request.Request(
        f"{aws.url}/drills-twin/ssm/register-nats-agent", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400
    assert "does not exist" in caught.value.read().decode()


def test_every_line_runs_and_other_units_are_refused(tmp_path: Path) -> None:
    """AWS-RunShellScript runs every line (no stop at the first failure); lines other than
    systemctl on nats-server fail without touching any cluster (this one never started)."""
    spec = allocate("r", tmp_path, Backend.PROCESS, "u", "p", size=1)
    agent = NatsAgent(spec.nodes[0].name, spec.to_dict(), threading.Lock())
    code, out, err = run_script(["echo hello", "systemctl restart sshd"], agent)
    assert (code, out) == (127, "")
    assert err.count("run only") == 2
