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

`Truth` is the other side of the proof: what the canary's own record (when each write was
sent and answered) says a fault lost, independent of reading anything back. A drill that
loses data on purpose checks the detector against it (`Truth.disagreement`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drills.loop import LoopThread
from drills.measure.canary import CanaryWrite
from drills.vault import Unavailability, VaultApi, VaultUnavailable, digest

MISSING, CORRUPTED, STALE = "missing", "corrupted", "stale"
UNVERIFIED = "unverified"  # a store gave no answer: nothing can be said


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
    #: Acknowledged writes whose loss an independent record cannot settle (they straddle a
    #: moment of the fault): the figure's uncertainty, when it was checked against one.
    uncertain: int = 0

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
        if state.problem == UNVERIFIED:
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


def verify(loop: LoopThread, client: VaultApi, writes: Iterable[CanaryWrite],
           ledger: LedgerReader | None = None, timeout: float = 5.0,
           attempts: int = 3) -> RpoResult:
    """Read every vault the canary wrote through the service (and its ledger item when a
    reader is given); count the acknowledged writes each store has lost."""
    writes = list(writes)
    wanted = sorted({w.vault_id for w in writes if w.acked})
    stores = {"service": _read_through_service(loop, client, wanted, timeout, attempts)}
    if ledger is not None:
        stores["ledger"] = ledger_states(ledger(wanted))
    return count_loss(writes, stores)


def ledger_states(held: Mapping[str, str | None]) -> dict[str, VaultState]:
    """What a `LedgerReader` answered, as the state of each vault in the ledger."""
    return {v: VaultState(sha) if sha else VaultState(None, MISSING) for v, sha in held.items()}


def count_loss(writes: Iterable[CanaryWrite],
               stores: Mapping[str, Mapping[str, VaultState]]) -> RpoResult:
    """The loss, given what each store (by name) holds for each vault the canary wrote; a
    write lost in any store is lost, once. A vault a store does not name is unverified."""
    writes = list(writes)
    vaults: dict[str, _Vault] = {}
    for write in sorted(writes, key=lambda w: (w.vault_id, w.version)):
        vaults.setdefault(write.vault_id, _Vault()).writes.append(write)
    wanted = [v for v, vault in vaults.items() if any(w.acked for w in vault.writes)]
    lost: dict[int, LostWrite] = {}
    unverified: set[str] = set()
    for store, states in stores.items():
        for vault_id in wanted:
            found, unknown = vaults[vault_id].classify(
                states.get(vault_id, VaultState(None, UNVERIFIED)), store)
            if unknown:
                unverified.add(vault_id)
            for x in found:
                lost.setdefault(x.seq, x)
    acked = [w for w in writes if w.acked]
    return RpoResult(
        acknowledged=len(acked), unacknowledged=len(writes) - len(acked),
        lost=tuple(sorted(lost.values(), key=lambda x: x.seq)),
        unverified=sum(len([w for w in vaults[v].writes if w.acked]) for v in unverified))


def _read_through_service(loop: LoopThread, client: VaultApi, vault_ids: Sequence[str],
                          timeout: float, attempts: int) -> dict[str, VaultState]:
    async def read(vault_id: str) -> VaultState:
        answered = ""  # the service's last error answer: the vault is not there
        tries, patience = 0, time.monotonic() + timeout * attempts
        while tries < attempts:
            try:
                data = await client.get(vault_id, timeout=timeout)
            except VaultUnavailable as exc:
                if exc.kind is Unavailability.BUSY and time.monotonic() < patience:
                    # Refused at once (a full queue) says nothing about the vault: ask
                    # again when the worker suggests, without spending an attempt.
                    await asyncio.sleep(min(1.0, max(0.02, exc.retry_after or 0.0)))
                    continue
                # An error answer every time means missing; no answer at the last
                # attempt means we cannot tell.
                tries += 1
                answered = str(exc) if exc.kind is Unavailability.ERROR else ""
                continue
            return VaultState(digest(data))
        return VaultState(None, answered) if answered else VaultState(None, UNVERIFIED)

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


# -- ground truth from the canary's own record ---------------------------------------------
#: Resolution of the canary's UTC timestamps (milliseconds, truncated) and of AWS's restore
#: time: a moment within it of another cannot be ordered against it.
RESOLUTION = 0.001


@dataclass(frozen=True, slots=True)
class Truth:
    """What the canary's record says a fault lost (write seqs), and the writes whose fate the
    record cannot settle: they straddle a moment of the fault (sent before it, answered
    after it), the measurement's uncertainty. `after`: acknowledged writes sent after the
    fault's moment, lost or not."""

    lost: frozenset[int]
    uncertain: frozenset[int] = frozenset()
    after: int = 0

    def disagreement(self, result: RpoResult) -> str | None:
        """Why a measured `result` contradicts the record, or None when it agrees: every write
        certainly lost was found lost, and nothing else was, but for uncertain writes."""
        found = {x.seq for x in result.lost}
        missed, extra = sorted(self.lost - found), sorted(found - self.lost - self.uncertain)
        problems = [f"{len(missed)} write(s) the record says are lost were not found lost "
                    f"(seq {missed[:10]})"] if missed else []
        if extra:
            problems.append(f"{len(extra)} write(s) found lost that the record says survive "
                            f"(seq {extra[:10]})")
        if result.unverified:
            problems.append(f"{result.unverified} acknowledged write(s) could not be read back")
        return "; ".join(problems) or None


def rollback_truth(writes: Iterable[CanaryWrite], restored_at: float,
                   copied: Mapping[str, tuple[float, float]],
                   resolution: float = RESOLUTION) -> Truth:
    """What a store loses when it is restored as of `restored_at` (epoch seconds) and each
    item of `copied` is put back over the live one somewhere between its two epoch times.

    A write lands somewhere between its sending and its answer. An item copied back holds the
    last write landed before `restored_at`; the acknowledged writes landed after it and before
    the copy are lost, unless a write landing after the copy rewrote the item (then it holds
    the newest write: nothing is lost). Items not copied back (vaults enrolled since) keep
    every write. Writes straddling `restored_at` or the copy are uncertain."""
    vaults: dict[str, list[CanaryWrite]] = {}
    for write in sorted(writes, key=lambda w: (w.vault_id, w.version)):
        vaults.setdefault(write.vault_id, []).append(write)
    lost: set[int] = set()
    uncertain: set[int] = set()
    after = 0
    for vault_id, ws in vaults.items():
        sent = {w.seq: _epoch(w.sent_utc) for w in ws}
        # An unanswered write may land at any time after it was sent (the worker finishes
        # what it started): no upper bound.
        done = {w.seq: _epoch(w.done_utc) + resolution if w.acked else math.inf for w in ws}
        after += sum(w.acked and sent[w.seq] >= restored_at + resolution for w in ws)
        if vault_id not in copied:
            continue  # not in the restore: the copy never touched it
        start, end = copied[vault_id]
        if any(w.acked and sent[w.seq] >= end for w in ws):
            continue  # rewritten by an acknowledged write after the copy: holds the newest
        # A later write may have rewritten the item after the copy: an unanswered one sent
        # after it (it may have landed), or any write answered after the copy began.
        rewritten = any(done[w.seq] > start for w in ws)
        for w in ws:
            if not w.acked or w.version == 1:
                continue  # no promise; an enrolment copied back is in the restore
            if done[w.seq] <= restored_at - resolution:
                continue  # landed before the restore time: restored
            certain = sent[w.seq] >= restored_at + resolution and done[w.seq] <= start
            (lost if certain and not rewritten else uncertain).add(w.seq)
    return Truth(frozenset(lost), frozenset(uncertain), after)
