"""The twin's monitoring: the runbook's CloudWatch alarms, their pager, and the metrics behind them.

Runbook 3.2 and 3.3 name two alarms; the twin provisions them as an operator would (with
the names of `drills.environment.Names`, the runbook's):

- `VettID-Enclave-NoInstances`: AWS/AutoScaling `GroupInServiceInstances` of the enclave ASG
  (group metrics collection enabled, as AWS requires for it to be published) below 1;
- `VettID-NATS-NoHealthyInstances`: `VettID/NATS` `HealthyNodes` below 1, a custom metric the
  twin publishes from real `/healthz` checks of every NATS node;

both with their AlarmActions (and OKActions) on the SNS topic `VettID-Nitro-Alarms`, to which
the queue `VettID-Nitro-Pager` (standing in for the on-call pager) is subscribed.

`MetricPublisher` runs in the ASG controller process and publishes both metrics every
metric interval; CloudWatch's alarm evaluation itself is the moto process's
(`drills.twin.fidelity.cloudwatch`). Periods follow the timing profile: `fast` compresses
AWS's 1-minute group metrics and 60 s alarm periods to 1 s and 10 s.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from drills.clients import Clients
from drills.twin import nats
from drills.twin.state import Names, TwinState

PAGER_QUEUE = "VettID-Nitro-Pager"
NATS_NAMESPACE, NATS_METRIC = "VettID/NATS", "HealthyNodes"
GROUP_METRIC = "GroupInServiceInstances"


@dataclass(frozen=True, slots=True)
class MonitoringTiming:
    """How often metrics are published and alarms evaluated (seconds)."""

    metric_interval: float
    alarm_period: int


def timing_for(profile: str) -> MonitoringTiming:
    """The monitoring timing of a twin timing profile."""
    from drills.twin.timing import profile as timing_profile

    fields = timing_profile(profile)
    return MonitoringTiming(float(fields.metric_interval), int(fields.alarm_period))


@dataclass(frozen=True, slots=True)
class AlarmSpec:
    """One CloudWatch metric alarm as PutMetricAlarm takes it."""

    name: str
    description: str
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str = "Maximum"  # "none at any time in the period", not "fewer on average"
    threshold: float = 1.0
    comparison: str = "LessThanThreshold"
    evaluation_periods: int = 2  # two periods in a row: one missed scrape never pages
    datapoints_to_alarm: int = 2

    def put_kwargs(self, period: int, topic_arn: str) -> dict[str, Any]:
        """Arguments of cloudwatch.put_metric_alarm for this alarm."""
        return {"AlarmName": self.name, "AlarmDescription": self.description,
                "Namespace": self.namespace, "MetricName": self.metric,
                "Dimensions": [{"Name": k, "Value": v} for k, v in self.dimensions],
                "Statistic": self.statistic, "Period": period,
                "EvaluationPeriods": self.evaluation_periods,
                "DatapointsToAlarm": self.datapoints_to_alarm, "Threshold": self.threshold,
                "ComparisonOperator": self.comparison, "TreatMissingData": "missing",
                "ActionsEnabled": True, "AlarmActions": [topic_arn], "OKActions": [topic_arn]}


def alarm_specs(names: Names) -> tuple[AlarmSpec, ...]:
    """The runbook's two alarms for the stack `names` describes."""
    return (
        AlarmSpec(names.enclave_alarm, "No InService enclave instance: no vault operations "
                  "(runbook 3.2)", "AWS/AutoScaling", GROUP_METRIC,
                  (("AutoScalingGroupName", names.asg),)),
        AlarmSpec(names.nats_alarm, "No healthy NATS node: enclaves cannot communicate "
                  "(runbook 3.3)", NATS_NAMESPACE, NATS_METRIC, ()),
    )


@dataclass(frozen=True, slots=True)
class Monitoring:
    """What `provision` made: the alarm topic and the pager queue."""

    topic_arn: str
    pager_queue_url: str
    alarms: tuple[str, ...]


def provision(clients: Clients, names: Names, region: str, profile: str) -> Monitoring:
    """Create the topic, pager queue, group metrics and alarms; idempotent."""
    timing = timing_for(profile)
    sns, sqs = clients("sns", region), clients("sqs", region)
    topic = sns.create_topic(Name=names.alarm_topic)["TopicArn"]  # returns the existing one if any
    queue = sqs.create_queue(QueueName=PAGER_QUEUE)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    # On AWS the queue must let the topic send to it; moto does not check, AWS does.
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"Policy": json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage", "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic}}}]})})
    subscribed = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    if not any(s["Endpoint"] == queue_arn for s in subscribed):
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    clients("autoscaling", region).enable_metrics_collection(
        AutoScalingGroupName=names.asg, Granularity="1Minute", Metrics=[GROUP_METRIC])
    cloudwatch = clients("cloudwatch", region)
    specs = alarm_specs(names)
    existing = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(
        AlarmNames=[s.name for s in specs])["MetricAlarms"]}
    for spec in specs:
        wanted = spec.put_kwargs(timing.alarm_period, topic)
        have = existing.get(spec.name)
        # Re-putting an unchanged alarm would only add a ConfigurationUpdate to its history.
        if have is None or have.get("Period") != wanted["Period"] or \
                topic not in have.get("AlarmActions", []):
            cloudwatch.put_metric_alarm(**wanted)
    return Monitoring(topic, queue, tuple(s.name for s in specs))


class MetricPublisher:
    """Publishes the metrics the runbook's alarms watch, every metric interval, in a thread.

    A thread of its own: a frozen NATS node makes a /healthz check wait for its timeout,
    which must never slow the ASG controller's reconcile loop.
    """

    def __init__(self, state: TwinState, clients: Clients) -> None:
        self.state, self.clients = state, clients
        self.timing = timing_for(state.profile)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drills-metrics", daemon=True)
        self.errors = 0

    def start(self) -> MetricPublisher:
        """Start publishing in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop publishing (waits for the current round)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.publish_once()
            except Exception:  # the endpoint may blip; publish again next interval
                self.errors += 1
            self._stop.wait(max(0.0, self.timing.metric_interval - (time.monotonic() - started)))

    def publish_once(self) -> None:
        """One round: group metrics of every region's ASG, NATS healthy-node counts."""
        for region in self.state.regions.values():
            cloudwatch = self.clients("cloudwatch", region.name)
            groups = self.clients("autoscaling", region.name).describe_auto_scaling_groups(
                AutoScalingGroupNames=[region.asg])["AutoScalingGroups"]
            for group in groups:
                # AWS publishes group metrics only once collection is enabled for them.
                enabled = {m["Metric"] for m in group.get("EnabledMetrics", [])}
                if GROUP_METRIC in enabled:
                    in_service = sum(i["LifecycleState"] == "InService"
                                     for i in group["Instances"])
                    cloudwatch.put_metric_data(Namespace="AWS/AutoScaling", MetricData=[{
                        "MetricName": GROUP_METRIC, "Value": float(in_service), "Unit": "None",
                        "Dimensions": [{"Name": "AutoScalingGroupName",
                                        "Value": group["AutoScalingGroupName"]}]}])
            cluster = nats.cluster_for(nats.NatsClusterSpec.from_dict(region.nats))
            healthy = sum(cluster.healthy(node.name) for node in cluster.spec.nodes)
            cloudwatch.put_metric_data(Namespace=NATS_NAMESPACE, MetricData=[{
                "MetricName": NATS_METRIC, "Value": float(healthy), "Unit": "Count",
                "StorageResolution": 1 if self.timing.alarm_period < 60 else 60}])
