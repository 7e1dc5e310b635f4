"""The twin's DNS: Route 53's name servers for the twin's hosted zones, in their own process.

    python -m drills.twin.dns --aws-url URL --port P --pid-file F [--host 127.0.0.1]
                              [--refresh 1.0] [--log-file L] [--detach]

answers UDP and TCP queries (dnslib) authoritatively for the public hosted zones of the twin's
Route 53, as Route 53 answers them (Developer Guide, "Choosing a routing policy" and "How
Amazon Route 53 chooses records when health checking is configured"):

- each record set with its own TTL; a simple record set as it is;
- failover: the PRIMARY while it is healthy, else the SECONDARY; a record without a health
  check is healthy ("Route 53 always considers it to be healthy"), and when every record of
  the group is unhealthy Route 53 "considers all ... healthy" (so: the PRIMARY);
- weighted: one record drawn by Weight among the healthy ones (weight 0 only when no other
  is left); multivalue answer: up to eight healthy records;
- a CNAME is followed inside its zone; NXDOMAIN for a name of the zone with no records
  (NOERROR, no answer, for a name that has other types or names below it), both with the
  zone's SOA and a negative TTL of min(SOA TTL, SOA minimum); REFUSED outside its zones.

What it serves comes from the moto process (`route53/served`, see
`drills.twin.fidelity.route53`): the record sets as of their last INSYNC change, never a
PENDING one, and each health check's status. It polls every `--refresh` seconds, at once
on SIGHUP (`refresh_dns`), and when the oldest PENDING change it saw is due (so a change is
served once its propagation delay has passed, not up to a poll later). The public API cannot
give this (it shows a change at once, PENDING or not, and no health verdict), hence the
twin-only route. If the AWS endpoint stops answering, the last answers are kept, as Route
53's name servers keep serving when its control plane is down.

Twin choices: alias records, latency and geolocation routing (answered as their first healthy
record), wildcards, delegations below a zone, private zones and DNSSEC are not served.

`start_dns` launches the server detached and `stop_dns` stops it through its pid file alone
(its argv checked first, so a recycled pid is never signalled), as `drills.twin.aws` does.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnslib import QTYPE, RCODE, RR, DNSLabel, DNSRecord
from dnslib.server import DNSLogger, DNSServer

from drills.errors import TwinError
from drills.twin import control
from drills.twin.ports import free_port
from drills.twin.procs import live_pid, proc_state, signal_quietly, stop_process

__all__ = ["DnsEndpoint", "Names", "RecordSet", "Snapshot", "Zone", "answer", "endpoint_in",
           "is_running", "refresh_dns", "start_dns", "stop_dns"]

_MODULE = "drills.twin.dns"
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
_log = logging.getLogger(_MODULE)
MAX_CHAIN = 8  # CNAMEs followed inside a zone
MULTIVALUE = 8  # "Route 53 responds to DNS queries with up to eight healthy records"


def _norm(name: str) -> str:
    return name.lower().rstrip(".") + "."


# --------------------------------------------------------------------------- what is served


@dataclass(frozen=True, slots=True)
class RecordSet:
    """One resource record set as the name servers hold it, its values parsed once."""

    name: str
    type: str
    ttl: int
    rdata: tuple[Any, ...]
    set_identifier: str | None = None
    weight: int | None = None
    failover: str | None = None
    health_check_id: str | None = None
    multivalue: bool = False

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> RecordSet | None:
        """From a ResourceRecordSet (API shape); None for one the twin does not serve."""
        values = [str(v["Value"]) for v in raw.get("ResourceRecords") or []]
        if not values:  # an alias record (not served) or an empty one
            return None
        name, kind, ttl = _norm(str(raw["Name"])), str(raw["Type"]), int(raw.get("TTL") or 0)
        rdata: list[Any] = []
        for value in values:
            try:
                rdata.extend(rr.rdata for rr in RR.fromZone(f"{name} {ttl} IN {kind} {value}"))
            except Exception as exc:  # a value dnslib cannot parse: this one is not served
                _log.warning("not serving %s %s %r: %s", name, kind, value, exc)
        weight = raw.get("Weight")
        return cls(name, kind, ttl, tuple(rdata), raw.get("SetIdentifier"),
                   None if weight is None else int(weight), raw.get("Failover"),
                   raw.get("HealthCheckId"), bool(raw.get("MultiValueAnswer")))

    def records(self, label: DNSLabel) -> list[RR]:
        return [RR(label, getattr(QTYPE, self.type), ttl=self.ttl, rdata=r) for r in self.rdata]


@dataclass(frozen=True, slots=True)
class Zone:
    """A public hosted zone: its record sets grouped by (name, type), and every name in it."""

    name: str
    groups: Mapping[tuple[str, str], tuple[RecordSet, ...]]
    names: frozenset[str]  # names with records, and the names between them and the apex

    @classmethod
    def from_api(cls, name: str, record_sets: Iterable[Mapping[str, Any]]) -> Zone:
        apex = _norm(name)
        groups: dict[tuple[str, str], list[RecordSet]] = {}
        names: set[str] = set()
        for raw in record_sets:
            rrset = RecordSet.from_api(raw)
            if rrset is None or not rrset.rdata:
                continue
            groups.setdefault((rrset.name, rrset.type), []).append(rrset)
            owner = rrset.name
            while owner.endswith(apex) and owner not in names:
                names.add(owner)
                owner = owner.split(".", 1)[1] or "."
        return cls(apex, {k: tuple(v) for k, v in groups.items()}, frozenset(names))

    def holds(self, name: str) -> bool:
        return name == self.name or name.endswith("." + self.name)

    def negative(self) -> list[RR]:
        """The SOA for a negative answer, with TTL min(SOA TTL, SOA minimum) (RFC 2308)."""
        for soa in self.groups.get((self.name, "SOA"), ())[:1]:
            rdata = soa.rdata[0]
            return [RR(DNSLabel(self.name), QTYPE.SOA, ttl=min(soa.ttl, rdata.times[-1]),
                       rdata=rdata)]
        return []


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the name servers answer from at one moment."""

    zones: tuple[Zone, ...] = ()  # longest name first: the closest zone wins
    health: Mapping[str, bool] | None = None

    @classmethod
    def from_api(cls, served: Mapping[str, Any]) -> Snapshot:
        """From the `route53/served` reply; private zones are not served."""
        zones = [Zone.from_api(z["Name"], z["ResourceRecordSets"])
                 for z in served.get("zones", []) if not z.get("PrivateZone")]
        zones.sort(key=lambda z: len(z.name), reverse=True)
        return cls(tuple(zones), dict(served.get("health") or {}))

    def zone_for(self, name: str) -> Zone | None:
        return next((z for z in self.zones if z.holds(name)), None)

    def healthy(self, rrset: RecordSet) -> bool:
        check = rrset.health_check_id
        return check is None or (self.health or {}).get(check, True)


