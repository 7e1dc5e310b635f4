"""Faults of the Nitro Enclave ASG (runbook 3.1, 3.2, 4.1).

The AWS calls are the runbook's own, so they act the same on the twin and on an account.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

from drills.capabilities import Capability
from drills.errors import FaultError
from drills.faults.base import Fault, FaultContext, Share


def _group(ctx: FaultContext, asg: str, region: str) -> dict[str, Any]:
    groups = ctx.clients("autoscaling", region).describe_auto_scaling_groups(
        AutoScalingGroupNames=[asg])["AutoScalingGroups"]
    if not groups:
        raise FaultError(f"Auto Scaling group {asg!r} does not exist in {region}; check the "
                         "stack output EnclaveASGName")
    return groups[0]


class _AsgFault(Fault):
    target_kind = "asg"
    raises_alarms = frozenset({"enclave_alarm"})

    @property
    def target(self) -> str:
        return str(self.params["asg"])


    def _restore_capacity(self) -> None:
        """Bring desired capacity back to what it was before the fault, if it is lower."""
        group = _group(self.ctx, self.target, self.region)
        if group["DesiredCapacity"] < self.params["desired"]:
            self.ctx.clients("autoscaling", self.region).set_desired_capacity(
                AutoScalingGroupName=self.target, DesiredCapacity=self.params["desired"])


class TerminateInstances(_AsgFault):
    """Terminate N InService instances of the group, as runbook 3.1's manual command does."""

    kind = "enclave.terminate-instances"
    calls = ("autoscaling:TerminateInstanceInAutoScalingGroup",)
    revert_calls = ("autoscaling:SetDesiredCapacity",)

    def describe(self) -> str:
        return f"terminate {self.params['count']} instance(s) of Auto Scaling group {self.target}"

    def prepare(self) -> None:
        group = _group(self.ctx, self.target, self.region)
        live = [i["InstanceId"] for i in group["Instances"] if i["LifecycleState"] == "InService"]
        count = int(self.params["count"])
        if count < 1 or count > len(live):
            raise FaultError(f"cannot terminate {count} instance(s) of {self.target}: it has "
                             f"{len(live)} InService; ask for 1..{len(live)}")
        self.params["instance_ids"] = sorted(live)[:count]
        self.params["desired"] = group["DesiredCapacity"]
        self.params["in_service"] = len(live)

    def share(self) -> Share:
        return Share(f"InService instances of Auto Scaling group {self.target}",
                     len(self.params["instance_ids"]), int(self.params["in_service"]))

    def inject(self) -> None:
        asg = self.ctx.clients("autoscaling", self.region)
        for iid in self.params["instance_ids"]:
            asg.terminate_instance_in_auto_scaling_group(InstanceId=iid,
                                                         ShouldDecrementDesiredCapacity=False)

    def revert(self) -> None:
        # A terminated instance cannot come back; the group's capacity can.
        self._restore_capacity()


class SetDesiredCapacity(_AsgFault):
    """Set the group's desired capacity (0 takes every enclave down, runbook 3.2/4.1)."""

    kind = "enclave.set-desired-capacity"
    calls = ("autoscaling:SetDesiredCapacity",)
    revert_calls = ("autoscaling:SetDesiredCapacity",)

    def describe(self) -> str:
        return f"set desired capacity of {self.target} to {self.params['to']}"

    def prepare(self) -> None:
        self.params["desired"] = _group(self.ctx, self.target, self.region)["DesiredCapacity"]

    def share(self) -> Share | None:
        """The instances the lower capacity takes away (raising it takes none)."""
        desired, to = int(self.params["desired"]), int(self.params["to"])
        if to >= desired:
            return None
        return Share(f"desired instances of Auto Scaling group {self.target}", desired - to,
                     desired)

    def inject(self) -> None:
        self.ctx.clients("autoscaling", self.region).set_desired_capacity(
            AutoScalingGroupName=self.target, DesiredCapacity=int(self.params["to"]))

    def revert(self) -> None:
        self._restore_capacity()


class _WorkerFault(_AsgFault):
    """Signals enclave worker processes of the twin (an enclave crash or freeze)."""

    requires = frozenset({Capability.PROCESSES})
    signal: signal.Signals

    def _pick(self) -> None:
        pids = self.ctx.twin.worker_pids(self.region)
        count = int(self.params["count"])
        if count < 1 or count > len(pids):
            raise FaultError(f"cannot act on {count} enclave process(es): {len(pids)} are "
                             f"running in {self.target}")
        chosen = sorted(pids)[:count]
        self.params["workers"] = {iid: pids[iid] for iid in chosen}
        self.params["running"] = len(pids)
        self.params["desired"] = _group(self.ctx, self.target, self.region)["DesiredCapacity"]

    def share(self) -> Share:
        return Share(f"enclave processes of Auto Scaling group {self.target}",
                     len(self.params["workers"]), int(self.params["running"]))

    def prepare(self) -> None:
        self._pick()

    def inject(self) -> None:
        for pid in self.params["workers"].values():
            os.kill(pid, self.signal)


class KillWorker(_WorkerFault):
    """SIGKILL the enclave process of N instances; the ASG health check must replace them."""

    kind = "enclave.kill-worker"
    calls = ("process:SIGKILL enclave worker",)
    revert_calls = ("autoscaling:SetDesiredCapacity",)
    signal = signal.SIGKILL

    def describe(self) -> str:
        return f"kill the enclave process on {self.params['count']} instance(s) of {self.target}"

    def revert(self) -> None:
        self._restore_capacity()


class FreezeWorkers(_WorkerFault):
    """SIGSTOP the enclave process of N instances (hung enclave); revert thaws them."""

    kind = "enclave.freeze-workers"
    calls = ("process:SIGSTOP enclave worker",)
    revert_calls = ("process:SIGCONT enclave worker",)
    signal = signal.SIGSTOP

    def describe(self) -> str:
        return f"freeze the enclave process on {self.params['count']} instance(s) of {self.target}"

    def revert(self) -> None:
        for pid in self.params.get("workers", {}).values():
            with contextlib.suppress(ProcessLookupError):  # replaced meanwhile: nothing to thaw
                os.kill(pid, signal.SIGCONT)
