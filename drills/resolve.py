"""Name resolution as the vault's clients do it: ask a DNS server, keep the answer for its TTL.

The probes, the canary and the load resolve `api.vettid.dev` through `Resolver` and connect
to the address it gives (with the TLS name `api.vettid.dev`), so a DNS failover reaches them
only when the name server answers differently *and* their cached answer has expired: the
record's TTL is part of the measured RTO, as it is for the apps.

    resolver = Resolver("127.0.0.1", dns.port)
    address = resolver.resolve("api.vettid.dev")   # queries, then cached for the TTL

Built on dnslib (the library the twin's DNS server uses: one DNS library in the project).
Queries go over UDP, and again over TCP when the reply is truncated. A CNAME chain in the
answer is followed; the answer is kept for the smallest TTL along it (0: never kept).
Negative answers (NXDOMAIN, no address) are not kept: RFC 2308 would keep them for the
zone's SOA minimum, 900 s with Route 53's default SOA, which would hide for 15 minutes a
record created during a drill; the caller sees a `ResolveError` each time instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from dnslib import QTYPE, RCODE, DNSError, DNSRecord

from drills.errors import TargetError

__all__ = ["Answer", "ResolveError", "Resolver"]


class ResolveError(TargetError):
    """A name did not resolve to an address (no answer, NXDOMAIN, REFUSED, SERVFAIL)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The addresses of a name, its TTL, and until when (monotonic) the answer is kept."""

    name: str
    addresses: tuple[str, ...]
    ttl: int
    expires: float


class Resolver:
    """A caching stub resolver for one DNS server: each answer is kept for its TTL."""

    __slots__ = ("_cache", "_clock", "_lock", "attempts", "port", "queries", "server",
                 "timeout")

    def __init__(self, server: str, port: int = 53, timeout: float = 1.0, attempts: int = 3,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.server, self.port = server, port
        self.timeout, self.attempts = timeout, attempts
        self.queries = 0  # questions sent to the server (a cache hit sends none)
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, Answer] = {}

    def resolve(self, name: str) -> str:
        """The first IPv4 address of `name`, from the cache while its TTL lasts."""
        return self.lookup(name).addresses[0]

    def lookup(self, name: str) -> Answer:
        """Every IPv4 address of `name` with its TTL, from the cache while the TTL lasts."""
        key = name.lower().rstrip(".") + "."
        cached = self.cached(key)
        if cached is not None:
            return cached
        found = self._ask(key)
        with self._lock:
            if found.ttl > 0:
                self._cache[key] = found
            else:
                self._cache.pop(key, None)
        return found

    def cached(self, name: str) -> Answer | None:
        """The answer for `name` while its TTL lasts, without asking the server."""
        key = name.lower().rstrip(".") + "."
        with self._lock:
            found = self._cache.get(key)
            return found if found is not None and self._clock() < found.expires else None

    def forget(self, name: str | None = None) -> None:
        """Drop the cached answer for `name`, or every cached answer."""
        with self._lock:
            if name is None:
                self._cache.clear()
            else:
                self._cache.pop(name.lower().rstrip(".") + ".", None)

    def _ask(self, name: str) -> Answer:
        where = f"{self.server}:{self.port}"
        reply = self._exchange(DNSRecord.question(name, "A"), where)
        rcode = RCODE.get(reply.header.rcode)
        if reply.header.rcode != RCODE.NOERROR:
            raise ResolveError(f"{name} did not resolve: {rcode} from the DNS server at "
                               f"{where}; check the record and that it is INSYNC")
        wanted, ttls, addresses = name, [], []
        for _ in range(len(reply.rr) + 1):  # follow the CNAME chain in the answer
            step = [rr for rr in reply.rr if str(rr.rname).lower() == wanted]
            addresses = [str(rr.rdata) for rr in step if rr.rtype == QTYPE.A]
            cnames = [rr for rr in step if rr.rtype == QTYPE.CNAME]
            ttls += [rr.ttl for rr in step if rr.rtype == QTYPE.A or rr in cnames[:1]]
            if addresses or not cnames:
                break
            wanted = str(cnames[0].rdata.label).lower()
        if not addresses:
            raise ResolveError(f"{name} has no A record at the DNS server at {where} "
                               "(NOERROR, empty answer)")
        ttl = min(ttls)
        return Answer(name, tuple(addresses), ttl, self._clock() + ttl)

    def _exchange(self, question: DNSRecord, where: str) -> DNSRecord:
        last: Exception | None = None
        for _ in range(self.attempts):
            with self._lock:
                self.queries += 1
            try:
                reply = DNSRecord.parse(question.send(self.server, self.port,
                                                      timeout=self.timeout))
                if reply.header.tc:  # truncated: the whole answer over TCP
                    reply = DNSRecord.parse(question.send(self.server, self.port, tcp=True,
                                                          timeout=self.timeout))
            except (OSError, DNSError) as exc:  # timeout, refused, garbled: ask again
                last = exc
                continue
            if reply.header.id == question.header.id:
                return reply
            last = ValueError("a reply to another question")
        raise ResolveError(f"the DNS server at {where} did not answer {question.q.qname} "
                           f"({last}); is it running? (drills twin status)")

