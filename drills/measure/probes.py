"""Synthetic vault transactions on a fixed schedule, each outcome timestamped.

Probes are sent every `interval` whether or not earlier ones have answered (a slow service
must not slow the sampling), each with its own timeout, through the full path (the apps' API,
or NATS -> enclave worker -> KMS -> S3 -> back), and the content is checked against its
known hash.
`WriteProbes` write as well (for damage only a write sees, like lost DynamoDB metadata).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from drills.config import ProbeSettings
from drills.errors import ProbeError, RecoveryError
from drills.journal import utc_now
from drills.loop import LoopThread, Ticker
from drills.measure.timeline import Outcome, ProbeResult
from drills.vault import VaultApi, VaultUnavailable, digest


@dataclass(frozen=True, slots=True)
class KnownVault:
    """A vault whose content hash the probes know."""

    vault_id: str
    sha256: str


@dataclass(frozen=True, slots=True)
class ProbeSummary:
    """What the probes have seen so far, for progress lines."""

    sent: int
    ok: int
    failed: int
    last: Outcome | None
    last_detail: str


class ProbeRunner(Ticker):
    """Runs probes on `loop` until stopped; results are read from any thread."""

    def __init__(self, loop: LoopThread, client: VaultApi, vaults: Sequence[KnownVault],
                 settings: ProbeSettings) -> None:
        if not vaults:
            raise ProbeError("no known vaults to probe; the twin enrolls a population at start "
                             "(`drills twin up --vaults N`), on an account pass --probe-vault")
        super().__init__(loop, settings.interval, settings.timeout + 5)
        self.client, self.settings = client, settings
        self.vaults = list(vaults)
        self._results: list[ProbeResult] = []
        self._lock = threading.Lock()

    def results(self) -> list[ProbeResult]:
        """A snapshot of every completed probe, in completion order."""
        with self._lock:
            return list(self._results)

    def summary(self, since: float = 0.0) -> ProbeSummary:
        """Counts of probes completed after monotonic time `since`."""
        done = [r for r in self.results() if r.done >= since]
        ok = sum(r.ok for r in done)
        last = done[-1] if done else None
        return ProbeSummary(len(done), ok, len(done) - ok, last.outcome if last else None,
                            last.detail if last else "")

    def wait_for(self, condition: Callable[[list[ProbeResult]], bool], timeout: float,
                 on_tick: Callable[[ProbeSummary, float], None] | None = None,
                 since: float = 0.0) -> bool:
        """Block until `condition(results)` holds or `timeout` passes; True if it held."""
        start = time.monotonic()
        deadline = start + timeout
        while True:
            if condition(self.results()):
                return True
            now = time.monotonic()
            if now >= deadline:
                return False
            if on_tick is not None:
                on_tick(self.summary(since), now - start)
            time.sleep(min(self.settings.interval, deadline - now))

    async def tick(self, seq: int) -> None:
        await self._probe(seq, self.vaults[seq % len(self.vaults)])

    async def _probe(self, seq: int, vault: KnownVault) -> None:
        sent_utc = utc_now()
        sent = time.monotonic()
        try:
            data = await self.client.get(vault.vault_id, timeout=self.settings.timeout)
            if digest(data) == vault.sha256:
                outcome, detail = Outcome.OK, ""
            else:
                outcome, detail = Outcome.ERROR, f"content of {vault.vault_id} does not match"
        except VaultUnavailable as exc:
            outcome = Outcome.TIMEOUT if exc.kind == "timeout" else Outcome.ERROR
            detail = str(exc)
        except Exception as exc:  # an answer the probe cannot use is a failure, with why
            outcome, detail = Outcome.ERROR, f"unexpected reply: {type(exc).__name__}: {exc}"
        result = ProbeResult(seq, sent, time.monotonic(), sent_utc, outcome, detail)
        with self._lock:
            self._results.append(result)


class WriteProbes(ProbeRunner):
    """Content-preserving vault writes: read each vault through the service, put the same bytes.

    A put needs the vault's metadata item (its encrypted data key) and fails without it, so
    these probes see runbook 2.2's damage where reads do not: a read decrypts with the key
    stored beside the ciphertext in S3. One write per vault at a time, so the probes never
    race each other on an item.
    """

    def __init__(self, loop: LoopThread, client: VaultApi, vaults: Sequence[KnownVault],
                 settings: ProbeSettings) -> None:
        super().__init__(loop, client, vaults, settings)
        self._locks = {v.vault_id: asyncio.Lock() for v in self.vaults}
        self._vault_of: dict[int, str] = {}
        self._gate = threading.Lock()
        self._open = True
        self._inflight = 0
        self._last_write = 0.0  # wall clock: when the latest put may have landed

    @property
    def method(self) -> str:
        """How these probes observe the service, for the evidence."""
        return (f"content-preserving vault writes (get, then put of the same bytes) to "
                f"{len(self.vaults)} vault(s), one every {self.settings.interval * 1000:g} ms "
                f"through the service to its enclaves, KMS, S3 and DynamoDB; recovered = first of "
                f"{self.settings.consecutive} consecutive successes")

    def failed_vaults(self, since: float) -> set[str]:
        """Vaults whose writes failed after monotonic time `since`: the damage as users see it."""
        return {self._vault_of[r.seq] for r in self.results() if r.done >= since and not r.ok}

    @contextmanager
    def quiesced(self, timeout: float = 30.0) -> Iterator[None]:
        """Hold new writes and let those in flight finish, for as long as the block runs.

        On the way in it also waits out the wall-clock second of the last write: restore
        points have one-second granularity, so a fault injected inside the block leaves the
        items' last acknowledged state restorable.
        """
        with self._gate:
            self._open = False
        deadline = time.monotonic() + timeout
        try:
            while self._inflight and time.monotonic() < deadline:
                time.sleep(0.01)
            if self._inflight:
                raise RecoveryError(f"vault write probes still in flight after {timeout:g}s")
            settle = math.ceil(self._last_write) - time.time()
            if settle > 0:
                time.sleep(settle + 0.01)
            yield
        finally:
            with self._gate:
                self._open = True

    async def _probe(self, seq: int, vault: KnownVault) -> None:
        with self._gate:
            if not self._open:
                return  # quiesced: this slot is skipped, not failed
            self._inflight += 1
        sent_utc = utc_now()
        sent = time.monotonic()
        try:
            async with self._locks[vault.vault_id]:
                outcome, detail = await self._write(vault)
        finally:
            with self._gate:
                self._inflight -= 1
        self._vault_of[seq] = vault.vault_id
        result = ProbeResult(seq, sent, time.monotonic(), sent_utc, outcome, detail)
        with self._lock:
            self._results.append(result)

    async def _write(self, vault: KnownVault) -> tuple[Outcome, str]:
        timeout = self.settings.timeout
        try:
            data = await self.client.get(vault.vault_id, timeout)
            if digest(data) != vault.sha256:
                return Outcome.ERROR, f"content of {vault.vault_id} does not match"
            try:
                await self.client.put(vault.vault_id, data, timeout)
            finally:
                self._last_write = time.time()
        except VaultUnavailable as exc:
            if exc.kind == "timeout":
                # An unanswered put may still land later: count it as landing a timeout later.
                self._last_write = time.time() + timeout
                return Outcome.TIMEOUT, str(exc)
            return Outcome.ERROR, str(exc)
        except Exception as exc:  # an answer the probe cannot use is a failure, with why
            return Outcome.ERROR, f"unexpected reply: {type(exc).__name__}: {exc}"
        return Outcome.OK, ""
