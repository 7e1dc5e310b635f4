"""An enclave worker: one OS process per InService instance of the enclave ASG.

It does what the runbook's Nitro Enclave does for the vault: at boot it reads the sealing
key ARN and its NATS credentials from SSM; then it serves enroll/put/get/health over NATS
request/reply, sealing each vault under its own KMS data key (envelope encryption), the
ciphertext in S3 at `vaults/<vault-id>/data.enc` (SSE-KMS) and metadata in DynamoDB. It
replies only once S3 and DynamoDB have acknowledged, so an acknowledged write is durable.

Under overload it behaves as a service with a timeout should, not as a backlog: a bounded
number of requests run at once and a bounded number wait; a request that finds the queue full
is refused at once as busy; a request still queued when its caller's deadline passes is
dropped unexecuted and unanswered. Health is answered on the event loop, never behind work,
and says "serving" only while requests really complete.

Run: python -m drills.twin.worker --state-dir DIR --region us-east-1 --instance-id i-...
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from nats.aio.msg import Msg

from drills import vault
from drills.clients import Clients
from drills.twin import timing
from drills.twin.enclave import Enclave, EnclaveFailedToStart, error_text
from drills.twin.healthz import serve_health
from drills.twin.nats import NatsClusterSpec
from drills.twin.state import TwinState

# Sized from measurement on the 2-core reference machine (bench/service_capacity.py, both
# workers; other test runs shared the machine, so only differences that repeated count):
# - 2 threads: each request is two calls to the one moto process both workers share, the
#   bottleneck. 2 carried as much as 4 or 8 (60-120 reads/s at p99 < 250 ms; 1: 40-80);
#   more only wait inside moto, where nothing sheds them (overload p50 224/277/376 ms).
# - 6 queue slots: 2 + 6 = 8 admitted take ~160-250 ms at the 35-50 reads/s one worker
#   completes, within the 250 ms target and the probes' 0.5 s timeout. 16 let 15 % of an
#   overload burst be admitted and time out anyway; 2-4 refused load the service could
#   carry. 8 is also the harness's own concurrency (enrolment, RPO checks): never refused,
#   even when the queue group hands all of it to one worker (with 2 + 2, `twin up` failed).
# - The bound costs little below saturation (60-80 reads/s at p99 < 250 ms; 70-90 with 6
#   threads and no bound, interleaved on one twin) and holds beyond it: at 100 reads/s the
#   bounded workers answer 82-87/s and refuse the rest, unbounded ones 38-51/s (timeouts).
CONCURRENCY = 2
QUEUE_LIMIT = 6
#: No request completed for this long while work waits: the executor is wedged (threads
#: stuck in calls to AWS), and health says so. Far above the slowest completion seen at
#: saturation, far below botocore's 60 s read timeout the threads would otherwise sit in.
STALL_AFTER = 5.0


@dataclass(frozen=True, slots=True)
class Limits:
    """How much work one worker takes: threads, queued requests, and when it is stalled."""

    concurrency: int = CONCURRENCY
    queue: int = QUEUE_LIMIT
    stall_after: float = STALL_AFTER


class Status(StrEnum):
    """What the worker's health subject answers."""

    SERVING = "serving"  # takes work (possibly at capacity: then `busy` says so)
    STALLED = "stalled"  # holds work and has completed none for `stall_after` seconds


@dataclass(frozen=True, slots=True)
class Job:
    """An admitted request, waiting for a thread."""

    msg: Msg
    op: str
    req: dict[str, Any]
    deadline: float  # UTC epoch seconds, from the request: the caller stops waiting then


class ExecLog:
    """One JSON line per request actually executed, and one per request refused as busy
    (`"refused": true`, with the deadlines of the work it found admitted), for tests and
    benchmarks that count executions against deadlines and tell when the service served
    again. Written from the worker threads and the event loop, so a lock keeps lines whole."""

    __slots__ = ("_file", "_lock")

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()

    def __call__(self, job: Job, started: float) -> None:
        # `mono` is CLOCK_MONOTONIC, shared by every process of the machine: a benchmark
        # compares it with its own probes' times (its ground truth of when work was served).
        self._write({"op": job.op, "vault_id": job.req.get("vault_id"), "started": started,
                     "mono": time.monotonic(), "deadline": job.deadline})

    def refused(self, job: Job, held: list[float]) -> None:
        """`job` was refused because the queue was full of the work whose deadlines are
        `held` (who sent that work, and when, tells what the refusal was owed to)."""
        self._write({"op": job.op, "vault_id": job.req.get("vault_id"), "started": time.time(),
                     "mono": time.monotonic(), "deadline": job.deadline, "refused": True,
                     "held": held})

    def _write(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry)
        with self._lock:
            self._file.write(line + "\n")


