"""drills.api_client: a request the caller stops waiting for is left to end by httpx's own
timeouts, never cancelled (httpcore 1.0.9 leaks a pool slot per request cancelled under
contention, encode/httpcore#1093: once all leaked, every probe timed out)."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from drills.api_client import ApiClient
from drills.vault import VaultUnavailable


async def _serve(delay: list[float]) -> tuple[asyncio.Server, int]:
    """A one-route HTTP/1.1 server answering `{}` after `delay[0]` seconds."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while True:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = await reader.read(4096)
                    if not chunk:
                        return
                    head += chunk
                await asyncio.sleep(delay[0])
                body = json.dumps({"status": "ok"}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_requests_given_up_under_contention_leave_the_pool_usable() -> None:
    """Forty requests on a two-connection pool give up after 0.1 s while the server takes
    0.3 s; once it answers at once, a request succeeds (it timed out with the leak)."""
    async def scenario() -> dict[str, object]:
        delay = [0.3]
        server, port = await _serve(delay)
        client = ApiClient(f"http://127.0.0.1:{port}", None, None, max_connections=2)
        try:
            outcomes = await asyncio.gather(*(client.health(0.1) for _ in range(40)),
                                            return_exceptions=True)
            assert all(isinstance(o, VaultUnavailable) for o in outcomes)
            delay[0] = 0.0
            await asyncio.sleep(1.0)  # the given-up requests end by httpx's own timeouts
            return await client.health(1.0)
        finally:
            await client.close()
            server.close()

    try:
        assert asyncio.run(scenario()) == {"status": "ok"}
    except VaultUnavailable as exc:  # pragma: no cover - the failure this test exists for
        pytest.fail(f"the pool leaked: {exc}")
