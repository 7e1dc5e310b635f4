"""The fault journal: a durable, append-only record of every fault, written before it acts.

Each line is a JSON event (`injecting`, `injected`, `reverted`, `revert-failed`) about one
fault id; the file is fsync'd after every line, so a fault that was about to act is on disk
even if the harness is killed the next instant. Whatever has an `injecting`/`injected` event
and no `reverted` is *pending*: the next run, or `drills rollback`, reverts it. A line torn by
a kill mid-write is ended by the next write and skipped when read: its writer never went on.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from drills.errors import JournalError


class FaultState(StrEnum):
    """Where a fault is in its life."""

    INJECTING = "injecting"  # journaled, about to act (may or may not have acted)
    INJECTED = "injected"
    REVERTED = "reverted"
    REVERT_FAILED = "revert-failed"
    ABANDONED = "abandoned"  # its target no longer exists (a twin that was taken down)


def utc_now() -> str:
    """An ISO-8601 UTC timestamp with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_at(monotonic: float) -> str:
    """The UTC timestamp of an instant read from time.monotonic()."""
    moment = datetime.now(UTC) - timedelta(seconds=time.monotonic() - monotonic)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class FaultEntry:
    """The latest known state of one journaled fault."""

    fault_id: str
    kind: str
    target: str
    params: Mapping[str, Any]
    run_id: str
    env: str  # which system it acted on: "twin:<dir>@<started>" or "aws:<account>/<region>"
    state: FaultState
    injected_utc: str
    reverted_utc: str | None
    error: str | None

    @property
    def pending(self) -> bool:
        """True when the fault may still be acting and must be reverted."""
        return self.state in (FaultState.INJECTING, FaultState.INJECTED, FaultState.REVERT_FAILED)


class Journal:
    """Append-only JSON-lines journal at `path`, safe to share between processes."""

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _append(self, event: Mapping[str, Any]) -> None:
        data = (json.dumps(event, sort_keys=True, default=str) + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_APPEND keeps lines from concurrent writers whole; fsync makes them durable.
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # end a line torn by a kill, or ours would join it
                while data:  # a short write must fail here, before the fault acts
                    data = data[os.write(fd, data):]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise JournalError(f"cannot write fault journal {self.path}: {exc.strerror}; "
                               "fix the path or permissions before injecting faults") from exc

    def record_injecting(self, kind: str, target: str, params: Mapping[str, Any],
                         run_id: str, env: str) -> str:
        """Journal a fault that is about to act; returns its id."""
        fault_id = f"f-{uuid.uuid4().hex[:12]}"
        self._append({"event": FaultState.INJECTING.value, "fault_id": fault_id, "kind": kind,
                      "target": target, "params": dict(params), "run_id": run_id, "env": env,
                      "at": utc_now(), "pid": os.getpid()})
        return fault_id

    def record(self, fault_id: str, state: FaultState, error: str | None = None) -> None:
        """Journal a later state of fault `fault_id`."""
        event: dict[str, Any] = {"event": state.value, "fault_id": fault_id, "at": utc_now()}
        if error:
            event["error"] = error
        self._append(event)

    def _events(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                # A line torn by a kill mid-write (the last one, or one a later write ended)
                # is expected: its writer never went on. Anything else is not.
                if number == len(lines) or _torn(line):
                    continue
                raise JournalError(f"{self.path}:{number}: corrupt journal line; "
                                   "inspect it, then move the file aside") from None

    def entries(self) -> list[FaultEntry]:
        """Every fault in the journal with its latest state, oldest first."""
        first: dict[str, dict[str, Any]] = {}
        latest: dict[str, dict[str, Any]] = {}
        for event in self._events():
            fid = event["fault_id"]
            if event["event"] == FaultState.INJECTING.value:
                first[fid] = event
            latest[fid] = event
        out = []
        for fid, start in first.items():
            last = latest[fid]
            state = FaultState(last["event"])
            out.append(FaultEntry(
                fault_id=fid, kind=start["kind"], target=start["target"],
                params=start["params"], run_id=start["run_id"], env=start.get("env", ""),
                state=state,
                injected_utc=start["at"],
                reverted_utc=last["at"] if state is FaultState.REVERTED else None,
                error=last.get("error"),
            ))
        return out

    def pending(self) -> list[FaultEntry]:
        """Faults that are not known to be reverted, newest first (revert in reverse)."""
        return [e for e in reversed(self.entries()) if e.pending]


def _torn(line: str) -> bool:
    """A journal line cut short: it opens as every event does and never closes."""
    return line.startswith("{") and not line.rstrip().endswith("}")