class WorkQueue:
    """Bounded admission in front of the enclave: `concurrency` threads, at most `queue`
    requests waiting, stale work shed when a thread would start it.

    Why bounded: an unbounded queue turns an overload into a backlog of requests whose
    callers have given up, served long after the load stops (issue 13). Refusing at once
    ("busy") costs the caller nothing and keeps the queue short enough that what waits in
    it can still be answered in time. Counters are only touched on the event loop.
    """

    def __init__(self, enclave: Enclave, limits: Limits, log: ExecLog | None = None) -> None:
        self.enclave, self.limits, self.log = enclave, limits, log
        self.pool = ThreadPoolExecutor(limits.concurrency, thread_name_prefix="enclave")
        # Unbounded itself: admission bounds it, counting a job handed to an idle consumer
        # that has not woken yet as waiting (asyncio.Queue's maxsize would refuse early).
        self.jobs: asyncio.Queue[Job] = asyncio.Queue()
        self.admitted = self.running = self.completed = self.shed = self.refused = 0
        self.held: collections.Counter[float] = collections.Counter()  # admitted deadlines
        self._mark = time.monotonic()  # last completion, or when work arrived at an idle worker
        self._service = 0.05  # moving average of an execution's seconds, for retry_after

    @property
    def queued(self) -> int:
        """Requests admitted and waiting for a thread."""
        return self.admitted - self.running

    @property
    def full(self) -> bool:
        """Every thread is taken and the queue holds its limit: new work is refused."""
        return self.admitted >= self.limits.concurrency + self.limits.queue

    def offer(self, job: Job) -> bool:
        """Admit `job`, or False (counted as refused) when the queue is full."""
        if self.full:
            self.refused += 1
            if self.log is not None:
                self.log.refused(job, sorted(self.held.elements()))
            return False
        if self.admitted == 0:
            self._mark = time.monotonic()
        self.admitted += 1
        self.held[job.deadline] += 1
        self.jobs.put_nowait(job)
        return True

    def status(self) -> Status:
        """Serving, unless work waits and nothing has completed for `stall_after`."""
        idle_for = time.monotonic() - self._mark
        if self.admitted and idle_for > self.limits.stall_after:
            return Status.STALLED
        return Status.SERVING

    def retry_after(self) -> float:
        """Seconds until the queue has room again, estimated from recent executions."""
        return round(self.admitted / self.limits.concurrency * self._service, 3)

    def health(self) -> dict[str, Any]:
        """The health reply's fields: serving or not, and the load behind the answer."""
        status = self.status()
        fields: dict[str, Any] = {
            "ok": status is Status.SERVING, "status": status.value,
            "busy": self.full, "queued": self.queued, "running": self.running,
            "completed": self.completed, "shed": self.shed, "refused": self.refused,
            "concurrency": self.limits.concurrency, "queue_limit": self.limits.queue}
        if status is Status.STALLED:
            fields["error"] = (f"stalled: no request completed for "
                               f"{time.monotonic() - self._mark:.1f}s while {self.admitted} "
                               "wait; calls to KMS/S3/DynamoDB are hanging")
        return fields

    def busy(self) -> dict[str, Any]:
        """The reply to a request refused because the queue is full."""
        return {"ok": False, "busy": True, "retry_after": self.retry_after(),
                "error": f"busy: {self.running} requests running and {self.queued} "
                         "queued; retry later"}

    async def consume(self) -> None:
        """One of `concurrency` loops feeding the threads; never ends on a request's error."""
        loop = asyncio.get_running_loop()
        while True:
            job = await self.jobs.get()
            self.running += 1
            started = time.monotonic()
            try:
                reply = await loop.run_in_executor(self.pool, self._execute, job)
            finally:
                self.running -= 1
                self.admitted -= 1
                self.held[job.deadline] -= 1
                if self.held[job.deadline] <= 0:
                    del self.held[job.deadline]
                self.jobs.task_done()
                self._mark = time.monotonic()
            if reply is None:
                self.shed += 1
                continue
            self.completed += 1
            self._service += 0.1 * (time.monotonic() - started - self._service)
            await respond(job.msg, reply)

    def _execute(self, job: Job) -> dict[str, Any] | None:
        """In a thread: the request's work, unless its caller has already stopped waiting."""
        started = time.time()
        if started > job.deadline:
            return None  # queued past its deadline: nobody reads the answer
        if self.log is not None:
            self.log(job, started)
        try:
            result = getattr(self.enclave, job.op)(job.req)
        except Exception as exc:  # any failure is the caller's answer, never a crash
            return {"ok": False, "instance_id": self.enclave.instance_id,
                    "error": error_text(exc)}
        return {"ok": True, "instance_id": self.enclave.instance_id, **result}


