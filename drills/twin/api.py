"""The vault's front door in the twin: what API Gateway and its Lambdas do, per region.

Mobile apps call an HTTPS API (`api.vettid.dev`); each call is a Lambda that asks an enclave
over NATS request/reply and answers with what it got (runbook 3.2: "NATS 'No Responders'
errors in Lambda logs"). This process plays that layer for one region of the twin: a real
ASGI server (uvicorn, serving a Starlette app over TLS) whose handlers make the same NATS
requests the Lambdas make, with the Lambda's own timeout, and answer as the Lambda would:

    POST /vault/enroll/start-direct   {"device_id", "device_type", "invitation_code", "nonce"?}
                                      -> 200 {"session_id", "vault_id", "attestation_document"}
    POST /vault/enroll/complete       {"session_id", "vault_id", "data", "nonce"?} -> 201
    GET  /vault/{vault_id}?nonce=..   -> 200 {"data", "sha256", "version_id", ...}
    PUT  /vault/{vault_id}            {"data", "nonce"?} -> 200 {"sha256", "version_id", ...}
    GET  /health                      -> 200 when an enclave answers, else 503

Errors: a malformed body 400, an unknown vault 404, a body over the size limit 413, no
enclave listening 500 "no responders" (runbook 3.2: "All vault operations return 500"), an
enclave that refused because it was busy 503 with Retry-After, no answer within the Lambda's
timeout 504, any other enclave error 500 with its text. Every reply that came from an enclave
carries its attestation document (bound to the caller's nonce) for the app to verify.

Run: python -m drills.twin.api --state-dir DIR --region us-east-1
"""

from __future__ import annotations

import argparse
import base64
import binascii
import itertools
import json
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from drills import vault
from drills.errors import TwinError
from drills.vault import Unavailability, VaultClient, VaultUnavailable

#: Largest request body the API takes (API Gateway allows 10 MB; our vaults are small).
MAX_BODY = 1024 * 1024
DEVICE_TYPES = ("android", "ios")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
API_MODULE = "drills.twin.api"


class BadRequest(Exception):
    """The caller's request is wrong: answered 400 (or `status`) with the message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


#: Lambda execution environments the API keeps warm, each with its own NATS connection (to a
#: server of the cluster chosen at random, as the NATS client does): a NATS server that dies
#: or is cut off takes only the requests of the environments connected to it.
ENVIRONMENTS = 4


class Lambda:
    """What every handler shares: the Lambdas' NATS connections to the enclaves (one per
    warm execution environment, used in turn) and the Lambda's timeout."""

    def __init__(self, clients: list[VaultClient], timeout: float) -> None:
        self.clients, self.timeout = clients, timeout  # timeout: the Lambda's, in seconds
        self._turn = itertools.cycle(range(len(clients)))

    @property
    def client(self) -> VaultClient:
        """The connection of the environment that takes the next request."""
        return self.clients[next(self._turn)]

    async def call(self, op: str, body: dict[str, Any]) -> vault.VaultReply:
        return await self.client.call(op, body, self.timeout)

    async def close(self) -> None:
        for client in self.clients:
            await client.nc.close()


def _error(exc: VaultUnavailable) -> Response:
    """What the Lambda (and API Gateway in front of it) answers for an enclave failure."""
    if exc.kind is Unavailability.NO_RESPONDERS:
        return JSONResponse({"error": "no responders", "message": exc.detail}, 500)
    if exc.kind is Unavailability.TIMEOUT:
        return JSONResponse({"message": "Endpoint request timed out"}, 504)
    if exc.kind is Unavailability.BUSY:
        retry = max(1, round(exc.retry_after or 1))
        return JSONResponse({"error": "busy", "message": exc.detail}, 503,
                            headers={"Retry-After": str(retry)})
    if "not enrolled" in exc.detail or "NoSuchKey" in exc.detail:
        return JSONResponse({"error": "not found", "message": exc.detail}, 404)
    return JSONResponse({"error": "enclave error", "message": exc.detail}, 500)


