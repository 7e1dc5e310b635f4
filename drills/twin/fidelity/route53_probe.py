"""One probe of a Route 53 health check, as one of AWS's health checkers makes it.

Route 53 Developer Guide, "How Amazon Route 53 determines whether a health check is healthy"
(dns-failover-determining-health-of-endpoints.html). HTTP and HTTPS: "Route 53 must be able
to establish a TCP connection with the endpoint within four seconds. In addition, the
endpoint must respond with an HTTP status code of 2xx or 3xx within two seconds after
connecting"; "HTTPS health checks don't validate SSL/TLS certificates"; with string matching
the body must follow within two more seconds and hold SearchString in its first 5,120 bytes;
TCP: a connection within ten seconds. API Reference, HealthCheckConfig: the Host header is
FullyQualifiedDomainName, else IPAddress, with ":Port" unless the port is 80 (HTTP) or 443
(HTTPS); EnableSNI sends the name in client_hello.

Twin choices: StatusReport texts follow the console's shape ("Success: HTTP Status Code 200,
OK", "Failure: Connection timed out. ..."), as AWS publishes no list of them; the source
address is the one the probe left from (loopback); a check that names only
FullyQualifiedDomainName is resolved with this host's resolver. Which checks run, how often,
and what Route 53 makes of the observations is `drills.twin.fidelity.route53`'s part.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from moto.route53.models import HealthCheck

__all__ = ["CONNECT_TIMEOUT", "REPLY_TIMEOUT", "SEARCH_BYTES", "TCP_CONNECT_TIMEOUT", "Report",
           "Target", "probe"]

CONNECT_TIMEOUT, TCP_CONNECT_TIMEOUT, REPLY_TIMEOUT, SEARCH_BYTES = 4.0, 10.0, 2.0, 5120
_FIREWALL = ("The endpoint or the internet connection is down, or requests are being blocked by "
             "your firewall. See https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/"
             "dns-failover-router-firewall-rules.html")
_TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
_TLS.check_hostname, _TLS.verify_mode = False, ssl.CERT_NONE  # AWS does not validate either


@dataclass(frozen=True, slots=True)
class Target:
    """What one probe of a health check connects to and asks for."""

    kind: str
    address: str | None
    fqdn: str | None
    port: int
    path: str
    search: str | None
    sni: bool
    ref: str

    @classmethod
    def of(cls, check: HealthCheck) -> Target:
        return cls(str(check.type_), check.ip_address or None, check.fqdn or None,
                   int(check.port), check.resource_path or "/", check.search_string,
                   bool(check.enable_sni), str(check.id))

    def host_header(self) -> str:
        host = self.fqdn or self.address or ""
        default = 443 if self.kind.startswith("HTTPS") else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Report:
    """One checker's observation: GetHealthCheckStatus's StatusReport and its IPAddress."""

    ok: bool
    status: str
    source: str
    checked: datetime


def probe(target: Target) -> Report:
    """Check `target` once as a Route 53 health checker does, within AWS's time limits."""
    try:
        ok, status, source = _probe(target)
    except Exception as exc:  # one odd endpoint is one failed observation, with why
        ok, status, source = False, f"Failure: {type(exc).__name__}: {exc}", ""
    return Report(ok, status, source or "127.0.0.1", datetime.now(UTC))


def _probe(t: Target) -> tuple[bool, str, str]:
    try:
        address = t.address or str(socket.getaddrinfo(t.fqdn, t.port, socket.AF_INET,
                                                      socket.SOCK_STREAM)[0][4][0])
    except OSError as exc:
        return False, f"Failure: DNS resolution of {t.fqdn} failed ({exc}).", ""
    limit = TCP_CONNECT_TIMEOUT if t.kind == "TCP" else CONNECT_TIMEOUT
    try:
        sock = socket.create_connection((address, t.port), timeout=limit)
    except TimeoutError:
        return False, f"Failure: Connection timed out. {_FIREWALL}", ""
    except ConnectionRefusedError:
        return False, f"Failure: Connection refused. {_FIREWALL}", ""
    except OSError as exc:
        return False, f"Failure: {exc.strerror or exc}. {_FIREWALL}", ""
    source = sock.getsockname()[0]
    stream: socket.socket = sock
    try:
        if t.kind == "TCP":
            return True, "Success: TCP connection established.", source
        deadline = time.monotonic() + REPLY_TIMEOUT  # handshake, request and status line
        if t.kind.startswith("HTTPS"):
            sock.settimeout(REPLY_TIMEOUT)
            try:
                stream = _TLS.wrap_socket(sock, server_hostname=t.fqdn if t.sni else None)
            except TimeoutError:
                return False, "Failure: Response timed out. The TLS handshake did not " \
                              "complete within 2 seconds after connecting.", source
            except (ssl.SSLError, OSError) as exc:
                return False, f"Failure: The TLS handshake failed ({exc}).", source
        stream.sendall(
            f"GET {t.path} HTTP/1.1\r\nHost: {t.host_header()}\r\nUser-Agent: "
            f"Amazon-Route53-Health-Check-Service (ref {t.ref}; report http://amzn.to/1vsZADi)"
            "\r\nAccept: */*\r\nConnection: close\r\n\r\n".encode())
        data = _read(stream, deadline, lambda d: b"\r\n" in d)
        if data is None:
            return False, "Failure: Response timed out. The endpoint did not send an HTTP " \
                          "status code within 2 seconds after connecting.", source
        line = data.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        if len(line) < 2 or not line[1].isdigit():
            return False, "Failure: The endpoint did not answer with an HTTP status line.", source
        code = int(line[1])
        reason = line[2].strip() if len(line) > 2 and line[2].strip() else _phrase(code)
        said = f"HTTP Status Code {code}, {reason}"
        if not 200 <= code < 400:
            return False, f"Failure: {said}", source
        if t.search is None or not t.kind.endswith("_STR_MATCH"):
            return True, f"Success: {said}", source
        body = _read(stream, time.monotonic() + REPLY_TIMEOUT,
                     lambda d: b"\r\n\r\n" in d and len(d.split(b"\r\n\r\n", 1)[1]) >= SEARCH_BYTES,
                     data)
        if body is None:
            return False, f"Failure: {said}. The response body did not arrive within " \
                          "2 seconds.", source
        if t.search.encode() in body.split(b"\r\n\r\n", 1)[-1][:SEARCH_BYTES]:
            return True, f"Success: {said}. Search string found.", source
        return False, f"Failure: {said}. The search string was not found in the first " \
                      f"{SEARCH_BYTES} bytes of the response body.", source
    finally:
        stream.close()
        sock.close()


def _read(stream: socket.socket, deadline: float, enough: Callable[[bytes], bool],
          data: bytes = b"") -> bytes | None:
    """Read until `enough(data)` or the peer closes; None if `deadline` passes first."""
    while not enough(data):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        stream.settimeout(remaining)
        try:
            chunk = stream.recv(4096)
        except TimeoutError:
            return None
        if not chunk:
            break
        data += chunk
    return data


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"
