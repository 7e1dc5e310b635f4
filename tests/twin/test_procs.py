"""Finding the twin's processes again by pid: never a stranger that inherited the pid."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from drills.twin.procs import find, live_pid, proc_state, still_running, stop_process
from tests.conftest import wait_for


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process whose argv is `sleep 300`, past its exec (right after the fork its
    cmdline is empty for a moment, and `find` does not wait on any process)."""
    proc = subprocess.Popen(["sleep", "300"])
    wait_for(lambda: still_running(proc.pid, "sleep", "300"), 10, "sleep to be exec'd")
    yield proc
    proc.kill()
    proc.wait()


def test_still_running_needs_every_marker_in_the_argv(sleeper: subprocess.Popen[bytes]) -> None:
    assert still_running(sleeper.pid)
    assert still_running(sleeper.pid, "sleep", "300")
    assert not still_running(sleeper.pid, "sleep", "drills.twin.worker")
    assert not still_running(0)


def test_a_zombie_is_not_running(sleeper: subprocess.Popen[bytes]) -> None:
    sleeper.kill()
    wait_for(lambda: proc_state(sleeper.pid) == "Z", 10, "the process to become a zombie")
    assert not still_running(sleeper.pid, "sleep")
    assert sleeper.pid not in find("sleep", "300")


def test_find_lists_the_live_processes_holding_every_marker(
        sleeper: subprocess.Popen[bytes]) -> None:
    found = find("sleep", "300")
    assert found[sleeper.pid] == ["sleep", "300"]
    assert sleeper.pid not in find("sleep", "drills.twin.worker")


def test_live_pid_reads_the_file_and_checks_the_process(tmp_path: Path,
                                                         sleeper: subprocess.Popen[bytes]
                                                         ) -> None:
    pid_file = tmp_path / "x.pid"
    assert live_pid(pid_file, "sleep") is None  # no file
    pid_file.write_text("not a pid")
    assert live_pid(pid_file, "sleep") is None
    pid_file.write_text(f"{sleeper.pid}\n")
    assert live_pid(pid_file, "sleep") == sleeper.pid
    assert live_pid(pid_file, "nats-server") is None  # a recycled pid: someone else's


def test_stop_process_leaves_a_stranger_alone(sleeper: subprocess.Popen[bytes]) -> None:
    stop_process(sleeper.pid, "drills.twin.controller", timeout=1)
    assert sleeper.poll() is None


def test_stop_process_stops_a_frozen_process(sleeper: subprocess.Popen[bytes]) -> None:
    sleeper.send_signal(signal.SIGSTOP)
    wait_for(lambda: proc_state(sleeper.pid) == "T", 10, "the process to stop")
    stop_process(sleeper.pid, "sleep", "300", timeout=5)
    assert sleeper.wait(timeout=10) == -signal.SIGTERM


def test_a_process_still_in_exec_is_recognised() -> None:
    """Right after exec a process shows an empty cmdline for a moment; it must not be taken
    for a stranger (or `stop_process` would skip a worker it should stop)."""
    missed = 0
    for _ in range(100):
        proc = subprocess.Popen(["sleep", "300"])
        missed += not still_running(proc.pid, "sleep", "300")
        proc.kill()
        proc.wait()
    assert missed == 0
