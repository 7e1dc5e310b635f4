"""Runbook 4.2 automated: NATS instances found by tag, nats-server found down and restarted
through SSM Run Command, on a real moto server whose SSM agents act on real nats-servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from drills.clients import Clients
from drills.errors import RecoveryError
from drills.procedures import nats as runbook
from drills.twin.aws import AwsEndpoint
from drills.twin.nats import NatsCluster, NodeState
from drills.twin.nats.instances import ensure_instances

REGION = "us-east-1"
LINES: list[str] = []


def _progress(line: str) -> None:
    LINES.append(line)


@pytest.fixture(scope="module")
def instances(aws: AwsEndpoint, clients: Clients, cluster: NatsCluster) -> dict[str, str]:
    """Node name -> the EC2 instance (tag Application=vettid-nats) carrying it."""
    return ensure_instances(clients, aws.url, cluster.spec)


def _pids(cluster: NatsCluster) -> dict[str, str | None]:
    return {s.name: s.handle for s in cluster.describe()}


def test_diagnosis_lists_the_nats_instances_by_tag(clients: Clients,
                                                   instances: dict[str, str]) -> None:
    """Runbook 4.2 diagnosis: running instances tagged Application=vettid-nats, and no
    others (an untagged instance is not one of them)."""
    ec2 = clients("ec2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)
    assert runbook.nats_instances(clients, REGION) == sorted(instances.values())


def test_a_crashed_node_is_found_down_and_restarted_alone(
        clients: Clients, cluster: NatsCluster, instances: dict[str, str]) -> None:
    """`systemctl is-active` through SSM finds exactly the instance whose nats-server was
    killed; restarting it there brings that node back and leaves the others untouched."""
    victim = cluster.spec.nodes[2].name
    cluster.kill_node(victim)
    before = _pids(cluster)
    down = runbook.instances_where_down(clients, REGION, _progress)
    assert down == [instances[victim]]
    results = runbook.restart_nats(clients, REGION, _progress, instance_ids=down)
    assert [(r.instance_id, r.ok, r.response_code) for r in results] == [
        (instances[victim], True, 0)]
    after = _pids(cluster)
    assert after[victim] is not None
    assert {n: p for n, p in after.items() if n != victim} == {
        n: p for n, p in before.items() if n != victim}
    cluster.wait_formed(timeout=60)


def test_restart_on_all_instances_restarts_every_node(
        clients: Clients, cluster: NatsCluster, instances: dict[str, str]) -> None:
    """Runbook 4.2 step 1 as printed (every running NATS instance): every node gets a new
    process, even after all of them crashed, and the cluster forms again."""
    for node in cluster.spec.nodes:
        cluster.kill_node(node.name)
    assert {s.state for s in cluster.describe()} == {NodeState.STOPPED}
    results = runbook.restart_nats(clients, REGION, _progress)
    assert sorted(r.instance_id for r in results) == sorted(instances.values())
    assert all(r.ok for r in results)
    cluster.wait_formed(timeout=60)
    assert any("runbook 4.2 step 1" in line for line in LINES)


def test_no_nats_instance_is_a_recovery_error(clients: Clients) -> None:
    """Where no instance carries the tag, step 1 cannot apply: the error says so and points
    at step 2."""
    with pytest.raises(RecoveryError, match=r"Application=vettid-nats.*step 2"):
        runbook.restart_nats(clients, "eu-west-1", _progress)


def test_a_restart_that_cannot_run_is_a_recovery_error(clients: Clients) -> None:
    """An instance no SSM agent answers on (Undeliverable) fails the procedure with the
    instance and the status named, instead of passing silently."""
    ec2 = clients("ec2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    bare = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    with pytest.raises(RecoveryError, match=f"{bare}.*Undeliverable"):
        runbook.restart_nats(clients, REGION, _progress, instance_ids=[bare])


def test_an_unknown_instance_is_refused_by_ssm(clients: Clients) -> None:
    """SSM's InvalidInstanceId becomes a RecoveryError that says what to check."""
    with pytest.raises(RecoveryError, match=r"InvalidInstanceId.*SSM agent"):
        runbook.restart_nats(clients, REGION, _progress, instance_ids=["i-0123456789abcdef0"])


def test_diagnosis_needs_an_answer_from_every_instance(clients: Clients, tmp_path: Path) -> None:
    """An instance that cannot say whether nats-server runs (no agent) is an error, never
    counted as up or down."""
    ec2 = clients("ec2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    bare = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    with pytest.raises(RecoveryError, match=f"could not tell.*{bare}"):
        runbook.instances_where_down(clients, REGION, _progress, instance_ids=[bare])
