"""The locust processes: started headless in processes of their own, their requests recorded,
a master with local workers, a start that fails before any fault, a death noticed.

Real locust on a fake vault API (`fakeapi.FakeApi`, TLS with its own CA), a few users for a
few seconds; every wait is a condition with a deadline."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drills.config import LoadSettings
from drills.errors import ConfigError
from drills.load.records import Records, boot_id
from drills.load.runner import LocustProcesses
from tests.load.fakeapi import FakeApi

QUICK = LoadSettings(users=3, spawn_rate=3, think_time=(0.1, 0.3), request_timeout=2.0,
                     max_duration=120)


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)
    return value


@pytest.fixture
def locust(fake_api: FakeApi, tmp_path: Path) -> Iterator[Callable[..., LocustProcesses]]:
    """Starts LocustProcesses on the fake API; every one is stopped after the test."""
    started: list[LocustProcesses] = []

    def start(settings: LoadSettings = QUICK, **kwargs: Any) -> LocustProcesses:
        procs = LocustProcesses(settings, fake_api.url, fake_api.ca, tmp_path / "load",
                                **kwargs)
        started.append(procs)
        procs.start(timeout=60)
        return procs

    yield start
    for procs in started:
        procs.stop()


def seen(procs: LocustProcesses) -> Records:
    return procs.log.read()


def test_every_request_is_recorded_on_our_monotonic_clock(
        locust: Callable[..., LocustProcesses]) -> None:
    """The apps enrol, read and update; each request and write has its record."""
    before = time.monotonic()
    procs = locust()
    wait_for(lambda: {r.name for r in seen(procs).requests} >= {
        "POST enroll/start-direct", "POST enroll/complete", "GET /vault/{id}",
        "PUT /vault/{id}"}, 60, "every kind of request")
    procs.stop()
    records = seen(procs)
    assert records.ready_at is not None
    assert all(r.ok for r in records.requests), {r.outcome for r in records.requests}
    assert all(before < r.at < time.monotonic() and r.latency > 0 for r in records.requests)
    acked = [w for w in records.writes if w.acked]
    assert {w.op for w in acked} == {"enroll", "put"}
    assert all(len(w.sha256) == 64 for w in acked)
    assert (procs.out_dir / "locust.log").exists()


def test_an_outage_is_recorded_as_failed_requests(fake_api: FakeApi,
                                                  locust: Callable[..., LocustProcesses]
                                                  ) -> None:
    """While the service has no responder, the apps' requests fail with that reason."""
    procs = locust()
    wait_for(lambda: any(r.ok for r in seen(procs).requests), 60, "a first success")
    fake_api.vaults.down = True
    try:
        wait_for(lambda: sum(r.outcome == "no-responders" for r in seen(procs).requests) >= 3,
                 60, "requests failing with no responders")
    finally:
        fake_api.vaults.down = False
    failed = [r for r in seen(procs).requests if not r.ok]
    assert any(r.detail.startswith("HTTP 500") for r in failed), {r.detail for r in failed}
    failed_at = max(r.at for r in failed)
    wait_for(lambda: any(r.ok and r.at > failed_at for r in seen(procs).requests), 60,
             "a success after the outage")


def test_a_master_with_two_local_workers_records_both(
        locust: Callable[..., LocustProcesses]) -> None:
    """Distributed: the workers send their records to the master, which writes them."""
    procs = locust(LoadSettings(users=4, spawn_rate=4, workers=2, think_time=(0.1, 0.3),
                                request_timeout=2.0, max_duration=120))
    assert set(procs.pids) == {"master", "worker 1", "worker 2"}
    workers = {str(procs.pids[w]) for w in ("worker 1", "worker 2")}
    wait_for(lambda: {r.node.rsplit("/", 1)[-1] for r in seen(procs).requests} >= workers,
             60, "requests recorded from both workers")
    assert all(r.node.endswith(tuple(workers)) for r in seen(procs).requests)
    assert all(r.ok for r in seen(procs).requests)
    procs.stop()
    assert not procs.alive()


