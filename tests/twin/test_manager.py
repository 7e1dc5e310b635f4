"""The whole twin: start, health, env for the aws CLI, the ASG behaviours moto lacks, stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from drills.twin import manager
from drills.twin.aws import AwsEndpoint
from drills.twin.manager import Twin, _serving, down, running_twin
from drills.twin.nats import Backend, allocate
from drills.twin.procs import still_running
from drills.twin.state import DR_REGION, PRIMARY_REGION, RegionState, TwinState
from drills.twin.timing import profile
from tests.conftest import wait_for

pytestmark = pytest.mark.twin


def test_every_component_is_healthy(healthy_twin: Twin) -> None:
    """`twin status` lists the AWS endpoint, controller, 3 NATS nodes, the ASG and its workers."""
    rows = {r.name: r for r in manager.status(Path(healthy_twin.state.state_dir))}
    assert all(r.healthy for r in rows.values()), rows
    assert "aws" in rows
    assert "asg-controller" in rows
    assert "dns" in rows
    assert sum(name.startswith("nats/nats-us-east-1") for name in rows) == 3
    assert sum(name.startswith("nats/nats-us-west-2") for name in rows) == 3
    assert sum(name.startswith("enclave/") for name in rows) == 2  # the DR ASG is at 0
    assert "standby" in rows["api/us-west-2"].detail
    assert len(healthy_twin.population()) == healthy_twin.state.population > 0


def test_dr_region_is_a_standby_of_the_primary(healthy_twin: Twin) -> None:
    """Runbook 5.1/5.2 prerequisites, through the public APIs: the standby ASG at 0 with the
    DR AMI copied into us-west-2, the parameters, S3 replication to the DR bucket, the tables
    replicated, the multi-region key's replica decrypting a us-east-1 ciphertext."""
    names, clients = healthy_twin.names, healthy_twin.clients
    group = clients("autoscaling", DR_REGION).describe_auto_scaling_groups(
        AutoScalingGroupNames=[names.dr_asg])["AutoScalingGroups"][0]
    assert group["DesiredCapacity"] == 0
    ami = clients("ssm", DR_REGION).get_parameter(Name=names.param_current_ami)
    image = ami["Parameter"]["Value"]
    assert image == healthy_twin.state.regions[DR_REGION].ami_id
    assert clients("ec2", DR_REGION).describe_images(ImageIds=[image])["Images"]
    rule = clients("s3").get_bucket_replication(Bucket=names.bucket)[
        "ReplicationConfiguration"]["Rules"][0]
    assert rule["Destination"]["Bucket"] == f"arn:aws:s3:::{names.dr_bucket}"
    for table in names.tables:
        replicas = clients("dynamodb").describe_table(TableName=table)["Table"]["Replicas"]
        assert [r["RegionName"] for r in replicas] == [DR_REGION]
    key = healthy_twin.state.primary.key_arn
    sealed = clients("kms").encrypt(KeyId=key, Plaintext=b"vault")["CiphertextBlob"]
    opened = clients("kms", DR_REGION).decrypt(CiphertextBlob=sealed)
    assert opened["Plaintext"] == b"vault"
    assert opened["KeyId"] == healthy_twin.state.regions[DR_REGION].key_arn


def test_dig_answers_the_api_names(healthy_twin: Twin) -> None:
    """`dig @$DRILLS_DNS_HOST -p $DRILLS_DNS_PORT api.vettid.dev` (issue 9): the failover
    record answers the primary's address, api-dr.vettid.dev the DR region's."""
    env = manager.env(Path(healthy_twin.state.state_dir))
    answers = {}
    for name in ("api.vettid.dev", "api-dr.vettid.dev"):
        answers[name] = subprocess.run(
            ["dig", f"@{env['DRILLS_DNS_HOST']}", "-p", env["DRILLS_DNS_PORT"], name, "+short"],
            capture_output=True, text=True, timeout=30, check=True).stdout.split()
    assert answers == {"api.vettid.dev": [healthy_twin.state.primary.host],
                       "api-dr.vettid.dev": [healthy_twin.state.regions[DR_REGION].host]}


