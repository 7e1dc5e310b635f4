"""Every twin port comes from one range, below the ephemeral ports, free on every host and
protocol its component binds (the regions' APIs share one port on two addresses; the name
server takes UDP and TCP)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from drills.errors import TwinError
from drills.twin.ports import free_port, free_ports, port_range
from drills.twin.state import REGION_HOSTS

HOSTS = list(REGION_HOSTS.values())


def bind_everywhere(stack: ExitStack, port: int) -> None:
    """Bind `port` for TCP and UDP on both region addresses (OSError if one is taken)."""
    for host in HOSTS:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            stack.enter_context(socket.socket(socket.AF_INET, kind)).bind((host, port))


@pytest.fixture
def pair(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, int]]:
    """DRILLS_PORT_RANGE of two ports free on both region addresses, for TCP and UDP, above
    the ephemeral range (no twin and no client uses them)."""
    for low in range(61000, 65000, 2):
        try:
            with ExitStack() as stack:
                for port in (low, low + 1):
                    bind_everywhere(stack, port)
        except OSError:
            continue
        monkeypatch.setenv("DRILLS_PORT_RANGE", f"{low}-{low + 2}")
        yield low, low + 1
        return
    pytest.fail("no two free ports above 61000")


def test_the_default_range_ends_where_the_ephemeral_ports_begin(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRILLS_PORT_RANGE", raising=False)
    ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert port_range() == range(10000, max(ephemeral, 20000))
    assert all(10000 <= p < ephemeral for p in free_ports(20, hosts=HOSTS, udp=True))


def test_ports_are_distinct_and_free_on_every_host_and_protocol(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRILLS_PORT_RANGE", raising=False)
    ports = free_ports(10, avoid={10000}, hosts=HOSTS, udp=True)
    assert len(set(ports)) == 10
    assert 10000 not in ports
    with ExitStack() as stack:  # every one binds, on both addresses, TCP and UDP
        for port in ports:
            bind_everywhere(stack, port)


@pytest.mark.parametrize("kind", [socket.SOCK_STREAM, socket.SOCK_DGRAM])
def test_a_port_taken_on_one_host_is_never_picked(pair: tuple[int, int], kind: int) -> None:
    """Taken for TCP or UDP on the DR address only: the other port of the range is the
    answer every time, and asking for both says which range ran out."""
    taken, other = pair
    with socket.socket(socket.AF_INET, kind) as holder:
        holder.bind((HOSTS[1], taken))
        if kind == socket.SOCK_STREAM:
            holder.listen()
        assert {free_port(HOSTS, udp=True) for _ in range(10)} == {other}
        with pytest.raises(TwinError, match=rf"found only 1 of 2 free ports .* {taken}-"):
            free_ports(2, hosts=HOSTS, udp=True)
    assert set(free_ports(2, hosts=HOSTS, udp=True)) == {taken, other}


def test_udp_is_checked_only_when_asked(pair: tuple[int, int]) -> None:
    taken, _ = pair
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", taken))
        assert set(free_ports(2)) == set(pair)
        assert free_port(udp=True) != taken
