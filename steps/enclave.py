"""Steps for the Nitro Enclave ASG: instance and enclave faults, runbook 4.1 recovery."""

from __future__ import annotations

from collections.abc import Iterator

from pytest_bdd import parsers, then, when

from drills.drill import Drill
from drills.faults import ActiveFault, KillWorker, SetDesiredCapacity, TerminateInstances
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


def _desired(drill: Drill) -> int:
    group = drill.target.clients("autoscaling", drill.target.region).describe_auto_scaling_groups(
        AutoScalingGroupNames=[drill.target.asg_name()])["AutoScalingGroups"][0]
    return int(group["DesiredCapacity"])
