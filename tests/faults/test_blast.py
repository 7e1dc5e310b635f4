"""The blast radius: a fault acting on more of a group than `[blast] max_share` is refused
before it is journaled, unless its drill is tagged @full_outage; on a real (moto) ASG."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from drills.clients import Clients
from drills.errors import BlastRadiusExceeded
from drills.faults import AllowList, BlastRadius, Fault, FaultContext, FaultInjector, Share
from drills.faults.enclave import SetDesiredCapacity, TerminateInstances
from drills.journal import Journal
from drills.twin.manager import Twin
from tests.conftest import drills_cli

REGION = "us-east-1"


@pytest.fixture
def asg(clients: Clients) -> str:
    """An Auto Scaling group of 2 InService instances of its own."""
    tag = uuid.uuid4().hex[:8]
    image = clients("ec2").register_image(Name=f"enclave-{tag}")["ImageId"]
    template = clients("ec2").create_launch_template(
        LaunchTemplateName=f"lt-{tag}", LaunchTemplateData={"ImageId": image})["LaunchTemplate"]
    clients("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=f"asg-{tag}", MinSize=0, MaxSize=4, DesiredCapacity=2,
        AvailabilityZones=["us-east-1a"],
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "1"})
    return f"asg-{tag}"


def _group(clients: Clients, asg: str) -> dict[str, Any]:
    return dict(clients("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[asg])["AutoScalingGroups"][0])


def _injector(tmp_path: Path, asg: str, blast: BlastRadius) -> FaultInjector:
    return FaultInjector(Journal(tmp_path / "journal.jsonl"), "run-1", "env-a",
                         AllowList({"asg": (asg,)}), blast)


@pytest.mark.parametrize(("kind", "params"), [
    (SetDesiredCapacity, {"to": 0}),
    (TerminateInstances, {"count": 2}),
])
def test_a_fault_on_more_than_the_share_is_refused_before_the_journal(
        tmp_path: Path, clients: Clients, asg: str, kind: type[Fault],
        params: dict[str, int]) -> None:
    """All of a 2-instance group, at the default 50 %: refused with what it would act on
    and what to do; nothing journaled, the group untouched."""
    before = _group(clients, asg)
    injector = _injector(tmp_path, asg, BlastRadius())
    fault = kind(FaultContext(clients), {"asg": asg, "region": REGION, **params})
    with pytest.raises(BlastRadiusExceeded, match=r"acts on 2 of 2 .*\(100%\), more than the "
                       r"blast radius allows \(50%.*tag the drill @full_outage"):
        injector.inject(fault)
    assert not (tmp_path / "journal.jsonl").exists()
    after = _group(clients, asg)
    assert after["DesiredCapacity"] == before["DesiredCapacity"] == 2
    assert after["Instances"] == before["Instances"]


def test_half_a_group_is_within_the_default_share(tmp_path: Path, clients: Clients,
                                                   asg: str) -> None:
    """1 of 2 instances (50 %) is what a partial fault may do: injected and journaled."""
    injector = _injector(tmp_path, asg, BlastRadius())
    active = injector.inject(TerminateInstances(FaultContext(clients),
                                                {"asg": asg, "region": REGION, "count": 1}))
    assert active.fault.share() == Share(f"InService instances of Auto Scaling group {asg}",
                                         1, 2)
    injector.revert_all()
    assert Journal(tmp_path / "journal.jsonl").pending() == []


def test_a_lower_cap_refuses_half_a_group(tmp_path: Path, clients: Clients, asg: str) -> None:
    """[blast] max_share = 0.3: even 1 of 2 instances is too many."""
    injector = _injector(tmp_path, asg, BlastRadius(max_share=0.3))
    with pytest.raises(BlastRadiusExceeded, match=r"1 of 2 .*\(50%\).*\(30%"):
        injector.inject(SetDesiredCapacity(FaultContext(clients),
                                           {"asg": asg, "region": REGION, "to": 1}))
    assert _group(clients, asg)["DesiredCapacity"] == 2


def test_a_full_outage_drill_may_take_the_whole_group(tmp_path: Path, clients: Clients,
                                                      asg: str) -> None:
    """@full_outage lifts the cap: capacity 0 is injected, journaled and reverted."""
    injector = _injector(tmp_path, asg, BlastRadius(full_outage=True))
    injector.inject(SetDesiredCapacity(FaultContext(clients),
                                       {"asg": asg, "region": REGION, "to": 0}))
    assert _group(clients, asg)["DesiredCapacity"] == 0
    assert injector.revert_all() == []
    assert _group(clients, asg)["DesiredCapacity"] == 2


def test_raising_capacity_acts_on_no_share(clients: Clients, asg: str) -> None:
    """Setting desired capacity up takes no instance away: no share to cap."""
    fault = SetDesiredCapacity(FaultContext(clients), {"asg": asg, "region": REGION, "to": 4})
    fault.prepare()
    assert fault.share() is None


@pytest.mark.twin
def test_a_drill_over_the_blast_radius_exits_2_with_nothing_injected(
        healthy_twin: Twin, tmp_path: Path) -> None:
    """`drills run` of the one-instance termination with `[blast] max_share = 0.3`: 1 of 2
    instances is too many; the drill errs with the reason at its When step, the run exits 2,
    nothing is journaled and the group keeps its instances."""
    clients, asg = healthy_twin.clients, healthy_twin.names.asg
    before = sorted(i["InstanceId"] for i in _group(clients, asg)["Instances"])
    objectives = tmp_path / "objectives.toml"
    objectives.write_text("[blast]\nmax_share = 0.3\n")
    env = dict(os.environ, DRILLS_JOURNAL=str(tmp_path / "journal.jsonl"),
               DRILLS_STATE_DIR=healthy_twin.state.state_dir)
    result = drills_cli("run", "--objectives", str(objectives), "--reports",
                        str(tmp_path / "reports"),
                        "features/monthly/single_instance_failure.feature", "--", "-k",
                        "terminated", env=env, timeout=600)
    assert result.returncode == 2, result.stdout + result.stderr
    report = json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())
    [drill] = report["drills"]
    assert drill["status"] == "error"
    assert "BlastRadiusExceeded: refusing to terminate 1 instance(s)" in drill["error"]
    assert "acts on 1 of 2" in drill["error"]
    assert drill["faults"] == []
    assert not (tmp_path / "journal.jsonl").exists()
    after = sorted(i["InstanceId"] for i in _group(clients, asg)["Instances"])
    assert after == before
