"""The locust processes of a run: one headless locust, or a master and N local workers.

Each is a subprocess (`python -m locust -f drills/load/locustfile.py ...`) in a session of
its own, with its output in a log file next to the records. `start` returns once every user
has been spawned (the locustfile writes a `ready` record) and raises `ConfigError` (exit 2,
before any fault) with the end of locust's own log when it does not get there. A watcher
thread notes when a process ends on its own; `stop` ends them (SIGTERM, then SIGKILL),
only ever by the pids it started.

Bounded whatever happens: locust stops itself after `max_duration`, and the processes the
harness starts quit when the harness is gone (the locustfile watches its parent).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from drills.config import LoadSettings
from drills.errors import ConfigError
from drills.hygiene import drill_vault_prefix
from drills.journal import utc_now
from drills.load import LOCUSTFILE
from drills.load.records import RequestLog

#: Seconds `start` waits for locust to spawn every user, besides the spawn itself.
START_TIMEOUT = 90.0
LOOPBACK = {"0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


@dataclass(frozen=True, slots=True)
class Ended:
    """A locust process that ended on its own: which, when it was noticed (monotonic and
    UTC), its exit code, and the end of its log."""

    which: str  # "locust", "master", "worker 2"
    at: float
    utc: str
    code: int | None
    tail: str

    @property
    def fatal(self) -> bool:
        """True when the load stopped with it (a worker's load goes to the others)."""
        return not self.which.startswith("worker")


@dataclass(slots=True)
class _Process:
    which: str
    popen: subprocess.Popen[bytes]
    log: Path


class LocustProcesses:
    """The locust processes of one run, their records file and their logs in `out_dir`."""

    def __init__(self, settings: LoadSettings, host: str, ca_bundle: Path | None,
                 out_dir: Path, prefix: str = drill_vault_prefix("load"),
                 on_end: Callable[[Ended], None] | None = None,
                 extra: Sequence[str] = (), dns: str | None = None) -> None:
        self.settings, self.host, self.ca_bundle = settings, host, ca_bundle
        self.dns = dns  # HOST:PORT of the DNS server the host's name resolves through
        self.out_dir, self.prefix, self.on_end = out_dir, prefix, on_end
        self.extra = list(extra)  # more locustfile options, e.g. --drills-pace (benchmarks)
        self.records = out_dir / "requests.jsonl"
        self.log = RequestLog(self.records)
        self.ended: list[Ended] = []
        self.port: int | None = None
        self._procs: list[_Process] = []
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def distributed(self) -> bool:
        return bool(self.settings.workers or self.settings.remote_workers)

    @property
    def pids(self) -> dict[str, int]:
        """The pid of every process started, by role."""
        return {p.which: p.popen.pid for p in self._procs}

    @property
    def stopped(self) -> Ended | None:
        """The end that stopped the load, if it has stopped on its own."""
        with self._lock:
            return next((e for e in self.ended if e.fatal), None)

    # -- start ------------------------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start locust and wait until every user is spawned; ConfigError if it cannot."""
        if importlib.util.find_spec("locust") is None:
            raise ConfigError("--load needs locust, which is not installed: pip install "
                              "'dr-drills[load]' (or drop --load)")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        settings = self.settings
        head = "master" if self.distributed else "locust"
        command = [
            *self._common(), "--headless", "-u", str(settings.users), "-r", f"{settings.rate:g}",
            "-t", f"{max(1, round(settings.max_duration))}s", "--host", self.host,
            "--stop-timeout", "2", "--only-summary", "--exit-code-on-error", "0",
            "--drills-log", str(self.records), "--drills-prefix", self.prefix,
            "--drills-think-min", f"{settings.think_time[0]:g}",
            "--drills-think-max", f"{settings.think_time[1]:g}",
            "--drills-timeout", f"{settings.request_timeout:g}",
            *(["--drills-dns", self.dns] if self.dns else []), *self.extra]
        if self.distributed:
            self.port = settings.master_port or _free_port(settings.master_host)
            expect = settings.workers + settings.remote_workers
            command += ["--master", "--expect-workers", str(expect),
                        "--expect-workers-max-wait", f"{timeout:g}",
                        "--master-bind-host", settings.master_host,
                        "--master-bind-port", str(self.port)]
        try:
            self._spawn(head, command)
            for n in range(1, settings.workers + 1):
                self._spawn(f"worker {n}", [
                    *self._common(), "--worker", "--master-host",
                    LOOPBACK.get(settings.master_host, settings.master_host),
                    "--master-port", str(self.port)])
            self._wait_ready(timeout + settings.users / settings.rate)
            self._wait_enrolled(2 * settings.think_time[1] + 4 * settings.request_timeout)
        except BaseException:
            self.stop()
            raise
        self._watcher = threading.Thread(target=self._watch, name="drills-load-watch",
                                         daemon=True)
        self._watcher.start()

    def _common(self) -> list[str]:
        return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "WARNING"]

    def _spawn(self, which: str, command: list[str]) -> None:
        env = dict(os.environ, DRILLS_LOAD_WATCH_PARENT="1", PYTHONUNBUFFERED="1")
        env.pop("DRILLS_LOAD_CA_BUNDLE", None)
        if self.ca_bundle is not None:
            env["DRILLS_LOAD_CA_BUNDLE"] = str(self.ca_bundle)
        log = self.out_dir / f"{which.replace(' ', '-')}.log"
        with log.open("ab") as out:
            # cwd: the log folder, so no locust.conf or pyproject.toml of the caller applies
            popen = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.out_dir, env=env,
                                     start_new_session=True)
        self._procs.append(_Process(which, popen, log))

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.log.read().ready_at is None:
            for proc in self._procs:
                code = proc.popen.poll()
                if code is not None:
                    raise ConfigError(
                        f"the load could not start: locust ({proc.which}) exited with code "
                        f"{code} before spawning its users: {_tail(proc.log) or 'no output'}; "
                        f"its log is {proc.log}")
            if time.monotonic() > deadline:
                waiting = (f"; {self.settings.workers + self.settings.remote_workers} "
                           "worker(s) were expected" if self.distributed else "")
                raise ConfigError(
                    f"the load could not start: locust did not spawn its "
                    f"{self.settings.users} users within {timeout:.0f}s{waiting}: "
                    f"{_tail(self._procs[0].log) or 'no output'}")
            time.sleep(0.1)

    def _wait_enrolled(self, timeout: float) -> None:
        """Let the spawn's burst of enrolments pass (each user enrols first), so that the
        first drill's steady state sees the load's usual mix, not its start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = {w.vault for w in self.log.read().writes if w.op == "enroll"}
            if len(done) >= self.settings.users:
                return
            time.sleep(0.2)

    # -- while it runs ------------------------------------------------------------------------
    def _watch(self) -> None:
        seen: set[str] = set()
        while not self._stopping.wait(0.25):
            for proc in self._procs:
                code = proc.popen.poll()
                if code is None or proc.which in seen or self._stopping.is_set():
                    continue
                seen.add(proc.which)
                ended = Ended(proc.which, time.monotonic(), utc_now(), code, _tail(proc.log))
                with self._lock:
                    self.ended.append(ended)
                if self.on_end is not None:
                    self.on_end(ended)
            if len(seen) == len(self._procs):
                return

    def alive(self) -> bool:
        """True while the load runs (its master or single process has not ended)."""
        return bool(self._procs) and self._procs[0].popen.poll() is None

    # -- stop -------------------------------------------------------------------------------
    def stop(self, timeout: float = 15.0) -> None:
        """End every process started (idempotent): SIGTERM (locust writes its summary),
        SIGKILL for any still there after `timeout`."""
        self._stopping.set()
        for proc in self._procs:  # the master first: it tells its workers to quit
            _signal(proc.popen, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=min(timeout, 10.0))
        for proc in self._procs:
            if proc.popen.poll() is None:
                _signal(proc.popen, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(timeout=5.0)
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=2.0)


def _signal(popen: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal a process we started, by its own pid, if it still runs."""
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(popen.pid, sig)


def _free_port(host: str) -> int:
    """A port free on `host` now, for the master to listen on."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.bind((LOOPBACK.get(host, host) if host in ("*", "") else host, 0))
            return int(sock.getsockname()[1])
    except OSError as exc:
        raise ConfigError(f"the load could not start: the locust master cannot listen on "
                          f"{host} ({exc.strerror}); pass --master-host with an address of "
                          "this machine") from None


def _tail(log: Path, lines: int = 6) -> str:
    """The last meaningful lines of a log, on one line."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[-1200:]
