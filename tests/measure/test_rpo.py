"""The RPO detector: the loss it counts from what the stores hold (pure logic, exact counts
and windows), the ground truth it is checked against, and real loss on the twin."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from drills.errors import ProbeError
from drills.loop import LoopThread
from drills.measure.canary import CanaryWrite, CanaryWriter
from drills.measure.rpo import (
    CORRUPTED,
    MISSING,
    STALE,
    UNVERIFIED,
    RpoResult,
    Truth,
    VaultState,
    count_loss,
    ledger_reader,
    ledger_states,
    rollback_truth,
    verify,
)
from drills.twin.manager import Twin, harness_connection
from drills.vault import VaultReply, VaultUnavailable, digest

T0 = 1_800_000_000.0  # an epoch second: every time below is an offset from it


def utc(offset: float) -> str:
    """The canary's timestamp form (ISO-8601, milliseconds) of T0 + offset."""
    moment = datetime.fromtimestamp(T0 + offset, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Writes:
    """Builds a canary record: vaults written at given seconds, each write's data known."""

    def __init__(self) -> None:
        self.writes: list[CanaryWrite] = []
        self.data: dict[int, bytes] = {}

    def write(self, vault: str, sent: float, done: float, acked: bool = True) -> CanaryWrite:
        """The next write to `vault`, sent and answered at these offsets from T0."""
        seq = len(self.writes)
        version = 1 + sum(w.vault_id == vault for w in self.writes)
        data = f"{vault}:{version}".encode()
        write = CanaryWrite(seq, vault, version, digest(data), sent, done, utc(sent), acked,
                            "" if acked else "timeout: no reply", utc(done))
        self.writes.append(write)
        self.data[seq] = data
        return write

    def holds(self, write: CanaryWrite) -> VaultState:
        """A store holding exactly this write."""
        return VaultState(write.sha256)


def test_a_missing_vault_loses_every_acknowledged_write_with_their_window() -> None:
    """Both stores lost the vault: each of its acknowledged writes is lost once (not once per
    store), reason missing; the window runs from the first to the last acknowledgement."""
    r = Writes()
    w1, _, w3 = r.write("a", 0.0, 0.05), r.write("a", 1.0, 1.25), r.write("a", 2.5, 2.75)
    gone = VaultState(None, "error: NoSuchKey")
    result = count_loss(r.writes, {"service": {"a": gone},
                                   "ledger": ledger_states({"a": None})})
    assert [(x.seq, x.reason) for x in result.lost] == [(0, MISSING), (1, MISSING),
                                                        (2, MISSING)]
    assert result.lost[0].detail == "service: error: NoSuchKey"
    assert result.loss_window == pytest.approx(2.7)
    assert (result.acknowledged, result.unverified) == (3, 0)
    assert result.lost[0].acked_utc == w1.done_utc
    assert result.lost[2].acked_utc == w3.done_utc


def test_a_corrupted_vault_loses_every_acknowledged_write() -> None:
    """Content that matches no write the canary made: all its acknowledged writes are lost."""
    r = Writes()
    r.write("a", 0.0, 0.1)
    r.write("a", 1.0, 1.1)
    r.write("b", 0.5, 0.6)
    result = count_loss(r.writes, {"service": {"a": VaultState(digest(b"junk")),
                                               "b": r.holds(r.writes[2])}})
    assert [(x.seq, x.item, x.reason) for x in result.lost] == [(0, "a", CORRUPTED),
                                                                (1, "a", CORRUPTED)]
    assert result.loss_window == pytest.approx(1.0)


def test_a_stale_version_loses_the_writes_after_it() -> None:
    """A store holding version 2 of 3 has lost write 3 only, and says which version it holds."""
    r = Writes()
    r.write("a", 0.0, 0.1)
    held = r.write("a", 1.0, 1.1)
    r.write("a", 2.0, 2.2)
    result = count_loss(r.writes, {"service": {"a": r.holds(held)}})
    assert [(x.seq, x.reason, x.detail) for x in result.lost] == [
        (2, STALE, "service holds version 2 of 3")]
    assert result.loss_window == 0.0


def test_a_vault_rolled_back_to_version_1_of_4_loses_exactly_3_writes() -> None:
    """Rolled back to its enrolment: updates 2..4 are lost, and the window is the time between
    the acknowledgements of update 2 and update 4 (from their done_utc)."""
    r = Writes()
    enrol = r.write("a", 0.0, 0.04)
    r.write("a", 3.0, 3.125)
    r.write("a", 7.0, 7.5)
    r.write("a", 11.0, 11.375)
    r.write("b", 1.0, 1.1)  # another vault, intact
    result = count_loss(r.writes, {"service": {"a": r.holds(enrol), "b": r.holds(r.writes[4])}})
    assert [x.seq for x in result.lost] == [1, 2, 3]
    assert {x.reason for x in result.lost} == {STALE}
    assert result.loss_window == pytest.approx(11.375 - 3.125)
    assert (result.acknowledged, result.lost_count) == (5, 3)


def test_an_unacknowledged_write_that_landed_is_not_a_loss() -> None:
    """The last write timed out but landed (a ghost): the store holds it, nothing is lost; an
    unanswered write that did not land leaves the last acknowledged one: nothing lost either."""
    r = Writes()
    r.write("a", 0.0, 0.1)
    r.write("a", 1.0, 1.1)
    ghost = r.write("a", 2.0, 4.0, acked=False)
    acked = r.write("b", 0.0, 0.1)
    r.write("b", 1.0, 3.0, acked=False)
    result = count_loss(r.writes, {"service": {"a": r.holds(ghost), "b": r.holds(acked)}})
    assert result.lost == ()
    assert (result.acknowledged, result.unacknowledged) == (3, 2)


def test_the_ledger_losing_a_write_the_service_still_has_is_a_loss() -> None:
    """The service reads version 3, the ledger item says version 2: write 3 is lost, and the
    ledger is named as the store that lost it."""
    r = Writes()
    r.write("a", 0.0, 0.1)
    two = r.write("a", 1.0, 1.1)
    three = r.write("a", 2.0, 2.1)
    result = count_loss(r.writes, {"service": {"a": r.holds(three)},
                                   "ledger": ledger_states({"a": two.sha256})})
    assert [(x.seq, x.reason, x.detail) for x in result.lost] == [
        (2, STALE, "ledger holds version 2 of 3")]


def test_a_vault_no_store_answered_for_is_unverified_not_lost() -> None:
    """No answer for a vault (or a store that does not name it): its acknowledged writes are
    unverified, never counted lost; the others are still checked."""
    r = Writes()
    r.write("a", 0.0, 0.1)
    r.write("a", 1.0, 1.1)
    r.write("b", 0.0, 0.1)
    result = count_loss(r.writes, {"service": {"a": VaultState(None, UNVERIFIED),
                                               "b": VaultState(digest(b"junk"))}})
    assert (result.unverified, [x.item for x in result.lost]) == (2, ["b"])
    assert count_loss(r.writes, {"service": {"b": r.holds(r.writes[2])}}).unverified == 2


class FakeVaults:
    """A vault service whose `get` answers from a dict: bytes, an exception to raise, or a
    list of those, answered in turn (the last one for ever after); it takes no writes."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.asked: dict[str, int] = {}

    async def get(self, vault_id: str, timeout: float) -> bytes:
        answers = self.answers[vault_id]
        answers = answers if isinstance(answers, list) else [answers]
        n = self.asked[vault_id] = self.asked.get(vault_id, 0) + 1
        answer = answers[min(n, len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return bytes(answer)

    async def enroll(self, vault_id: str, data: bytes, timeout: float) -> VaultReply:
        raise VaultUnavailable("error", "read-only")

    async def put(self, vault_id: str, data: bytes, timeout: float) -> VaultReply:
        raise VaultUnavailable("error", "read-only")


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread("test-rpo")
    yield thread
    thread.close()


def test_verify_reads_both_stores_and_tells_missing_from_unverified(loop: LoopThread) -> None:
    """An error answer every time is a missing vault; no answer is unverified; the ledger
    reader is asked for every vault with an acknowledged write, and its loss counts too."""
    r = Writes()
    r.write("intact", 0.0, 0.1)
    r.write("gone", 0.0, 0.1)
    r.write("silent", 0.0, 0.1)
    stale = r.write("ledger-behind", 0.0, 0.1)
    newest = r.write("ledger-behind", 1.0, 1.2)
    r.write("never-acked", 0.0, 2.0, acked=False)
    client = FakeVaults({
        "intact": r.data[0], "gone": VaultUnavailable("error", "NoSuchKey"),
        "silent": VaultUnavailable("timeout", "no reply"), "ledger-behind": r.data[newest.seq]})
    items = {"intact": r.writes[0].sha256, "silent": r.writes[2].sha256,
             "ledger-behind": stale.sha256}
    asked: list[str] = []

    def ledger(vault_ids: Any) -> dict[str, str | None]:
        asked.extend(vault_ids)
        return {v: items.get(v) for v in vault_ids}

    result = verify(loop, client, r.writes, ledger=ledger, timeout=1, attempts=2)
    assert sorted(asked) == ["gone", "intact", "ledger-behind", "silent"]
    assert [(x.item, x.reason) for x in result.lost] == [("gone", MISSING),
                                                         ("ledger-behind", STALE)]
    assert result.unverified == 1
    assert (result.acknowledged, result.unacknowledged) == (5, 1)


def test_verify_asks_again_when_the_service_is_busy(loop: LoopThread) -> None:
    """A busy refusal says nothing about the vault: verify waits as the worker suggests and
    asks again without spending one of its attempts, so a loaded service is not unverified."""
    r = Writes()
    r.write("a", 0.0, 0.1)
    busy = VaultUnavailable("busy", "2 running, 6 queued", retry_after=0.01)
    client = FakeVaults({"a": [busy, busy, busy, busy, r.data[0]]})
    result = verify(loop, client, r.writes, timeout=1, attempts=1)
    assert (result.lost, result.unverified) == ((), 0)
    assert client.asked == {"a": 5}


# -- ground truth ----------------------------------------------------------------------------
def test_rollback_truth_loses_exactly_the_writes_between_the_restore_and_the_copy() -> None:
    """Restored as of t=10, items copied back at t=20: an update acknowledged before 10
    survives, updates sent after 10 and answered before 20 are lost, the one straddling 10 is
    uncertain, a vault enrolled after 10 is not in the restore and keeps everything, a vault
    rewritten after the copy holds its newest write."""
    r = Writes()
    r.write("old", 0.0, 0.1)
    r.write("old", 5.0, 5.1)  # before the restore time: restored
    r.write("old", 12.0, 12.1)  # lost
    r.write("old", 15.0, 15.2)  # lost
    r.write("edge", 1.0, 1.1)
    r.write("edge", 9.95, 10.05)  # straddles the restore time: uncertain
    r.write("edge", 14.0, 14.1)  # lost (version 3 > whatever the restore holds)
    r.write("new", 11.0, 11.1)  # enrolled after the restore time: not copied back
    r.write("new", 13.0, 13.1)
    r.write("again", 2.0, 2.1)
    r.write("again", 16.0, 16.1)  # lost by the copy, then ...
    r.write("again", 25.0, 25.1)  # ... rewritten after it: holds its newest write
    copied = dict.fromkeys(("old", "edge", "again"), (T0 + 20.0, T0 + 20.01))
    truth = rollback_truth(r.writes, T0 + 10.0, copied)
    assert truth.lost == {2, 3, 6}
    assert truth.uncertain == {5}
    assert truth.after == 7


def test_rollback_truth_is_uncertain_when_a_write_may_have_rewritten_the_item() -> None:
    """A write answered after its item's copy began, or an unanswered one (it may land any
    time), may have rewritten the item: the writes the copy rolled back are uncertain."""
    r = Writes()
    r.write("a", 0.0, 0.1)
    r.write("a", 12.0, 12.1)
    r.write("a", 19.99, 20.05)  # straddles the copy of "a"
    r.write("b", 0.0, 0.1)
    r.write("b", 13.0, 13.1)
    r.write("b", 14.0, 16.0, acked=False)  # may land after the copy
    copied = {"a": (T0 + 20.0, T0 + 20.01), "b": (T0 + 20.0, T0 + 20.01)}
    truth = rollback_truth(r.writes, T0 + 10.0, copied)
    assert truth.lost == frozenset()
    assert truth.uncertain == {1, 2, 4}


def test_truth_agrees_only_with_exactly_its_loss_up_to_the_uncertain_writes() -> None:
    """A measurement agrees when it found every certain loss, nothing that survived, and could
    read everything back; an uncertain write may go either way."""
    r = Writes()
    writes = [r.write("a", float(n), n + 0.1) for n in range(4)]

    def measured(*seqs: int, unverified: int = 0) -> RpoResult:
        lost = tuple(count_loss(writes, {"s": {"a": VaultState(None, "gone")}}).lost)
        return RpoResult(4, lost=tuple(x for x in lost if x.seq in seqs), unverified=unverified)

    truth = Truth(frozenset({1, 2}), frozenset({3}))
    assert truth.disagreement(measured(1, 2)) is None
    assert truth.disagreement(measured(1, 2, 3)) is None
    assert "1 write(s) the record says are lost were not found lost (seq [2])" in str(
        truth.disagreement(measured(1, 3)))
    assert "found lost that the record says survive (seq [0])" in str(
        truth.disagreement(measured(0, 1, 2)))
    assert "could not be read back" in str(truth.disagreement(measured(1, 2, unverified=1)))


# -- real loss on the twin ---------------------------------------------------------------------
@pytest.fixture
def canary(healthy_twin: Twin) -> Iterator[tuple[LoopThread, Any, CanaryWriter]]:
    """A canary writing through the twin's service until it has a few acknowledged writes."""
    thread = LoopThread("test-rpo-twin")
    try:
        client = harness_connection(healthy_twin, thread, name="test-rpo")
        writer = CanaryWriter(thread, client, rate=10.0)
        writer.start()
        deadline = time.monotonic() + 60
        while sum(w.acked for w in writer.writes()) < 6:
            assert time.monotonic() < deadline, [w.detail for w in writer.writes()]
            time.sleep(0.05)
        yield thread, client, writer
        writer.stop()
    finally:
        thread.close()


