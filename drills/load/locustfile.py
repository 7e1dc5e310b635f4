"""The load of a drill: simulated apps on the vault API, run by locust in its own process.

Each user is one app on one device: it enrols its vault (start-direct, then complete), then
reads it (75 % of its actions), updates it (20 %) or enrols a new device (5 %), with think
time between actions, as `drills.api_client.ApiClient` makes the same calls. A read checks
the content against the user's last acknowledged write. A write that got no definite answer
(a timeout, an enclave error: it may still land) retires its vault, as the canary does, so
the expected content of every vault stays known; a refusal ("busy" 503, "no responders")
writes nothing and does not.

Attestation documents are required in every answer but not verified here: verifying costs
an ECDSA P-384 check per request on the machine that makes the load, and the probes already
verify every answer as the apps' cohorts do. Load measures error rate and latency.

Never imported by the harness: locust monkey-patches the whole process with gevent. This
file imports nothing from `drills` (the package's `__init__` loads boto3 and threads) and
`drills.load.records` reads what it writes. One JSON object per line:

    {"kind": "ready",   "users": N, ...}                  every user spawned (once)
    {"kind": "request", "name", "outcome", "latency", ...} each request, at its completion
    {"kind": "send",    "vault", "sha256", "op", ...}         each enrol/update, as sent
    {"kind": "write",   "vault", "sha256", "op", "acked", ...}   ... and as it ended

with, on every line, `mono` (CLOCK_MONOTONIC: the harness's own clock on the same machine),
`wall` (epoch seconds), `boot` (the machine's boot id: which monotonic clock) and `node`.
In distributed mode workers send their records to the master, which writes the file, so
workers on other machines are recorded too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import socket
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import gevent
from gevent import ssl as gevent_ssl
from locust import FastHttpUser, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from drills.hygiene import drill_vault_prefix

#: Seconds between flushes of the records (to the file, or to the master).
FLUSH_EVERY = 0.5
#: The custom message workers send their records to the master in.
MESSAGE = "drills_records"
#: Vault ids start with it by default, so hand-started workers' vaults are swept too.
LOAD_PREFIX = drill_vault_prefix("load")
#: The harness sets this on the processes it starts: quit when it is gone.
WATCH_PARENT = "DRILLS_LOAD_WATCH_PARENT"
#: The CA that verifies the API (the twin's own); unset: the system's.
CA_BUNDLE = "DRILLS_LOAD_CA_BUNDLE"
#: A write whose answer is one of these wrote nothing: its vault stays usable.
REFUSED = frozenset({"busy", "no-responders", "bad-request", "not-found"})


def boot_id() -> str:
    """Identifies this machine's boot, hence its CLOCK_MONOTONIC."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return f"host:{socket.gethostname()}"


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    parser.add_argument("--drills-log", default="", help="file the request records go to")
    parser.add_argument("--drills-prefix", default=LOAD_PREFIX,
                        help=f"vault id prefix (default {LOAD_PREFIX}: probe hygiene deletes "
                        "drills-* vaults after a run and on rollback)")
    parser.add_argument("--drills-think-min", type=float, default=2.0, help="seconds")
    parser.add_argument("--drills-think-max", type=float, default=6.0, help="seconds")
    parser.add_argument("--drills-timeout", type=float, default=5.0, help="request timeout")
    parser.add_argument("--drills-pace", type=float, default=0.0,
                        help="seconds between a user's actions (0: think time instead)")
    parser.add_argument("--drills-mix", choices=["app", "read"], default="app",
                        help="app: read 75, update 20, new device 5; read: reads only")
    parser.add_argument("--drills-dns", default="",
                        help="HOST:PORT of the DNS server the API's name resolves through "
                             "(the twin's); empty: the system's")


