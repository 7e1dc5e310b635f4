"""Elastic Load Balancing target health that follows the targets, patched into the moto process.

moto 5.2.1 answers DescribeTargetHealth with `healthy` for every registered instance, always,
and an Auto Scaling group registers its instances with its target groups but never
deregisters the ones that leave. What AWS documents, and this module makes moto do:

- Elastic Load Balancing User Guide for Application Load Balancers, "Health checks for
  Application Load Balancer target groups" (target-group-health-checks.html): "After your
  target is registered, it must pass one health check to be considered healthy"; "If the
  health checks exceed UnhealthyThresholdCount consecutive failures, the load balancer takes
  the target out of service. When the health checks exceed HealthyThresholdCount
  consecutive successes, the load balancer puts the target back in service." A target is
  `initial` until then, with reason `Elb.RegistrationInProgress` ("Target registration is in
  progress") or `Elb.InitialHealthChecking` ("Initial health checks in progress").
- ELB API Reference, TargetHealth (API_TargetHealth.html): an `unhealthy` target's reason is
  `Target.ResponseCodeMismatch` ("Health checks failed with these codes: [code]"),
  `Target.Timeout` ("Request timed out") or `Target.FailedHealthChecks` ("Health checks
  failed"); a target group no load balancer uses gives `unused`, `Target.NotInUse` ("Target
  group is not configured to receive traffic from the load balancer"); a healthy target has
  no reason.
- EC2 Auto Scaling User Guide, "Use Elastic Load Balancing to distribute incoming
  application traffic in your Auto Scaling group" (autoscaling-load-balancer.html):
  "instances that are launched by your Auto Scaling group are automatically registered with
  the load balancer or target group, and instances that are terminated by your Auto Scaling
  group are automatically deregistered from the load balancer or target group".

Twin-only choices:
- The health checks themselves are sent by the ASG controller (`drills.twin.controller`),
  which knows the loopback port each instance's enclave worker answers `GET /health` on (the
  twin's instances share one host, so a target's address is its port); it reports every
  result through the control route below, and this module keeps the consecutive counts and
  the states DescribeTargetHealth answers.
- A deregistered target leaves at once: no `draining` for the deregistration delay.
- The load balancer's attachment state (`Adding`, `Added`, `InService`) is not modelled.

Twin-only control endpoint (no such thing in AWS; `POST /drills-twin/<route>`):

    elbv2/health-check-results  {"region", "account": <optional>, "results": [
                                 {"target_group_arn", "target_id", "ok": bool,
                                  "reason": <unhealthy reason code>, "description": str}]}

records each result in order and answers the health of every registered target of the
target groups named: `{"targets": {<arn>: {<id>: {"State", "Reason", "Description"}}}}`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moto.autoscaling.models import AutoScalingBackend
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.exceptions import JsonRESTError
from moto.elbv2.models import FakeHealthStatus, FakeTargetGroup, elbv2_backends

__all__ = ["ROUTES", "TargetHealth", "install", "record_result"]

_MARK = "_drills_twin_fidelity"
_ORIGINAL: dict[str, Callable[..., Any]] = {}
_LOCK = threading.RLock()
INITIAL, HEALTHY, UNHEALTHY = "initial", "healthy", "unhealthy"
UNHEALTHY_REASONS = {
    "Target.ResponseCodeMismatch": "Health checks failed",
    "Target.Timeout": "Request timed out",
    "Target.FailedHealthChecks": "Health checks failed",
}


@dataclass(slots=True)
class TargetHealth:
    """One registered target's health, and the run of results that led to it."""

    state: str = INITIAL
    reason: str | None = "Elb.RegistrationInProgress"
    description: str | None = "Target registration is in progress"
    passed: int = 0  # consecutive successful checks
    failed: int = 0  # consecutive failed checks

    def record(self, ok: bool, threshold_healthy: int, threshold_unhealthy: int,
               reason: str, description: str) -> None:
        """Count one health check result and move to the state it leads to."""
        if ok:
            self.passed, self.failed = self.passed + 1, 0
            # A new target needs one success; an unhealthy one HealthyThresholdCount.
            if self.state == INITIAL or self.passed >= threshold_healthy:
                self.state, self.reason, self.description = HEALTHY, None, None
            return
        self.passed, self.failed = 0, self.failed + 1
        if self.failed >= threshold_unhealthy:
            self.state, self.reason, self.description = UNHEALTHY, reason, description
        elif self.state == INITIAL:
            self.reason, self.description = ("Elb.InitialHealthChecking",
                                             "Initial health checks in progress")

    def to_api(self) -> dict[str, str | None]:
        return {"State": self.state, "Reason": self.reason, "Description": self.description}


def _health(group: FakeTargetGroup) -> dict[str, TargetHealth]:
    return group.__dict__.setdefault("_drills_health", {})  # type: ignore[no-any-return]


