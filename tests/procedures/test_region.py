"""The region-outage RPO detector (`replica_states` + `count_loss`), proven on real loss
before anyone trusts its "0": replication out of us-east-1 is paused on the twin (S3 and the
ledger's global table) while a canary writes through the service. Which writes cannot have
replicated is known from outside the detector, by when they were made: every acknowledged
write after the pause, none before it (replication was drained first)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drills.capabilities import ALL
from drills.faults import AllowList, FaultContext, FaultInjector
from drills.faults.region import PauseBucketReplication, PauseTableReplication
from drills.journal import Journal
from drills.loop import LoopThread
from drills.measure.canary import CanaryWriter
from drills.measure.rpo import MISSING, STALE, count_loss
from drills.procedures.region import replica_states
from drills.target import TwinTarget
from drills.twin.manager import Twin, harness_connection
from drills.twin.state import PRIMARY_REGION
from tests.conftest import wait_for

pytestmark = pytest.mark.twin


@pytest.fixture
def writer(healthy_twin: Twin) -> Iterator[CanaryWriter]:
    thread = LoopThread("test-region-rpo")
    try:
        writer = CanaryWriter(thread, harness_connection(healthy_twin, thread,
                                                         name="test-region-rpo"), rate=10.0)
        yield writer
        writer.stop()
    finally:
        thread.close()


def _acked(writer: CanaryWriter, count: int) -> None:
    start = sum(w.acked for w in writer.writes())
    wait_for(lambda: sum(w.acked for w in writer.writes()) >= start + count, 60,
             f"{count} more acknowledged canary writes")


def test_the_detector_counts_exactly_the_writes_made_while_replication_was_held(
        healthy_twin: Twin, writer: CanaryWriter, tmp_path: Path) -> None:
    """Before the pause: writes, then the backlog drained. While paused: more writes (new
    vaults and updates of replicated ones). The detector, reading us-west-2's own stores,
    finds exactly the acknowledged writes made after the pause lost (new vaults missing,
    updated ones stale), none made before; once replication resumes and drains, 0."""
    names, target = healthy_twin.names, TwinTarget(healthy_twin)
    writer.start()
    _acked(writer, 6)
    writer.stop()
    wait_for(lambda: target.replication_backlog() == 0, 60, "replication to drain")
    before = {w.seq for w in writer.writes()}

    journal = Journal(tmp_path / "journal.jsonl")
    allow = AllowList({"bucket": (names.bucket,), "table": (names.credentials_table,)})
    injector = FaultInjector(journal, "run-1", "twin:test-region-rpo", allow)
    ctx = FaultContext(healthy_twin.clients, healthy_twin, ALL)
    paused = [injector.inject(PauseBucketReplication(ctx, {"bucket": names.bucket})),
              injector.inject(PauseTableReplication(ctx, {"table": names.credentials_table,
                                                          "region": PRIMARY_REGION}))]
    try:
        after_pause = time.monotonic()
        writer.start()
        _acked(writer, 8)
        writer.stop()
        writes = writer.writes()
        assert all(w.seq in before or w.sent > after_pause for w in writes)
        vaults = sorted({w.vault_id for w in writes})
        result = count_loss(writes, replica_states(healthy_twin.clients, names, vaults))
        held = {w.seq for w in writes if w.acked and w.seq not in before}
        assert {x.seq for x in result.lost} == held
        assert {x.reason for x in result.lost} == {MISSING, STALE}  # new vaults and updates
        assert result.unverified == 0
    finally:
        for active in reversed(paused):
            injector.revert(active)
    wait_for(lambda: target.replication_backlog() == 0, 60, "the held writes to replicate")
    drained = count_loss(writes, replica_states(healthy_twin.clients, names, vaults))
    assert drained.lost == ()
    assert drained.acknowledged == len([w for w in writes if w.acked])