class Recorder:
    """Buffers records and flushes them: to the file (a single process or the master), or
    to the master (a worker)."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.boot = boot_id()
        self.node = f"{socket.gethostname()}/{os.getpid()}"
        self.buffer: list[dict[str, Any]] = []
        self.out = None
        path = getattr(environment.parsed_options, "drills_log", "")
        if path and not isinstance(environment.runner, WorkerRunner):
            self.out = Path(path).open("a", encoding="utf-8")  # noqa: SIM115 (kept open)

    def add(self, kind: str, **fields: Any) -> None:
        self.buffer.append({"kind": kind, "mono": time.monotonic(), "wall": time.time(),
                            "boot": self.boot, "node": self.node, **fields})

    def write(self, records: list[dict[str, Any]]) -> None:
        if self.out is not None and records:
            self.out.write("".join(json.dumps(r, separators=(",", ":")) + "\n"
                                   for r in records))
            self.out.flush()

    def flush(self) -> None:
        batch, self.buffer = self.buffer, []
        if not batch:
            return
        runner = self.environment.runner
        if isinstance(runner, WorkerRunner):
            runner.send_message(MESSAGE, {"records": batch})
        else:
            self.write(batch)

    def loop(self) -> None:
        while True:
            gevent.sleep(FLUSH_EVERY)
            self.flush()


RECORDER: Recorder | None = None


@events.init.add_listener
def _init(environment: Environment, **_: Any) -> None:
    global RECORDER
    RECORDER = Recorder(environment)
    if isinstance(environment.runner, MasterRunner):
        def received(environment: Environment, msg: Any, **_: Any) -> None:
            assert RECORDER is not None
            RECORDER.write(list(msg.data.get("records", [])))
        environment.runner.register_message(MESSAGE, received)
    gevent.spawn(RECORDER.loop)
    if os.environ.get(WATCH_PARENT):
        gevent.spawn(_watch_parent, environment, os.getppid())


def _watch_parent(environment: Environment, parent: int) -> None:
    """The harness died without stopping us (SIGKILL): stop the load, never outlive it."""
    while os.getppid() == parent:
        gevent.sleep(1.0)
    if environment.runner is not None:
        environment.runner.quit()
    os._exit(0)


@events.spawning_complete.add_listener
def _ready(user_count: int, **_: Any) -> None:
    if RECORDER is not None and RECORDER.out is not None:
        RECORDER.add("ready", users=user_count)
        RECORDER.flush()


@events.request.add_listener
def _request(name: str, response_time: float, exception: BaseException | None,
             context: dict[str, Any], **_: Any) -> None:
    if RECORDER is None:
        return
    text = "ok" if exception is None else str(exception)
    outcome, _sep, detail = text.partition(":")  # "busy: HTTP 503 ..." (VaultApp._report)
    outcome = outcome.strip()[:40] or "error"
    RECORDER.add("request", name=name, outcome=outcome, latency=response_time / 1000.0,
                 **({"detail": detail.strip()[:160]} if detail.strip() else {}))
    write = context.get("write")
    if write is not None:
        RECORDER.add("write", acked=outcome == "ok", **write)


def _sending(vault: str, sha256: str, op: str) -> None:
    """A write about to be sent: from now on the vault may hold its content."""
    if RECORDER is not None:
        RECORDER.add("send", vault=vault, sha256=sha256, op=op)


@events.quitting.add_listener
def _quitting(**_: Any) -> None:
    if RECORDER is not None:
        RECORDER.flush()


class Names:
    """The API's name resolved as the apps resolve it: asked of one DNS server (the twin's),
    each answer kept for its TTL, so a DNS failover reaches the load as it reaches the apps
    (`drills.resolve.Resolver` does the same for the probes; dnslib in both)."""

    def __init__(self, server: str) -> None:
        host, _, port = server.rpartition(":")
        self.server, self.port = host, int(port)
        self.cache: dict[str, tuple[str, float]] = {}

    def resolve(self, name: str) -> str:
        found = self.cache.get(name)
        if found is not None and time.monotonic() < found[1]:
            return found[0]
        from dnslib import QTYPE, DNSRecord

        reply = DNSRecord.parse(DNSRecord.question(name, "A").send(
            self.server, self.port, timeout=1.0))
        wanted, ttls, addresses = name.lower().rstrip(".") + ".", [], []
        for _ in range(len(reply.rr) + 1):  # follow the CNAME chain in the answer
            step = [rr for rr in reply.rr if str(rr.rname).lower() == wanted]
            addresses = [str(rr.rdata) for rr in step if rr.rtype == QTYPE.A]
            cnames = [rr for rr in step if rr.rtype == QTYPE.CNAME]
            ttls += [rr.ttl for rr in step if rr.rtype == QTYPE.A or rr in cnames[:1]]
            if addresses or not cnames:
                break
            wanted = str(cnames[0].rdata.label).lower()
        if not addresses:
            raise LookupError(f"{name} did not resolve at {self.server}:{self.port}")
        self.cache[name] = (addresses[0], time.monotonic() + min(ttls))
        return addresses[0]


def outcome_of(status: int, body: Any, error: BaseException | None) -> str:
    """A response in the words of `drills.vault.Unavailability` (plus 4xx kinds)."""
    if status == 0:
        name = type(error).__name__.lower() if error is not None else ""
        return "timeout" if "timeout" in name else "error"
    if 200 <= status < 300:
        return "ok" if isinstance(body, dict) else "malformed"
    if status == 503:
        return "busy"
    if status == 504:
        return "timeout"
    if status == 500 and isinstance(body, dict) and body.get("error") == "no responders":
        return "no-responders"
    if status == 404:
        return "not-found"
    if 400 <= status < 500:
        return "bad-request"
    return "error"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class VaultApp(FastHttpUser):
    """An app on one device: its vault, its last acknowledged content, its think time."""

    max_retries = 0  # an app's request is one request: a failure is data, not retried

    def __init__(self, environment: Environment) -> None:
        options = environment.parsed_options
        self.think = (float(getattr(options, "drills_think_min", 2.0)),
                      float(getattr(options, "drills_think_max", 6.0)))
        self.prefix = str(getattr(options, "drills_prefix", LOAD_PREFIX))
        self.pace = float(getattr(options, "drills_pace", 0.0) or 0.0)
        self.reads_only = getattr(options, "drills_mix", "app") == "read"
        self._last_start = 0.0
        self.network_timeout = float(getattr(options, "drills_timeout", 5.0))
        self.connection_timeout = min(self.network_timeout, 2.0)
        ca = os.environ.get(CA_BUNDLE)
        self.insecure = False
        self.ssl_context_factory = (  # type: ignore[assignment]
            (lambda: gevent_ssl.create_default_context(cafile=ca)) if ca and Path(ca).exists()
            else gevent_ssl.create_default_context)
        super().__init__(environment)
        dns = str(getattr(options, "drills_dns", "") or "")
        self.names = Names(dns) if dns else None
        self.vault: str | None = None
        self.expected = ""  # sha256 of the vault's last acknowledged content

    def wait_time(self) -> float:
        if self.pace:  # a fixed rate per user (benchmarks): the next action `pace` after
            now = time.monotonic()  # the start of the last one
            wait = max(0.0, self._last_start + self.pace - now) if self._last_start else (
                random.uniform(0, self.pace))  # users spread over the first period
            self._last_start = now + wait
            return wait
        return random.uniform(*self.think)

    # -- the app's actions ------------------------------------------------------------------
    @task(75)
    def read(self) -> None:
        if self.vault is None:
            self.enrol()
            return
        nonce = quote(b64(os.urandom(16)), safe="")
        if (url := self._url(f"/vault/{self.vault}?nonce={nonce}", "GET /vault/{id}")) is None:
            return
        with self.client.get(url, name="GET /vault/{id}", catch_response=True) as response:
            outcome, body = self._answer(response)
            if outcome == "ok":
                try:
                    data = base64.b64decode(str(body.get("data", "")), validate=True)
                except ValueError:
                    outcome = "malformed"
                else:  # anything but what this app last wrote
                    if hashlib.sha256(data).hexdigest() != self.expected:
                        outcome = "corrupted"
            self._report(response, outcome)

    @task(20)
    def update(self) -> None:
        if self.vault is None or self.reads_only:
            self.read()
            return
        data = self._content()
        sha = hashlib.sha256(data).hexdigest()
        if (url := self._url(f"/vault/{self.vault}", "PUT /vault/{id}")) is None:
            return
        _sending(self.vault, sha, "put")
        with self.client.put(url, name="PUT /vault/{id}",
                             json={"data": b64(data), "nonce": b64(os.urandom(16))},
                             context={"write": {"vault": self.vault, "sha256": sha,
                                                "op": "put"}},
                             catch_response=True) as response:
            outcome = self._written(response, sha)
        if outcome == "ok":
            self.expected = sha
        elif outcome not in REFUSED:
            self.vault = None  # it may still land: never written again (enrol anew)

    @task(5)
    def new_device(self) -> None:
        if self.reads_only and self.vault is not None:
            self.read()
            return
        self.enrol()

    def enrol(self) -> None:
        """start-direct (the enclave attests), then complete with the vault's content; the
        app's vault is the new one only once the enrolment is acknowledged."""
        device = f"{self.prefix}-{uuid.uuid4().hex[:12]}"
        start = self._url("/vault/enroll/start-direct", "POST enroll/start-direct")
        if start is None:
            return
        with self.client.post(start, name="POST enroll/start-direct",
                              json={"device_id": device, "device_type": "android",
                                    "invitation_code": f"LOAD-{device}",
                                    "nonce": b64(os.urandom(16))},
                              catch_response=True) as response:
            outcome, body = self._answer(response)
            session, vault = body.get("session_id"), body.get("vault_id")
            if outcome == "ok" and not (isinstance(session, str) and isinstance(vault, str)):
                outcome = "malformed"
            self._report(response, outcome)
        if outcome != "ok":
            return
        data = self._content()
        sha = hashlib.sha256(data).hexdigest()
        if (url := self._url("/vault/enroll/complete", "POST enroll/complete")) is None:
            return
        _sending(str(vault), sha, "enroll")
        with self.client.post(url, name="POST enroll/complete",
                              json={"session_id": session, "vault_id": vault,
                                    "data": b64(data), "nonce": b64(os.urandom(16))},
                              context={"write": {"vault": vault, "sha256": sha,
                                                 "op": "enroll"}},
                              catch_response=True) as response:
            outcome = self._written(response, sha)
        if outcome == "ok":
            self.vault, self.expected = str(vault), sha

    # -- plumbing ---------------------------------------------------------------------------
    def _url(self, path: str, name: str) -> str | None:
        """Where the request goes: `path` on the host, or on the address the host's name
        resolves to now (the certificate names the address too). None when the name does
        not resolve: recorded as that request's failure."""
        if self.names is None:
            return path
        parts = urlsplit(str(self.host))
        started = time.perf_counter()
        try:
            address = self.names.resolve(parts.hostname or "")
        except Exception as exc:  # no answer, NXDOMAIN, garbled: the app cannot call
            self.environment.events.request.fire(
                request_type="DNS", name=name, context={}, response=None, response_length=0,
                response_time=(time.perf_counter() - started) * 1000,
                exception=Exception(f"dns: {type(exc).__name__}: {exc}"))
            return None
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{address}{port}{path}"

    @staticmethod
    def _content() -> bytes:
        return f"load:{time.time():.6f}:".encode() + os.urandom(random.randint(32, 224))

    @staticmethod
    def _answer(response: Any) -> tuple[str, dict[str, Any]]:
        """How a request ended, and the JSON body of its answer ({} if none). A success
        must carry an attestation document."""
        try:
            body = json.loads(response.content or b"null")
        except ValueError:
            body = None
        outcome = outcome_of(response.status_code, body, getattr(response, "error", None))
        if outcome == "ok" and not isinstance(body.get("attestation"), str):
            outcome = "no-attestation"
        return outcome, body if isinstance(body, dict) else {}

    @staticmethod
    def _report(response: Any, outcome: str) -> None:
        if outcome == "ok":
            response.success()
            return
        status = response.status_code
        if status:
            try:
                body = json.loads(response.content or b"null")
            except ValueError:
                body = None
            said = body.get("message") or body.get("error") if isinstance(body, dict) else ""
            detail = f"HTTP {status} {str(said or '')[:120]}".strip()
        else:
            error = getattr(response, "error", None)
            detail = f"{type(error).__name__}: {error}"[:140] if error else "no answer"
        response.failure(f"{outcome}: {detail}")  # the listener splits the two at ':'

    def _written(self, response: Any, sha: str) -> str:
        """The outcome of a write: acknowledged only with the content's own hash."""
        outcome, body = self._answer(response)
        if outcome == "ok" and body.get("sha256") not in (None, sha):
            outcome = "corrupted"
        self._report(response, outcome)
        return outcome
