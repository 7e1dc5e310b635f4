"""The enclave AMI fault: v2 released then deregistered, launches fail, revert restores.

Lifecycle tests run on a moto server of their own with the twin's fidelity layer; the last
test runs runbook 4.1's diagnosis through the `aws` CLI against the session's twin, with the
environment `drills twin env` prints, while the fault holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from drills.clients import Clients
from drills.errors import FaultError
from drills.faults import AllowList, BlastRadius, FaultContext, FaultInjector, rollback
from drills.faults.ami import DeregisterCurrentAmi
from drills.faults.enclave import TerminateInstances
from drills.journal import FaultState, Journal
from drills.procedures.enclave import image_exists
from drills.twin import manager
from drills.twin.manager import Twin
from tests.conftest import wait_for

REGION = "us-east-1"


@dataclass
class Stack:
    """An enclave-like group: template resolving current-ami, v1 registered, params set."""

    asg: str
    current: str
    latest: str
    v1: str
    clients: Clients

    def param(self, name: str) -> str:
        return str(self.clients("ssm").get_parameter(Name=name)["Parameter"]["Value"])

    def params(self, **extra: object) -> dict[str, object]:
        return {"asg": self.asg, "current_param": self.current, "latest_param": self.latest,
                "region": REGION, **extra}


def make_stack(clients: Clients, pinned: bool = False) -> Stack:
    tag = uuid.uuid4().hex[:8]
    current, latest = f"/t/{tag}/current-ami", f"/t/{tag}/latest-ami"
    v1 = clients("ec2").register_image(Name=f"enclave-v1-{tag}")["ImageId"]
    for name in (current, latest):
        clients("ssm").put_parameter(Name=name, Value=v1, Type="String")
    template = clients("ec2").create_launch_template(
        LaunchTemplateName=f"lt-{tag}", LaunchTemplateData={
            "ImageId": v1 if pinned else f"resolve:ssm:{current}"})["LaunchTemplate"]
    clients("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=f"asg-{tag}", MinSize=0, MaxSize=4, DesiredCapacity=2,
        AvailabilityZones=["us-east-1a"],
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "1"})
    return Stack(f"asg-{tag}", current, latest, v1, clients)


@pytest.fixture
def stack(clients: Clients) -> Stack:
    return make_stack(clients)


def injector(tmp_path: Path, asg: str) -> FaultInjector:
    # Every instance lost with the AMI gone is the @full_outage AMI-failure drill's fault.
    return FaultInjector(Journal(tmp_path / "journal.jsonl"), "run-1", "env-a",
                         AllowList({"asg": (asg,)}), BlastRadius(full_outage=True))


def test_inject_releases_v2_then_deregisters_it_and_revert_restores(
        tmp_path: Path, stack: Stack) -> None:
    """Inject: both parameters name v2 (runbook 6.2's release order) and v2 is gone, while
    v1 (the previous known-good) stays. Revert (a deregistered AMI cannot come back): the
    parameters are back on v1 and an instance refresh is started; twice is harmless."""
    faults = injector(tmp_path, stack.asg)
    active = faults.inject(DeregisterCurrentAmi(FaultContext(stack.clients), stack.params()))
    bad = stack.param(stack.current)
    assert bad != stack.v1
    assert stack.param(stack.latest) == bad
    assert not image_exists(stack.clients, REGION, bad)
    assert image_exists(stack.clients, REGION, stack.v1)
    journaled = faults.journal.pending()[0].params
    assert journaled["known_good"] == stack.v1
    assert journaled["bad_ami_name"]
    faults.revert(active)
    active.fault.revert()
    assert stack.param(stack.current) == stack.v1 == stack.param(stack.latest)
    refreshes = stack.clients("autoscaling").describe_instance_refreshes(
        AutoScalingGroupName=stack.asg)["InstanceRefreshes"]
    assert len(refreshes) == 1  # the runbook's refresh, started once though reverted twice


def test_launches_fail_while_the_fault_holds(tmp_path: Path, stack: Stack) -> None:
    """With the fault in place a lost instance cannot be replaced: the launch fails naming
    the deregistered image; after the revert the group launches from v1 again."""
    faults = injector(tmp_path, stack.asg)
    ctx = FaultContext(stack.clients)
    ami = faults.inject(DeregisterCurrentAmi(ctx, stack.params()))
    lost = faults.inject(TerminateInstances(ctx, {"asg": stack.asg, "count": 2,
                                                  "region": REGION}))
    autoscaling = stack.clients("autoscaling")
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[stack.asg])[
        "AutoScalingGroups"][0]
    assert group["Instances"] == []
    failed = autoscaling.describe_scaling_activities(AutoScalingGroupName=stack.asg)[
        "Activities"][0]
    assert failed["StatusCode"] == "Failed"
    assert ami.fault.params["bad_ami"] in failed["StatusMessage"]
    faults.revert_all()
    assert lost.reverted_utc
    assert ami.reverted_utc
    autoscaling.set_desired_capacity(AutoScalingGroupName=stack.asg, DesiredCapacity=2)
    ids = [i["InstanceId"] for i in autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=[stack.asg])["AutoScalingGroups"][0]["Instances"]]
    images = {i["ImageId"] for r in stack.clients("ec2").describe_instances(
        InstanceIds=ids)["Reservations"] for i in r["Instances"]}
    assert images == {stack.v1}


def test_a_template_that_pins_its_ami_is_refused_before_anything_acts(
        tmp_path: Path, clients: Clients) -> None:
    """Runbook 4.1 step 2 cannot recover a template pinning an AMI ID: the fault refuses,
    says what to change, and journals and changes nothing."""
    pinned = make_stack(clients, pinned=True)
    faults = injector(tmp_path, pinned.asg)
    with pytest.raises(FaultError, match="cannot change the AMI it launches"):
        faults.inject(DeregisterCurrentAmi(FaultContext(clients), pinned.params()))
    assert faults.journal.pending() == []
    assert pinned.param(pinned.current) == pinned.v1


def test_bad_input_is_refused_before_journaling(tmp_path: Path, stack: Stack) -> None:
    """A missing parameter name is a clear error; nothing is journaled or changed."""
    faults = injector(tmp_path, stack.asg)
    with pytest.raises(FaultError, match="latest_param"):
        faults.inject(DeregisterCurrentAmi(FaultContext(stack.clients),
                                           {**stack.params(), "latest_param": ""}))
    assert faults.journal.pending() == []


def test_rollback_from_the_journal_alone_restores_the_parameters(tmp_path: Path,
                                                                 stack: Stack) -> None:
    """A killed run leaves only the journal (written before acting, without v2's id):
    `rollback` rebuilds the fault and restores both parameters."""
    faults = injector(tmp_path, stack.asg)
    faults.inject(DeregisterCurrentAmi(FaultContext(stack.clients), stack.params()))
    results = rollback(Journal(tmp_path / "journal.jsonl"), FaultContext(stack.clients), "env-a")
    assert [r.reverted for r in results] == [True]
    assert stack.param(stack.current) == stack.v1 == stack.param(stack.latest)
    assert Journal(tmp_path / "journal.jsonl").pending() == []
    assert FaultState.REVERTED.value in (tmp_path / "journal.jsonl").read_text()


def test_revert_after_a_crash_mid_inject_deregisters_the_drill_ami(stack: Stack) -> None:
    """Crashed after registering v2 and releasing it, before deregistering it: the revert
    finds v2 by the name chosen before acting, deregisters it and restores the parameters."""
    fault = DeregisterCurrentAmi(FaultContext(stack.clients), stack.params())
    fault.prepare()
    v2 = stack.clients("ec2").register_image(Name=fault.params["bad_ami_name"])["ImageId"]
    stack.clients("ssm").put_parameter(Name=stack.current, Value=v2, Type="String",
                                       Overwrite=True)
    fault.revert()
    assert not image_exists(stack.clients, REGION, v2)
    assert stack.param(stack.current) == stack.v1


@pytest.mark.twin
def test_runbook_41_diagnosis_runs_through_the_aws_cli_on_the_twin(
        tmp_path: Path, healthy_twin: Twin) -> None:
    """With `drills twin env` exported, the runbook's step-1 commands run unchanged through
    `aws` while the fault holds: describe-launch-template-versions shows the template
    resolving current-ami, describe-images for current-ami lists nothing, and
    describe-scaling-activities --max-items 5 shows launches Failed naming that image."""
    from drills.procedures.enclave import use_ssm_ami

    twin = healthy_twin
    names = twin.names
    use_ssm_ami(twin.clients, names.asg, REGION, names.param_current_ami)
    faults = FaultInjector(Journal(tmp_path / "journal.jsonl"), "run-cli", "env-twin",
                           AllowList({"asg": (names.asg,)}))
    ctx = FaultContext(twin.clients, twin)
    ami = faults.inject(DeregisterCurrentAmi(ctx, {
        "asg": names.asg, "current_param": names.param_current_ami,
        "latest_param": names.param_latest_ami, "region": REGION}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(manager.env(Path(twin.state.state_dir)))
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent"

    def runbook(script: str) -> object:
        out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    try:
        faults.inject(TerminateInstances(ctx, {"asg": names.asg, "count": 1,
                                               "region": REGION}))
        bad = ami.fault.params["bad_ami"]
        versions = runbook(
            'aws ec2 describe-launch-template-versions --launch-template-id $(aws autoscaling '
            'describe-auto-scaling-groups --auto-scaling-group-names $ASG_NAME --query '
            '"AutoScalingGroups[0].LaunchTemplate.LaunchTemplateId" --output text)')
        images = {v["LaunchTemplateData"]["ImageId"]
                  for v in versions["LaunchTemplateVersions"] if v["DefaultVersion"]}
        assert images == {f"resolve:ssm:{names.param_current_ami}"}
        described = runbook(
            "aws ec2 describe-images --image-ids $(aws ssm get-parameter --name "
            "/vettid/nitro-enclave/current-ami --query Parameter.Value --output text)")
        assert described["Images"] == []
        activities = wait_for(lambda: (a := runbook(
            "aws autoscaling describe-scaling-activities --auto-scaling-group-name $ASG_NAME "
            "--max-items 5 --query 'Activities[].{Time:StartTime,Status:StatusCode,"
            "Cause:Cause,Message:StatusMessage}'")) and len(a) == 5 and a, 30,
            "five scaling activities")
        assert activities[0]["Status"] == "Failed"
        assert f"The image id '[{bad}]' does not exist" in activities[0]["Message"]
        assert "difference between desired and actual capacity" in activities[0]["Cause"]
    finally:
        assert faults.revert_all() == []
    assert twin.clients("ssm").get_parameter(Name=names.param_current_ami)[
        "Parameter"]["Value"] == ami.fault.params["known_good"]
    wait_for(lambda: len(set(twin.in_service()[1]) & set(twin.worker_pids())) == 2, 60,
             "the twin to serve at desired capacity again")
