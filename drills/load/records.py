"""What the load users did, read back from the file locust's request listener writes.

`drills/load/locustfile.py` (which cannot import this module: it runs under gevent) writes
one JSON object per line; this module reads it incrementally while the run goes on and turns
each line into a typed record on the harness's CLOCK_MONOTONIC. A record from another machine
(a remote worker: another boot id, another monotonic clock) is placed by its wall time.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def boot_id() -> str:
    """This machine's boot id: records that carry it share our monotonic clock."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        import socket

        return f"host:{socket.gethostname()}"


@dataclass(frozen=True, slots=True)
class Request:
    """One request of a load user: when it completed (monotonic), how long it took, how it
    ended ("ok", or busy, timeout, no-responders, error, corrupted, ...)."""

    at: float
    wall: float
    latency: float
    name: str
    outcome: str
    node: str
    detail: str = ""  # what the failure said (HTTP status and message, or the error)

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


@dataclass(frozen=True, slots=True)
class Write:
    """One write of a load user (an enrolment or an update of its vault) and whether the
    service acknowledged it; `at` is when its answer (or failure) came, monotonic."""

    at: float
    wall: float
    vault: str
    sha256: str
    op: str
    acked: bool


@dataclass(slots=True)
class Records:
    """Everything read so far."""

    requests: list[Request]
    writes: list[Write]  # as they ended (acknowledged or not)
    sends: list[Write] = field(default_factory=list)  # as they were sent (acked False)
    ready_at: float | None = None  # when every user had been spawned
    last_at: float = -math.inf  # the latest record of any kind


class RequestLog:
    """Reads the records file as it grows (a torn last line waits for the next read)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records = Records([], [])
        self._offset = 0
        self._partial = b""
        self._boot = boot_id()

    def read(self) -> Records:
        """Read what was appended since the last call; everything read so far."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return self.records
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        offset = time.monotonic() - time.time()  # wall -> our monotonic, for other machines
        for line in lines:
            if line.strip():
                self._add(line, offset)
        return self.records

    def _add(self, line: bytes, offset: float) -> None:
        try:
            raw: dict[str, Any] = json.loads(line)
            wall = float(raw["wall"])
            at = float(raw["mono"]) if raw.get("boot") == self._boot else wall + offset
            kind = raw["kind"]
            if kind == "request":
                self.records.requests.append(Request(
                    at, wall, float(raw["latency"]), str(raw["name"]), str(raw["outcome"]),
                    str(raw.get("node", "")), str(raw.get("detail", ""))))
            elif kind == "write":
                self.records.writes.append(Write(
                    at, wall, str(raw["vault"]), str(raw["sha256"]), str(raw["op"]),
                    bool(raw["acked"])))
            elif kind == "send":
                self.records.sends.append(Write(
                    at, wall, str(raw["vault"]), str(raw["sha256"]), str(raw["op"]), False))
            elif kind == "ready" and self.records.ready_at is None:
                self.records.ready_at = at
        except (ValueError, KeyError, TypeError):
            return  # not a record of ours (a torn or foreign line): nothing to count
        self.records.last_at = max(self.records.last_at, at)
