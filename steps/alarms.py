"""Steps for runbook 7.1 "Test alarm escalation path": alarm, page, escalation levels."""

from __future__ import annotations

import time
from collections.abc import Iterator

from pytest_bdd import given, parsers, then

from drills.drill import Drill
from drills.errors import NotSteady, ObjectiveBreached
from drills.evidence.fmt import secs
from drills.evidence.model import EscalationRecord
from drills.procedures import alarms

#: How long an alarm may take to settle before a drill, in alarm periods (it needs
#: EvaluationPeriods of data after the metrics start, plus CloudWatch's evaluation delay).
SETTLE_PERIODS = 6
#: Alarm history and SQS timestamps have millisecond resolution, and the fault's UTC start
#: is read to the millisecond too: the figures are good to about 2 ms.
ALARM_CLOCK = 0.002


def _quiet(drill: Drill) -> alarms.Progress:
    """Progress lines every 5 s: an alarm takes whole periods to change."""
    return lambda message: drill.progress(message, every=5.0)


def _period(drill: Drill, alarm: str) -> float:
    return float(alarms.describe_alarm(drill.target.clients, drill.target.region,
                                       alarm)["Period"])


@given(parsers.parse('the "{alarm}" alarm is OK'), target_fixture="pager")
def alarm_is_ok(drill: Drill, alarm: str) -> Iterator[alarms.PagerWatch]:
    """The alarm exists and is OK; a queue of the drill's own watches its SNS actions.

    On the twin the runbook's alarms, topic and pager queue are provisioned first
    (idempotent); on an account they must exist.
    """
    alarm = drill.target.names.named(alarm)  # as configured
    target = drill.target
    target.prepare_alarms()
    period = _period(drill, alarm)
    state = alarms.wait_for_state(target.clients, target.region, alarm, "OK",
                                  SETTLE_PERIODS * period, _quiet(drill))
    if state != "OK":
        raise NotSteady(f"{alarm} is {state}, not OK, after {SETTLE_PERIODS * period:g}s "
                        "before the fault: the monitored system is not healthy or its metric "
                        "is missing")
    topics = [a for a in alarms.describe_alarm(target.clients, target.region,
                                               alarm)["AlarmActions"] if ":sns:" in a]
    watch = alarms.PagerWatch(target.clients, target.region, topics).open()
    yield watch
    watch.close()


@then(parsers.parse('the "{alarm}" alarm goes to ALARM within the "{component}" objective'))
def alarm_fires(drill: Drill, alarm: str, component: str) -> None:
    """Time-to-alarm: fault -> the alarm's StateUpdate to ALARM in its history."""
    alarm = drill.target.names.named(alarm)  # as configured
    fault, target = drill.last_fault, drill.target
    objective = drill.settings.objectives.for_component(component)
    since = alarms.parse_utc(fault.injected_utc)
    change = alarms.wait_for_change(
        target.clients, target.region, alarm, "ALARM", since,
        objective.remaining(fault.injected_at), _quiet(drill))
    figure = None if change is None else (change.at - since).total_seconds()
    drill.assert_met(drill.record_event(
        "time-to-alarm", component, figure, ALARM_CLOCK,
        f"fault's first action -> {alarm}'s StateUpdate to ALARM in DescribeAlarmHistory "
        f"(period {_period(drill, alarm):g} s); reason: {change.reason if change else 'n/a'}"))


@then(parsers.parse('the on-call engineer is paged for "{alarm}" within the "{component}" '
                    "objective"))
def paged(drill: Drill, alarm: str, component: str, pager: alarms.PagerWatch) -> None:
    """Time-to-page: fault -> the ALARM notification delivered to an SQS queue on its topic."""
    alarm = drill.target.names.named(alarm)  # as configured
    fault = drill.last_fault
    objective = drill.settings.objectives.for_component(component)
    page = pager.wait_for_page(alarm, "ALARM", alarms.parse_utc(fault.injected_utc),
                               objective.remaining(fault.injected_at),
                               _quiet(drill))
    figure = None if page is None else (
        page.delivered - alarms.parse_utc(fault.injected_utc)).total_seconds()
    if page is not None:
        drill.progress(f"paged: {page.subject!r}", every=0.0)
    drill.assert_met(drill.record_event(
        "time-to-page", component, figure, ALARM_CLOCK,
        "fault's first action -> SentTimestamp of the alarm's SNS notification in an SQS "
        f"queue subscribed to its AlarmActions topic(s) {', '.join(pager.topics)}"))


@then(parsers.parse('the "{alarm}" alarm returns to OK'))
def alarm_recovers(drill: Drill, alarm: str, pager: alarms.PagerWatch) -> None:
    """After recovery the alarm goes back to OK, and its OK notification reaches the pager."""
    alarm = drill.target.names.named(alarm)  # as configured
    target = drill.target
    since = alarms.parse_utc(drill.last_fault.injected_utc)
    timeout = SETTLE_PERIODS * _period(drill, alarm)
    started = time.monotonic()
    change = alarms.wait_for_change(target.clients, target.region, alarm, "OK", since,
                                    timeout, _quiet(drill))
    if change is None:
        raise ObjectiveBreached(f"{alarm} did not return to OK within {timeout:g}s of the "
                                "recovery; is the metric still breaching?")
    page = pager.wait_for_page(alarm, "OK", change.at, timeout, _quiet(drill))
    drill.progress(f"{alarm} back to OK {secs(time.monotonic() - started)} after the "
                   f"recovery; OK notification {'delivered' if page else 'NOT delivered'}",
                   every=0.0)
    if page is None:
        raise ObjectiveBreached(f"{alarm} returned to OK but its OK notification never "
                                "reached the pager")


@then(parsers.parse('escalation follows the runbook appendix for a "{component}" outage'))
def escalation(drill: Drill, component: str) -> alarms.Escalation:
    """Apply the appendix's L1-L4 levels to the measured page, outage and data loss."""
    objective = drill.settings.objectives.for_component(component)
    fault_id = drill.last_fault.fault_id
    mine = [m for m in drill.record.measurements if m.fault_id == fault_id]
    paged_after = next((m.rto for m in mine if m.name == "time-to-page"), None)
    outage = max((m.rto for m in mine if m.name in ("service", "capacity") and m.rto is not None),
                 default=None)
    data_loss = any(r.lost or r.unverified for r in drill.record.rpo)
    result = alarms.escalate(component, objective.priority, paged_after, outage, data_loss,
                             user_facing=objective.priority in ("P1", "P2"))
    record_escalation(drill, result)
    if not result.steps:
        raise ObjectiveBreached(f"nobody was paged for the {component} outage: the escalation "
                                "path never started (L1 needs a page)")
    return result


def record_escalation(drill: Drill, result: alarms.Escalation) -> None:
    """Put the escalation into the drill's evidence (and its output)."""
    for line in result.lines():
        drill.progress(line, every=0.0)
    drill.record.escalation.extend(
        EscalationRecord(step.level, step.contact, step.reason, step.after)
        for step in result.steps)
