"""Steps of the communication procedures (runbook 7.3 item 4, appendix "Communication
Templates"): the incident declared with its initial notification, updates at a cadence until
recovery, the resolution with the actual RTO, and what arrived on the channel, when.

The channel is `[comms]`'s: on the twin an SNS topic of its own unless one is named, read back
through a queue of the drill's own; on an account the team's topic, or a Slack webhook.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from pytest_bdd import parsers, then, when

from drills.comms.channels import open_channel
from drills.comms.incident import Communications
from drills.comms.templates import APPENDIX
from drills.config import SERVICE_COMPONENT, duration
from drills.drill import Drill
from drills.errors import CommsError, ConfigError, ObjectiveBreached
from drills.evidence.fmt import secs
from drills.evidence.model import NotificationRecord

ARRIVAL_TIMEOUT = 30.0  # seconds a notification may take to arrive before it is missing
IMPACT_WINDOW = 10.0  # seconds of probes an impact statement sums up


def _impact(drill: Drill) -> str:
    """The impact as measured now: the probes' last seconds (or `[comms] impact`)."""
    if drill.settings.comms.impact:
        return drill.settings.comms.impact
    if drill.probes is None:
        return "not measured (no vault probes run in this drill)"
    since = time.monotonic() - IMPACT_WINDOW
    recent = [r for r in drill.probes.results() if r.done >= since]
    failed = sum(not r.ok for r in recent)
    return (f"{failed} of {len(recent)} vault operations failed in the last "
            f"{IMPACT_WINDOW:g} s (synthetic reads, as the apps make them)")


@when("the incident is declared and the initial notification is sent",
      target_fixture="comms")
def declare(drill: Drill) -> Iterator[Communications]:
    """Declare the incident (started at the drill's first fault, if any) and send the
    appendix's "Service Degraded" with the start, the impact measured by the probes and the
    ETA that the service's RTO objective gives; the channel is closed at teardown."""
    settings = drill.settings.comms
    objective = drill.settings.objectives.for_component(SERVICE_COMPONENT)
    own = drill.target.communications_topic() if settings.topic_arn is None and \
        settings.channel == "sns" else None
    channel = open_channel(settings, drill.target.clients, drill.target.region, own)
    first = drill.injector.active[0].injected_utc if drill.injector.active else None

    def notified(record: NotificationRecord) -> None:
        drill.observer.notified(drill.record, record)
        if drill.injector.active:
            drill.phase(f"notify-{record.kind}", f"{record.subject} sent")

    comms = Communications.declare(
        channel, started_utc=first, impact=_impact(drill), eta_seconds=objective.rto,
        eta_basis=f"the {SERVICE_COMPONENT} RTO objective, {secs(objective.rto)}",
        promised=settings.update_every, notify=notified)
    drill.record.comms = comms.record
    try:
        comms.send_initial()
        yield comms
    finally:
        comms.close()


@when(parsers.parse("an update is sent every {interval} until recovery"))
def updates(drill: Drill, comms: Communications, interval: str) -> None:
    """Send an update every `interval` (e.g. "30m", "5s") until the resolution; each states
    the impact measured then. The appendix has no update template and no cadence: that is
    recorded as a finding against it."""
    every = duration(interval, f"the update step's interval {interval!r}")
    comms.start_updates(every, lambda: _impact(drill))
    promised = drill.settings.comms.update_every
    drill.runbook_finding(
        APPENDIX, "no update template and no update cadence",
        "The appendix has a template for the first notification (Service Degraded) and the "
        "last (Service Restored) but none for updates in between, and does not say how often "
        "users hear from the team. The drill repeated the Service Degraded text under an "
        "update header every " + secs(every) + (
            f", against the cadence the team set in [comms] update_every ({secs(promised)})."
            if promised is not None else "; no cadence was promised ([comms] update_every is "
            "not set), so the intervals are measured but not judged.")
        + " Add an update template and the promised cadence to the appendix.", "low")


@when(parsers.parse("{count:d} updates have gone out"))
def updates_gone_out(comms: Communications, count: int) -> None:
    """Wait until `count` updates have been sent (as long as the cadence takes, plus a
    margin for the channel)."""
    every = comms.record.update_every
    if every is None:
        raise ConfigError("no updates are being sent; add 'When an update is sent every "
                          "INTERVAL until recovery' before this step")
    comms.wait_for_updates(count, every * count + ARRIVAL_TIMEOUT)


@when("the resolution notification is sent with the actual RTO")
def resolve(drill: Drill, comms: Communications) -> None:
    """Stop the updates and send the appendix's "Service Restored" with the actual RTO: the
    drill's last measured service RTO, else the last figure it measured, else the time from
    the declaration to now (said so in the message)."""
    measured = [m for m in drill.record.measurements if m.rto is not None]
    service = [m for m in measured if m.name == "service"]
    if service or measured:
        m = (service or measured)[-1]
        rto, basis = m.rto, f"measured: {m.name} of {m.component}, from the first fault"
    else:
        rto = time.monotonic() - comms.declared_at
        basis = "no RTO measured in this drill: time from the declaration to this notice"
    assert rto is not None
    comms.resolve(rto, basis)


@then("every notification arrived on the communication channel")
def arrived(comms: Communications) -> None:
    """Every notification sent so far arrives on the channel (read back from the topic, or
    answered by the webhook) within ARRIVAL_TIMEOUT, with the text that was sent."""
    problems = comms.confirm(ARRIVAL_TIMEOUT)
    if problems:
        raise CommsError(f"notifications on {comms.channel.description}: "
                         + "; ".join(problems))


@then(parsers.parse("the first notification went out within {limit} of the declaration"))
def first_within(comms: Communications, limit: str) -> None:
    """Declaration to the first notification's arrival on the channel, against `limit`."""
    seconds = duration(limit, f"the first-notification limit {limit!r}")
    comms.record.first_notification_limit = seconds
    if comms.record.first_notification is None:
        comms.confirm(ARRIVAL_TIMEOUT)
    first = comms.record.first_notification
    if first is None:
        raise CommsError(f"the initial notification did not arrive on "
                         f"{comms.channel.description} within {secs(ARRIVAL_TIMEOUT)}")
    if first > seconds:
        raise ObjectiveBreached(f"the first notification arrived {secs(first)} after the "
                                f"declaration, more than {secs(seconds)}")


@then("the updates kept the promised cadence")
def kept_cadence(drill: Drill, comms: Communications) -> None:
    """No interval between two notifications longer than `[comms] update_every`."""
    promised = drill.settings.comms.update_every
    if promised is None:
        raise ConfigError("no cadence is promised: set [comms] update_every in the objectives "
                          "file (the runbook's appendix states none)")
    comms.confirm(ARRIVAL_TIMEOUT)
    longest = comms.record.longest_interval
    if longest is None:
        raise CommsError("fewer than two notifications were sent: no interval to judge")
    if not comms.record.cadence_met:
        raise ObjectiveBreached(f"users waited {secs(longest)} between two notifications, "
                                f"longer than the promised {secs(promised)}")
