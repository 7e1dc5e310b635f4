"""Processes found again from any process: pid files checked against /proc, signals that
tolerate a process already gone."""

from __future__ import annotations

import contextlib
import os
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


def still_running(pid: int, marker: str) -> bool:
    """True while process `pid` lives (not a zombie) and its argv still holds `marker` (so a
    recycled pid is never mistaken for it)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(marker.encode() in arg for arg in argv) and proc_state(pid) not in (None, "Z")


def live_pid(pid_file: Path, marker: str) -> int | None:
    """The pid in `pid_file` if that process lives and its argv holds `marker`: a stale pid
    file (after SIGKILL) or a recycled pid never leads us to signal a stranger."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if still_running(pid, marker) else None
