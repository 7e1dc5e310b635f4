"""A new enclave build released by a drill (runbook 6.2 step 1), and everything it led to undone.

The PCR drills walk runbook 6: build, `latest-ami`, the apps' update, `current-ami` with an
instance refresh, a rollback. What they change is a release the team did not ask for, so it is
journaled like any fault before it acts: the build's AMI is registered (on the twin, the
twin's build; on an account, the drill registers a copy of the current AMI's snapshots, so
nothing runs that the team did not build), and the revert puts both parameters back, moves
any instance still running another image back to the one `current-ami` named before (an
instance refresh), and deregisters the build. A crash anywhere leaves `drills rollback` able
to do the same from the journal.
"""

from __future__ import annotations

import time
from typing import Any

from drills.errors import FaultError
from drills.faults.base import Fault
from drills.procedures.enclave import image_exists, instance_images, start_instance_refresh
from drills.twin.images import build_enclave, image_name

#: How long the revert waits for the refresh that brings every instance back.
REVERT_REFRESH_TIMEOUT = 600.0


class ReleaseEnclaveBuild(Fault):
    """Register enclave build `version` as a new AMI (runbook 6.2 step 1); reverted whole."""

    kind = "enclave.release-build"
    calls = ("ec2:RegisterImage", "ec2:CreateTags")
    revert_calls = ("ssm:PutParameter", "autoscaling:CancelInstanceRefresh",
                    "autoscaling:StartInstanceRefresh", "ec2:DeregisterImage")
    target_kind = "asg"

    @property
    def target(self) -> str:
        return str(self.params["asg"])

    def describe(self) -> str:
        broken = f" (defect: {self.params['defect']})" if self.params.get("defect") else ""
        return f"build and register enclave {self.params['version']}{broken} for {self.target}"

    def _ssm(self) -> Any:
        return self.ctx.clients("ssm", self.region)

    def prepare(self) -> None:
        for key in ("asg", "version", "current_param", "latest_param"):
            if not self.params.get(key):
                raise FaultError(f"an enclave release needs {key!r}; pass the stack's names")
        ssm = self._ssm()
        self.params["current_before"] = ssm.get_parameter(
            Name=self.params["current_param"])["Parameter"]["Value"]
        self.params["latest_before"] = ssm.get_parameter(
            Name=self.params["latest_param"])["Parameter"]["Value"]
        # The revert finds the build by its name (a kill between registering it and
        # journaling its id leaves nothing else): the name must be the drill's alone.
        if registered := self._named_builds():
            raise FaultError(f"enclave build {self.params['version']} is already registered "
                             f"({', '.join(registered)}); a drill registers a build of its "
                             "own: run `drills rollback` if a killed drill left it, or drill "
                             "another version")

    def _named_builds(self) -> list[str]:
        """Registered AMIs with the build's name."""
        found = self.ctx.clients("ec2", self.region).describe_images(
            Owners=["self"], Filters=[{"Name": "name",
                                       "Values": [image_name(self.params["version"])]}])
        return sorted(i["ImageId"] for i in found["Images"])

    def _builds(self) -> set[str]:
        """The drill's build: the AMI inject() registered, and any image of its name; never
        an AMI the parameters named before the drill."""
        ids = {self.params["ami"]} if self.params.get("ami") else set()
        return (ids | set(self._named_builds())) - {self.params["current_before"],
                                                    self.params["latest_before"]}

    def inject(self) -> None:
        build = build_enclave(self.ctx.clients("ec2", self.region), self.params["version"],
                              defect=self.params.get("defect"),
                              from_ami=self.params["current_before"])
        self.params["ami"] = build.ami_id
        self.params["pcrs"] = {str(i): v for i, v in build.pcrs.items()}

    def revert(self) -> None:
        ssm, builds = self._ssm(), self._builds()
        for param, before in ((self.params["current_param"], self.params["current_before"]),
                              (self.params["latest_param"], self.params["latest_before"])):
            now = ssm.get_parameter(Name=param)["Parameter"]["Value"]
            if now != before and (now in builds or not image_exists(self.ctx.clients,
                                                                    self.region, now)):
                ssm.put_parameter(Name=param, Value=before, Type="String", Overwrite=True)
        self._bring_instances_back()
        for ami in sorted(builds):
            if image_exists(self.ctx.clients, self.region, ami):
                self.ctx.clients("ec2", self.region).deregister_image(ImageId=ami)

    def _bring_instances_back(self) -> None:
        """Refresh until no instance runs another image than the one current-ami named, and
        no refresh is left running (the next drill's rollout would be refused with
        InstanceRefreshInProgress). A refresh still rolling the drill's build out (it may be
        stuck on a build that never starts) is cancelled first: the group takes one refresh
        at a time."""
        autoscaling = self.ctx.clients("autoscaling", self.region)
        deadline = time.monotonic() + REVERT_REFRESH_TIMEOUT
        ours: set[str] = set()
        while True:
            active = [r for r in autoscaling.describe_instance_refreshes(
                AutoScalingGroupName=self.target)["InstanceRefreshes"]
                if r["Status"] in ("Pending", "InProgress", "Cancelling")]
            stray = [i for i, a in instance_images(self.ctx.clients, self.target,
                                                   self.region).items()
                     if a != self.params["current_before"]]
            if not stray and not active:
                return
            stuck = [r for r in active if r["InstanceRefreshId"] not in ours
                     and r["Status"] != "Cancelling"]
            if stray and stuck:
                autoscaling.cancel_instance_refresh(AutoScalingGroupName=self.target)
            elif stray and not active:
                ours.add(start_instance_refresh(self.ctx.clients, self.target, self.region,
                                                50))
            # else: a refresh is finishing (every instance already on the right image) or
            # being cancelled: wait for it.
            if time.monotonic() > deadline:
                what = (f"instances {stray} of {self.target} still run the drill's build"
                        if stray else f"a refresh of {self.target} is still running")
                raise FaultError(f"{what} {REVERT_REFRESH_TIMEOUT:g}s into the revert; "
                                 "finish with `drills rollback` once the refresh can succeed")
            time.sleep(1.0)