async def _json(request: Request) -> dict[str, Any]:
    size = int(request.headers.get("content-length") or 0)
    if size > MAX_BODY:
        raise BadRequest(f"request body of {size} bytes is over the {MAX_BODY}-byte limit", 413)
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise BadRequest(f"request body is over the {MAX_BODY}-byte limit", 413)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def _text(body: dict[str, Any], name: str, pattern: re.Pattern[str] | None = _ID) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or (pattern and not pattern.match(value)):
        raise BadRequest(f"{name!r} must be a non-empty identifier (letters, digits, . _ : -)")
    return value


def _b64(body: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name!r} must be base64 text")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{name!r} is not valid base64") from None
    return value


def _nonce(request: Request, body: dict[str, Any] | None = None) -> str | None:
    if body is not None and "nonce" in body:
        return _b64(body, "nonce")
    value = request.query_params.get("nonce")
    return _b64({"nonce": value}, "nonce") if value is not None else None


def _reply(reply: vault.VaultReply, status: int = 200) -> Response:
    fields = {k: v for k, v in reply.fields.items() if k not in ("ok",)}
    return JSONResponse(fields, status)


Handler = Callable[[Lambda, Request], Awaitable[Response]]


async def start_direct(fn: Lambda, request: Request) -> Response:
    """Runbook 5.2 step 3's endpoint: a device starts enrolling; the enclave attests."""
    body = await _json(request)
    device = _text(body, "device_id")
    device_type = body.get("device_type")
    if device_type not in DEVICE_TYPES:
        raise BadRequest(f"'device_type' must be one of {', '.join(DEVICE_TYPES)}")
    invitation = _text(body, "invitation_code")
    reply = await fn.call("start", {"vault_id": device, "device_id": device,
                                    "device_type": device_type, "invitation_code": invitation,
                                    "nonce": _nonce(request, body)})
    return _reply(reply)


async def complete(fn: Lambda, request: Request) -> Response:
    """The device sends its vault's first content; the enclave seals and stores it."""
    body = await _json(request)
    reply = await fn.call("enroll", {"vault_id": _text(body, "vault_id"),
                                     "session_id": _text(body, "session_id"),
                                     "data": _b64(body, "data"),
                                     "nonce": _nonce(request, body)})
    return _reply(reply, 201)


async def read_vault(fn: Lambda, request: Request) -> Response:
    vault_id = _text(dict(request.path_params), "vault_id")
    return _reply(await fn.call("get", {"vault_id": vault_id, "nonce": _nonce(request)}))


async def update_vault(fn: Lambda, request: Request) -> Response:
    vault_id = _text(dict(request.path_params), "vault_id")
    body = await _json(request)
    return _reply(await fn.call("put", {"vault_id": vault_id, "data": _b64(body, "data"),
                                        "nonce": _nonce(request, body)}))


async def health(fn: Lambda, request: Request) -> Response:
    """Route 53 checks this: healthy when an enclave of this region answers its health."""
    try:  # within Route 53's 2 s for an answer: a slow enclave reads as unhealthy, not silent
        reply = await fn.client.call("health", {}, min(fn.timeout, 1.5))
    except VaultUnavailable as exc:
        return JSONResponse({"status": "unhealthy", "reason": str(exc)}, 503)
    return JSONResponse({"status": "ok", "enclave": reply.instance_id})


def build_app(make_lambda: Callable[[], Awaitable[Lambda]]) -> Starlette:
    """The Starlette app; `make_lambda` connects to NATS when the server starts."""
    state: dict[str, Lambda] = {}

    @asynccontextmanager
    async def lifespan(_: Starlette) -> Any:
        state["fn"] = await make_lambda()
        try:
            yield
        finally:
            await state["fn"].close()

    def route(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(state["fn"], request)
            except BadRequest as exc:
                return JSONResponse({"error": "bad request", "message": str(exc)}, exc.status)
            except VaultUnavailable as exc:
                return _error(exc)
        return endpoint

    return Starlette(lifespan=lifespan, routes=[
        Route("/vault/enroll/start-direct", route(start_direct), methods=["POST"]),
        Route("/vault/enroll/complete", route(complete), methods=["POST"]),
        Route("/vault/{vault_id}", route(read_vault), methods=["GET"]),
        Route("/vault/{vault_id}", route(update_vault), methods=["PUT"]),
        Route("/health", route(health), methods=["GET"]),
    ])


# -- the process, from any process ----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ApiEndpoint:
    """Where one region's API listens, and its pid file."""

    region: str
    host: str
    port: int
    pid_file: str

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "pid_file": self.pid_file}

    @classmethod
    def from_dict(cls, region: str, data: dict[str, Any]) -> ApiEndpoint:
        return cls(region, str(data["host"]), int(data["port"]), str(data["pid_file"]))