# ------------------------------------------------------------------ patched moto


def _register(self: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
    with _LOCK:
        fresh = [t["Id"] for t in targets if t["Id"] not in self.targets]
        _ORIGINAL["register"](self, targets)
        for target_id in fresh:  # registering again keeps the health it has
            _health(self)[target_id] = TargetHealth()


def _deregister(self: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
    with _LOCK:
        _ORIGINAL["deregister"](self, targets)
        for target in targets:
            _health(self).pop(target["Id"], None)


def _health_for(self: FakeTargetGroup, target: dict[str, Any], ec2_backend: Any
                ) -> FakeHealthStatus:
    status: FakeHealthStatus = _ORIGINAL["health_for"](self, target, ec2_backend)
    if status.status != HEALTHY:
        return status  # not registered, or a stopped instance: moto's answer is AWS's
    if not self.load_balancer_arns:
        status.status, status.reason = "unused", "Target.NotInUse"
        status.description = ("Target group is not configured to receive traffic from the "
                              "load balancer")
        return status
    with _LOCK:
        health = _health(self).setdefault(status.instance_id, TargetHealth())
        status.status, status.reason = health.state, health.reason
        status.description = health.description
    return status


def _update_attached_target_groups(self: AutoScalingBackend, group_name: str) -> None:
    """Register the group's instances (moto) and deregister those that left it (AWS)."""
    _ORIGINAL["update_attached_target_groups"](self, group_name)
    group = self.autoscaling_groups[group_name]
    members = {state.instance.id for state in group.instance_states}
    before: set[str] = group.__dict__.get("_drills_members", set())
    group._drills_members = members  # type: ignore[attr-defined]
    gone = before - members
    if not gone or not group.target_group_arns:
        return
    for arn in group.target_group_arns:
        target_group = self.elbv2_backend.target_groups.get(arn)
        if target_group is None:
            continue
        registered = [{"Id": i} for i in gone if i in target_group.targets]
        if registered:
            target_group.deregister(registered)


# ------------------------------------------------------------------ control route


def record_result(group: FakeTargetGroup, target_id: str, ok: bool, reason: str,
                  description: str) -> TargetHealth | None:
    """Count one health check result of a registered target (None: not registered)."""
    with _LOCK:
        if target_id not in group.targets:
            return None
        health = _health(group).setdefault(target_id, TargetHealth())
        health.record(ok, int(group.healthy_threshold_count),
                      int(group.unhealthy_threshold_count), reason, description)
        return health


def health_check_results(request: dict[str, Any]) -> dict[str, Any]:
    """Record health check results (in order); answer the target groups' target health."""
    account = str(request.get("account") or DEFAULT_ACCOUNT_ID)
    region = str(request.get("region") or "us-east-1")
    backend = elbv2_backends[account][region]
    results = request.get("results")
    if not isinstance(results, list):
        raise JsonRESTError("ValidationException", '"results" must be a list')
    named: dict[str, FakeTargetGroup] = {}
    for result in results:
        arn = str(result.get("target_group_arn"))
        group = backend.target_groups.get(arn)
        if group is None:
            raise JsonRESTError("TargetGroupNotFound", f"Target group '{arn}' not found")
        named[arn] = group
        reason = str(result.get("reason") or "Target.FailedHealthChecks")
        if not result.get("ok") and reason not in UNHEALTHY_REASONS:
            raise JsonRESTError("ValidationException", f"unknown reason code {reason!r}; use "
                                f"one of {', '.join(sorted(UNHEALTHY_REASONS))}")
        record_result(group, str(result.get("target_id")), bool(result.get("ok")), reason,
                      str(result.get("description") or UNHEALTHY_REASONS[reason]))
    out: dict[str, dict[str, Any]] = {}
    for arn, group in named.items():
        out[arn] = {t["Id"]: _health_for(group, t, backend.ec2_backend).target_health
                    for t in list(group.targets.values())}
    return {"targets": out}


# ------------------------------------------------------------------ install


def install() -> None:
    """Patch moto's ELBv2 target health and Auto Scaling deregistration (idempotent)."""
    if getattr(FakeTargetGroup, _MARK, False):
        return
    for name, owner, patch in (
        ("register", FakeTargetGroup, _register),
        ("deregister", FakeTargetGroup, _deregister),
        ("health_for", FakeTargetGroup, _health_for),
        ("update_attached_target_groups", AutoScalingBackend, _update_attached_target_groups),
    ):
        _ORIGINAL[name] = getattr(owner, name)
        setattr(owner, name, patch)
    setattr(FakeTargetGroup, _MARK, True)


#: Twin-only control endpoints, served at POST /drills-twin/<name>.
ROUTES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "elbv2/health-check-results": health_check_results,
}
