"""Runbook 7.1 "Test alarm escalation path": alarm state, the page, and who is escalated to.

Measured, not assumed: the moment an alarm went to ALARM comes from its
DescribeAlarmHistory `StateUpdate` item; the moment the pager was reached is the
`SentTimestamp` of the alarm notification in an SQS queue subscribed to the alarm's SNS
actions. `PagerWatch` makes that queue for the drill (and removes it afterwards), so the
same code measures the twin and an account without touching the team's own pager.

The escalation levels are the runbook appendix's:

    L1 On-call engineer    first response (the page)
    L2 Team lead           > 30 min, or a P1 component
    L3 Platform architect  data loss risk
    L4 Executive           user-facing outage > 1 hour
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from drills.clients import Clients
from drills.errors import ConfigError
from drills.procedures.topic_queue import TopicQueue

Progress = Callable[[str], None]


def parse_utc(text: str) -> datetime:
    """A timestamp of ours ('...Z') or AWS's as an aware datetime."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class AlarmChange:
    """One state change of an alarm, from its history."""

    alarm: str
    old: str
    new: str
    at: datetime
    reason: str


def describe_alarm(clients: Clients, region: str, alarm: str) -> dict[str, Any]:
    """The alarm as DescribeAlarms shows it; ConfigError when it does not exist."""
    found = clients("cloudwatch", region).describe_alarms(AlarmNames=[alarm])["MetricAlarms"]
    if not found:
        raise ConfigError(f"CloudWatch alarm {alarm!r} does not exist in {region}; create it "
                          "(runbook 3.2/3.3 name it) before testing its escalation path")
    return dict(found[0])


def state_changes(clients: Clients, region: str, alarm: str,
                  since: datetime) -> list[AlarmChange]:
    """The alarm's StateUpdate history items since `since`, oldest first."""
    items = clients("cloudwatch", region).describe_alarm_history(
        AlarmName=alarm, HistoryItemType="StateUpdate", StartDate=since,
        ScanBy="TimestampAscending", MaxRecords=100)["AlarmHistoryItems"]
    out = []
    for item in items:
        data = json.loads(item["HistoryData"])
        out.append(AlarmChange(alarm, data["oldState"]["stateValue"],
                               data["newState"]["stateValue"], item["Timestamp"],
                               data["newState"].get("stateReason", "")))
    return out


def wait_for_state(clients: Clients, region: str, alarm: str, state: str, timeout: float,
                   progress: Progress, poll: float = 0.25) -> str:
    """Block until the alarm is in `state` (whenever it got there); returns its StateValue."""
    deadline = time.monotonic() + timeout
    while True:
        current = describe_alarm(clients, region, alarm)["StateValue"]
        if current == state or time.monotonic() >= deadline:
            return str(current)
        progress(f"waiting for {alarm} to be {state} (it is {current})")
        time.sleep(poll)


def wait_for_change(clients: Clients, region: str, alarm: str, state: str, since: datetime,
                    timeout: float, progress: Progress, poll: float = 0.25) -> AlarmChange | None:
    """The first change of the alarm to `state` after `since`, waiting up to `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        changes = [c for c in state_changes(clients, region, alarm, since) if c.new == state]
        if changes:
            return changes[0]
        if time.monotonic() >= deadline:
            return None
        current = describe_alarm(clients, region, alarm)["StateValue"]
        progress(f"waiting for {alarm} to go to {state} (it is {current})")
        time.sleep(poll)


@dataclass(frozen=True, slots=True)
class Page:
    """An alarm notification delivered to the pager."""

    alarm: str
    state: str
    delivered: datetime  # SQS SentTimestamp: when SNS put it into the pager's queue
    subject: str
    reason: str


class PagerWatch:
    """An SQS queue of the drill's own, subscribed to the SNS topics an alarm notifies."""

    def __init__(self, clients: Clients, region: str, topics: list[str]) -> None:
        if not topics:
            raise ConfigError("the alarm has no SNS AlarmActions: nobody would be paged; add "
                              "the on-call topic to its AlarmActions")
        self.topics = topics
        self.queue = TopicQueue(clients, region, topics, "drills-pager-watch")
        self.pages: list[Page] = []

    def open(self) -> PagerWatch:
        """Create the queue, allow the topics to send to it, subscribe it."""
        self.queue.open()
        return self

    def _receive(self) -> None:
        for delivery in self.queue.receive():
            try:
                body = json.loads(delivery.message)
            except ValueError:
                continue  # not an alarm notification (e.g. a test publish)
            if not isinstance(body, dict):
                continue
            self.pages.append(Page(body.get("AlarmName", ""), body.get("NewStateValue", ""),
                                   delivery.delivered, delivery.envelope.get("Subject", ""),
                                   body.get("NewStateReason", "")))

    def wait_for_page(self, alarm: str, state: str, since: datetime, timeout: float,
                      progress: Progress) -> Page | None:
        """The first notification of `alarm` entering `state` delivered after `since`."""
        deadline = time.monotonic() + timeout
        while True:
            found = [p for p in self.pages if p.alarm == alarm and p.state == state
                     and p.delivered >= since]
            if found:
                return found[0]
            if time.monotonic() >= deadline:
                return None
            progress(f"waiting for the pager to receive {state} for {alarm}")
            self._receive()  # long-polls up to 1 s

    def close(self) -> None:
        """Unsubscribe and delete the queue (idempotent)."""
        self.queue.close()