@pytest.mark.twin
def test_the_detector_sees_a_ledger_item_rolled_back_on_the_twin(
        healthy_twin: Twin, canary: tuple[LoopThread, Any, CanaryWriter]) -> None:
    """Real loss: a canary vault is updated twice through the service, then its ledger item is
    put back as it was before them. The verifier finds exactly the two updates lost,
    in the ledger (the service still reads the newest), with their window; the canary never
    wrote the taken vault on its own meanwhile."""
    loop, client, writer = canary
    vault_id = writer.take()
    ddb, table = healthy_twin.clients("dynamodb"), healthy_twin.names.credentials_table
    image = ddb.get_item(TableName=table, Key={"vault_id": {"S": vault_id}},
                            ConsistentRead=True)["Item"]
    updates = [writer.update(vault_id) for _ in range(2)]
    assert all(u.acked for u in updates), [u.detail for u in updates]
    with pytest.raises(ProbeError, match="cannot be taken"):
        writer.take(vault_id)
    writer.stop()
    before = [w for w in writer.writes() if w.vault_id == vault_id]
    assert [w.version for w in before][-2:] == [u.version for u in updates]
    ddb.put_item(TableName=table, Item=image)
    result = verify(loop, client, writer.writes(), ledger=ledger_reader(ddb, table))
    assert [(x.seq, x.item, x.reason) for x in result.lost] == [
        (u.seq, vault_id, STALE) for u in updates]
    assert all(x.detail.startswith("ledger holds version") for x in result.lost)
    assert result.loss_window == pytest.approx(
        (datetime.fromisoformat(updates[1].done_utc) -
         datetime.fromisoformat(updates[0].done_utc)).total_seconds(), abs=1e-6)
    assert result.unverified == 0


@pytest.mark.twin
def test_the_detector_sees_a_vault_object_rolled_back_on_the_twin(
        healthy_twin: Twin, canary: tuple[LoopThread, Any, CanaryWriter]) -> None:
    """Real loss in S3: the object's version from before an update is copied over the current
    one (what runbook 4.4 step 2 does). The service now reads the older content: the update
    is lost, found through the service, while the ledger still names it."""
    loop, client, writer = canary
    vault_id = writer.take()
    s3, bucket = healthy_twin.clients("s3"), healthy_twin.names.bucket
    key = f"vaults/{vault_id}/data.enc"
    old = s3.head_object(Bucket=bucket, Key=key)["VersionId"]
    update = writer.update(vault_id)
    assert update.acked, update.detail
    writer.stop()
    s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key,
                                                       "VersionId": old})
    ddb, table = healthy_twin.clients("dynamodb"), healthy_twin.names.credentials_table
    result = verify(loop, client, writer.writes(), ledger=ledger_reader(ddb, table))
    assert [(x.seq, x.reason) for x in result.lost] == [(update.seq, STALE)]
    assert result.lost[0].detail.startswith("service holds version")
