"""The runbook's recovery procedures, automated with the calls the runbook prints.

Each procedure waits on observed conditions with a deadline (never the runbook's bare
`sleep 60`), and reports progress while it waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from drills.clients import Clients
from drills.errors import RecoveryError

Progress = Callable[[str], None]


def force_new_instances(clients: Clients, asg: str, region: str, desired: int,
                        progress: Progress, drain_timeout: float = 300.0) -> None:
    """Runbook 4.1 step 4: set desired capacity to 0, wait for the group to empty, set it back.

    The runbook sleeps 60 s between the two calls; we wait until the group has no instance
    left, which is what the sleep stands for, and fail clearly if it never empties.
    """
    autoscaling = clients("autoscaling", region)
    autoscaling.set_desired_capacity(AutoScalingGroupName=asg, DesiredCapacity=0)
    deadline = time.monotonic() + drain_timeout
    while True:
        group = autoscaling.describe_auto_scaling_groups(
            AutoScalingGroupNames=[asg])["AutoScalingGroups"][0]
        left = len(group["Instances"])
        if left == 0:
            break
        if time.monotonic() > deadline:
            raise RecoveryError(f"{asg} still has {left} instance(s) {drain_timeout:g}s after "
                                "desired capacity 0; check scale-in protection and lifecycle "
                                "hooks, then retry")
        progress(f"runbook 4.1 step 4: waiting for {asg} to drain ({left} instance(s) left)")
        time.sleep(0.5)
    autoscaling.set_desired_capacity(AutoScalingGroupName=asg, DesiredCapacity=desired)
