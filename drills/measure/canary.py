"""The canary writer: acknowledged vault writes with known content, the ground truth of RPO.

Each tick either enrolls a fresh vault with known content (sequence number + random bytes)
or updates one the canary enrolled before, through the real service path; the worker
replies only once S3 and DynamoDB hold the write, so an acknowledged write is a promise.
Updates matter: a restore that rolls a vault back to an older version loses them, and only
a canary that updates can see that.

Writes to one vault never overlap: a vault is updated only once its last write has been
acknowledged, and a vault whose write went unanswered (it may still land later) is never
written again, so its expected content stays known.

A drill that needs one vault to itself (to damage it, then write it on cue) `take`s it out
of the round-robin and writes it with `update`; those writes are recorded with the rest.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass

from drills.errors import ProbeError
from drills.hygiene import drill_vault_prefix
from drills.journal import utc_now
from drills.loop import LoopThread, Ticker
from drills.vault import VaultApi, VaultUnavailable, digest


@dataclass(frozen=True, slots=True)
class CanaryWrite:
    """One canary write (an enrolment or an update of one vault) and whether it was
    acknowledged. `seq` numbers the canary's writes in the order they were chosen;
    `version` counts the writes to its vault: 1 is the enrolment."""

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


#: The canary's vaults: `drills-canary-<6 hex>-<seq>` (`drills.hygiene` deletes them).
CANARY_PREFIX = drill_vault_prefix("canary")


class CanaryWriter(Ticker):
    """Writes at `rate` per second on `loop` until stopped; `update_every`-th ticks update an
    existing canary vault instead of enrolling a new one (0: enrol only)."""

    def __init__(self, loop: LoopThread, client: VaultApi, rate: float = 10.0,
                 timeout: float = 2.0, prefix: str = CANARY_PREFIX, update_every: int = 2) -> None:
        super().__init__(loop, 1.0 / rate, timeout + 5)
        self.client, self.rate, self.timeout = client, rate, timeout
        self.update_every = update_every
        self.prefix = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self._writes: list[CanaryWrite] = []
        self._inflight: dict[int, CanaryWrite] = {}  # sent, not answered yet
        self._seqs = itertools.count()
        self._versions: dict[str, int] = {}  # vault -> writes sent to it
        # Vaults whose every write was acknowledged, longest idle first: updates take the
        # first, so every canary vault is updated in turn (round-robin), old ones included.
        self._ready: deque[str] = deque()
        self._taken: set[str] = set()  # vaults written only through `update`
        self._retired: set[str] = set()  # vaults whose last write went unanswered
        self._lock = threading.Lock()

    def writes(self) -> list[CanaryWrite]:
        """Every write made so far, in completion order; those still unanswered last, as
        unacknowledged."""
        with self._lock:
            return [*self._writes, *self._inflight.values()]

    @property
    def method(self) -> str:
        """How the canary writes, for the evidence."""
        mix = (f", one in {self.update_every} an update of an earlier canary vault"
               if self.update_every else "")
        return f"{self.rate:g} acknowledged vault writes per second through the service{mix}"

    def take(self, vault_id: str | None = None, timeout: float = 10.0) -> str:
        """Take a canary vault (`vault_id`, else any idle one) out of the round-robin once its
        last write is acknowledged: the canary writes it again only through `update`."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if vault_id is not None and vault_id not in self._versions:
                    raise ProbeError(f"{vault_id} is not a vault of canary {self.prefix}")
                if vault_id in self._retired or vault_id in self._taken:
                    raise ProbeError(f"canary vault {vault_id} cannot be taken: it is taken "
                                     "already, or its last write went unanswered")
                chosen = vault_id if vault_id in self._ready else (
                    self._ready[0] if vault_id is None and self._ready else None)
                if chosen is not None:
                    self._ready.remove(chosen)
                    self._taken.add(chosen)
                    return chosen
            if time.monotonic() > deadline:
                raise ProbeError(f"no idle canary vault to take within {timeout:g}s "
                                 f"({vault_id or 'any'}); is the vault service answering?")
            time.sleep(0.02)

    def update(self, vault_id: str) -> CanaryWrite:
        """One update of a vault taken with `take`, made and recorded like any canary write;
        blocks until it is answered (or times out, which retires the vault)."""
        with self._lock:
            if vault_id not in self._taken or vault_id in self._retired:
                raise ProbeError(f"canary vault {vault_id} was not taken with take(), or its "
                                 "last write went unanswered: its content is not known")
            seq = next(self._seqs)
            version = self._versions[vault_id] = self._versions[vault_id] + 1
        return self.loop.run(self._write(seq, vault_id, version), timeout=self.timeout + 5)

    def _choose(self, tick: int) -> tuple[int, str, int]:
        """(seq, vault, version) of tick `tick`: an update when one is due and a vault is idle,
        else an enrolment."""
        with self._lock:
            seq = next(self._seqs)
            if self.update_every and tick % self.update_every == self.update_every - 1 \
                    and self._ready:
                vault_id = self._ready.popleft()
            else:
                vault_id = f"{self.prefix}-{seq:06d}"
            version = self._versions.get(vault_id, 0) + 1
            self._versions[vault_id] = version
            return seq, vault_id, version

    async def tick(self, seq: int) -> None:
        """One canary write: enroll a fresh vault or update an idle one, with known content."""
        await self._write(*self._choose(seq))

    async def _write(self, seq: int, vault_id: str, version: int) -> CanaryWrite:
        data = f"{seq}:{version}:".encode() + os.urandom(48)
        sent_utc = utc_now()
        sent = time.monotonic()
        # Known before it is sent: a write cut short (the canary stopped, the run was
        # interrupted) may still land, and its content must not then look like corruption.
        with self._lock:
            self._inflight[seq] = CanaryWrite(seq, vault_id, version, digest(data), sent, sent,
                                              sent_utc, False, "no answer before the canary "
                                              "stopped", sent_utc)
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
            self._inflight.pop(seq, None)
            self._writes.append(write)
            if not acked:
                self._retired.add(vault_id)  # it may still land: never written again
            elif vault_id not in self._taken:
                self._ready.append(vault_id)
        return write
