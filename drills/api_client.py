"""The vault API as the mobile apps call it: HTTPS, one connection pool, a timeout per request,
and every enclave answer's attestation verified the way the app's cohort verifies it.

An app population is a set of cohorts, each with its share and the PCR sets its app version
carries (`expected_pcrs.json`): 80 % of the apps may carry both the old and the new set while
20 % still carry only the old one. Each request is made as one cohort (taken in turn, by
share), and a refused attestation is that request's failure, with its reason and cohort.

With a `Resolver`, the client finds the API's address as the apps do: it asks the DNS server
for the URL's name, keeps the answer for its TTL, and connects to that address with the name
as TLS server name and Host. A Route 53 failover reaches it only once its cached answer has
expired, so the record's TTL is inside every RTO measured through the API.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import ssl
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509

from drills.attestation import AttestationError, ExpectedPcrs, Failure, verify
from drills.errors import ConfigError
from drills.resolve import ResolveError, Resolver
from drills.vault import Unavailability, VaultReply, VaultUnavailable, b64, unb64


@dataclass(frozen=True, slots=True)
class Cohort:
    """Apps of one version: their share of the population and the PCR sets they accept."""

    name: str
    share: float
    expected: ExpectedPcrs


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request made as a cohort: when it ended (monotonic) and how ("ok", or the kind of
    failure: "attestation", "timeout", ...), with the attestation failure's reason."""

    at: float
    cohort: str
    result: str
    reason: str = ""


class Population:
    """The app population probes act as; cohorts can change during a drill (an app update).
    It keeps every request's outcome per cohort, for the share of the population affected."""

    def __init__(self, roots: Sequence[x509.Certificate], cohorts: Sequence[Cohort]) -> None:
        self.roots = list(roots)
        self._lock = threading.Lock()
        self._outcomes: list[Outcome] = []
        self._set(cohorts)

    def note(self, cohort: Cohort, result: str, reason: str = "") -> None:
        with self._lock:
            self._outcomes.append(Outcome(time.monotonic(), cohort.name, result, reason))

    def outcomes(self, since: float = 0.0) -> list[Outcome]:
        """Every request's outcome since monotonic time `since`."""
        with self._lock:
            return [o for o in self._outcomes if o.at >= since]

    def _set(self, cohorts: Sequence[Cohort]) -> None:
        if not cohorts or abs(sum(c.share for c in cohorts) - 1.0) > 1e-6:
            raise ConfigError(f"an app population's shares must add up to 100 % "
                              f"({', '.join(f'{c.name} {c.share:.0%}' for c in cohorts)})")
        # A cycle of 100 slots in which each cohort appears in proportion to its share.
        slots = [c for c in cohorts for _ in range(round(c.share * 100))]
        self.cohorts = tuple(cohorts)
        self._cycle = itertools.cycle(slots)

    def replace(self, cohorts: Sequence[Cohort]) -> None:
        """From now on, act as these cohorts."""
        with self._lock:
            self._set(cohorts)

    def update_all(self, expected: ExpectedPcrs) -> None:
        """Every cohort now carries `expected` (the app update everyone installed)."""
        with self._lock:
            self._set([replace(c, expected=expected) for c in self.cohorts])

    def next(self) -> Cohort:
        with self._lock:
            return next(self._cycle)


