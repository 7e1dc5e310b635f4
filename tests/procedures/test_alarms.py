"""Runbook 7.1 "Test alarm escalation path": escalation levels, alarm history, the page.

The escalation tests are pure logic (the runbook appendix's table); the rest run on a real
moto server with the twin's CloudWatch fidelity layer and moto's SNS -> SQS delivery.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drills.clients import Clients
from drills.errors import ConfigError
from drills.procedures import alarms

REGION = "us-east-1"


def quiet(_: str) -> None:
    """Progress sink for tests."""


# ------------------------------------------------------------------ escalation (appendix)


def levels(result: alarms.Escalation) -> list[tuple[str, float | None]]:
    return [(s.level, s.after) for s in result.steps]


def test_a_p1_outage_engages_the_team_lead_at_once() -> None:
    """Appendix: L1 on-call answers the page; L2 team lead "> 30 min or P1": at once."""
    result = alarms.escalate("Nitro Enclave ASG", "P1", paged_after=25.0, outage=40.0,
                             data_loss=False, user_facing=True)
    assert levels(result) == [("L1", 25.0), ("L2", 25.0)]
    assert result.highest == "L2"
    assert result.steps[0].contact == "On-call engineer"
    assert result.steps[1].contact == "Team lead"


def test_a_non_p1_outage_reaches_the_team_lead_after_30_minutes() -> None:
    """Appendix: for a P3 component L2 joins only once the outage passes 30 minutes."""
    short = alarms.escalate("CloudWatch Monitoring", "P3", 60.0, 20 * 60.0, False, False)
    long = alarms.escalate("CloudWatch Monitoring", "P3", 60.0, 45 * 60.0, False, False)
    assert levels(short) == [("L1", 60.0)]
    assert levels(long) == [("L1", 60.0), ("L2", 1800.0)]


def test_data_loss_risk_engages_the_platform_architect() -> None:
    """Appendix: L3 platform architect on data loss risk (acknowledged writes lost)."""
    result = alarms.escalate("S3 Vault Data", "P2", 30.0, 120.0, True, True)
    assert [s.level for s in result.steps] == ["L1", "L3"]


def test_a_user_facing_outage_over_an_hour_reaches_the_executive() -> None:
    """Appendix: L4 executive for a user-facing outage longer than 1 hour, at the hour."""
    result = alarms.escalate("NATS Cluster", "P1", 30.0, 2 * 3600.0, False, True)
    assert levels(result)[-1] == ("L4", 3600.0)
    internal = alarms.escalate("CloudWatch Monitoring", "P3", 30.0, 2 * 3600.0, False, False)
    assert "L4" not in [s.level for s in internal.steps]


def test_without_a_page_there_is_no_escalation_path() -> None:
    """L1 needs a page: no page, no level engaged (the drill reports it as a failure)."""
    result = alarms.escalate("Nitro Enclave ASG", "P1", None, 600.0, True, True)
    assert result.steps == ()
    assert result.highest is None


def test_escalation_lines_name_level_contact_time_and_reason() -> None:
    """One readable line per level for the drill's output."""
    result = alarms.escalate("Nitro Enclave ASG", "P1", 25.0, 40.0, False, True)
    assert result.lines()[1] == ("escalation L2 (Team lead) at 25.0s: Nitro Enclave ASG is a "
                                 "P1 component")


# ------------------------------------------------------------------ on a moto server


@pytest.fixture
def topic(clients: Clients) -> str:
    return str(clients("sns").create_topic(Name=f"alarms-{uuid.uuid4().hex[:8]}")["TopicArn"])


@pytest.fixture
def alarm(clients: Clients, topic: str) -> str:
    name = f"alarm-{uuid.uuid4().hex[:8]}"
    clients("cloudwatch").put_metric_alarm(
        AlarmName=name, Namespace="Test/Procedures", MetricName=name, Statistic="Maximum",
        Period=60, EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="LessThanThreshold",
        TreatMissingData="ignore", AlarmActions=[topic], OKActions=[topic])
    return name


