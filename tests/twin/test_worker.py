"""The enclave worker under overload (issue 13): real worker processes on a real NATS cluster
and a real moto server; the worker's limits are set small so a burst saturates it for sure.

Slowness is made with a real fault where a test needs requests held: the moto server is
frozen (SIGSTOP), so the worker's threads block in their AWS calls as they would on a
hanging dependency.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from drills.attestation import new_root
from drills.clients import Clients
from drills.loop import LoopThread
from drills.twin.aws import AwsEndpoint
from drills.twin.enclave import Enclave
from drills.twin.nats import NatsCluster
from drills.twin.procs import live_pid
from drills.twin.provision import provision_aws
from drills.twin.state import Names, RegionState, TwinState
from drills.vault import (
    PREFIX,
    Unavailability,
    VaultClient,
    VaultReply,
    VaultUnavailable,
    b64,
    connect,
    digest,
)
from tests.conftest import wait_for

REGION = "us-east-1"


@dataclass(frozen=True, slots=True)
class Seeded:
    """The twin this module's workers serve: its state directory and one enrolled vault."""

    state_dir: Path
    vault_id: str
    sha256: str
    image_id: str


@pytest.fixture(scope="module")
def seeded(aws: AwsEndpoint, clients: Clients, cluster: NatsCluster,
           tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """The runbook's stack on the module's moto, a state.json pointing workers at it and at
    the module's NATS cluster, and one vault enrolled through the enclave logic itself."""
    names = Names()
    made = provision_aws(clients, names, REGION, 0, cluster.spec.user, cluster.spec.password)
    state_dir = tmp_path_factory.mktemp("twin")
    new_root(state_dir / "pki")
    TwinState(str(state_dir), "fast", asdict(aws),
              {REGION: RegionState(REGION, cluster.spec.to_dict(), names.asg, 0)},
              names).save()
    vault_id = f"v-{uuid.uuid4().hex[:8]}"
    reply = Enclave(clients, names, REGION, "i-seed", state_dir / "pki", made.ami_id).enroll(
        {"vault_id": vault_id, "data": b64(b"seed" * 64)})
    return Seeded(state_dir, vault_id, reply["sha256"], made.ami_id)


@dataclass
class Client:
    """A vault client on its own event-loop thread and NATS connection."""

    loop: LoopThread
    vault: VaultClient

    def health(self, instance_id: str | None, timeout: float = 2.0) -> VaultReply:
        return self.loop.run(self.vault.health(timeout, instance_id=instance_id), timeout + 5)

    def get(self, vault_id: str, timeout: float) -> bytes:
        return self.loop.run(self.vault.get(vault_id, timeout), timeout + 5)


@pytest.fixture
def new_client(cluster: NatsCluster) -> Iterator[Callable[[], Client]]:
    """Make clients as separate callers would be (closed after the test)."""
    made: list[Client] = []

    def make() -> Client:
        loop = LoopThread("test-client")
        # One node for every client: a worker's subscriptions reach the other nodes through
        # routes a moment later, and "ready" must mean ready for every client of the test.
        nc = loop.run(connect(cluster.spec.urls[:1], cluster.spec.user, cluster.spec.password,
                              "test-worker"), timeout=15)
        made.append(Client(loop, VaultClient(nc)))
        return made[-1]

    yield make
    for client in made:
        client.loop.run(client.vault.nc.close(), timeout=10)
        client.loop.close()


@dataclass
class Worker:
    """A worker process and the file it logs each execution to."""

    instance_id: str
    proc: subprocess.Popen[bytes]
    exec_log: Path
    log: Path

    def executions(self) -> list[dict[str, Any]]:
        """What the worker executed: op, vault_id, started and deadline (UTC epoch s)."""
        return [e for e in self._logged() if not e.get("refused")]

    def refusals(self) -> list[dict[str, Any]]:
        """What the worker refused as busy, each with the deadlines of the work it held."""
        return [e for e in self._logged() if e.get("refused")]

    def _logged(self) -> list[dict[str, Any]]:
        if not self.exec_log.exists():
            return []
        return [json.loads(line) for line in self.exec_log.read_text().splitlines()]


@pytest.fixture
def start_worker(seeded: Seeded, tmp_path: Path,
                 new_client: Callable[[], Client]) -> Iterator[Callable[..., Worker]]:
    """Start a worker with the given limits; it is ready once its health subject answers."""
    started: list[Worker] = []
    probe = new_client()

    def start(concurrency: int, queue: int, stall_after: float = 30.0) -> Worker:
        iid = f"i-{uuid.uuid4().hex[:17]}"
        log, exec_log = tmp_path / f"{iid}.log", tmp_path / f"{iid}.exec.jsonl"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "drills.twin.worker", "--state-dir",
                 str(seeded.state_dir), "--region", REGION, "--instance-id", iid,
                 "--image-id", seeded.image_id,
                 "--concurrency", str(concurrency), "--queue-limit", str(queue),
                 "--stall-after", str(stall_after), "--exec-log", str(exec_log)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        worker = Worker(iid, proc, exec_log, log)
        started.append(worker)

        def ready() -> bool:
            assert proc.poll() is None, f"worker exited: {log.read_text()[-2000:]}"
            try:
                probe.health(iid, timeout=0.5)
            except VaultUnavailable:
                return False
            return True

        wait_for(ready, 30, f"worker {iid} to answer its health subject", step=0.1)
        return worker

    yield start
    for worker in started:
        worker.proc.terminate()
        try:
            worker.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            worker.proc.wait(timeout=5)


@contextmanager
def frozen_aws(aws: AwsEndpoint) -> Iterator[None]:
    """Freeze the moto server: every AWS call of the worker hangs until it is thawed."""
    pid = live_pid(Path(aws.pid_file), "drills.twin.aws", aws.pid_file)
    assert pid is not None, "the module's moto server is not running"
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@dataclass
class Burst:
    """What a burst of reads saw: outcome counts, and when its last read was sent."""

    outcomes: dict[str, int] = field(default_factory=dict)
    last_sent: float = 0.0  # UTC epoch seconds

    def add(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


async def burst(client: VaultClient, vault_id: str, rate: float, seconds: float,
                timeout: float, until: Callable[[], bool] = lambda: False) -> Burst:
    """Reads at `rate` per second for `seconds` (or until `until()`), not waiting for answers;
    returns once every read has its outcome."""
    result = Burst()

    async def one() -> None:
        try:
            await client.get(vault_id, timeout)
            result.add("ok")
        except VaultUnavailable as exc:
            result.add(exc.kind.value)

    tasks: list[asyncio.Task[None]] = []
    start = time.monotonic()
    while time.monotonic() - start < seconds and not until():
        tasks.append(asyncio.ensure_future(one()))
        result.last_sent = time.time()
        await asyncio.sleep(max(0.0, start + len(tasks) / rate - time.monotonic()))
    await asyncio.gather(*tasks)
    return result


def test_after_a_burst_a_fresh_request_is_answered_and_nothing_stale_ran(
        start_worker: Callable[..., Worker], new_client: Callable[[], Client],
        seeded: Seeded) -> None:
    """A burst far above capacity (400 reads/s, 0.15 s deadlines, at a worker with one thread
    and 32 queue slots) leaves no backlog: once it stops, the next read is answered at once
    (no busy refusal, well within its timeout), and every request the worker executed
    started before its deadline while others were shed from the queue."""
    worker = start_worker(concurrency=1, queue=32)
    loader, caller = new_client(), new_client()
    seen = loader.loop.run(burst(loader.vault, seeded.vault_id, 400, 2.0, 0.15), timeout=30)
    assert seen.outcomes.get("busy", 0) > 0, f"the burst did not saturate: {seen.outcomes}"

    # Refused while stale work is still being shed: retried; held behind a backlog: fails.
    assert wait_for(lambda: _read_unless_busy(caller, seeded.vault_id), 2.0,
                    "a fresh read to be answered after the burst", step=0.02) == b"seed" * 64
    stats = wait_for(lambda: _idle(caller.health(worker.instance_id)), 10,
                     "the worker to have nothing queued or running")

    executions = worker.executions()
    late = [e for e in executions if e["started"] > e["deadline"]]
    assert executions
    assert not late, f"{len(late)} requests ran past their deadline: {late[:3]}"
    assert len(executions) == stats["completed"]
    assert stats["shed"] > 0, "no queued request outlived its deadline: shedding untested"
    assert len(executions) >= seen.outcomes.get("ok", 0) + 1  # the fresh read ran, too
    assert len(executions) < sum(seen.outcomes.values())


def _read_unless_busy(client: Client, vault_id: str) -> bytes | None:
    try:
        return client.get(vault_id, timeout=2.0)
    except VaultUnavailable as exc:
        if exc.kind is Unavailability.BUSY:
            return None
        raise


def _idle(reply: VaultReply) -> dict[str, Any] | None:
    return reply.fields if reply.fields["queued"] == reply.fields["running"] == 0 else None


def test_health_answers_while_the_worker_is_saturated(
        start_worker: Callable[..., Worker], new_client: Callable[[], Client],
        seeded: Seeded) -> None:
    """While a burst keeps a worker's queue full, both health subjects (the per-instance one
    and the queue group's) answer "serving": health never waits behind work, and a worker
    at capacity still takes work."""
    worker = start_worker(concurrency=1, queue=4)
    loader, checker = new_client(), new_client()
    answers: list[VaultReply] = []
    done = False
    running = loader.loop.submit(burst(loader.vault, seeded.vault_id, 400, 20.0, 0.5,
                                       until=lambda: done))
    try:
        wait_for(lambda: checker.health(worker.instance_id).fields["refused"] > 0, 20,
                 "the worker to refuse work (saturated)")
        for _ in range(5):
            answers.append(checker.health(worker.instance_id))
            answers.append(checker.health(None))  # vettid.vault.health, queue group
        assert not running.done(), "the burst ended before the health checks did"
    finally:
        done = True
        seen = running.result(timeout=30)
    assert all(a.fields["status"] == "serving" for a in answers)
    assert {a.instance_id for a in answers} == {worker.instance_id}
    assert seen.outcomes.get("busy", 0) > 0


def test_a_full_queue_answers_busy_at_once(
        start_worker: Callable[..., Worker], new_client: Callable[[], Client],
        seeded: Seeded, aws: AwsEndpoint) -> None:
    """With its one thread and two queue slots taken (AWS hangs), a worker refuses the next
    request at once with a busy reply, which the client raises as VaultUnavailable of kind
    "busy" (a retry hint attached); the held requests complete once AWS answers again."""
    worker = start_worker(concurrency=1, queue=2)
    holder, caller = new_client(), new_client()
    with frozen_aws(aws):
        held = [holder.loop.submit(holder.vault.get(seeded.vault_id, 30)) for _ in range(3)]
        wait_for(lambda: _full(caller.health(worker.instance_id)), 20,
                 "one request running and two queued")
        with pytest.raises(VaultUnavailable) as refused:
            caller.get(seeded.vault_id, timeout=10)
    assert refused.value.kind is Unavailability.BUSY
    assert str(refused.value).startswith("busy: ")
    assert refused.value.retry_after is not None
    assert [h.result(timeout=30) for h in held] == [b"seed" * 64] * 3
    # The worker's log names the refusal and the three requests that held the queue (the
    # ground truth a benchmark reads to tell when a backlog stopped costing callers).
    (logged,) = worker.refusals()
    assert logged["op"] == "get"
    assert len(logged["held"]) == 3
    assert all(d > logged["started"] + 20 for d in logged["held"])  # the holders' 30 s
    assert logged["deadline"] < logged["started"] + 10.5  # the refused caller's own 10 s


def _full(reply: VaultReply) -> bool:
    return bool(reply.fields["busy"]) and reply.fields["running"] == 1


def test_health_is_not_serving_while_no_work_completes(
        start_worker: Callable[..., Worker], new_client: Callable[[], Client],
        seeded: Seeded, aws: AwsEndpoint) -> None:
    """A worker whose threads hang (AWS frozen) with work waiting stops claiming "serving"
    once nothing has completed for its stall threshold, and serves again when work moves."""
    worker = start_worker(concurrency=1, queue=2, stall_after=1.0)
    holder, checker = new_client(), new_client()

    def stalled() -> str | None:
        try:
            checker.health(worker.instance_id)
        except VaultUnavailable as exc:
            return str(exc)
        return None

    with frozen_aws(aws):
        held = holder.loop.submit(holder.vault.get(seeded.vault_id, 30))
        why = wait_for(stalled, 20, "health to stop saying serving")
    assert why.startswith("error: stalled:")
    assert held.result(timeout=30) == b"seed" * 64
    assert checker.health(worker.instance_id).fields["status"] == "serving"


MALFORMED = [
    pytest.param(b"<html>502</html>", id="not-json"),
    pytest.param(b"\xff\xfe", id="not-utf8"),
    pytest.param(b"[1, 2]", id="not-an-object"),
    pytest.param(b'{"ok": "yes"}', id="ok-not-boolean"),
    pytest.param(b'{"instance_id": "i-1"}', id="no-ok"),
    pytest.param(b'{"ok": false}', id="error-without-text"),
    pytest.param(b'{"ok": true, "instance_id": "i-1", "sha256": "x"}', id="get-without-data"),
    pytest.param(b'{"ok": true, "data": "AAAA", "sha256": "x"}', id="no-instance-id"),
    pytest.param(b'{"ok": true, "instance_id": "i-1", "data": "!!", "sha256": "x"}',
                 id="data-not-base64"),
    pytest.param('{"ok": true, "instance_id": "i-1", "data": "é", "sha256": "x"}'.encode(),
                 id="data-not-ascii"),
]


@pytest.fixture
def responder(new_client: Callable[[], Client]) -> Iterator[Callable[[bytes], str]]:
    """A stand-in worker on the module's cluster answering a private subject with the given
    bytes; returns that subject."""
    client = new_client()

    def answer_with(payload: bytes) -> str:
        subject = f"{PREFIX}.test.{uuid.uuid4().hex[:8]}"

        async def reply(msg: Any) -> None:
            await msg.respond(payload)

        async def subscribe() -> None:
            await client.vault.nc.subscribe(subject, cb=reply)
            await client.vault.nc.flush()

        client.loop.run(subscribe(), timeout=10)
        return subject

    return answer_with


def _call(client: Client, subject: str, op: str = "get") -> VaultReply:
    """One request to `subject`, retried while its subscription spreads through the routes."""
    def attempt() -> VaultReply | None:
        try:
            return client.loop.run(client.vault.call(op, {"vault_id": "v"}, 2.0, target=subject),
                                   timeout=10)
        except VaultUnavailable as exc:
            if exc.kind is Unavailability.NO_RESPONDERS:
                return None
            raise

    return wait_for(attempt, 10, f"a responder on {subject}", step=0.05)


@pytest.mark.parametrize("payload", MALFORMED)
def test_a_malformed_reply_is_an_error_never_another_exception(
        payload: bytes, responder: Callable[[bytes], str],
        new_client: Callable[[], Client]) -> None:
    """Whatever answers, the client raises VaultUnavailable("error", "malformed reply: ...")
    for a reply that is not a well-formed answer, never a JSON, key or base64 error."""
    subject = responder(payload)
    with pytest.raises(VaultUnavailable) as raised:
        _call(new_client(), subject)
    assert raised.value.kind is Unavailability.ERROR
    assert raised.value.detail.startswith("malformed reply: ")


def test_busy_and_well_formed_replies(responder: Callable[[bytes], str],
                                      new_client: Callable[[], Client]) -> None:
    """A busy reply is VaultUnavailable("busy") with its retry hint; an error reply keeps its
    text; a well-formed success is returned."""
    client = new_client()
    busy = responder(b'{"ok": false, "busy": true, "retry_after": 0.2, '
                     b'"error": "busy: 1 requests running and 2 queued; retry later"}')
    with pytest.raises(VaultUnavailable) as raised:
        _call(client, busy)
    assert (raised.value.kind, raised.value.retry_after) == (Unavailability.BUSY, 0.2)
    assert str(raised.value) == "busy: 1 requests running and 2 queued; retry later"
    failed = responder(b'{"ok": false, "instance_id": "i-1", "error": "NoSuchKey: gone"}')
    with pytest.raises(VaultUnavailable, match=r"^error: NoSuchKey: gone$"):
        _call(client, failed)
    data = b"hello"
    good = responder(json.dumps({"ok": True, "instance_id": "i-1", "data": b64(data),
                                 "sha256": digest(data), "version_id": ""}).encode())
    assert _call(client, good).instance_id == "i-1"