# ------------------------------------------------------------------ escalation


class Level(StrEnum):
    """Escalation levels of the runbook appendix."""

    L1 = "L1"
    L2 = "L2"
    L3 = "L3"
    L4 = "L4"


CONTACTS = {Level.L1: "On-call engineer", Level.L2: "Team lead",
            Level.L3: "Platform architect", Level.L4: "Executive"}
#: The appendix's "When" column.
WHEN = {Level.L1: "First response", Level.L2: "> 30 min or P1", Level.L3: "Data loss risk",
        Level.L4: "User-facing outage > 1 hour"}
L2_AFTER = 30 * 60.0  # "> 30 min"
L4_AFTER = 60 * 60.0  # "User-facing outage > 1 hour"


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """One level engaged: who, why, and when (seconds after the fault)."""

    level: str
    contact: str
    reason: str
    after: float | None


@dataclass(frozen=True, slots=True)
class Escalation:
    """The appendix's escalation path applied to one measured outage."""

    component: str
    priority: str
    paged_after: float | None
    outage: float | None
    data_loss: bool
    user_facing: bool
    steps: tuple[EscalationStep, ...]

    @property
    def highest(self) -> str | None:
        """The highest level engaged."""
        return self.steps[-1].level if self.steps else None

    def lines(self) -> list[str]:
        """One line per level, for the drill's output."""
        return [f"escalation {s.level} ({s.contact}) at "
                f"{'n/a' if s.after is None else f'{s.after:.1f}s'}: {s.reason}"
                for s in self.steps]


def escalate(component: str, priority: str, paged_after: float | None, outage: float | None,
             data_loss: bool, user_facing: bool) -> Escalation:
    """Which levels the appendix engages, and when, for this outage.

    L1 answers the page; without a page there is no escalation path at all (the empty
    result says so). L2 joins at once for a P1 component, else once the outage passes
    30 minutes; L3 when acknowledged data was lost or could not be verified; L4 when a
    user-facing outage passes one hour.
    """
    if paged_after is None:
        return Escalation(component, priority, None, outage, data_loss, user_facing, ())
    steps = [EscalationStep("L1", CONTACTS[Level.L1], "first response to the page",
                            paged_after)]
    if priority == "P1":
        steps.append(EscalationStep("L2", CONTACTS[Level.L2],
                                    f"{component} is a P1 component", paged_after))
    elif outage is not None and outage > L2_AFTER:
        steps.append(EscalationStep("L2", CONTACTS[Level.L2], "outage longer than 30 min",
                                    max(L2_AFTER, paged_after)))
    if data_loss:
        steps.append(EscalationStep("L3", CONTACTS[Level.L3], "data loss risk: acknowledged "
                                    "writes lost or unverifiable", paged_after))
    if user_facing and outage is not None and outage > L4_AFTER:
        steps.append(EscalationStep("L4", CONTACTS[Level.L4],
                                    "user-facing outage longer than 1 hour",
                                    max(L4_AFTER, paged_after)))
    return Escalation(component, priority, paged_after, outage, data_loss, user_facing,
                      tuple(steps))
