"""Timing profiles for the behaviours AWS performs on its own clock.

`fast` keeps drills and tests short; `realistic` uses the delays AWS documents, so a
drill on the twin shows the RTO a real account would show. Every delay a drill depends
on lives here, named after the AWS mechanism it stands for.
"""

from __future__ import annotations

from dataclasses import dataclass

from drills.errors import ConfigError


@dataclass(frozen=True, slots=True)
class TimingProfile:
    """Delays (seconds) the twin applies where AWS would take time."""

    name: str
    #: How often the ASG controller looks at instances and workers.
    reconcile_interval: float
    #: EC2/ASG health check: how long a dead worker or stopped instance goes unnoticed.
    health_check_delay: float
    #: From launch to InService: boot of the instance plus enclave start-up.
    boot_delay: float
    #: Grace after launch during which health checks are not acted on.
    health_check_grace: float


PROFILES: dict[str, TimingProfile] = {
    "fast": TimingProfile(
        name="fast",
        reconcile_interval=0.1,
        health_check_delay=1.0,
        boot_delay=1.0,
        health_check_grace=0.0,
    ),
    # EC2 status checks run every minute; an ASG acts on an unhealthy instance on the
    # next check; a Nitro-enabled instance boots and starts its enclave in ~90-120 s;
    # the default health check grace period of an ASG is 300 s (we use the boot time).
    "realistic": TimingProfile(
        name="realistic",
        reconcile_interval=1.0,
        health_check_delay=60.0,
        boot_delay=110.0,
        health_check_grace=0.0,
    ),
}


def profile(name: str) -> TimingProfile:
    """Return the named timing profile or say which names exist."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(
            f"unknown timing profile {name!r}; choose one of {', '.join(sorted(PROFILES))}"
        ) from None
