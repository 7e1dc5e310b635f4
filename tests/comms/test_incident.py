"""One incident's notifications through a real SNS topic (moto server): sent in order,
read back, timed from the declaration, intervals judged against the promised cadence."""

from __future__ import annotations

import pytest

from drills.clients import Clients
from drills.comms.channels import SnsChannel
from drills.comms.incident import Communications
from drills.errors import CommsError, ConfigError
from drills.evidence.fmt import parse_utc
from drills.evidence.model import NotificationRecord

REGION = "us-east-1"


def _declare(clients: Clients, name: str, promised: float | None, impact: str = "measured",
             seen: list[NotificationRecord] | None = None) -> Communications:
    topic = clients("sns").create_topic(Name=name)["TopicArn"]
    channel = SnsChannel(clients, REGION, topic)
    channel.open()
    return Communications.declare(
        channel, started_utc="2026-12-02T08:00:00.000Z", impact=impact, eta_seconds=900,
        eta_basis="the Vault Service RTO objective", promised=promised,
        notify=(seen if seen is not None else []).append)


def _play(comms: Communications, every: float, updates: int, rto: float) -> None:
    """Initial, `updates` updates `every` seconds apart, resolution, arrival confirmed."""
    try:
        comms.send_initial()
        comms.start_updates(every, lambda: "2 of 20 vault operations failed")
        comms.wait_for_updates(updates, timeout=10.0)
        comms.resolve(rto, "measured: service of Vault Service")
        assert comms.confirm(timeout=10.0) == []
    finally:
        comms.close()


def test_an_incident_from_declaration_to_resolution(clients: Clients) -> None:
    """Initial, two updates at 0.3 s, resolution: four notifications in sequence, each read
    back as sent; the figures come from the arrival times; observers heard of each."""
    seen: list[NotificationRecord] = []
    comms = _declare(clients, "drills-test-incident", promised=30.0, seen=seen)
    _play(comms, 0.3, 2, 12.5)
    record = comms.record
    kinds = [(n.kind, n.sequence) for n in record.notifications]
    assert kinds[0] == ("initial", 1)
    assert kinds[-1] == ("resolution", len(kinds))
    assert [k for k, _ in kinds[1:-1]] == ["update"] * (len(kinds) - 2)
    assert len(kinds) >= 4
    assert [n.sequence for n in seen] == [n.sequence for n in record.notifications]
    for n in record.notifications:
        assert n.received_text == n.text
        assert n.delivered_utc
        assert n.message_id
        assert n.delivered_after == pytest.approx(
            (parse_utc(n.delivered_utc) - parse_utc(record.declared_utc)).total_seconds(),
            abs=0.002)
    assert record.first_notification == record.notifications[0].delivered_after
    assert len(record.intervals) == len(kinds) - 1
    assert record.longest_interval == max(record.intervals)
    assert record.cadence_met is True
    assert record.update_every == 0.3
    assert record.promised_cadence == 30.0
    assert "Actual RTO: 12.50 s" in record.notifications[-1].text
    assert record.eta_utc == "2026-12-02T08:15:00.000Z"


def test_a_promise_shorter_than_the_updates_is_not_met(clients: Clients) -> None:
    """Updates every 0.5 s against a promise of 0.1 s: the cadence is not met."""
    comms = _declare(clients, "drills-test-cadence", promised=0.1)
    _play(comms, 0.5, 1, 1.0)
    assert comms.record.longest_interval is not None
    assert comms.record.longest_interval > 0.1
    assert comms.record.cadence_met is False


def test_a_secret_in_the_impact_is_refused_and_nothing_is_published(
        clients: Clients) -> None:
    """The initial notification would carry a password: ConfigError, no notification
    recorded, nothing arrives on the topic."""
    comms = _declare(clients, "drills-test-secret", promised=None,
                     impact="nats://parent:pa55-W0rd_x@10.0.0.1:4222 down")
    try:
        with pytest.raises(ConfigError, match="looks like a secret"):
            comms.send_initial()
        assert comms.record.notifications == []
        assert comms.channel.queue.receive(wait=1) == []  # type: ignore[attr-defined]
    finally:
        comms.close()


def test_waiting_for_updates_that_are_not_sent_fails_with_a_deadline(
        clients: Clients) -> None:
    """Without an update step, waiting for updates is a CommsError saying what is missing."""
    comms = _declare(clients, "drills-test-noupdates", promised=None)
    try:
        with pytest.raises(CommsError, match="0 of 1 updates went out"):
            comms.wait_for_updates(1, timeout=0.5)
    finally:
        comms.close()