def test_a_locust_that_cannot_start_is_a_config_error(fake_api: FakeApi,
                                                      tmp_path: Path) -> None:
    """A master that cannot listen exits at once: a clear error quoting locust's own log,
    raised before any fault, and no process left behind."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    procs = LocustProcesses(LoadSettings(users=2, workers=1, master_host="203.0.113.7",
                                         master_port=port, max_duration=60),
                            fake_api.url, fake_api.ca, tmp_path / "load")
    with pytest.raises(ConfigError, match="the load could not start") as raised:
        procs.start(timeout=60)
    assert "exited with code" in str(raised.value)
    assert "master.log" in str(raised.value)
    assert not procs.alive()
    for pid in procs.pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_master_address_not_of_this_machine_is_a_config_error(tmp_path: Path) -> None:
    """Found before anything starts."""
    procs = LocustProcesses(LoadSettings(users=2, workers=1, master_host="203.0.113.7"),
                            "https://127.0.0.1:1", None, tmp_path / "load")
    with pytest.raises(ConfigError, match=r"cannot listen on 203\.0\.113\.7"):
        procs.start(timeout=5)
    assert procs.pids == {}


def test_missing_locust_is_a_config_error(monkeypatch: pytest.MonkeyPatch, fake_api: FakeApi,
                                          tmp_path: Path) -> None:
    """Without the `load` extra the error says how to install it."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "locust" else real(name, *a))
    with pytest.raises(ConfigError, match=r"dr-drills\[load\]"):
        LocustProcesses(QUICK, fake_api.url, fake_api.ca, tmp_path / "load").start()


def test_a_locust_that_dies_is_noticed_with_the_moment(
        locust: Callable[..., LocustProcesses]) -> None:
    """The watcher notes when the process ended and how, and says it once."""
    ends: list[Any] = []
    procs = locust(on_end=ends.append)
    os.kill(procs.pids["locust"], signal.SIGKILL)
    killed = time.monotonic()
    ended = wait_for(lambda: procs.stopped, 30, "the death to be noticed")
    assert ended.fatal
    assert ended.code == -signal.SIGKILL
    assert killed <= ended.at
    assert ends == [ended]
    assert not procs.alive()


def test_records_of_this_machine_carry_its_boot_id(locust: Callable[..., LocustProcesses]
                                                   ) -> None:
    """So the harness knows they share its monotonic clock."""
    procs = locust()
    wait_for(lambda: seen(procs).requests, 60, "a request")
    text = procs.records.read_text()
    assert boot_id() in text


class _Zone:
    """A name server for one name: api.vettid.dev A 127.0.0.1, TTL 30 (dnslib)."""

    def __init__(self) -> None:
        self.queries = 0

    def resolve(self, request: Any, handler: Any) -> Any:
        from dnslib import RR

        self.queries += 1
        reply = request.reply()
        if str(request.q.qname).rstrip(".") == "api.vettid.dev":
            reply.add_answer(*RR.fromZone("api.vettid.dev. 30 A 127.0.0.1"))
        return reply


def test_the_api_name_resolves_through_the_given_dns_server(
        fake_api: FakeApi, tmp_path: Path) -> None:
    """As the apps (and the probes) do: asked of the twin's DNS server, kept for its TTL;
    the request goes to the address, whose certificate names it."""
    from dnslib.server import DNSServer

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    zone = _Zone()
    server = DNSServer(zone, address="127.0.0.1", port=port)
    server.start_thread()
    api_port = fake_api.url.rsplit(":", 1)[1]
    procs = LocustProcesses(QUICK, f"https://api.vettid.dev:{api_port}", fake_api.ca,
                            tmp_path / "load", dns=f"127.0.0.1:{port}")
    try:
        procs.start(timeout=60)
        wait_for(lambda: sum(r.ok for r in seen(procs).requests) >= 5, 60, "answered requests")
    finally:
        procs.stop()
        server.stop()
    assert all(r.ok for r in seen(procs).requests), {r.detail for r in seen(procs).requests}
    assert 1 <= zone.queries <= QUICK.users  # one question per user, then its TTL's cache

