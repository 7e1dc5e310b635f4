"""A worker's HTTP health endpoint, what an ELB target group health check calls.

`GET /health` answers 200 with the worker's health fields while it serves and 503 when it
does not (stalled); anything else 404. A few lines of asyncio, on the worker's own event loop
and outside its work queue, so a saturated worker still answers its health check.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

Health = Callable[[], dict[str, Any]]


async def serve_health(host: str, port: int, health: Health) -> asyncio.Server:
    """Listen on `host:port` and answer health checks from `health()` until closed."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            method, path = request.split(b" ", 2)[:2]
            if method == b"GET" and path.split(b"?")[0] == b"/health":
                fields = health()
                status = "200 OK" if fields.get("ok") else "503 Service Unavailable"
                body = json.dumps(fields).encode()
            else:
                status, body = "404 Not Found", b'{"error": "not found"}'
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                         + body)
            await writer.drain()
        except (OSError, ValueError, asyncio.IncompleteReadError, TimeoutError):
            pass  # a checker that hung up or spoke nonsense gets nothing
        finally:
            writer.close()

    return await asyncio.start_server(answer, host, port)