async def respond(msg: Msg, reply: dict[str, Any]) -> None:
    """Answer `msg`; a connection that is down loses the answer, not the worker."""
    try:
        await msg.respond(json.dumps(reply).encode())
    except Exception as exc:  # the caller times out, as it would with a real enclave
        print(f"{datetime.now(UTC).isoformat()} could not reply on {msg.subject}: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def _op(subject: str) -> str:
    """The operation of a request subject (`vettid.vault.get`, `vettid.vault.health.<id>`)."""
    rest = subject[len(vault.PREFIX) + 1:]
    return rest.split(".", 1)[0]


async def serve(enclave: Enclave, urls: list[str], limits: Limits | None = None,
                ping_interval: float = 2.0, log: ExecLog | None = None,
                health_port: int | None = None) -> None:
    """Serve vault requests until SIGTERM/SIGINT, then drain.

    Health is answered on the event loop, never behind queued work (over NATS, and over HTTP
    on `health_port` for target-group health checks); every other request goes through a
    bounded `WorkQueue`, or is refused at once as busy.
    """
    import nats

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    work = WorkQueue(enclave, limits or Limits(), log)
    stamp = {"instance_id": enclave.instance_id}
    nc = await nats.connect(servers=urls, user=enclave.nats_creds["user"],
                            password=enclave.nats_creds["password"],
                            name=f"enclave-{enclave.instance_id}", max_reconnect_attempts=-1,
                            reconnect_time_wait=0.5, ping_interval=ping_interval,
                            max_outstanding_pings=2)

    async def handle(msg: Msg) -> None:
        try:
            req = json.loads(msg.data)
            deadline = float(req.get("deadline", math.inf))
        except (ValueError, TypeError, AttributeError) as exc:
            await respond(msg, {**stamp, "ok": False, "error": f"malformed request: {exc}"})
            return
        if deadline < time.time():
            return  # the caller gave up; answering would only delay live requests
        op = _op(msg.subject)
        if op == "health":
            await respond(msg, {**stamp, **work.health()})
        elif not work.offer(Job(msg, op, req, deadline)):
            await respond(msg, {**stamp, **work.busy()})

    http = (await serve_health("127.0.0.1", health_port, lambda: {**stamp, **work.health()})
            if health_port else None)
    consumers = [asyncio.ensure_future(work.consume()) for _ in range(work.limits.concurrency)]
    subs = [await nc.subscribe(vault.subject(op), queue=vault.QUEUE, cb=handle)
            for op in vault.OPS]
    subs.append(await nc.subscribe(vault.instance_health_subject(enclave.instance_id),
                                   cb=handle))
    await nc.flush()
    await stop.wait()
    for sub in subs:  # no new work; what was admitted is finished (or shed) and answered
        await sub.drain()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(work.jobs.join(), timeout=3)
    for task in consumers:
        task.cancel()
    await nc.drain()
    if http is not None:
        http.close()
    work.pool.shutdown(wait=False, cancel_futures=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="An enclave worker of the drills local twin.")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--instance-id", required=True)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY,
                        help="requests executed at once (threads)")
    parser.add_argument("--queue-limit", type=int, default=QUEUE_LIMIT,
                        help="requests waiting for a thread; more are refused as busy")
    parser.add_argument("--stall-after", type=float, default=STALL_AFTER,
                        help="seconds without a completion, work waiting: health says stalled")
    parser.add_argument("--exec-log", type=Path, default=None,
                        help="append a JSON line per executed request (for tests; default: "
                             "$DRILLS_EXEC_LOG_DIR/<instance-id>.jsonl when that is set)")
    parser.add_argument("--image-id", required=True,
                        help="the AMI the instance booted (its enclave build is measured)")
    parser.add_argument("--health-port", type=int, default=None,
                        help="also answer GET /health over HTTP on this loopback port")
    args = parser.parse_args(argv)
    state = TwinState.load(args.state_dir)
    clients = Clients.for_twin(state.aws_url, args.region)
    try:
        enclave = Enclave(clients, state.names, args.region, args.instance_id,
                          Path(state.state_dir) / "pki", args.image_id)
    except EnclaveFailedToStart as exc:
        print(f"{datetime.now(UTC).isoformat()} {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    spec = NatsClusterSpec.from_dict(state.regions[args.region].nats)
    limits = Limits(args.concurrency, args.queue_limit, args.stall_after)
    log_dir = os.environ.get("DRILLS_EXEC_LOG_DIR")
    exec_log = args.exec_log or (Path(log_dir) / f"{args.instance_id}.jsonl" if log_dir else None)
    log = ExecLog(exec_log) if exec_log else None
    asyncio.run(serve(enclave, spec.urls, limits,
                      timing.profile(state.profile).nats_ping_interval, log, args.health_port))


if __name__ == "__main__":
    main()