def spawn(state_dir: Path, endpoint: ApiEndpoint) -> None:
    """Start the region's API process detached (its log: api-<region>.log)."""
    import subprocess
    import sys

    log = (state_dir / f"api-{endpoint.region}.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", API_MODULE, "--state-dir", str(state_dir), "--region",
         endpoint.region], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True)
    log.close()
    Path(endpoint.pid_file).write_text(str(proc.pid))


def listening(endpoint: ApiEndpoint, timeout: float = 0.5) -> bool:
    """True once the API accepts TLS connections (whatever /health says)."""
    import socket

    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout):
            return True
    except OSError:
        return False


def pid(state_dir: Path, endpoint: ApiEndpoint) -> int | None:
    """The live API process of `endpoint` (checked against /proc), else None."""
    from drills.twin.procs import live_pid

    return live_pid(Path(endpoint.pid_file), API_MODULE, str(state_dir), endpoint.region)


def stop(state_dir: Path, endpoint: ApiEndpoint) -> None:
    """Stop the region's API process, if it is still the one its pid file names."""
    from drills.twin.procs import stop_process

    running = pid(state_dir, endpoint)
    if running is not None:
        stop_process(running, API_MODULE, str(state_dir), endpoint.region, timeout=5)
    Path(endpoint.pid_file).unlink(missing_ok=True)


#: How long a starting API waits for its region's NATS credentials in SSM: `drills twin up`
#: starts it while the AWS endpoint starts and the region's stack is made.
CREDENTIALS_WAIT = 60.0


def nats_credentials(ssm: Any, name: str, timeout: float = CREDENTIALS_WAIT) -> dict[str, str]:
    """The parent's NATS user and password from SSM parameter `name`, as the Lambdas read
    them; until `timeout` passes, an endpoint not answering yet or a parameter not made yet
    is waited for (every 0.1 s), not an error."""
    from botocore.exceptions import ClientError, EndpointConnectionError

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
            return dict(json.loads(value))
        except EndpointConnectionError as exc:
            why: Exception = exc
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ParameterNotFound":
                raise
            why = exc
        if time.monotonic() > deadline:
            raise TwinError(f"the API found no NATS credentials in SSM parameter {name} within "
                            f"{timeout:g} s ({why}); is the twin's AWS endpoint up and the "
                            "region's stack made? see `drills twin status`") from None
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from drills.clients import Clients
    from drills.twin.nats import NatsClusterSpec
    from drills.twin.state import TwinState
    from drills.twin.timing import profile

    parser = argparse.ArgumentParser(description="The API layer of one region of the twin.")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--region", required=True)
    args = parser.parse_args(argv)
    state = TwinState.load(Path(args.state_dir))
    region = state.regions[args.region]
    timing = profile(state.profile)
    api = ApiEndpoint.from_dict(args.region, region.api)
    creds = nats_credentials(Clients.for_twin(state.aws_url, args.region)("ssm", args.region),
                             state.names.param_nats_creds)
    urls = NatsClusterSpec.from_dict(region.nats).urls

    async def make_lambda() -> Lambda:
        clients = [VaultClient(await vault.connect(
            urls, creds["user"], creds["password"], f"api-lambda-{args.region}-{n}",
            ping_interval=timing.nats_ping_interval)) for n in range(ENVIRONMENTS)]
        return Lambda(clients, timing.lambda_timeout)

    tls = Path(state.state_dir) / "tls"
    uvicorn.run(build_app(make_lambda), host=api.host, port=api.port,
                ssl_certfile=str(tls / "api.pem"), ssl_keyfile=str(tls / "api.key"),
                ssl_version=ssl.PROTOCOL_TLS_SERVER, log_level="warning",
                access_log=False, timeout_keep_alive=30, lifespan="on")


if __name__ == "__main__":
    main()
