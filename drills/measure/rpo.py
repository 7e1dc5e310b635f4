"""RPO, measured: every acknowledged write read back after recovery, and the loss counted.

`RpoResult` is what every data-loss check produces (canary writes, JetStream publishes,
restored items, parameters, sealed vaults), so one constructor turns any of them into
evidence. `verify` checks the canary's writes in the two stores an acknowledgement promises:
the vault's content through the service (S3 behind it) and its ledger item in DynamoDB.

A write is *lost* when neither it nor a later write to the same vault is what the store
holds: a vault rolled back to its version k of n has lost writes k+1..n; a missing or
corrupted vault has lost all n. Writes that were never acknowledged (timeouts, errors) are
reported on their own and never counted: the service made no promise; one that landed all
the same (a "ghost") is not a loss either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drills.loop import LoopThread
from drills.measure.canary import CanaryWrite
from drills.vault import Unavailability, VaultClient, VaultUnavailable, digest

MISSING, CORRUPTED, STALE = "missing", "corrupted", "stale"


@dataclass(frozen=True, slots=True)
class LostWrite:
    """An acknowledged write whose effect is gone: what was written, and why it counts."""

    seq: int
    item: str  # the vault, message, item or parameter the write went to
    reason: str  # missing | corrupted | stale | not-restored | key-deleted | ...
    acked_utc: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RpoResult:
    """Data loss over one drill: acknowledged writes, those lost, those unverifiable."""

    acknowledged: int
    unacknowledged: int = 0
    lost: tuple[LostWrite, ...] = ()
    unverified: int = 0  # acknowledged writes that could not be read back (no answer)
    note: str = ""  # what else was seen, e.g. ghost writes

    @property
    def lost_count(self) -> int:
        return len(self.lost)

    @property
    def loss_window(self) -> float:
        """Seconds between the oldest and newest lost write's acknowledgement (0 if none)."""
        moments = [_epoch(x.acked_utc) for x in self.lost if x.acked_utc]
        return max(moments) - min(moments) if moments else 0.0


def _epoch(utc: str) -> float:
    return datetime.fromisoformat(utc.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True, slots=True)
class VaultState:
    """What one store holds for a vault: the content hash, or why there is none."""

    sha256: str | None  # None: missing, or unreadable (see `problem`)
    problem: str = ""  # "" | missing | unverified | <error text>


@dataclass(slots=True)
class _Vault:
    """The canary's writes to one vault, oldest first."""

    writes: list[CanaryWrite] = field(default_factory=list)

    def classify(self, state: VaultState, store: str) -> tuple[list[LostWrite], bool]:
        """Writes lost in `store` given what it holds; (lost, unverified)."""
        acked = [w for w in self.writes if w.acked]
        if state.problem == "unverified":
            return [], True
        if state.sha256 is not None:
            landed = [i for i, w in enumerate(self.writes) if w.sha256 == state.sha256]
            if landed and all(not w.acked for w in self.writes[landed[-1] + 1:]):
                return [], False  # the last acknowledged write, or a later unanswered one
            if landed:
                held = self.writes[landed[-1]]
                return [_lost(w, STALE, f"{store} holds version {held.version} of "
                              f"{self.writes[-1].version}") for w in
                        self.writes[landed[-1] + 1:] if w.acked], False
            return [_lost(w, CORRUPTED, f"{store} content matches no write")
                    for w in acked], False
        return [_lost(w, MISSING, f"{store}: {state.problem or 'missing'}")
                for w in acked], False


def _lost(write: CanaryWrite, reason: str, detail: str) -> LostWrite:
    return LostWrite(write.seq, write.vault_id, reason, write.done_utc, detail)


#: Reads what the ledger holds for each vault id (None: no item).
LedgerReader = Callable[[Sequence[str]], dict[str, str | None]]


def verify(loop: LoopThread, client: VaultClient, writes: Iterable[CanaryWrite],
           ledger: LedgerReader | None = None, timeout: float = 5.0,
           attempts: int = 3) -> RpoResult:
    """Read every vault the canary wrote through the service (and its ledger item when a
    reader is given); count the acknowledged writes each store has lost."""
    writes = list(writes)
    vaults: dict[str, _Vault] = {}
    for write in sorted(writes, key=lambda w: (w.vault_id, w.version)):
        vaults.setdefault(write.vault_id, _Vault()).writes.append(write)
    wanted = [v for v, vault in vaults.items() if any(w.acked for w in vault.writes)]
    served = _read_through_service(loop, client, wanted, timeout, attempts)
    stores = [("service", served)]
    if ledger is not None:
        held = ledger(wanted)
        stores.append(("ledger", {v: VaultState(held.get(v), "" if held.get(v) else MISSING)
                                  for v in wanted}))
    lost: dict[int, LostWrite] = {}
    unverified: set[str] = set()
    for store, states in stores:
        for vault_id in wanted:
            found, unknown = vaults[vault_id].classify(states[vault_id], store)
            if unknown:
                unverified.add(vault_id)
            for x in found:
                lost.setdefault(x.seq, x)
    acked = [w for w in writes if w.acked]
    return RpoResult(
        acknowledged=len(acked), unacknowledged=len(writes) - len(acked),
        lost=tuple(sorted(lost.values(), key=lambda x: x.seq)),
        unverified=sum(len([w for w in vaults[v].writes if w.acked]) for v in unverified))


def _read_through_service(loop: LoopThread, client: VaultClient, vault_ids: Sequence[str],
                          timeout: float, attempts: int) -> dict[str, VaultState]:
    async def read(vault_id: str) -> VaultState:
        answered = ""  # the service's last error answer: the vault is not there
        for _ in range(attempts):
            try:
                data = await client.get(vault_id, timeout=timeout)
            except VaultUnavailable as exc:
                # An error answer every time means missing; no answer (or busy) at the
                # last attempt means we cannot tell.
                answered = str(exc) if exc.kind is Unavailability.ERROR else ""
                continue
            return VaultState(digest(data))
        return VaultState(None, answered) if answered else VaultState(None, "unverified")

    async def read_all() -> list[VaultState]:
        limit = asyncio.Semaphore(8)

        async def bounded(vault_id: str) -> VaultState:
            async with limit:
                return await read(vault_id)

        return list(await asyncio.gather(*(bounded(v) for v in vault_ids)))

    states = loop.run(read_all(), timeout=timeout * attempts * max(1, len(vault_ids)) + 10)
    return dict(zip(vault_ids, states, strict=True))


def ledger_reader(dynamodb: Any, table: str, key: str = "vault_id",
                  attribute: str = "sha256") -> LedgerReader:
    """A `LedgerReader` over a DynamoDB table whose item per vault holds its content hash."""
    def read(vault_ids: Sequence[str]) -> dict[str, str | None]:
        out: dict[str, str | None] = dict.fromkeys(vault_ids)
        for start in range(0, len(vault_ids), 100):  # BatchGetItem takes 100 keys
            keys = [{key: {"S": v}} for v in vault_ids[start:start + 100]]
            request: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True}}
            while request:
                answer = dynamodb.batch_get_item(RequestItems=request)
                for item in answer["Responses"].get(table, []):
                    out[item[key]["S"]] = item.get(attribute, {}).get("S")
                request = answer.get("UnprocessedKeys") or {}
        return out

    return read
