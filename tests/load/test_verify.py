"""The load users' acknowledged writes read back: stale, corrupted, missing or unverified,
while the load runs on (a write sent after the last acknowledged one is accepted)."""

from __future__ import annotations

import hashlib

from drills.load.records import Write
from drills.load.verify import (
    MISSING,
    UNVERIFIED,
    VaultReader,
    count_loss,
    ledger_store,
    verify_writes,
)
from tests.load.fakeapi import FakeApi


def w(at: float, vault: str, content: str, acked: bool = True, op: str = "put") -> Write:
    return Write(at, 1_800_000_000.0 + at, vault, sha(content), op, acked)


def sha(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


HISTORY = [w(1, "a", "a1", op="enroll"), w(2, "a", "a2"), w(3, "a", "a3"),
           w(1, "b", "b1", op="enroll"), w(2, "b", "b2")]


def test_nothing_lost_when_every_vault_holds_its_last_acknowledged_write() -> None:
    """The expected content is the last acknowledged write of each vault."""
    result = count_loss(HISTORY, HISTORY, {"service": {"a": sha("a3"), "b": sha("b2")}})
    assert (result.acknowledged, result.lost_count, result.unverified) == (5, 0, 0)


def test_a_vault_rolled_back_lost_the_writes_after_the_content_it_holds() -> None:
    """`a` holds a1: a2 and a3 (acknowledged after a1) are lost, as `stale`."""
    result = count_loss(HISTORY, HISTORY, {"service": {"a": sha("a1"), "b": sha("b2")}})
    assert [(x.item, x.reason) for x in result.lost] == [("a", "stale"), ("a", "stale")]
    assert "a write of" in result.lost[0].detail


def test_corrupted_and_missing_vaults_lost_every_write_of_the_drill() -> None:
    """Content no load user wrote, or no vault at all."""
    result = count_loss(HISTORY, HISTORY, {"service": {"a": sha("zz"), "b": MISSING}})
    assert sorted((x.item, x.reason) for x in result.lost) == [
        ("a", "corrupted"), ("a", "corrupted"), ("a", "corrupted"),
        ("b", "missing"), ("b", "missing")]


def test_a_later_write_is_accepted_while_the_load_runs_on() -> None:
    """The drill's writes end at a3; a4 (sent later, even unanswered) may be what `a` holds."""
    later = [*HISTORY, w(9, "a", "a4", acked=False)]
    result = count_loss(HISTORY, later, {"service": {"a": sha("a4"), "b": sha("b2")}})
    assert result.lost_count == 0


def test_a_write_in_flight_is_accepted() -> None:
    """Sent while the stores were read, not answered yet: its content may be there."""
    sent = Write(9, 1_800_000_009.0, "b", sha("b3"), "put", False)
    result = count_loss(HISTORY, [*HISTORY, sent], {"service": {"a": sha("a3"),
                                                                "b": sha("b3")}})
    assert result.lost_count == 0


def test_no_answer_is_unverified_and_a_loss_in_either_store_counts_once() -> None:
    """The ledger lost b2 and the service could not say: b2 is lost once, nothing else is."""
    result = count_loss(HISTORY, HISTORY, {
        "service": {"a": sha("a3"), "b": UNVERIFIED},
        "ledger": {"a": sha("a3"), "b": sha("b1")}})
    assert [(x.item, x.reason) for x in result.lost] == [("b", "stale")]
    assert result.unverified == 1  # b1 (b2 is lost)


def test_unacknowledged_writes_are_reported_never_lost() -> None:
    """A write the service never acknowledged was never promised."""
    writes = [w(1, "c", "c1", op="enroll"), w(2, "c", "c2", acked=False)]
    result = count_loss(writes, writes, {"service": {"c": sha("c1")}})
    assert (result.acknowledged, result.unacknowledged, result.lost_count) == (1, 1, 0)


def test_vaults_are_read_through_the_api(fake_api: FakeApi) -> None:
    """The reader's GET is the apps' own; a rolled-back vault is found stale."""
    vaults = fake_api.vaults
    for content in ("d1", "d2"):
        vaults.data["d"] = content.encode()
        vaults.history.setdefault("d", []).append(content.encode())
    writes = [w(1, "d", "d1", op="enroll"), w(2, "d", "d2"), w(1, "gone", "g1", op="enroll")]
    reader = VaultReader(fake_api.url, fake_api.ca, timeout=2.0, attempts=1)
    assert reader(["d", "gone"]) == {"d": sha("d2"), "gone": MISSING}
    vaults.roll_back("d")
    result = verify_writes(writes, 0.0, 10.0, {"service": reader}, lambda: writes)
    assert sorted((x.item, x.reason) for x in result.lost) == [("d", "stale"),
                                                               ("gone", "missing")]


def test_an_unreadable_ledger_verifies_nothing() -> None:
    """A ledger that raises says nothing about the writes: unverified, not lost."""
    def broken(vaults: object) -> dict[str, str | None]:
        raise RuntimeError("throttled")

    assert ledger_store(broken)(["a"]) == {"a": UNVERIFIED}
    assert ledger_store(lambda vs: {"a": None})(["a"]) == {"a": MISSING}
