"""The enclave AMI is deregistered (runbook 4.1 steps 1-2).

The fault releases a new enclave AMI ("v2") the way runbook 6.2 does (latest-ami, then
current-ami), then deregisters it: from then on every launch of the enclave ASG fails, as
its launch template resolves `/vettid/nitro-enclave/current-ami` at launch. The AMI the
parameter named before stays registered: it is the previous known-good AMI of step 2.

v2 is registered from v1's own snapshots (a second AMI over the same EBS snapshots), so
deregistering it destroys nothing: on an account too, only the drill's own AMI goes.

A deregistered AMI cannot be registered again, so the revert does what the runbook's
recovery does: the parameters go back to the AMIs they named before, any drill AMI still
registered is deregistered, and instances left running a missing image are refreshed.
"""

from __future__ import annotations

import secrets
from typing import Any

from drills.errors import FaultError
from drills.faults.base import Fault
from drills.procedures.enclave import (
    image_exists,
    instance_images,
    require_ssm_ami,
    start_instance_refresh,
)

DRILL_AMI_TAG = "vettid-drill-ami"


class DeregisterCurrentAmi(Fault):
    """Release a new enclave AMI as current, then deregister it: launches fail."""

    kind = "enclave.deregister-current-ami"
    calls = ("ec2:RegisterImage", "ssm:PutParameter", "ec2:DeregisterImage")
    revert_calls = ("ssm:PutParameter", "ec2:DeregisterImage",
                    "autoscaling:StartInstanceRefresh")
    target_kind = "asg"

    @property
    def target(self) -> str:
        return str(self.params["asg"])


    def describe(self) -> str:
        return (f"release a new enclave AMI as {self.params['current_param']} for {self.target}, "
                "then deregister it")

    def _ssm(self) -> Any:
        return self.ctx.clients("ssm", self.region)

    def _ec2(self) -> Any:
        return self.ctx.clients("ec2", self.region)

    def prepare(self) -> None:
        for key in ("asg", "current_param", "latest_param"):
            if not self.params.get(key):
                raise FaultError(f"the AMI fault needs {key!r}; pass the stack's names")
        # Only a template that resolves the parameter can be recovered by step 2.
        try:
            require_ssm_ami(self.ctx.clients, self.target, self.region,
                            self.params["current_param"])
        except Exception as exc:
            raise FaultError(str(exc)) from None
        known_good = self._ssm().get_parameter(Name=self.params["current_param"])[
            "Parameter"]["Value"]
        if not image_exists(self.ctx.clients, self.region, known_good):
            raise FaultError(f"{self.params['current_param']} names {known_good}, which is "
                             "already missing; restore a known-good AMI before drilling")
        self.params["known_good"] = known_good
        self.params["latest_before"] = self._ssm().get_parameter(
            Name=self.params["latest_param"])["Parameter"]["Value"]
        # Chosen before acting and journaled: a crash between registering v2 and
        # recording its id still lets the revert find it by name.
        self.params["bad_ami_name"] = f"vettid-nitro-enclave-v2-drill-{secrets.token_hex(4)}"

    def inject(self) -> None:
        ec2 = self._ec2()
        v1 = ec2.describe_images(ImageIds=[self.params["known_good"]])["Images"][0]
        extra: dict[str, Any] = {}
        mappings = [{"DeviceName": m["DeviceName"],
                     "Ebs": {k: v for k, v in m["Ebs"].items()
                             if k in ("SnapshotId", "VolumeSize", "VolumeType",
                                      "DeleteOnTermination")}}
                    for m in v1.get("BlockDeviceMappings", []) if "Ebs" in m]
        if mappings:
            extra["BlockDeviceMappings"] = mappings
        for key in ("Architecture", "RootDeviceName", "VirtualizationType", "EnaSupport"):
            if v1.get(key) is not None:
                extra[key] = v1[key]
        bad = ec2.register_image(Name=self.params["bad_ami_name"],
                                 Description=f"enclave AMI v2 released by a drill "
                                             f"({DRILL_AMI_TAG})", **extra)["ImageId"]
        self.params["bad_ami"] = bad
        ssm = self._ssm()
        self.acting()  # the image above is new and harmless; the release below is the fault
        # Release order of runbook 6.2: latest-ami first, then current-ami.
        ssm.put_parameter(Name=self.params["latest_param"], Value=bad, Type="String",
                          Overwrite=True)
        ssm.put_parameter(Name=self.params["current_param"], Value=bad, Type="String",
                          Overwrite=True)
        ec2.deregister_image(ImageId=bad)

    def _drill_images(self) -> list[str]:
        ids = {self.params["bad_ami"]} if self.params.get("bad_ami") else set()
        found = self._ec2().describe_images(
            Owners=["self"], Filters=[{"Name": "name", "Values": [self.params["bad_ami_name"]]}]
        )["Images"]
        return sorted(ids | {i["ImageId"] for i in found})

    def revert(self) -> None:
        ssm, drill_images = self._ssm(), self._drill_images()
        rolled_back = False
        for param, before in ((self.params["current_param"], self.params["known_good"]),
                              (self.params["latest_param"], self.params["latest_before"])):
            now = ssm.get_parameter(Name=param)["Parameter"]["Value"]
            # Someone may have released a good AMI since: only undo what the drill did.
            if now != before and (now in drill_images or
                                  not image_exists(self.ctx.clients, self.region, now)):
                ssm.put_parameter(Name=param, Value=before, Type="String", Overwrite=True)
                rolled_back = rolled_back or param == self.params["current_param"]
        for ami in drill_images:
            if image_exists(self.ctx.clients, self.region, ami):
                self._ec2().deregister_image(ImageId=ami)
        stale = [iid for iid, ami in instance_images(self.ctx.clients, self.target,
                                                     self.region).items()
                 if not image_exists(self.ctx.clients, self.region, ami)]
        # The runbook's own recovery, when the drill did not get to run it: refresh.
        if rolled_back or stale:
            autoscaling = self.ctx.clients("autoscaling", self.region)
            active = [r for r in autoscaling.describe_instance_refreshes(
                AutoScalingGroupName=self.target)["InstanceRefreshes"]
                if r["Status"] in ("Pending", "InProgress")]
            if not active:
                start_instance_refresh(self.ctx.clients, self.target, self.region)
