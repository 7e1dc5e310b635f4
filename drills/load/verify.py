"""The load users' acknowledged writes, read back after recovery: a second RPO figure.

Each load user writes only its own vault, one request at a time, and stops writing a vault
whose write got no definite answer (`locustfile.py`): so for every vault the content it must
hold is its last acknowledged write, or a write sent after that one (the load runs on while
this reads, and an unanswered write may have landed). A vault that holds an earlier write's
content has lost the acknowledged writes after it (`stale`); one that holds content no load
user wrote has lost them all (`corrupted`), as has one the service no longer knows
(`missing`). The vault is read through the API, with a client of its own (never the probes'
or the canary's), and its item in the credentials ledger (DynamoDB) when the target has one.
"""

from __future__ import annotations

import base64
import hashlib
import os
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from drills.load.records import Write
from drills.measure.rpo import LedgerReader, LostWrite, RpoResult

MISSING, CORRUPTED, STALE, UNVERIFIED = "missing", "corrupted", "stale", "unverified"

#: What one store holds for a vault: its content hash, or MISSING / UNVERIFIED.
Held = Callable[[Sequence[str]], Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class VaultReader:
    """Reads vaults through the vault API as an app does (GET /vault/{id}), with retries:
    its content hash, MISSING (404) or UNVERIFIED (no answer)."""

    base_url: str
    ca_bundle: Path | None
    timeout: float = 5.0
    attempts: int = 3
    parallel: int = 4
    resolve: Callable[[str], str] | None = None  # the name's address, as the apps get it

    def __call__(self, vault_ids: Sequence[str]) -> dict[str, str]:
        verify: ssl.SSLContext | bool = (ssl.create_default_context(cafile=str(self.ca_bundle))
                                         if self.ca_bundle else True)
        base = httpx.URL(self.base_url.rstrip("/"))
        if self.resolve is not None:
            try:  # the certificate names the address too
                base = base.copy_with(host=self.resolve(base.host))
            except Exception:  # the name does not resolve: nothing can be read
                return dict.fromkeys(vault_ids, UNVERIFIED)
        with httpx.Client(base_url=base, verify=verify, trust_env=False,
                          timeout=self.timeout) as client, \
                ThreadPoolExecutor(self.parallel, thread_name_prefix="drills-load-rpo") as pool:
            return dict(zip(vault_ids, pool.map(lambda v: self._read(client, v), vault_ids),
                            strict=True))

    def _read(self, client: httpx.Client, vault_id: str) -> str:
        for attempt in range(self.attempts):
            nonce = base64.b64encode(os.urandom(16)).decode()
            try:
                response = client.get(f"/vault/{vault_id}", params={"nonce": nonce})
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code == 404:
                return MISSING
            if response is not None and response.is_success:
                try:
                    data = base64.b64decode(str(response.json()["data"]), validate=True)
                except (ValueError, KeyError, TypeError):
                    return CORRUPTED  # an answer, but not a vault's content
                return hashlib.sha256(data).hexdigest()
            time.sleep(0.5 * (attempt + 1))  # busy, or down for a moment: ask again
        return UNVERIFIED


def ledger_store(reader: LedgerReader) -> Held:
    """A ledger reader (vault -> sha256 or None) as a store of `count_loss`."""
    def held(vault_ids: Sequence[str]) -> dict[str, str]:
        try:
            found = reader(list(vault_ids))
        except Exception:  # an unreadable ledger says nothing about the writes
            return dict.fromkeys(vault_ids, UNVERIFIED)
        return {v: found.get(v) or MISSING for v in vault_ids}
    return held


def verify_writes(writes: Sequence[Write], since: float, until: float,
                  stores: Mapping[str, Held], later: Callable[[], Sequence[Write]]
                  ) -> RpoResult:
    """The load's acknowledged writes completed in [since, until], checked in every store;
    `later()` gives every write recorded by the time the stores have been read."""
    mine = [w for w in writes if since <= w.at <= until]
    acked = [w for w in mine if w.acked]
    vaults = sorted({w.vault for w in acked})
    held = {name: store(vaults) for name, store in stores.items()}
    return count_loss(mine, later(), held)


def count_loss(mine: Sequence[Write], history: Sequence[Write],
               held: Mapping[str, Mapping[str, str]]) -> RpoResult:
    """The loss, given the drill's writes (`mine`), every write recorded (`history`) and what
    each store holds for each vault; a write lost in any store is lost, once."""
    by_vault: dict[str, list[Write]] = {}
    for w in sorted(history, key=lambda w: w.at):
        by_vault.setdefault(w.vault, []).append(w)
    acked = [w for w in mine if w.acked]
    lost: dict[tuple[str, float], LostWrite] = {}
    unverified: set[tuple[str, float]] = set()
    numbers = {(w.vault, w.at): n for n, w in enumerate(sorted(mine, key=lambda w: w.at))}
    for vault in sorted({w.vault for w in acked}):
        mine_here = sorted((w for w in acked if w.vault == vault), key=lambda w: w.at)
        timeline = by_vault.get(vault, mine_here)
        last = mine_here[-1]
        accepted = {w.sha256 for w in timeline if w.at >= last.at} | {last.sha256}
        for store, states in held.items():
            state = states.get(vault, UNVERIFIED)
            if state in accepted:
                continue
            if state == UNVERIFIED:
                unverified.update((vault, w.at) for w in mine_here)
                continue
            earlier = [w for w in timeline if w.sha256 == state and w.at < last.at]
            if earlier:
                reason, gone = STALE, [w for w in mine_here if w.at > earlier[-1].at]
                detail = (f"{store} holds the content of a write of "
                          f"{_utc(earlier[-1].wall)}")
            else:
                reason, gone = (MISSING, mine_here) if state == MISSING else (
                    CORRUPTED, mine_here)
                detail = f"{store}: {reason}"
            for w in gone:
                key = (vault, w.at)
                lost.setdefault(key, LostWrite(numbers[key], vault, reason, _utc(w.wall),
                                               detail))
    unverified -= set(lost)
    return RpoResult(
        acknowledged=len(acked), unacknowledged=sum(not w.acked for w in mine),
        lost=tuple(sorted(lost.values(), key=lambda x: x.seq)), unverified=len(unverified),
        note=f"{len({w.vault for w in acked})} load vaults read back")


def _utc(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
