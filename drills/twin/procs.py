"""The twin's processes found again from any process: pid files and records are checked
against /proc, so a stale pid (after SIGKILL, a reboot or a restored snapshot) that now
belongs to a stranger is never signalled; signals tolerate a process already gone."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def proc_state(pid: int) -> str | None:
    """One-letter state of a process (R, S, T, Z, ...) from /proc, None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):  # the command name before ")" may hold anything
        return None


def signal_quietly(pid: int, sig: int) -> None:
    """Send `sig` to `pid`; a process that is already gone is not an error."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def still_running(pid: int, *markers: str) -> bool:
    """True while process `pid` lives (not a zombie) and its argv holds every marker (so a
    recycled pid is never mistaken for it)."""
    if pid <= 0:
        return False
    return _described(pid, _argv(pid), markers)


def find(*markers: str) -> dict[int, list[str]]:
    """Every live process (not a zombie) whose argv holds every marker: pid -> argv. A
    process in the middle of its exec (an empty cmdline for a moment) is not waited for,
    so not listed: kernel threads' cmdlines are always empty, and waiting on each would
    make one scan take seconds."""
    found: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        argv = _argv(pid, patience=0)
        if argv and _described(pid, argv, markers):
            found[pid] = [arg.decode(errors="replace") for arg in argv if arg]
    return found


def _described(pid: int, argv: list[bytes], markers: tuple[str, ...]) -> bool:
    """Every marker is in one of `argv`'s arguments, and `pid` lives (not a zombie)."""
    return (all(any(m.encode() in arg for arg in argv) for m in markers)
            and proc_state(pid) not in (None, "Z"))


def _argv(pid: int, patience: float = 0.5) -> list[bytes]:
    """The argv of `pid` from /proc ([] if it is gone). A process in the middle of exec
    shows an empty cmdline for a moment: wait that out rather than misjudge it."""
    deadline = time.monotonic() + patience
    while True:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return []
        if raw or time.monotonic() > deadline or proc_state(pid) in (None, "Z"):
            return raw.split(b"\0") if raw else []
        time.sleep(0.002)


def live_pid(pid_file: Path, *markers: str) -> int | None:
    """The pid in `pid_file` if that process lives and its argv holds every marker."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if still_running(pid, *markers) else None


def stop_process(pid: int, *markers: str, timeout: float) -> None:
    """SIGTERM (and SIGCONT, in case it is frozen) to `pid` if it is still the process the
    markers describe, then SIGKILL if it has not gone after `timeout` seconds."""
    if not still_running(pid, *markers):
        return
    for sig in (signal.SIGTERM, signal.SIGCONT):
        signal_quietly(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc_state(pid) in (None, "Z"):
            return
        time.sleep(0.02)
    signal_quietly(pid, signal.SIGKILL)
