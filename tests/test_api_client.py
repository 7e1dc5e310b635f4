"""The vault API client's connection pool (`drills.api_client`) under requests the caller
gives up on: a timed-out request must not keep a connection slot, or after a burst of
timeouts every later request times out against a server that answers. (httpcore 1.0.9 leaks
the slot of a request cancelled while its new connection is still being made:
encode/httpcore#1093; on a loaded machine a TLS handshake is that slow.)"""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

from drills.api_client import ApiClient
from drills.twin.tls import make_api_tls
from drills.vault import VaultUnavailable


class StallingServer:
    """HTTPS on 127.0.0.1: while `stalled`, a new connection's TLS handshake never
    completes (as on a machine too busy to answer it); afterwards it answers `{"ok": true}`
    at once, keep-alive."""

    def __init__(self, tls: Path) -> None:
        self.stalled = True
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(tls / "api.pem", tls / "api.key")
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while self.stalled:  # the client's hello stays unanswered
                await asyncio.sleep(0.05)
            await writer.start_tls(self.context)
            while True:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = await reader.read(4096)
                    if not chunk:
                        return
                    head += chunk
                body = json.dumps({"ok": True}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
        except (ConnectionError, ssl.SSLError, asyncio.CancelledError):
            return
        finally:
            writer.close()


def test_requests_the_caller_gave_up_on_leave_the_pool_usable(tmp_path: Path) -> None:
    """A burst of requests timed out by their caller while their connections were still
    being made (more requests than connections) does not wedge the pool: once the server
    answers again, every request succeeds."""
    ca = make_api_tls(tmp_path, ["127.0.0.1"])

    async def scenario() -> list[str]:
        server = StallingServer(tmp_path)
        port = await server.start()
        client = ApiClient(f"https://127.0.0.1:{port}", ca, None, max_connections=2)
        try:
            burst = await asyncio.gather(*(client._send("GET", "/", 0.2) for _ in range(8)),
                                         return_exceptions=True)
            assert all(isinstance(r, VaultUnavailable) for r in burst), burst
            server.stalled = False
            outcomes = []
            for _ in range(4):
                try:
                    await client._send("GET", "/", 3.0)
                    outcomes.append("ok")
                except VaultUnavailable as exc:
                    outcomes.append(str(exc))
            return outcomes
        finally:
            await client.close()
            server.close()

    assert asyncio.run(asyncio.wait_for(scenario(), 60)) == ["ok"] * 4


def test_an_answered_request_is_returned(tmp_path: Path) -> None:
    """A request answered within its time hands back the server's answer."""
    ca = make_api_tls(tmp_path, ["127.0.0.1"])

    async def scenario() -> dict[str, object]:
        server = StallingServer(tmp_path)
        server.stalled = False
        port = await server.start()
        client = ApiClient(f"https://127.0.0.1:{port}", ca, None, max_connections=2)
        try:
            return await client._send("GET", "/", 3.0)
        finally:
            await client.close()
            server.close()

    assert asyncio.run(scenario()) == {"ok": True}
