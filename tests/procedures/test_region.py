"""The region-outage RPO detector (`replica_states` + `count_loss`), proven on real loss
before anyone trusts its "0": replication out of us-east-1 is paused on the twin (S3 and the
ledger's global table) while a canary writes through the service. Which writes cannot have
replicated is known from outside the detector, by when they were made: every acknowledged
write after the pause, none before it (replication was drained first). And the detector of
writes buried in the DR bucket by a late replica (`buried_in_dr`), proven on real burying."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from drills.capabilities import ALL
from drills.clients import Clients
from drills.environment import Names
from drills.faults import AllowList, FaultContext, FaultInjector
from drills.faults.region import PauseBucketReplication, PauseTableReplication
from drills.journal import Journal
from drills.loop import LoopThread
from drills.measure.canary import CanaryWriter
from drills.measure.rpo import MISSING, STALE, count_loss
from drills.procedures.region import buried_in_dr, replica_states
from drills.procedures.s3 import object_key
from drills.target import TwinTarget
from drills.twin.aws import AwsEndpoint
from drills.twin.control import post
from drills.twin.manager import Twin, harness_connection
from drills.twin.state import PRIMARY_REGION
from tests.conftest import wait_for


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


@pytest.mark.twin
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


def test_a_replica_landing_after_drs_own_newer_write_is_found_burying_it(
        aws: AwsEndpoint, clients: Clients, names: Names) -> None:
    """Real burying: a write held in the primary's replication, then DR's own newer write to
    the same key; once replication resumes, the replica is stored last and is current. The
    detector names that vault, and not one where the replica landed before DR wrote."""
    post(aws.url, "s3/replication-settings", {"median": 0.05, "sigma": 0, "max": 1})
    s3, dr = clients("s3", "us-east-1"), clients("s3", "us-west-2")
    post(aws.url, "s3/pause-replication", {"source_bucket": names.bucket})
    try:
        s3.put_object(Bucket=names.bucket, Key=object_key("v-buried"), Body=b"primary")
        dr.put_object(Bucket=names.dr_bucket, Key=object_key("v-buried"), Body=b"dr, newer")
    finally:
        post(aws.url, "s3/resume-replication", {"source_bucket": names.bucket})
    s3.put_object(Bucket=names.bucket, Key=object_key("v-kept"), Body=b"primary")

    def current(vault: str) -> bytes:
        return bytes(dr.get_object(Bucket=names.dr_bucket, Key=object_key(vault))["Body"].read())

    wait_for(lambda: current("v-buried") == b"primary", 30, "the held replica to land")
    wait_for(lambda: _replicated(dr, names, "v-kept"), 30, "v-kept to replicate")
    dr.put_object(Bucket=names.dr_bucket, Key=object_key("v-kept"), Body=b"dr, newer")
    found = buried_in_dr(clients, names, ["v-buried", "v-kept"])
    assert list(found) == ["v-buried"]
    assert "is current over DR's own" in found["v-buried"]


def _replicated(dr: Any, names: Names, vault: str) -> bool:
    try:
        dr.head_object(Bucket=names.dr_bucket, Key=object_key(vault))
    except ClientError:  # not there yet
        return False
    return True
