"""The fault journal: durable, append-only, survives torn writes, finds pending faults."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from drills.errors import JournalError
from drills.journal import FaultState, Journal


def test_pending_until_reverted(tmp_path: Path) -> None:
    """A fault is pending from `injecting` until `reverted`; newest pending first."""
    journal = Journal(tmp_path / "j.jsonl")
    a = journal.record_injecting("k", "t1", {"x": 1}, "run-1", "twin:a")
    b = journal.record_injecting("k", "t2", {"x": 2}, "run-1", "twin:a")
    journal.record(a, FaultState.INJECTED)
    assert [e.fault_id for e in journal.pending()] == [b, a]
    journal.record(a, FaultState.REVERTED)
    (entry,) = journal.pending()
    assert entry.fault_id == b
    assert entry.state is FaultState.INJECTING
    assert entry.params == {"x": 2}
    assert entry.env == "twin:a"


def test_revert_failed_stays_pending(tmp_path: Path) -> None:
    """A failed revert keeps the fault pending so a later rollback tries again."""
    journal = Journal(tmp_path / "j.jsonl")
    fid = journal.record_injecting("k", "t", {}, "r", "e")
    journal.record(fid, FaultState.REVERT_FAILED, "boom")
    (entry,) = journal.pending()
    assert entry.error == "boom"


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    """A line cut short by a kill mid-write does not hide the entries before it."""
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    fid = journal.record_injecting("k", "t", {}, "r", "e")
    with path.open("a") as handle:
        handle.write('{"event": "reverted", "fault_')
    assert [e.fault_id for e in journal.pending()] == [fid]


def test_a_torn_line_is_ended_by_the_next_write(tmp_path: Path) -> None:
    """A write after a torn line (the next run's, or `drills rollback`'s) starts a line of its
    own: it is not lost in the fragment, and the fragment, no longer last, is still skipped
    rather than called corruption."""
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    fid = journal.record_injecting("k", "t", {}, "r", "e")
    with path.open("a") as handle:
        handle.write('{"at": "2026-01-01T00:00:00.000Z", "event": "rever')
    journal.record(fid, FaultState.REVERTED)
    assert journal.pending() == []
    assert [e.state for e in journal.entries()] == [FaultState.REVERTED]


def test_corruption_in_the_middle_is_an_error(tmp_path: Path) -> None:
    """A corrupt line that is not the last one is reported with its line number."""
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    journal.record_injecting("k", "t", {}, "r", "e")
    with path.open("a") as handle:
        handle.write("garbage\n")
    journal.record_injecting("k", "t", {}, "r", "e")
    with pytest.raises(JournalError, match=":2:"):
        journal.entries()


def _write_many(path: str, n: int) -> None:
    journal = Journal(Path(path))
    for i in range(n):
        journal.record_injecting("k", f"t{i}", {"i": i}, "r", "e")


def test_concurrent_writers_keep_lines_whole(tmp_path: Path) -> None:
    """Several processes appending at once never interleave a line."""
    path = tmp_path / "j.jsonl"
    procs = [multiprocessing.Process(target=_write_many, args=(str(path), 50)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=30)
    assert len(Journal(path).entries()) == 150


def test_unwritable_journal_is_a_clear_error(tmp_path: Path) -> None:
    """A journal that cannot be written stops the fault before it acts."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(JournalError, match="cannot write fault journal"):
        Journal(blocker / "j.jsonl").record_injecting("k", "t", {}, "r", "e")
