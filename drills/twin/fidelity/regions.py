"""A region of the twin's AWS endpoint that stops answering, as a region-wide outage looks.

Runbook 3.6 ("AWS status page shows us-east-1 issues ... Cannot access AWS console") and the
FIS cross-region actions (`aws:network:route-table-disrupt-cross-region-connectivity`) cut a
region off. The twin serves every region from one moto process, so the cut is made here: a
request signed for an isolated region (its SigV4 credential scope names the region) is held
unanswered, as a request to an unreachable endpoint is, until the caller gives up or the
region returns (then it is answered 503, and the caller retries). Other regions answer as
usual. What replicates *out of* the region (S3, DynamoDB global tables) is the replication
modules' business: the region-isolation fault pauses them too.

Twin-only control endpoint:

    POST /drills-twin/regions/isolate  {"region": "us-east-1", "isolated": true|false}
        -> {"isolated": ["us-east-1", ...]}
"""

from __future__ import annotations

import re
import threading
from typing import Any

from moto.core.exceptions import JsonRESTError

#: How long an isolated request is held before the endpoint gives up on it (callers with
#: shorter timeouts give up first, as they would against an unreachable region).
HOLD_SECONDS = 30.0

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")
_isolated: set[str] = set()
_returned = threading.Condition()


def install() -> None:
    """Nothing to patch: `ControlApp` asks `held` about every request."""


def region_of(environ: dict[str, Any]) -> str | None:
    """The region a request is signed for (None for an unsigned request)."""
    match = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match is None:  # presigned URLs carry the scope in the query string
        match = re.search(r"X-Amz-Credential=[^%/&]+(?:%2F|/)\d{8}(?:%2F|/)([a-z0-9-]+)",
                          environ.get("QUERY_STRING", ""))
    return match.group(1) if match else None


def held(environ: dict[str, Any]) -> bool:
    """Hold a request for an isolated region until it returns (or HOLD_SECONDS); True if the
    request met an isolated region (the caller answers it with an error, if anyone waits)."""
    region = region_of(environ)
    if region is None or region not in _isolated:
        return False
    with _returned:
        _returned.wait_for(lambda: region not in _isolated, timeout=HOLD_SECONDS)
    return True


def isolate(request: dict[str, Any]) -> dict[str, Any]:
    region, isolated = request.get("region"), request.get("isolated")
    if not isinstance(region, str) or not isinstance(isolated, bool):
        raise JsonRESTError("ValidationException",
                            'give {"region": "<name>", "isolated": true|false}')
    with _returned:
        if isolated:
            _isolated.add(region)
        else:
            _isolated.discard(region)
            _returned.notify_all()
    return {"isolated": sorted(_isolated)}


ROUTES = {"regions/isolate": isolate}