# --------------------------------------------------------------------------- answering


def choose(group: tuple[RecordSet, ...], snapshot: Snapshot,
           rng: random.Random) -> list[RecordSet]:
    """The record sets Route 53 answers with, of one group (same name and type)."""
    healthy = [s for s in group if snapshot.healthy(s)] or list(group)  # all down: all up
    if any(s.failover for s in group):
        for role in ("PRIMARY", "SECONDARY"):
            chosen = [s for s in healthy if s.failover == role]
            if chosen:
                return chosen[:1]
        return []
    if any(s.multivalue for s in group):
        return rng.sample(healthy, min(len(healthy), MULTIVALUE))
    if any(s.weight is not None for s in group):
        weighted = [s for s in healthy if (s.weight or 0) > 0]
        if weighted:
            return rng.choices(weighted, weights=[s.weight or 0 for s in weighted])
        return [rng.choice(healthy)]
    return healthy[:1]


def answer(request: DNSRecord, snapshot: Snapshot, rng: random.Random | None = None
           ) -> DNSRecord:
    """The authoritative reply to `request` from `snapshot`."""
    rng = rng or random.Random()
    reply = request.reply(ra=0, aa=1)
    name = _norm(str(request.q.qname))
    zone = snapshot.zone_for(name)
    if zone is None or request.header.opcode != 0:
        reply.header.aa, reply.header.rcode = 0, RCODE.REFUSED
        return reply
    qtype = QTYPE.get(request.q.qtype)
    label = request.q.qname
    for _ in range(MAX_CHAIN):
        cname = zone.groups.get((name, "CNAME"))
        if cname and qtype not in ("CNAME", "ANY"):
            chosen = choose(cname, snapshot, rng)
            for rrset in chosen:
                reply.add_answer(*rrset.records(label))
            target = _norm(str(chosen[0].rdata[0].label))
            if not zone.holds(target):
                return reply  # the resolver follows it further
            name, label = target, DNSLabel(target)
            continue
        types = sorted({t for n, t in zone.groups if n == name}) if qtype == "ANY" else [qtype]
        for kind in types:
            for rrset in choose(zone.groups.get((name, kind), ()), snapshot, rng):
                reply.add_answer(*rrset.records(label))
        break
    if not reply.rr or (QTYPE.get(reply.rr[-1].rtype) == "CNAME" and qtype != "CNAME"):
        if name not in zone.names:
            reply.header.rcode = RCODE.NXDOMAIN
        reply.add_auth(*zone.negative())
    return reply


