"""Steps for the Nitro Enclave ASG: instance and enclave faults, runbook 4.1 recovery."""

from __future__ import annotations

from collections.abc import Iterator

from pytest_bdd import parsers, then, when

from drills.drill import Drill
from drills.errors import ObjectiveBreached, RecoveryError
from drills.evidence.fmt import secs
from drills.faults import ActiveFault, KillWorker, SetDesiredCapacity, TerminateInstances
from drills.faults.health_check import SetHealthCheckType
from drills.measure import figures
from drills.procedures.enclave import force_new_instances


@when(parsers.re(r"(?P<count>\d+) enclave instances? (?:is|are) terminated"),
      converters={"count": int})
def terminate_instances(drill: Drill, count: int) -> Iterator[ActiveFault]:
    """Terminate N InService instances (runbook 3.1's terminate-instance-in-auto-scaling-group)."""
    active = drill.inject(TerminateInstances, asg=drill.target.asg_name(), count=count)
    yield active
    drill.revert(active)


@when("all enclave instances are terminated")
def terminate_all(drill: Drill) -> Iterator[ActiveFault]:
    """Terminate every InService instance; the ASG must replace them on its own."""
    desired, _ = _desired(drill), None
    active = drill.inject(TerminateInstances, asg=drill.target.asg_name(), count=desired)
    yield active
    drill.revert(active)


@when(parsers.re(r"the enclave process crashes on (?P<count>\d+) instances?"),
      converters={"count": int})
def enclave_crash(drill: Drill, count: int) -> Iterator[ActiveFault]:
    """Kill the enclave process (twin only); the ASG health check must replace the instance."""
    active = drill.inject(KillWorker, asg=drill.target.asg_name(), count=count)
    yield active
    drill.revert(active)


@when(parsers.parse("the enclave ASG uses {kind} health checks only"))
def health_check_type(drill: Drill, kind: str) -> Iterator[ActiveFault]:
    """Switch the ASG's HealthCheckType (`EC2`: only EC2 status counts, a crashed enclave
    goes unnoticed); the type it had is restored at teardown."""
    active = drill.inject(SetHealthCheckType, asg=drill.target.asg_name(), to=kind)
    yield active
    drill.revert(active)


@when(parsers.parse("the enclave ASG desired capacity is set to {capacity:d}"))
def capacity_to(drill: Drill, capacity: int) -> Iterator[ActiveFault]:
    """Set the ASG's desired capacity (0 takes every enclave down); reverted at teardown."""
    active = drill.inject(SetDesiredCapacity, asg=drill.target.asg_name(), to=capacity)
    yield active
    drill.revert(active)


@when("the operator forces new instances (runbook 4.1 step 4)")
def force_new(drill: Drill) -> None:
    """Runbook 4.1 step 4: desired capacity 0, wait for the group to drain, then back up."""
    fault = drill.last_fault
    desired = int(fault.fault.params.get("desired") or 2)
    force_new_instances(drill.target.clients, drill.target.asg_name(), drill.target.region,
                        desired, drill.progress)


@then(parsers.parse('the enclave ASG returns to desired capacity within the "{component}" '
                    "objective"))
def capacity_restored(drill: Drill, component: str) -> None:
    """Every desired instance is InService, Healthy and serving within the objective."""
    drill.assert_met(drill.measure_capacity(component))


@then(parsers.parse('the Auto Scaling group replaced the instance "{cause}"'))
def replaced_for(drill: Drill, cause: str) -> None:
    """The group's scaling activities (describe-scaling-activities) show each instance the
    last fault acted on taken out of service `cause`: which health check replaced it."""
    params = drill.last_fault.fault.params
    ids = sorted(params.get("workers") or params.get("instance_ids") or [])
    activities = drill.target.clients("autoscaling", drill.target.region) \
        .describe_scaling_activities(AutoScalingGroupName=drill.target.asg_name())["Activities"]
    for iid in ids:
        causes = [a["Cause"] for a in activities
                  if a["Description"] == f"Terminating EC2 instance: {iid}"]
        if not any(cause in c for c in causes):
            raise RecoveryError(
                f"{drill.target.asg_name()} did not replace {iid} {cause}: its termination "
                f"activities say {causes or 'nothing'}; check the group's HealthCheckType "
                "and its target group's health check")


@then(parsers.parse('the enclave ASG is still short of capacity when an ELB health check '
                    'would have replaced the instance (the "{component}" objective)'))
def capacity_stays_short(drill: Drill, component: str) -> None:
    """Capacity is polled from the fault until twice the time an ELB health check takes to
    replace the instance (the group's grace period, then the target group's interval times
    its unhealthy threshold, then a status-check interval): still short then, no replacement
    is coming, and the objective is reported breached with capacity not recovered."""
    objective = drill.settings.objectives.for_component(component)
    fault, poll = drill.last_fault, 0.25
    horizon = 2 * _elb_replacement_time(drill)

    def problem() -> str | None:
        seen = drill.capacity()
        return None if seen.restored else (
            f"desired {seen.desired}, InService {seen.in_service}, serving {seen.serving}")

    polled = figures.poll_until(problem, since=fault.injected_at,
                                deadline=fault.injected_at + horizon, poll=poll,
                                progress=lambda why: drill.progress(
                                    f"watching {drill.target.asg_name()} for "
                                    f"{secs(horizon)}: {why}"))
    measurement = drill.record_measurement(figures.from_poll(
        "capacity", objective, polled, fault.injected_at, fault.inject_span, fault.fault_id,
        f"polled the Auto Scaling group every {poll:g} s for {secs(horizon)}, twice the time "
        "an ELB health check takes to replace an instance: desired capacity reached by "
        "InService, Healthy instances that answer a health check"))
    if not measurement.met:
        raise ObjectiveBreached(
            f"{component} objective breached (capacity): {drill.target.asg_name()} was still "
            f"short of capacity {secs(horizon)} after the fault ({polled.problem}), twice the "
            "time an ELB health check takes to replace an instance; with EC2 checks only the "
            "crashed enclave is never seen, so no replacement comes within any objective")


def _elb_replacement_time(drill: Drill) -> float:
    """Grace period + target group interval x unhealthy threshold + one status-check
    interval (the ASG acts on its next check) of the drill's group, in seconds."""
    target, region = drill.target, drill.target.region
    group = target.clients("autoscaling", region).describe_auto_scaling_groups(
        AutoScalingGroupNames=[target.asg_name()])["AutoScalingGroups"][0]
    grace = float(group.get("HealthCheckGracePeriod") or 0)
    arns = group.get("TargetGroupARNs") or []
    checks = max((float(g["HealthCheckIntervalSeconds"]) * int(g["UnhealthyThresholdCount"])
                  for g in target.clients("elbv2", region).describe_target_groups(
                      TargetGroupArns=arns)["TargetGroups"]), default=0.0) if arns else 0.0
    return grace + checks + drill.target.status_check_interval


def _desired(drill: Drill) -> int:
    group = drill.target.clients("autoscaling", drill.target.region).describe_auto_scaling_groups(
        AutoScalingGroupNames=[drill.target.asg_name()])["AutoScalingGroups"][0]
    return int(group["DesiredCapacity"])
