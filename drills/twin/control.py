"""Client side of the twin-only control routes (`POST /drills-twin/<route>`).

These routes exist only on the twin's moto process (see `drills.twin.fidelity`): the ASG
controller, twin-only faults and the tests use them to do what AWS does on its own clock.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from drills.errors import TwinError

#: Opener that ignores http_proxy and friends: the twin is on loopback, always.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def answers(aws_url: str, timeout: float = 1.0) -> bool:
    """Whether a moto server answers HTTP at `aws_url` (any status: it is up)."""
    try:
        with _NO_PROXY.open(f"{aws_url}/moto-api/", timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def request(aws_url: str, route: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST `body` to the twin-only `route`; (HTTP status, JSON reply)."""
    call = urllib.request.Request(
        f"{aws_url}/drills-twin/{route}", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    try:
        with _NO_PROXY.open(call, timeout=10) as response:
            return response.status, dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, dict(json.loads(raw))
        except ValueError:
            return exc.code, {"message": raw.decode(errors="replace")[:300]}
    except OSError as exc:
        raise TwinError(f"the twin's AWS endpoint at {aws_url} did not answer {route} ({exc}); "
                        "is the twin up? (drills twin status)") from None


def post(aws_url: str, route: str, body: dict[str, Any]) -> dict[str, Any]:
    """`request`, raising TwinError (with the route and the reply) unless HTTP 200."""
    status, reply = request(aws_url, route, body)
    if status != 200:
        raise TwinError(f"the twin's AWS endpoint refused {route} (HTTP {status}: "
                        f"{json.dumps(reply)[:300]})")
    return reply