class Names:
    """The dnslib resolver: answers from the latest snapshot, refreshed from the moto process."""

    def __init__(self, aws_url: str, account: str | None = None) -> None:
        self.aws_url = aws_url
        self.snapshot = Snapshot()
        self._body = {"account": account} if account else {}
        self._failing = False
        self.next_change_due: float | None = None

    def refresh(self) -> bool:
        """Fetch what the name servers serve now; on failure keep the last answers."""
        try:
            served = control.post(self.aws_url, "route53/served", self._body)
        except TwinError as exc:
            if not self._failing:
                _log.warning("keeping the last answers: %s", exc)
            self._failing = True
            return False
        if self._failing:
            _log.warning("the AWS endpoint answers again")
        self._failing = False
        self.snapshot = Snapshot.from_api(served)
        due = served.get("next_change_due")
        self.next_change_due = None if due is None else float(due)
        return True

    def until_next(self, refresh: float) -> float:
        """How long to wait before the next fetch: the poll interval, or less when a PENDING
        change is due sooner (it is INSYNC, and so served, from that fetch on)."""
        if self.next_change_due is None:
            return refresh
        return min(refresh, max(0.01, self.next_change_due))

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        try:
            return answer(request, self.snapshot)
        except Exception:  # one bad question is SERVFAIL and logged, the server goes on
            _log.exception("could not answer %s", request.q)
            reply = request.reply(ra=0, aa=0)
            reply.header.rcode = RCODE.SERVFAIL
            return reply


# --------------------------------------------------------------------------- the process


@dataclass(frozen=True, slots=True)
class DnsEndpoint:
    """Where a running twin DNS server listens (UDP and TCP), and the files naming it."""

    host: str
    port: int
    pid_file: str
    log_file: str
    aws_url: str


