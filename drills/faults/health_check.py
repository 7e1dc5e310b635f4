"""Faults of the enclave ASG's health checks: which failures the group notices at all.

EC2 Auto Scaling User Guide, "Health checks for instances in an Auto Scaling group": with
HealthCheckType `EC2` (the default) an instance is replaced only on its EC2 status (no longer
running, status checks impaired) or when marked Unhealthy; only with `ELB` does a failing
load balancer health check, such as the enclave's own, replace it. The call is the one an
operator makes (UpdateAutoScalingGroup), so it acts the same on the twin and on an account.
"""

from __future__ import annotations

from drills.errors import FaultError
from drills.faults.base import Fault

#: The values of HealthCheckType this fault sets (CreateAutoScalingGroup's).
TYPES = ("EC2", "ELB")


class SetHealthCheckType(Fault):
    """Switch the group's HealthCheckType (e.g. to `EC2`: a crashed enclave goes unnoticed);
    revert restores the type it had."""

    kind = "enclave.health-check-type"
    calls = ("autoscaling:UpdateAutoScalingGroup",)
    revert_calls = ("autoscaling:UpdateAutoScalingGroup",)
    target_kind = "asg"

    @property
    def target(self) -> str:
        return str(self.params["asg"])

    def describe(self) -> str:
        return f"switch Auto Scaling group {self.target} to {self.params['to']} health checks"

    def prepare(self) -> None:
        if self.params["to"] not in TYPES:
            raise FaultError(f"health check type {self.params['to']!r} does not exist; use one "
                             f"of {', '.join(TYPES)}")
        groups = self.ctx.clients("autoscaling", self.region).describe_auto_scaling_groups(
            AutoScalingGroupNames=[self.target])["AutoScalingGroups"]
        if not groups:
            raise FaultError(f"Auto Scaling group {self.target!r} does not exist in "
                             f"{self.region}; check the stack output EnclaveASGName")
        self.params["previous"] = groups[0]["HealthCheckType"]

    def inject(self) -> None:
        self._set(str(self.params["to"]))

    def revert(self) -> None:
        self._set(str(self.params["previous"]))

    def _set(self, kind: str) -> None:
        self.ctx.clients("autoscaling", self.region).update_auto_scaling_group(
            AutoScalingGroupName=self.target, HealthCheckType=kind)
