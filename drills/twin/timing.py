"""Timing profiles for the behaviours AWS performs on its own clock.

`fast` keeps drills and tests short; `realistic` uses the delays AWS documents, so a
drill on the twin shows the RTO a real account would show. Every delay a drill depends
on lives here, named after the AWS mechanism it stands for; each `realistic` value cites
the AWS page it comes from (or says it is an estimate), and every `fast` value is that
delay compressed.
"""

from __future__ import annotations

from dataclasses import dataclass

from drills.errors import ConfigError


@dataclass(frozen=True, slots=True)
class TargetGroupHealthCheck:
    """The enclave target group's health check settings (CreateTargetGroup's names)."""

    interval: int  # HealthCheckIntervalSeconds
    timeout: int  # HealthCheckTimeoutSeconds
    healthy: int  # HealthyThresholdCount
    unhealthy: int  # UnhealthyThresholdCount


@dataclass(frozen=True, slots=True)
class TimingProfile:
    """Delays (seconds) the twin applies where AWS would take time."""

    name: str
    #: How often the ASG controller looks at instances and workers.
    reconcile_interval: float
    #: EC2 status checks: how long an impaired instance (its AMI missing: it cannot boot)
    #: runs before its failed status check is seen.
    status_check_interval: float
    #: From launch to serving: boot of the instance plus enclave start-up. Instances that
    #: exist when the twin starts are taken as already booted (the stack has been running).
    boot_delay: float
    #: The enclave ASG's HealthCheckGracePeriod: no health check replaces an instance this
    #: soon after it came InService (an instance that stops running is replaced anyway).
    health_check_grace_period: int
    #: The enclave target group's health check (ELB health checks of the ASG).
    target_group: TargetGroupHealthCheck
    #: First and longest delay between the ASG's retries of failed launches (it backs off).
    launch_retry_first: float
    launch_retry_max: float
    #: Instance warm-up of an instance refresh that names none (AWS: the group's
    #: DefaultInstanceWarmup or HealthCheckGracePeriod; None = use the group's).
    instance_warmup: float | None
    #: NATS ping interval (servers, routes, the probes' and the workers' clients): a frozen
    #: or cut-off peer is noticed after two unanswered pings.
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
    #: DynamoDB PITR: how far LatestRestorableDateTime lags behind now.
    pitr_latest_restorable_lag: float
    #: Route 53: the health checks' RequestInterval is multiplied by this (1: as
    #: configured), and a change is INSYNC this long after it was made.
    route53_interval_scale: float
    route53_propagation_delay: float
    #: TTL of the twin's api.vettid.dev records: how long a client may keep an answer.
    record_ttl: int


PROFILES: dict[str, TimingProfile] = {
    # Every delay compressed so a drill takes seconds; the ELB and ASG settings are the
    # smallest AWS accepts where it has a floor (interval 5 s, thresholds 2).
    "fast": TimingProfile(
        name="fast",
        # Each pass describes the group and its instances: at 0.1 s the controller and moto
        # took ~0.4 of a core with nothing happening; at 0.5 s ~0.15 (a replacement starts
        # at most 0.4 s later).
        reconcile_interval=0.5,
        status_check_interval=1.0,
        boot_delay=1.0,
        # As AWS asks of a grace period ("greater than or equal to the maximum amount of
        # startup time"): a worker's start-up on a loaded 2-core machine (boot 1 s, Python,
        # the enclave's KMS/S3 checks, NATS; 5-20 s measured while the cluster forms at
        # `twin up`) and then up to two failed and two passed checks (interval 5 s).
        health_check_grace_period=30,
        # A freeze shorter than interval + timeout (9 s) is never two failed checks: the
        # bench's freezes of a few seconds measure an outage, not a replacement.
        target_group=TargetGroupHealthCheck(interval=5, timeout=4, healthy=2, unhealthy=2),
        launch_retry_first=0.5,
        launch_retry_max=4.0,
        instance_warmup=0.5,
        nats_ping_interval=5.0,
        metric_interval=1.0,
        alarm_period=10,
        settle=5.0,
        lambda_timeout=3.0,
        pitr_latest_restorable_lag=10.0,
        route53_interval_scale=0.1,
        route53_propagation_delay=1.0,
        record_ttl=5,
    ),
    "realistic": TimingProfile(
        name="realistic",
        reconcile_interval=1.0,
        # Amazon EC2 User Guide, "Status checks for Amazon EC2 instances": "Status checks
        # are performed every minute, returning a pass or a fail status." EC2 Auto Scaling
        # User Guide, "Health checks for instances in an Auto Scaling group": it replaces an
        # instance whose status checks are impaired (after "a few minutes": we take one
        # check), and one no longer `running` at once.
        status_check_interval=60.0,
        # An estimate: AWS documents no boot time. A Nitro-based instance reaches `running`
        # in well under a minute; the parent application then starts the enclave
        # (nitro-cli run-enclave) and connects to NATS: ~90-120 s in all, 110 s here.
        boot_delay=110.0,
        # EC2 Auto Scaling User Guide, "Set the health check grace period for an Auto
        # Scaling group": "In the console, by default, the health check grace period is 300
        # seconds" (0 through the API or an SDK); moto stores 300 from the stack.
        health_check_grace_period=300,
        # Elastic Load Balancing, "Health checks for Application Load Balancer target
        # groups": HealthCheckIntervalSeconds default 30 (target type instance),
        # HealthCheckTimeoutSeconds default 5, HealthyThresholdCount default 5,
        # UnhealthyThresholdCount default 2.
        target_group=TargetGroupHealthCheck(interval=30, timeout=5, healthy=5, unhealthy=2),
        # "Troubleshoot Amazon EC2 Auto Scaling: EC2 instance launch failures": failed
        # launches are retried; AWS documents no schedule (an estimate, backing off).
        launch_retry_first=10.0,
        launch_retry_max=300.0,
        instance_warmup=None,  # the group's HealthCheckGracePeriod, as AWS falls back to
        # NATS Server configuration reference, `ping_interval`: default "2m" (and the
        # nats-py client's DEFAULT_PING_INTERVAL, 120 s), two pings outstanding.
        nats_ping_interval=120.0,
        # "Monitor CloudWatch metrics for your Auto Scaling groups and instances": group
        # metrics are published at one-minute granularity.
        metric_interval=60.0,
        # "Using Amazon CloudWatch alarms": a high-resolution alarm has a period of 10 or
        # 30 seconds, a regular alarm any multiple of 60 seconds (the standard period).
        alarm_period=60,
        settle=60.0,  # the harness's own choice (not an AWS delay): one metric period
        # "Configure Lambda function timeout": the default timeout is 3 seconds.
        lambda_timeout=3.0,
        # DynamoDB API Reference, PointInTimeRecoveryDescription: LatestRestorableDateTime
        # "is typically 5 minutes before the current time". The restore itself completes in
        # the twin's API call: AWS gives no duration, only that "95 percent of customers'
        # table restores complete in less than one hour" and that restore times depend on
        # the table's size and partitions ("Backup and restore for DynamoDB").
        pitr_latest_restorable_lag=300.0,
        # Route 53 Developer Guide, "How Amazon Route 53 determines whether a health check
        # is healthy": checkers send a request every RequestInterval (10 or 30 s, as the
        # check is configured); API_ChangeResourceRecordSets: changes "typically" propagate
        # to all Route 53 authoritative DNS servers "within 60 seconds".
        route53_interval_scale=1.0,
        route53_propagation_delay=60.0,
        # Route 53 Developer Guide, "Values specific for failover records": a TTL of 60 s or
        # less is recommended for records with health checks.
        record_ttl=60,
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
