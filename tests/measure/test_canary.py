"""The canary writer: enrolments and updates in turn, every write recorded with its content
(the RPO detector's ground truth), and vaults a drill takes to write on cue (pure logic on a
stand-in service that acknowledges at once)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from drills.errors import ProbeError
from drills.loop import LoopThread
from drills.measure.canary import CanaryWriter
from drills.vault import VaultReply, VaultUnavailable, digest


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread("test-canary")
    yield thread
    thread.close()


class FakeService:
    """A vault service that acknowledges every enroll and put at once."""

    async def enroll(self, vault_id: str, data: bytes, timeout: float) -> VaultReply:
        return VaultReply("i-fake", {"sha256": digest(data)})

    async def put(self, vault_id: str, data: bytes, timeout: float) -> VaultReply:
        return VaultReply("i-fake", {"sha256": digest(data)})

    async def get(self, vault_id: str, timeout: float) -> bytes:
        raise VaultUnavailable("error", "write-only")


def run_canary(loop: LoopThread, writes: int) -> CanaryWriter:
    writer = CanaryWriter(loop, FakeService(), rate=200.0)
    writer.start()
    deadline = time.monotonic() + 30
    while len(writer.writes()) < writes and time.monotonic() < deadline:
        time.sleep(0.01)
    return writer


def test_the_canary_updates_every_vault_in_turn_old_ones_included(loop: LoopThread) -> None:
    """Every other write updates the longest-idle canary vault: the first vaults are updated
    again and again, every vault of the first half of the run at least once, and each
    vault's versions run 1, 2, 3... with seqs unique across the canary."""
    writer = run_canary(loop, 80)
    taken = writer.take()
    writer.stop()
    writes = writer.writes()
    assert len(writes) >= 80
    assert len({w.seq for w in writes}) == len(writes)
    by_vault: dict[str, list[int]] = {}
    for w in sorted(writes, key=lambda w: w.seq):
        by_vault.setdefault(w.vault_id, []).append(w.version)
    assert all(v == list(range(1, len(v) + 1)) for v in by_vault.values())
    first_half = [w.vault_id for w in writes[:40] if w.op == "enroll"]
    assert all(len(by_vault[v]) >= 2 for v in first_half)
    assert len(by_vault[first_half[0]]) >= 3
    assert taken in by_vault


def test_a_taken_vault_is_written_only_on_cue(loop: LoopThread) -> None:
    """`take` removes an idle vault from the round-robin: the canary never writes it again on
    its own, `update` writes it (recorded like any write), and a vault not taken (or not the
    canary's) cannot be updated or taken."""
    writer = run_canary(loop, 10)
    vault_id = writer.take()
    versions_then = len([w for w in writer.writes() if w.vault_id == vault_id])
    seen, deadline = len(writer.writes()), time.monotonic() + 30
    while len(writer.writes()) < seen + 30:  # the canary goes round its vaults meanwhile
        assert time.monotonic() < deadline, "the canary stopped writing"
        time.sleep(0.01)
    assert len([w for w in writer.writes() if w.vault_id == vault_id]) == versions_then
    update = writer.update(vault_id)
    assert (update.acked, update.version, update.op) == (True, versions_then + 1, "update")
    assert update in writer.writes()
    writer.stop()
    other = next(w.vault_id for w in writer.writes() if w.vault_id != vault_id)
    with pytest.raises(ProbeError, match="was not taken"):
        writer.update(other)
    with pytest.raises(ProbeError, match="not a vault of canary"):
        writer.take("someone-else")
