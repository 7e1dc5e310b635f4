"""The JetStream canary on a real 3-node cluster: acknowledged publishes read back by id and
hash, a lost acknowledged message found, unacknowledged ones never counted as loss."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import nats
import pytest

from drills.errors import ProbeError
from drills.loop import LoopThread
from drills.measure import Outcome
from drills.measure.jetstream import JetStreamCanary
from drills.twin.nats import NatsCluster


async def _quiet(_: Exception) -> None:
    """nats-py prints every lost connection; some tests stop servers on purpose."""


@pytest.fixture
def conn(cluster: NatsCluster) -> Iterator[tuple[LoopThread, Any]]:
    loop = LoopThread("test-jetstream")
    nc = loop.run(nats.connect(cluster.spec.urls, user="u", password="p", error_cb=_quiet,
                               reconnect_time_wait=0.2, max_reconnect_attempts=-1), timeout=10)
    yield loop, nc
    loop.run(nc.close(), timeout=10)
    loop.close()


def _canary(conn: tuple[LoopThread, Any], **kwargs: Any) -> JetStreamCanary:
    loop, nc = conn
    canary = JetStreamCanary(loop, nc, rate=50, stream=f"T_{uuid.uuid4().hex[:6]}", **kwargs)
    canary.create_stream()
    return canary


def test_every_acknowledged_publish_is_read_back(conn: tuple[LoopThread, Any]) -> None:
    """With a healthy cluster every publish is acknowledged, found by its Nats-Msg-Id with
    the same hash, and the stream is deleted afterwards. `create_stream` returns only once
    the stream has a leader, every replica is current and a publish from this connection is
    answered (without storing it), so not even the first publish meets "no response from
    stream". The ack timeout is generous: on a loaded machine a
    healthy cluster can take longer than the canary's default second to answer, and an
    unanswered publish is (rightly) unacknowledged, which is not what this test is about."""
    loop, nc = conn
    canary = _canary(conn, timeout=10.0)
    info = loop.run(nc.jetstream().stream_info(canary.stream), timeout=10)
    assert info.state.messages == 0  # the readiness probe stored nothing
    cluster = info.cluster
    assert cluster.leader
    assert len(cluster.replicas) == 2
    assert all(r.current for r in cluster.replicas)
    canary.start()
    assert canary.wait(lambda ps: sum(p.acked for p in ps) >= 20, 20)
    canary.stop()
    result = canary.verify()
    assert result.acknowledged == len(canary.publishes()) >= 20
    assert (result.lost, result.unacknowledged, result.unverified) == ((), 0, 0)
    assert all(r.outcome is Outcome.OK for r in canary.results())
    canary.delete_stream()


def test_a_lost_acknowledged_message_is_reported_with_its_window(
        conn: tuple[LoopThread, Any]) -> None:
    """An acknowledged message that is gone from the stream counts as lost ("missing");
    two lost ones give a window equal to the time between their acknowledgements."""
    loop, nc = conn
    canary = _canary(conn)
    canary.start()
    assert canary.wait(lambda ps: sum(p.acked for p in ps) >= 10, 20)
    canary.stop()
    acked = sorted((p for p in canary.publishes() if p.acked), key=lambda p: p.stream_seq)
    first, last = acked[2], acked[7]
    for victim in (first, last):
        loop.run(nc.jetstream().delete_msg(canary.stream, victim.stream_seq), timeout=10)
    result = canary.verify()
    assert sorted(x.item for x in result.lost) == sorted([first.msg_id, last.msg_id])
    assert {x.reason for x in result.lost} == {"missing"}
    # The window runs between the acknowledgements' UTC times (millisecond stamps).
    assert result.loss_window == pytest.approx(abs(last.done - first.done), abs=0.003)
    canary.delete_stream()


def test_publishes_without_quorum_are_unacknowledged_not_lost(
        cluster: NatsCluster, conn: tuple[LoopThread, Any]) -> None:
    """With 2 of 3 nodes down an R3 stream acknowledges nothing; those publishes are
    reported as unacknowledged (and as failed results), never as loss."""
    canary = _canary(conn, timeout=0.5)
    canary.start()
    assert canary.wait(lambda ps: sum(p.acked for p in ps) >= 5, 20)
    down = [n.name for n in cluster.spec.nodes[1:]]
    try:
        for name in down:
            cluster.kill_node(name)
        assert canary.wait(lambda ps: sum(not p.acked for p in ps) >= 5, 20)
    finally:
        for name in down:
            cluster.start_node(name)
    cluster.wait_formed(timeout=60)
    assert canary.wait(lambda ps: ps[-1].acked, 30)
    canary.stop()
    result = canary.verify()
    assert result.unacknowledged >= 5
    assert result.lost == ()
    assert any(r.outcome is not Outcome.OK for r in canary.results())
    canary.delete_stream()


def test_a_stream_that_cannot_be_replicated_is_a_probe_error(
        conn: tuple[LoopThread, Any]) -> None:
    """Asking for more replicas than the cluster has nodes fails clearly at creation."""
    loop, nc = conn
    canary = JetStreamCanary(loop, nc, stream=f"T_{uuid.uuid4().hex[:6]}", replicas=5)
    with pytest.raises(ProbeError, match="5 replicas"):
        canary.create_stream()


def test_the_stream_is_made_afresh(conn: tuple[LoopThread, Any]) -> None:
    """A stream of the same name left by an earlier drill is replaced, not appended to."""
    first = _canary(conn)
    first.start()
    assert first.wait(lambda ps: sum(p.acked for p in ps) >= 3, 20)
    first.stop()
    again = JetStreamCanary(conn[0], conn[1], stream=first.stream)
    again.create_stream()
    assert again.verify().acknowledged == 0
    assert conn[0].run(conn[1].jetstream().stream_info(first.stream),
                       timeout=10).state.messages == 0
    again.delete_stream()
