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
    #: First and longest delay between the ASG's retries of failed launches (it backs off).
    launch_retry_first: float
    launch_retry_max: float
    #: Instance warm-up of an instance refresh that names none (AWS: the group's
    #: DefaultInstanceWarmup or HealthCheckGracePeriod; None = use the group's).
    instance_warmup: float | None
    #: nats-server ping interval (clients and routes): a frozen or cut-off peer is noticed
    #: after two unanswered pings. NATS's default is 2 minutes.
    nats_ping_interval: float
    #: How often the twin publishes the metrics its CloudWatch alarms watch.
    metric_interval: float
    #: Period of the runbook's alarms (CloudWatch: 10/30 s high resolution, else n*60 s).
    alarm_period: int
    #: Seconds without a failed probe after K successes before a drill calls the service
    #: recovered: failures that come back within it make the verdict `flapping`.
    settle: float
    #: How long the API's Lambdas wait for an enclave (AWS Lambda's default timeout: 3 s).
    lambda_timeout: float


PROFILES: dict[str, TimingProfile] = {
    "fast": TimingProfile(
        name="fast",
        reconcile_interval=0.1,
        health_check_delay=1.0,
        boot_delay=1.0,
        health_check_grace=0.0,
        launch_retry_first=0.5,
        launch_retry_max=4.0,
        instance_warmup=0.5,
        nats_ping_interval=5.0,
        metric_interval=1.0,
        alarm_period=10,
        settle=5.0,
        lambda_timeout=3.0,
    ),
    # EC2 status checks run every minute; an ASG acts on an unhealthy instance on the
    # next check; a Nitro-enabled instance boots and starts its enclave in ~90-120 s;
    # the default health check grace period of an ASG is 300 s (we use the boot time).
    # Failed launches are retried with a growing delay (AWS documents no schedule); group
    # metrics have 1-minute granularity and 60 s is the standard alarm period.
    "realistic": TimingProfile(
        name="realistic",
        reconcile_interval=1.0,
        health_check_delay=60.0,
        boot_delay=110.0,
        health_check_grace=0.0,
        launch_retry_first=10.0,
        launch_retry_max=300.0,
        instance_warmup=None,
        nats_ping_interval=120.0,
        metric_interval=60.0,
        alarm_period=60,
        settle=60.0,
        lambda_timeout=3.0,
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
