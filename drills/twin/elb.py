"""The load balancer's side of ELB health checks in the twin (the ASG controller runs it).

Every registered target of a target group that a load balancer uses is checked with
`GET <HealthCheckPath>` every HealthCheckIntervalSeconds, with HealthCheckTimeoutSeconds, in
threads (a hung target must not stall the controller); each result goes to the moto process
(`elbv2/health-check-results`), which keeps the thresholds and the states DescribeTargetHealth
answers (`drills.twin.fidelity.elbv2`), and which the Auto Scaling group acts on.
"""

from __future__ import annotations

import http.client
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from drills.twin import control as twin_control

HEALTHY = "healthy"


@dataclass(frozen=True, slots=True)
class TargetGroup:
    """What the health checker needs of one target group (DescribeTargetGroups)."""

    arn: str
    name: str
    path: str
    interval: float
    timeout: float
    in_use: bool  # a load balancer uses it: ELB health-checks only those targets


def health_check(port: int | None, path: str, timeout: float) -> dict[str, Any]:
    """One ELB health check of a target: `GET path` on its port; pass on HTTP 200 (the
    target group's Matcher), else the reason code and description AWS would give."""
    if port is None:  # still booting: nothing listens yet
        return {"ok": False, "reason": "Target.FailedHealthChecks"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        status = conn.getresponse().status
    except TimeoutError:
        return {"ok": False, "reason": "Target.Timeout", "description": "Request timed out"}
    except (OSError, http.client.HTTPException):
        return {"ok": False, "reason": "Target.FailedHealthChecks"}
    finally:
        conn.close()
    if status == 200:
        return {"ok": True}
    return {"ok": False, "reason": "Target.ResponseCodeMismatch",
            "description": f"Health checks failed with these codes: [{status}]"}


@dataclass(slots=True)
class HealthChecker:
    """The load balancer's side of ELB health checks: each target of each target group in
    use is checked every interval, in threads (a hung target must not stall the
    controller), and the results are reported to the moto process, whose answer is the
    target health the ASG acts on."""

    aws_url: str
    pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(4, thread_name_prefix="elb-check"))
    next_at: dict[tuple[str, str], float] = field(default_factory=dict)
    running: dict[tuple[str, str], Future[dict[str, Any]]] = field(default_factory=dict)
    states: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def check(self, region: str, groups: list[TargetGroup], ports: dict[str, int | None],
              now: float) -> None:
        """Start the checks that are due, report those that finished."""
        for tg in groups:
            for iid, port in ports.items() if tg.in_use else ():
                key = (tg.arn, iid)
                # The first check one interval after the target is first seen (registered).
                due = self.next_at.setdefault(key, now + tg.interval)
                if key not in self.running and now >= due:
                    self.next_at[key] = now + tg.interval
                    self.running[key] = self.pool.submit(health_check, port, tg.path,
                                                         tg.timeout)
        done = [key for key, future in self.running.items() if future.done()]
        results = [{"target_group_arn": arn, "target_id": iid,
                    **self.running.pop((arn, iid)).result()} for arn, iid in done]
        if results:
            reply = twin_control.post(self.aws_url, "elbv2/health-check-results",
                                      {"region": region, "results": results})
            self.states.update(reply["targets"])

    def state(self, arn: str, iid: str) -> dict[str, Any]:
        """The target's last reported health ({} before its first check)."""
        return dict(self.states.get(arn, {}).get(iid, {}))

    def forget(self, iid: str) -> None:
        """Stop checking an instance that left the group."""
        for key in [k for k in self.next_at if k[1] == iid]:
            self.next_at.pop(key, None)
            self.running.pop(key, None)
        for targets in self.states.values():
            targets.pop(iid, None)