def test_runbook_cli_commands_work_with_twin_env(healthy_twin: Twin) -> None:
    """With `drills twin env` exported, runbook 4.1's diagnosis runs unchanged through `aws`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(manager.env(Path(healthy_twin.state.state_dir)))
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent"
    asg = subprocess.run(
        ["aws", "cloudformation", "describe-stacks", "--stack-name", "VettID-Nitro", "--query",
         "Stacks[0].Outputs[?OutputKey=='EnclaveASGName'].OutputValue", "--output", "text"],
        env=env, capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert asg == "VettID-Nitro-EnclaveASG"
    out = subprocess.run(
        ["aws", "autoscaling", "describe-auto-scaling-groups", "--auto-scaling-group-names", asg,
         "--query", "AutoScalingGroups[0].{Desired:DesiredCapacity,"
         "Running:Instances[?LifecycleState=='InService']|length(@)}"],
        env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    assert json.loads(out) == {"Desired": 2, "Running": 2}
    key = subprocess.run(
        ["aws", "ssm", "get-parameter", "--name", "/vettid/nitro/sealing-key-arn", "--query",
         "Parameter.Value", "--output", "text"],
        env=env, capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert key == healthy_twin.state.primary.key_arn


def test_killed_worker_is_replaced_after_a_health_check(healthy_twin: Twin) -> None:
    """A dead enclave process makes the ASG replace its instance (moto never would)."""
    victim, pid = sorted(healthy_twin.worker_pids().items())[0]
    os.kill(pid, signal.SIGKILL)
    # The victim may be younger than the group's grace period: replaced only after it.
    grace = profile(healthy_twin.state.profile).health_check_grace_period
    wait_for(lambda: victim not in healthy_twin.in_service()[1], grace + 30,
             "the instance to go")
    wait_for(lambda: len(_serving(healthy_twin)) == 2, 60, "a replacement to serve")
    activities = (Path(healthy_twin.state.state_dir) / "activities.jsonl").read_text()
    assert f"Terminating EC2 instance: {victim}" in activities
    assert "enclave process exited" in activities


def test_terminated_instance_is_replaced_after_boot(healthy_twin: Twin) -> None:
    """A terminated instance is replaced; the new one serves only once it has booted."""
    asg = healthy_twin.clients("autoscaling")
    _, before = healthy_twin.in_service()
    asg.terminate_instance_in_auto_scaling_group(InstanceId=before[0],
                                                 ShouldDecrementDesiredCapacity=False)
    served = wait_for(lambda: (s := _serving(healthy_twin)) and len(s) == 2 and s, 60,
                      "the replacement to serve")
    assert before[0] not in served


def test_desired_capacity_changes_start_and_stop_workers(healthy_twin: Twin) -> None:
    """Scaling to 3 boots a third worker; back to 2 stops one."""
    asg = healthy_twin.clients("autoscaling")
    name = healthy_twin.state.primary.asg
    asg.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=3)
    try:
        wait_for(lambda: len(_serving(healthy_twin)) == 3, 60, "three serving workers")
    finally:
        asg.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=2)
    wait_for(lambda: len(healthy_twin.worker_pids()) == 2, 30, "the third worker to stop")


def test_up_and_down_leave_no_process(tmp_path: Path, twin: Twin) -> None:
    """A second twin starts in its own directory, noting the one already running (timings
    share the machine with it), and `down` stops every process of it."""
    state_dir = tmp_path / "twin"
    result = subprocess.run([sys.executable, "-m", "drills.cli", "twin", "up", "--state-dir",
                             str(state_dir), "--vaults", "2"], capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr
    assert "other twin(s) run on this machine" in result.stderr
    assert str(Path(twin.state.state_dir).resolve()) in result.stderr
    second = Twin.load(state_dir)
    pids = list(second.worker_pids().values())
    pids += [int(p.read_text()) for p in state_dir.rglob("*.pid")]
    assert len(pids) >= 2 + 3 + 2  # workers, nats nodes, aws + controller
    assert all(still_running(p) for p in pids)
    down = subprocess.run([sys.executable, "-m", "drills.cli", "twin", "down", "--state-dir",
                           str(state_dir)], capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    assert not [p for p in pids if still_running(p)]
    assert not state_dir.exists()


def test_down_never_signals_a_stranger_holding_a_stale_pid(tmp_path: Path) -> None:
    """A twin's state left behind (a reboot, a restored snapshot) names pids that other
    processes may hold now: cleaning it up must not signal them."""
    stranger = subprocess.Popen(["sleep", "300"])
    try:
        root = tmp_path / "twin"
        spec = allocate(PRIMARY_REGION, root / "nats", Backend.PROCESS, "u", "p")
        endpoint = AwsEndpoint("127.0.0.1", spec.nodes[0].client_port, str(root / "aws.pid"),
                               str(root / "aws.log"))
        state = TwinState(str(root), "fast", asdict(endpoint),
                          {PRIMARY_REGION: RegionState(PRIMARY_REGION, spec.to_dict(), "asg", 2)})
        root.mkdir()
        state.save()
        for pid_file in (root / "controller.pid", root / "aws.pid"):
            pid_file.write_text(str(stranger.pid))
        state.workers_dir.mkdir(parents=True, exist_ok=True)
        (state.workers_dir / "i-1.json").write_text(json.dumps(
            {"instance_id": "i-1", "region": PRIMARY_REGION, "pid": stranger.pid}))
        assert running_twin(root) is None
        assert down(root)
        assert stranger.poll() is None, "the stranger was signalled"
        assert not root.exists()
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.docker
def test_container_backend_twin_serves(tmp_path: Path) -> None:
    """`drills twin up --nats container` runs the NATS cluster in Docker; the vault serves."""
    from drills.twin.nats import docker_available

    reason = docker_available()
    if reason:
        pytest.skip(f"container backend needs a Docker engine: {reason}")
    state_dir = tmp_path / "twin"
    cluster = None
    try:
        twin = manager.up(state_dir, backend="container", vaults=2)
        cluster = twin.nats_spec().cluster_name
        rows = manager.status(state_dir)
        assert all(r.healthy for r in rows), rows
        nats_rows = [r for r in rows if r.name.startswith("nats/")]
        assert len(nats_rows) == 6  # three nodes in each region
        assert twin.nats_spec().backend.value == "container"
        assert twin.nats_spec(DR_REGION).backend.value == "container"
        assert len(_serving(twin)) == 2
    finally:
        manager.down(state_dir)
    import docker

    client = docker.from_env()
    assert cluster is not None
    # Filtered by the daemon: listing every container inspects each, and one another test
    # removes meanwhile fails the listing (docker.errors.NotFound).
    left = [c.name for c in client.containers.list(all=True, filters={"name": cluster})]
    assert left == []