class ApiClient:
    """The vault API over HTTPS, for probes and the canary (the same calls as the apps)."""

    def __init__(self, base_url: str, ca_bundle: Path | None, population: Population | None,
                 max_connections: int = 32, resolver: Resolver | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.population = population
        self.url = httpx.URL(self.base_url)
        # An address in the URL needs no resolving (a region's API called directly).
        self.resolver = resolver if resolver is not None and not _is_address(self.url.host) \
            else None
        self.addresses: list[str] = []  # every address the name resolved to, in order
        self.http = httpx.AsyncClient(
            base_url=self.base_url, verify=tls_context(ca_bundle),
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections),
            trust_env=False)  # the twin is on loopback; a proxy must never see probes

    async def close(self) -> None:
        await self.http.aclose()

    # -- the vault operations ---------------------------------------------------------------
    async def enroll(self, vault_id: str, data: bytes, timeout: float) -> VaultReply:
        """start-direct (the enclave attests), then complete with the vault's content."""
        cohort = self._cohort()
        async with self._noted(cohort):
            return await self._enroll(cohort, vault_id, data, timeout)

    async def _enroll(self, cohort: Cohort | None, vault_id: str, data: bytes,
                      timeout: float) -> VaultReply:
        nonce = os.urandom(16)
        started = await self._send("POST", "/vault/enroll/start-direct", timeout, json={
            "device_id": vault_id, "device_type": "android",
            "invitation_code": f"DRILL-{vault_id}", "nonce": b64(nonce)})
        await self._attest(started, nonce, cohort)
        nonce = os.urandom(16)
        done = await self._send("POST", "/vault/enroll/complete", timeout, json={
            "session_id": started.get("session_id", ""), "vault_id": vault_id,
            "data": b64(data), "nonce": b64(nonce)})
        return await self._attest(done, nonce, cohort)

    async def put(self, vault_id: str, data: bytes, timeout: float) -> VaultReply:
        cohort, nonce = self._cohort(), os.urandom(16)
        async with self._noted(cohort):
            reply = await self._send("PUT", f"/vault/{vault_id}", timeout,
                                     json={"data": b64(data), "nonce": b64(nonce)})
            return await self._attest(reply, nonce, cohort)

    async def get(self, vault_id: str, timeout: float) -> bytes:
        cohort, nonce = self._cohort(), os.urandom(16)
        async with self._noted(cohort):
            reply = await self._send("GET", f"/vault/{vault_id}", timeout,
                                     params={"nonce": b64(nonce)})
            await self._attest(reply, nonce, cohort)
            try:
                return unb64(str(reply["data"]))
            except (KeyError, ValueError):
                raise VaultUnavailable("error", "malformed reply: no base64 'data'") from None

    @contextlib.asynccontextmanager
    async def _noted(self, cohort: Cohort | None) -> AsyncIterator[None]:
        """Note the request's outcome for its cohort (attestation failures note themselves)."""
        try:
            yield
        except VaultUnavailable as exc:
            if cohort is not None and self.population is not None \
                    and exc.kind is not Unavailability.ATTESTATION:
                self.population.note(cohort, str(exc.kind))
            raise
        if cohort is not None and self.population is not None:
            self.population.note(cohort, "ok")

    async def health(self, timeout: float) -> dict[str, Any]:
        """GET /health: the region's API and an enclave behind it answer."""
        return await self._send("GET", "/health", timeout)

    # -- plumbing -----------------------------------------------------------------------------
    def _cohort(self) -> Cohort | None:
        return self.population.next() if self.population else None

    async def _attest(self, reply: dict[str, Any], nonce: bytes,
                      cohort: Cohort | None) -> VaultReply:
        """Verify the reply's attestation as `cohort`'s app would; the reply on success.
        Verification (certificates, ECDSA) runs in a thread: the event loop keeps every
        other request's timeout on time."""
        if cohort is not None and self.population is not None:
            document = reply.get("attestation")
            try:
                if not isinstance(document, str):
                    raise AttestationError(Failure.MALFORMED, "the reply carries no "
                                           "attestation document")
                await asyncio.to_thread(verify, base64.b64decode(document),
                                        roots=self.population.roots, expected=cohort.expected,
                                        nonce=nonce)
            except (AttestationError, ValueError) as exc:
                failure = exc.failure if isinstance(exc, AttestationError) else Failure.MALFORMED
                self.population.note(cohort, "attestation", str(failure))
                raise VaultUnavailable("attestation", f"{cohort.name}: {exc}") from None
        return VaultReply(str(reply.get("instance_id", "")), reply)

    async def _request(self, method: str, path: str, timeout: float,
                       **kwargs: Any) -> httpx.Response:
        url: str | httpx.URL = path
        if self.resolver is not None:
            kwargs.update(await self._resolved(path))
            url = kwargs.pop("url")
        return await self.http.request(method, url, timeout=timeout, **kwargs)

    async def _send(self, method: str, path: str, timeout: float,
                    **kwargs: Any) -> dict[str, Any]:
        # httpx's timeout bounds each phase (pool, connect, write, read); the caller's bounds
        # the whole request, as an app's does. The request itself is never cancelled (it is
        # shielded, and ends by httpx's own timeouts): httpcore 1.0.9 leaks a pool slot for
        # each request cancelled under contention (encode/httpcore#1093), and once all 32
        # leaked, every probe timed out against a healthy service.
        request = asyncio.ensure_future(self._request(method, path, timeout, **kwargs))
        request.add_done_callback(_retrieved)
        try:
            async with asyncio.timeout(timeout):
                response = await asyncio.shield(request)
        except ResolveError as exc:
            raise VaultUnavailable("error", f"{method} {path}: {exc}") from None
        except (httpx.TimeoutException, TimeoutError):
            raise VaultUnavailable("timeout", f"no answer from {method} {path} within "
                                   f"{timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise VaultUnavailable("error", f"{method} {path}: {type(exc).__name__}: "
                                   f"{exc}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise VaultUnavailable("error", f"malformed reply: HTTP {response.status_code} "
                                   f"{method} {path} is not a JSON object")
        if response.is_success:
            return body
        message = str(body.get("message") or body.get("error") or "")
        if response.status_code == 503 and "Retry-After" in response.headers:
            raise VaultUnavailable("busy", f"HTTP 503 {message}",
                                   _seconds(response.headers["Retry-After"]))
        kind = Unavailability.NO_RESPONDERS if body.get("error") == "no responders" else (
            Unavailability.ERROR)
        raise VaultUnavailable(kind, f"HTTP {response.status_code} {method} {path}: {message}")


    async def _resolved(self, path: str) -> dict[str, Any]:
        """The request to the address the name resolves to now (the cache's, while its TTL
        lasts), with the name as Host and TLS server name."""
        assert self.resolver is not None
        name = self.url.host
        answer = self.resolver.cached(name)
        if answer is None:  # ask the DNS server, off the event loop
            answer = await asyncio.to_thread(self.resolver.lookup, name)
        address = answer.addresses[0]
        if not self.addresses or self.addresses[-1] != address:
            self.addresses.append(address)
        prefix = self.url.raw_path.rstrip(b"/")  # as httpx merges a base URL's path
        return {"url": self.url.copy_with(host=address, raw_path=prefix + path.encode()),
                "headers": {"Host": self.url.netloc.decode("ascii")},
                "extensions": {"sni_hostname": name}}


def _retrieved(task: asyncio.Future[Any]) -> None:
    """Mark a request's outcome as seen (its caller may have stopped waiting for it)."""
    if not task.cancelled():
        task.exception()


def tls_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """Verification against `ca_bundle` (None: the system's trust store)."""
    return ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)


def _is_address(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _seconds(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None
