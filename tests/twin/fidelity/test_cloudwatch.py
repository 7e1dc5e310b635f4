"""CloudWatch alarms on the twin evaluate their metric and fire their actions, as AWS does.

References (AWS documentation):
- CloudWatch User Guide, "Using Amazon CloudWatch alarms" (AlarmThatSendsEmail.html):
  "Evaluating an alarm" (Period, Evaluation Periods, Datapoints to Alarm: M out of N),
  "Configuring how CloudWatch alarms treat missing data" (missing, notBreaching, breaching,
  ignore) — "alarms guide" below;
- API Reference: PutMetricAlarm ("When this operation creates an alarm, the alarm state is
  immediately set to INSUFFICIENT_DATA", "When you update an existing alarm, its state is
  left unchanged"), MetricAlarm (StateValue, StateReason, StateUpdatedTimestamp,
  StateTransitionedTimestamp), SetAlarmState, DescribeAlarmHistory / AlarmHistoryItem
  (HistoryItemType ConfigurationUpdate | StateUpdate | Action);
- SNS Developer Guide / CloudWatch User Guide "Alarm events and notifications": the
  notification JSON (AlarmName, NewStateValue, OldStateValue, NewStateReason,
  StateChangeTime, Region, AlarmArn, Trigger) and its subject `ALARM: "<name>" in <region>`.

Alarms use 10 s periods (high resolution) so each test waits seconds, not minutes.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drills.clients import Clients
from tests.conftest import wait_for

REGION = "us-east-1"
PERIOD = 10


@dataclass
class Pager:
    """An SNS topic with an SQS queue subscribed to it (moto delivers SNS -> SQS)."""

    topic: str
    queue: str
    clients: Clients

    def messages(self, wait: int = 1) -> list[dict[str, Any]]:
        got = self.clients("sqs").receive_message(QueueUrl=self.queue, WaitTimeSeconds=wait,
                                                  MaxNumberOfMessages=10)
        return [json.loads(m["Body"]) for m in got.get("Messages", [])]


@pytest.fixture
def pager(clients: Clients) -> Pager:
    tag = uuid.uuid4().hex[:8]
    topic = clients("sns").create_topic(Name=f"alarms-{tag}")["TopicArn"]
    queue = clients("sqs").create_queue(QueueName=f"pager-{tag}")["QueueUrl"]
    arn = clients("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    clients("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return Pager(topic, queue, clients)


@dataclass
class Metric:
    """A fresh custom metric and the alarms made on it."""

    namespace: str
    clients: Clients

    def put(self, value: float, when: datetime) -> None:
        self.clients("cloudwatch").put_metric_data(Namespace=self.namespace, MetricData=[
            {"MetricName": "Healthy", "Value": value, "Timestamp": when,
             "StorageResolution": 1}])

    def fill(self, value: float, seconds: int = 40) -> None:
        """One datapoint per second for the last `seconds`: every recent period has data."""
        now = datetime.now(UTC)
        for back in range(1, seconds):
            self.put(value, now - timedelta(seconds=back))

    def alarm(self, name: str, **overrides: Any) -> str:
        kwargs = {"AlarmName": name, "Namespace": self.namespace, "MetricName": "Healthy",
                  "Statistic": "Maximum", "Period": PERIOD, "EvaluationPeriods": 2,
                  "DatapointsToAlarm": 2, "Threshold": 1.0,
                  "ComparisonOperator": "LessThanThreshold", **overrides}
        self.clients("cloudwatch").put_metric_alarm(**kwargs)
        return name

    def state(self, name: str) -> dict[str, Any]:
        return dict(self.clients("cloudwatch").describe_alarms(AlarmNames=[name])[
            "MetricAlarms"][0])

    def wait_state(self, name: str, value: str, timeout: float = 3 * PERIOD) -> dict[str, Any]:
        return dict(wait_for(lambda: (s := self.state(name))["StateValue"] == value and s,
                             timeout, f"{name} to be {value}"))

    def wait_healthy(self, name: str) -> dict[str, Any]:
        """Publish a healthy value every half second until the alarm is OK."""
        def ok() -> dict[str, Any] | None:
            self.put(5.0, datetime.now(UTC))
            state = self.state(name)
            return state if state["StateValue"] == "OK" else None
        return dict(wait_for(ok, 3 * PERIOD, f"{name} to be OK again", step=0.5))

    def history(self, name: str, **kwargs: Any) -> list[dict[str, Any]]:
        return list(self.clients("cloudwatch").describe_alarm_history(
            AlarmName=name, **kwargs)["AlarmHistoryItems"])


@pytest.fixture
def metric(clients: Clients) -> Metric:
    return Metric(f"Test/{uuid.uuid4().hex[:8]}", clients)


def test_a_new_alarm_starts_insufficient_data_with_a_creation_history_item(
        metric: Metric) -> None:
    """PutMetricAlarm: a created alarm is immediately INSUFFICIENT_DATA (moto said OK), with
    a ConfigurationUpdate history item."""
    name = metric.alarm("new-alarm", TreatMissingData="ignore")
    state = metric.state(name)
    assert state["StateValue"] == "INSUFFICIENT_DATA"
    assert state["StateReason"] == "Unchecked: Initial alarm creation"
    created = metric.history(name, HistoryItemType="ConfigurationUpdate")
    assert created[0]["HistorySummary"] == 'Alarm "new-alarm" created'


def test_breaching_every_evaluation_period_raises_the_alarm_and_notifies(
        metric: Metric, pager: Pager) -> None:
    """Alarms guide: 2 of the last 2 periods below the threshold -> ALARM. The change sets
    StateValue, StateReason, both timestamps, a StateUpdate history item; the SNS action
    publishes the AWS notification to the topic, delivered to the subscribed queue, and
    leaves an Action history item."""
    metric.fill(0.0)
    name = metric.alarm("breached", AlarmActions=[pager.topic])
    state = metric.wait_state(name, "ALARM")
    assert state["StateReason"].startswith("Threshold Crossed: 2 out of the last 2 datapoints")
    assert "were less than the threshold (1.0)" in state["StateReason"]
    assert state["StateUpdatedTimestamp"] == state["StateTransitionedTimestamp"]
    update = metric.history(name, HistoryItemType="StateUpdate")[0]
    assert update["HistorySummary"] == "Alarm updated from INSUFFICIENT_DATA to ALARM"
    assert json.loads(update["HistoryData"])["newState"]["stateValue"] == "ALARM"
    envelope = wait_for(lambda: pager.messages(), 10, "the SNS notification in the queue")[0]
    assert envelope["Subject"] == 'ALARM: "breached" in US East (N. Virginia)'
    body = json.loads(envelope["Message"])
    assert (body["AlarmName"], body["NewStateValue"], body["OldStateValue"]) == (
        "breached", "ALARM", "INSUFFICIENT_DATA")
    assert body["Trigger"]["MetricName"] == "Healthy"
    assert body["Trigger"]["Period"] == PERIOD
    assert body["AlarmArn"] == state["AlarmArn"]
    assert body["NewStateReason"]
    action = metric.history(name, HistoryItemType="Action")[0]
    assert action["HistorySummary"] == f"Successfully executed action {pager.topic}"


def _wait_for_phase(low: float, high: float) -> float:
    """Wait until the clock is `low`..`high` seconds into a period; returns the boundary."""
    def in_phase() -> float | None:
        now = time.time()
        boundary = math.floor(now / PERIOD) * PERIOD
        return boundary if low <= now - boundary <= high else None
    return float(wait_for(in_phase, 2 * PERIOD, "the right moment in the period", step=0.05))


@pytest.mark.parametrize(("to_alarm", "expected"), [(2, "OK"), (1, "ALARM")])
def test_datapoints_to_alarm_m_out_of_n(metric: Metric, to_alarm: int, expected: str) -> None:
    """Alarms guide, "M out of N": with only the older of 2 periods breaching, an alarm
    needing 2 datapoints stays OK and one needing 1 goes to ALARM."""
    boundary = datetime.fromtimestamp(_wait_for_phase(1.5, 7.0), UTC)
    for second in range(PERIOD):
        metric.put(0.0, boundary - timedelta(seconds=2 * PERIOD - second))  # breaching
        metric.put(2.0, boundary - timedelta(seconds=PERIOD - second))  # healthy
    name = metric.alarm(f"m-of-n-{to_alarm}", DatapointsToAlarm=to_alarm)
    state = metric.wait_state(name, expected, timeout=5)
    if expected == "OK":
        assert "1 out of the last 2 datapoints" in state["StateReason"]
        assert "was not less than the threshold" in state["StateReason"]


@pytest.mark.parametrize(("statistic", "expected"), [("Average", "OK"), ("Minimum", "ALARM")])
def test_the_statistic_is_taken_over_each_period(metric: Metric, statistic: str,
                                                 expected: str) -> None:
    """Alarms guide: the alarm compares the period's statistic: values 0 and 2 give an
    Average of 1 (not below 1) but a Minimum of 0 (below 1)."""
    now = datetime.now(UTC)
    for back in range(1, 40):
        metric.put(0.0 if back % 2 else 2.0, now - timedelta(seconds=back))
    name = metric.alarm(f"stat-{statistic}", Statistic=statistic)
    metric.wait_state(name, expected, timeout=5)


@pytest.mark.parametrize(("treatment", "expected"), [
    ("missing", "INSUFFICIENT_DATA"), ("breaching", "ALARM"), ("notBreaching", "OK")])
def test_missing_data_is_treated_as_configured(metric: Metric, treatment: str,
                                               expected: str) -> None:
    """Alarms guide, missing data: with no datapoint at all, `missing` leaves the alarm
    INSUFFICIENT_DATA, `breaching` counts every period as breaching, `notBreaching` as OK."""
    name = metric.alarm(f"missing-{treatment}", TreatMissingData=treatment)
    metric.wait_state(name, expected, timeout=5)
    if expected == "INSUFFICIENT_DATA":
        assert metric.state(name)["StateReason"].startswith(
            ("Unchecked", "Insufficient Data"))


def test_the_alarm_returns_to_ok_and_runs_its_ok_actions(metric: Metric, pager: Pager) -> None:
    """Alarms guide: once the metric stops breaching the alarm goes back to OK at its next
    evaluation; OKActions are notified with OldStateValue ALARM."""
    metric.fill(0.0)
    name = metric.alarm("recovers", EvaluationPeriods=1, DatapointsToAlarm=1,
                        AlarmActions=[pager.topic], OKActions=[pager.topic])
    alarmed = metric.wait_state(name, "ALARM")
    pager.messages()  # the ALARM notification
    ok = metric.wait_healthy(name)
    assert ok["StateTransitionedTimestamp"] > alarmed["StateTransitionedTimestamp"]
    bodies = [json.loads(e["Message"]) for e in
              wait_for(lambda: pager.messages(), 10, "the OK notification")]
    assert any(b["NewStateValue"] == "OK" and b["OldStateValue"] == "ALARM" for b in bodies)


def test_updating_an_alarm_keeps_its_state(metric: Metric) -> None:
    """PutMetricAlarm: "When you update an existing alarm, its state is left unchanged";
    the update is a ConfigurationUpdate history item."""
    metric.fill(0.0)
    name = metric.alarm("updated")
    before = metric.wait_state(name, "ALARM")
    metric.alarm("updated", AlarmDescription="new words")
    after = metric.state(name)
    assert after["StateValue"] == "ALARM"
    assert after["StateTransitionedTimestamp"] == before["StateTransitionedTimestamp"]
    summaries = [h["HistorySummary"] for h in metric.history(
        name, HistoryItemType="ConfigurationUpdate")]
    assert 'Alarm "updated" updated' in summaries


def test_set_alarm_state_runs_actions_then_evaluation_corrects_it(metric: Metric,
                                                                  pager: Pager) -> None:
    """SetAlarmState: the state changes and the actions run like any state change; the
    next evaluation sets the state from the data again."""
    metric.fill(5.0)
    name = metric.alarm("forced", AlarmActions=[pager.topic])
    metric.wait_state(name, "OK")
    metric.clients("cloudwatch").set_alarm_state(AlarmName=name, StateValue="ALARM",
                                                 StateReason="testing the page")
    assert metric.state(name)["StateReason"] == "testing the page"
    body = json.loads(wait_for(lambda: pager.messages(), 10, "the notification")[0]["Message"])
    assert body["NewStateReason"] == "testing the page"
    assert metric.wait_healthy(name)["StateValue"] == "OK"


def test_disabled_actions_change_state_without_notifying(metric: Metric, pager: Pager) -> None:
    """PutMetricAlarm ActionsEnabled=false: the alarm still changes state, no action runs."""
    metric.fill(0.0)
    name = metric.alarm("silent", AlarmActions=[pager.topic], ActionsEnabled=False)
    metric.wait_state(name, "ALARM")
    assert pager.messages() == []
    assert metric.history(name, HistoryItemType="Action") == []


def test_alarm_history_filters_orders_and_pages(metric: Metric) -> None:
    """DescribeAlarmHistory: newest first by default, oldest first with
    ScanBy=TimestampAscending; HistoryItemType and StartDate filter; MaxRecords pages."""
    metric.fill(0.0)
    name = metric.alarm("history")
    metric.wait_state(name, "ALARM")
    newest_first = metric.history(name)
    assert [h["HistoryItemType"] for h in newest_first] == ["StateUpdate", "ConfigurationUpdate"]
    oldest_first = metric.history(name, ScanBy="TimestampAscending")
    assert [h["HistoryItemType"] for h in oldest_first] == ["ConfigurationUpdate", "StateUpdate"]
    later = metric.history(name, StartDate=datetime.now(UTC) + timedelta(minutes=1))
    assert later == []
    page = metric.clients("cloudwatch").describe_alarm_history(AlarmName=name, MaxRecords=1)
    assert len(page["AlarmHistoryItems"]) == 1
    assert page["NextToken"]


def test_metrics_published_as_statistic_values_are_evaluated(metric: Metric) -> None:
    """PutMetricData with StatisticValues (Sum, Minimum, Maximum, SampleCount) instead of a
    Value: the alarm evaluates the statistics like any datapoint (AWS PutMetricData)."""
    now = datetime.now(UTC)
    for back in range(1, 40):
        metric.clients("cloudwatch").put_metric_data(Namespace=metric.namespace, MetricData=[
            {"MetricName": "Healthy", "Timestamp": now - timedelta(seconds=back),
             "StatisticValues": {"SampleCount": 2, "Sum": 0.0, "Minimum": 0.0,
                                 "Maximum": 0.0}, "StorageResolution": 1}])
    name = metric.alarm(f"stats-{uuid.uuid4().hex[:6]}")
    metric.wait_state(name, "ALARM")