def notify(clients: Clients, topic: str, alarm: str, state: str) -> None:
    clients("sns").publish(TopicArn=topic, Subject=f'{state}: "{alarm}"', Message=json.dumps(
        {"AlarmName": alarm, "NewStateValue": state, "NewStateReason": "test"}))


def test_a_missing_alarm_is_a_config_error(clients: Clients) -> None:
    """Testing the escalation of an alarm that does not exist says which and what to do."""
    with pytest.raises(ConfigError, match="does not exist"):
        alarms.describe_alarm(clients, REGION, "VettID-No-Such-Alarm")


def test_a_state_change_is_read_from_the_alarm_history(clients: Clients, alarm: str) -> None:
    """The change to ALARM comes from DescribeAlarmHistory's StateUpdate item, with the
    previous state and the reason; before it happens the wait times out with None."""
    since = datetime.now(UTC) - timedelta(seconds=1)
    assert alarms.wait_for_change(clients, REGION, alarm, "ALARM", since, 0.0, quiet) is None
    clients("cloudwatch").set_alarm_state(AlarmName=alarm, StateValue="ALARM",
                                          StateReason="testing the path")
    change = alarms.wait_for_change(clients, REGION, alarm, "ALARM", since, 5.0, quiet)
    assert change is not None
    assert (change.old, change.new, change.reason) == ("INSUFFICIENT_DATA", "ALARM",
                                                       "testing the path")
    assert since <= change.at <= datetime.now(UTC)
    assert alarms.wait_for_state(clients, REGION, alarm, "ALARM", 5.0, quiet) == "ALARM"


def test_pager_watch_sees_the_alarm_notification_its_topic_delivers(
        clients: Clients, alarm: str, topic: str) -> None:
    """A queue of the drill's own, subscribed to the alarm's topic, receives the ALARM
    notification with its SQS SentTimestamp; other alarms, states and earlier pages are
    not taken for it, and a non-JSON publish is ignored."""
    watch = alarms.PagerWatch(clients, REGION, [topic]).open()
    try:
        before = datetime.now(UTC) - timedelta(seconds=1)
        clients("sns").publish(TopicArn=topic, Message="not an alarm")
        notify(clients, topic, "another-alarm", "ALARM")
        notify(clients, topic, alarm, "OK")
        assert watch.wait_for_page(alarm, "ALARM", before, 1.0, quiet) is None
        clients("cloudwatch").set_alarm_state(AlarmName=alarm, StateValue="ALARM",
                                              StateReason="page me")
        page = watch.wait_for_page(alarm, "ALARM", before, 10.0, quiet)
        assert page is not None
        assert page.reason == "page me"
        assert page.subject.startswith(f'ALARM: "{alarm}"')
        assert before <= page.delivered <= datetime.now(UTC) + timedelta(seconds=1)
        later = datetime.now(UTC) + timedelta(minutes=1)
        assert watch.wait_for_page(alarm, "ALARM", later, 0.0, quiet) is None
    finally:
        watch.close()


def test_pager_watch_cleans_up_its_queue_and_subscription(clients: Clients,
                                                          topic: str) -> None:
    """close() unsubscribes and deletes the drill's queue; calling it again is harmless."""
    watch = alarms.PagerWatch(clients, REGION, [topic]).open()
    queue = watch.queue.queue_url
    watch.close()
    watch.close()
    subscriptions: list[dict[str, Any]] = clients("sns").list_subscriptions_by_topic(
        TopicArn=topic)["Subscriptions"]
    assert subscriptions == []
    assert queue not in clients("sqs").list_queues().get("QueueUrls", [])


def test_an_alarm_without_sns_actions_cannot_page(clients: Clients) -> None:
    """No SNS AlarmActions: nobody would be paged; said before anything is created."""
    with pytest.raises(ConfigError, match="nobody would be paged"):
        alarms.PagerWatch(clients, REGION, [])