def endpoint_in(workdir: Path, aws_url: str, port: int = 0,
                host: str = "127.0.0.1") -> DnsEndpoint:
    """Where a server started in `workdir` on `port` (0: one free for UDP and TCP) will
    listen, and its files; nothing starts (so a twin can record it before it starts)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    return DnsEndpoint(host, port or free_port((host,), udp=True), str(workdir / "dns.pid"),
                       str(workdir / "dns.log"), aws_url)


def start_dns(workdir: Path, aws_url: str, port: int = 0, host: str = "127.0.0.1",
              refresh: float = 1.0, timeout: float = 20.0) -> DnsEndpoint:
    """Launch the DNS server detached, wait until it answers a query, and return it.

    `port=0` picks a port free for both UDP and TCP. Pid and log files go to `workdir`
    (`dns.pid`, `dns.log`). Raises `TwinError`, with the log's tail, if it does not come up.
    """
    endpoint = endpoint_in(workdir, aws_url, port, host)
    running = _pid(endpoint)
    if running is not None:
        raise TwinError(f"a twin DNS server is already running (pid {running}, pid file "
                        f"{endpoint.pid_file}); stop it with stop_dns() or `drills twin down`")
    Path(endpoint.pid_file).unlink(missing_ok=True)  # stale: its process is gone
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH"))
                                        if p)
    command = [sys.executable, "-m", _MODULE, "--aws-url", aws_url, "--host", host,
               "--port", str(endpoint.port), "--pid-file", endpoint.pid_file,
               "--log-file", endpoint.log_file, "--refresh", str(refresh), "--detach"]
    with open(endpoint.log_file, "ab") as log:
        launcher = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:  # the launcher exits 0 once both sockets are bound (the server lives on, forked)
        status = launcher.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        signal_quietly(launcher.pid, signal.SIGKILL)
        launcher.wait()
        status = None
    while status == 0 and not (Path(endpoint.pid_file).exists() and _answers(endpoint)):
        if time.monotonic() > deadline:
            stop_dns(endpoint)
            status = None
            break
        time.sleep(0.05)
    if status != 0:
        raise TwinError(f"the twin DNS server did not come up on {host}:{endpoint.port} "
                        f"within {timeout:g} s; see {endpoint.log_file}:\n{_tail(endpoint)}")
    return endpoint


def stop_dns(endpoint: DnsEndpoint, timeout: float = 10.0) -> None:
    """Stop the server named by the pid file (SIGTERM, then SIGKILL); idempotent."""
    pid = _pid(endpoint)
    if pid is not None:
        stop_process(pid, _MODULE, endpoint.pid_file, timeout=timeout)
        deadline = time.monotonic() + 5.0
        while proc_state(pid) not in (None, "Z"):
            if time.monotonic() > deadline:
                raise TwinError(f"the twin DNS server (pid {pid}) survived SIGKILL; check "
                                "`ps` for a process stuck in the kernel (state D)")
            time.sleep(0.02)
    Path(endpoint.pid_file).unlink(missing_ok=True)


def is_running(endpoint: DnsEndpoint) -> bool:
    """True if the pid file names a live twin DNS server (not whether it answers)."""
    return _pid(endpoint) is not None


def refresh_dns(endpoint: DnsEndpoint) -> None:
    """Ask the server to fetch what it serves now, without waiting for its next poll."""
    pid = _pid(endpoint)
    if pid is None:
        raise TwinError(f"no twin DNS server runs for {endpoint.pid_file}; start the twin "
                        "(drills twin up)")
    signal_quietly(pid, signal.SIGHUP)


def _pid(endpoint: DnsEndpoint) -> int | None:
    return live_pid(Path(endpoint.pid_file), _MODULE, endpoint.pid_file)


def _answers(endpoint: DnsEndpoint) -> bool:
    try:  # any reply (REFUSED for this name) means it serves
        DNSRecord.question("drills-twin-ready.invalid.").send(endpoint.host, endpoint.port,
                                                             timeout=0.5)
    except OSError:
        return False
    return True


def _tail(endpoint: DnsEndpoint, lines: int = 30) -> str:
    try:
        text = Path(endpoint.log_file).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(log is empty)"


def serve(host: str, port: int, aws_url: str, pid_file: Path, log_file: Path | None = None,
          refresh: float = 1.0, detach: bool = False) -> None:
    """Answer DNS on UDP and TCP until SIGTERM or SIGINT; SIGHUP refreshes at once.

    With `detach`, fork once both sockets are bound: the parent exits 0 at once (telling
    `start_dns` the port is bound), the child serves and outlives the caller.
    """
    handler: logging.Handler = (logging.FileHandler(log_file) if log_file
                                else logging.StreamHandler(sys.stderr))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    names = Names(aws_url)
    signals = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    # Blocked before any thread starts (threads inherit the mask): only sigwait sees them.
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    logger = DNSLogger(log="-request,-reply,-truncated", prefix=False, logf=_log.warning)
    servers = [DNSServer(names, address=host, port=port, tcp=tcp, logger=logger)
               for tcp in (False, True)]  # bound now
    if detach and os.fork() > 0:
        os._exit(0)
    wake, stop = threading.Event(), threading.Event()

    def poll() -> None:
        while not stop.is_set():
            wake.wait(names.until_next(refresh))
            wake.clear()
            names.refresh()

    names.refresh()
    for server in servers:
        server.start_thread()
    threading.Thread(target=poll, name="dns-refresh", daemon=True).start()
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    partial = pid_file.with_name(pid_file.name + ".tmp")
    partial.write_text(f"{os.getpid()}\n")
    partial.replace(pid_file)  # written then renamed: a reader never sees half a pid
    _log.info("twin DNS listening on %s:%d (UDP and TCP) for %s", host, port, aws_url)
    try:
        while (received := signal.sigwait(signals)) == signal.SIGHUP:
            wake.set()
        _log.info("stopping on %s", signal.Signals(received).name)
    finally:
        stop.set()
        wake.set()
        for server in servers:
            server.server.shutdown()
            server.server.server_close()
        pid_file.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m drills.twin.dns`."""
    parser = argparse.ArgumentParser(prog=f"python -m {_MODULE}",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--aws-url", required=True, help="the twin's AWS endpoint")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="UDP and TCP port to bind")
    parser.add_argument("--pid-file", type=Path, required=True, help="written once serving")
    parser.add_argument("--log-file", type=Path, help="log here instead of stderr")
    parser.add_argument("--refresh", type=float, default=1.0,
                        help="seconds between fetches of what is served (default 1)")
    parser.add_argument("--detach", action="store_true",
                        help="fork once bound; the parent exits 0")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.aws_url, args.pid_file, args.log_file, args.refresh,
          args.detach)


if __name__ == "__main__":
    main()
