"""The canary writer: acknowledged vault writes with known content, the ground truth of RPO.

Each tick either enrolls a fresh vault with known content (sequence number + random bytes)
or updates one the canary enrolled before, through the real service path; the worker
replies only once S3 and DynamoDB hold the write, so an acknowledged write is a promise.
Updates matter: a restore that rolls a vault back to an older version loses them, and only
a canary that updates can see that.

Writes to one vault never overlap: a vault is updated only once its last write has been
acknowledged, and a vault whose write went unanswered (it may still land later) is never
written again, so its expected content stays known.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass

from drills.journal import utc_now
from drills.loop import LoopThread, Ticker
from drills.vault import VaultClient, VaultUnavailable, digest


@dataclass(frozen=True, slots=True)
class CanaryWrite:
    """One canary write (an enrolment or an update of one vault) and whether it was
    acknowledged. `version` counts the writes to its vault: 1 is the enrolment."""

    seq: int
    vault_id: str
    version: int
    sha256: str
    sent: float  # monotonic
    done: float  # monotonic
    sent_utc: str
    acked: bool
    detail: str = ""
    done_utc: str = ""

    @property
    def op(self) -> str:
        """'enroll' or 'update'."""
        return "enroll" if self.version == 1 else "update"


class CanaryWriter(Ticker):
    """Writes at `rate` per second on `loop` until stopped; `update_every`-th ticks update an
    existing canary vault instead of enrolling a new one (0: enrol only)."""

    def __init__(self, loop: LoopThread, client: VaultClient, rate: float = 10.0,
                 timeout: float = 2.0, prefix: str = "canary", update_every: int = 2) -> None:
        super().__init__(loop, 1.0 / rate, timeout + 5)
        self.client, self.rate, self.timeout = client, rate, timeout
        self.update_every = update_every
        self.prefix = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self._writes: list[CanaryWrite] = []
        self._versions: dict[str, int] = {}  # vault -> writes sent to it
        self._ready: list[str] = []  # vaults whose every write was acknowledged, idle
        self._next = 0  # round-robin position in _ready
        self._lock = threading.Lock()

    def writes(self) -> list[CanaryWrite]:
        """Every write made so far, in completion order."""
        with self._lock:
            return list(self._writes)

    @property
    def method(self) -> str:
        """How the canary writes, for the evidence."""
        mix = (f", every {self.update_every}th an update of an earlier canary vault"
               if self.update_every else "")
        return f"{self.rate:g} acknowledged vault writes per second through the service{mix}"

    def _choose(self, seq: int) -> tuple[str, int]:
        """The vault and version of tick `seq`: an update when it is due and a vault is idle."""
        with self._lock:
            if self.update_every and seq % self.update_every == self.update_every - 1 \
                    and self._ready:
                self._next %= len(self._ready)
                vault_id = self._ready.pop(self._next)
                self._next += 1
            else:
                vault_id = f"{self.prefix}-{seq:06d}"
            version = self._versions.get(vault_id, 0) + 1
            self._versions[vault_id] = version
            return vault_id, version

    async def tick(self, seq: int) -> None:
        """One canary write: enroll a fresh vault or update an idle one, with known content."""
        vault_id, version = self._choose(seq)
        data = f"{seq}:{version}:".encode() + os.urandom(48)
        sent_utc = utc_now()
        sent = time.monotonic()
        try:
            if version == 1:
                await self.client.enroll(vault_id, data, timeout=self.timeout)
            else:
                await self.client.put(vault_id, data, timeout=self.timeout)
            acked, detail = True, ""
        except VaultUnavailable as exc:
            acked, detail = False, str(exc)
        write = CanaryWrite(seq, vault_id, version, digest(data), sent, time.monotonic(),
                            sent_utc, acked, detail, utc_now())
        with self._lock:
            self._writes.append(write)
            if acked:
                self._ready.append(vault_id)  # an unanswered write retires its vault
