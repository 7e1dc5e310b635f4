"""Where every component of a twin listens: free loopback ports below the ephemeral range.

Outgoing connections (NATS routes, boto3 and HTTP clients, probes) take ephemeral ports. A
port picked from that range could be held by one of them when its component binds it, or
rebinds it after a restart (a NATS node killed and started again, an API restarted on the
port its URL and DNS name carry). So every twin port comes from `port_range()`:
`$DRILLS_PORT_RANGE` ("LOW-HIGH": several twins on one machine, each in its own slice, never
pick the same), else 10000 up to the ephemeral range.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Collection, Sequence
from pathlib import Path

from drills.errors import ConfigError, TwinError

__all__ = ["free_port", "free_ports", "port_range"]

_SAMPLE = 2000  # candidates tried before giving up


def port_range() -> range:
    """`$DRILLS_PORT_RANGE`, else 10000 up to the start of the ephemeral range."""
    spec = os.environ.get("DRILLS_PORT_RANGE")
    if spec:
        try:
            low, high = (int(x) for x in spec.split("-"))
        except ValueError:
            raise ConfigError(f"DRILLS_PORT_RANGE={spec!r} must be LOW-HIGH, e.g. "
                              "10000-15000") from None
        return range(low, high)
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(10000, max(low, 20000))


def free_ports(count: int, avoid: Collection[int] = (), hosts: Sequence[str] = ("127.0.0.1",),
               udp: bool = False) -> list[int]:
    """`count` distinct ports of `port_range()` free for TCP (and UDP, with `udp`) on every
    one of `hosts` now. Another process could still take one before its component binds
    it; the component's start then fails and says so."""
    ports = port_range()
    kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM) if udp else (socket.SOCK_STREAM,)
    held: list[socket.socket] = []
    found: list[int] = []
    try:
        for port in random.sample(ports, min(_SAMPLE, len(ports))):
            if port in avoid:
                continue
            bound = _bind_all(port, hosts, kinds)
            if bound is None:
                continue
            held += bound  # kept bound until all are found: no port is handed out twice
            found.append(port)
            if len(found) == count:
                return found
        raise TwinError(f"found only {len(found)} of {count} free ports on "
                        f"{', '.join(hosts)} in {ports.start}-{ports.stop} "
                        "($DRILLS_PORT_RANGE): stop other twins or widen the range")
    finally:
        for sock in held:
            sock.close()


def free_port(hosts: Sequence[str] = ("127.0.0.1",), udp: bool = False) -> int:
    """One port of `port_range()` free on every one of `hosts` (see `free_ports`)."""
    return free_ports(1, hosts=hosts, udp=udp)[0]


def _bind_all(port: int, hosts: Sequence[str], kinds: Sequence[int]
              ) -> list[socket.socket] | None:
    """Sockets bound to `port` on every host for every kind, or None if one is taken."""
    bound: list[socket.socket] = []
    for host in hosts:
        for kind in kinds:
            sock = socket.socket(socket.AF_INET, kind)
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                for other in bound:
                    other.close()
                return None
            bound.append(sock)
    return bound
