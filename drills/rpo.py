"""RPO, measured: a canary writer makes acknowledged writes; a verifier reads every one back.

Each canary write enrolls a fresh vault with known content (sequence number + random bytes)
through the real service path; the worker replies only once S3 and DynamoDB hold it, so an
acknowledged write is a promise. After recovery, every acknowledged write is read back
through the service and its hash compared. Writes that were never acknowledged (timeouts,
errors) are reported on their own and never counted as loss: the service made no promise.
"""

from __future__ import annotations

import asyncio
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
    """One canary write and whether the service acknowledged it."""

    seq: int
    vault_id: str
    sha256: str
    sent: float  # monotonic
    done: float  # monotonic
    sent_utc: str
    acked: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class LostWrite:
    """An acknowledged write that could not be read back intact."""

    write: CanaryWrite
    reason: str  # "missing" or "corrupted"
    detail: str


@dataclass(frozen=True, slots=True)
class RpoResult:
    """Data loss measured over one drill."""

    acknowledged: int
    unacknowledged: int
    lost: tuple[LostWrite, ...]
    loss_window: float  # seconds between the oldest and newest lost write (0 if none)
    unverified: int  # acknowledged writes the verifier could not read (service down)

    @property
    def lost_count(self) -> int:
        return len(self.lost)


class CanaryWriter(Ticker):
    """Writes at `rate` per second on `loop` until stopped."""

    def __init__(self, loop: LoopThread, client: VaultClient, rate: float = 10.0,
                 timeout: float = 2.0, prefix: str = "canary") -> None:
        super().__init__(loop, 1.0 / rate, timeout + 5)
        self.client, self.rate, self.timeout = client, rate, timeout
        self.prefix = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self._writes: list[CanaryWrite] = []
        self._lock = threading.Lock()

    def writes(self) -> list[CanaryWrite]:
        with self._lock:
            return list(self._writes)

    async def tick(self, seq: int) -> None:
        """One canary write: enroll a fresh vault with known content."""
        vault_id = f"{self.prefix}-{seq:06d}"
        data = f"{seq}:".encode() + os.urandom(48)
        sent_utc = utc_now()
        sent = time.monotonic()
        try:
            await self.client.enroll(vault_id, data, timeout=self.timeout)
            acked, detail = True, ""
        except VaultUnavailable as exc:
            acked, detail = False, str(exc)
        write = CanaryWrite(seq, vault_id, digest(data), sent, time.monotonic(), sent_utc,
                            acked, detail)
        with self._lock:
            self._writes.append(write)


def verify(loop: LoopThread, client: VaultClient, writes: list[CanaryWrite],
           timeout: float = 5.0, attempts: int = 3) -> RpoResult:
    """Read every acknowledged write back; classify what is missing or corrupted."""
    acked = [w for w in writes if w.acked]

    async def check(write: CanaryWrite) -> tuple[str, str]:
        last = ""
        for _ in range(attempts):
            try:
                data = await client.get(write.vault_id, timeout=timeout)
            except VaultUnavailable as exc:
                last = str(exc)
                if exc.kind == "error":  # the service answered: the data is not there
                    return "missing", last
                continue  # no answer: try again, the service may be busy
            return ("ok", "") if digest(data) == write.sha256 else (
                "corrupted", "content hash differs from the acknowledged write")
        return "unverified", last

    async def check_all() -> list[tuple[str, str]]:
        limit = asyncio.Semaphore(8)

        async def bounded(write: CanaryWrite) -> tuple[str, str]:
            async with limit:
                return await check(write)

        return list(await asyncio.gather(*(bounded(w) for w in acked)))

    outcomes = loop.run(check_all(), timeout=timeout * attempts * max(1, len(acked)) + 10)
    lost = tuple(LostWrite(w, kind, detail) for w, (kind, detail) in zip(acked, outcomes,
                                                                          strict=True)
                 if kind in ("missing", "corrupted"))
    window = (max(x.write.done for x in lost) - min(x.write.done for x in lost)) if lost else 0.0
    return RpoResult(len(acked), len(writes) - len(acked), lost, window,
                     sum(kind == "unverified" for kind, _ in outcomes))
