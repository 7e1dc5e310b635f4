"""The vault service's wire protocol over NATS request/reply, and an async client for it.

Workers (the enclaves) subscribe in queue group `enclave` to `vettid.vault.<op>`; each also
answers `vettid.vault.health.<instance-id>` alone, as a per-target health check. A request
carries a UTC `deadline`: a worker drops requests whose caller has stopped waiting, so a
frozen worker that thaws does not spend its first seconds on answers nobody reads.

A reply is a JSON object with `ok`; `ok: true` carries the worker's `instance_id` and the
operation's fields, `ok: false` an `error`, and `busy: true` when the worker refused the
request because its queue was full (with `retry_after`, seconds). The client turns every
reply that is not a success into `VaultUnavailable`, whose `kind` tells them apart.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import nats
from nats.aio.client import Client as NatsClient
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

_log = logging.getLogger(__name__)

PREFIX = "vettid.vault"
QUEUE = "enclave"
OPS = ("start", "enroll", "put", "get", "health")


def subject(op: str) -> str:
    """The subject of vault operation `op`."""
    return f"{PREFIX}.{op}"


def instance_health_subject(instance_id: str) -> str:
    """The subject only the worker of `instance_id` answers."""
    return f"{PREFIX}.health.{instance_id}"


def digest(data: bytes) -> str:
    """The content hash vaults are verified with."""
    return hashlib.sha256(data).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode())


class Unavailability(StrEnum):
    """Why a vault request got no usable answer (equal to its string, e.g. "timeout")."""

    NO_RESPONDERS = "no-responders"  # no worker subscribes to the subject
    TIMEOUT = "timeout"  # no reply within the caller's timeout
    BUSY = "busy"  # a worker refused at once: its queue was full (retry later)
    ERROR = "error"  # an error reply, a malformed reply, or the connection failed
    ATTESTATION = "attestation"  # the app refused the enclave's attestation document


class VaultUnavailable(Exception):
    """A vault request got no usable answer; `kind` says why (an `Unavailability`), and
    `retry_after` how long a busy worker suggests waiting."""

    def __init__(self, kind: str, detail: str, retry_after: float | None = None) -> None:
        self.kind = Unavailability(kind)
        super().__init__(f"{self.kind}: {detail}")
        self.detail = detail
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class VaultReply:
    """A successful answer from a worker."""

    instance_id: str
    fields: dict[str, Any]


async def _connection_error(exc: Exception) -> None:
    """Reconnect attempts during a NATS drill are expected; the probes record the outage."""
    _log.debug("NATS connection error: %s", exc)


async def connect(urls: list[str], user: str, password: str, name: str,
                  ping_interval: float = 1) -> NatsClient:
    """Connect as a probe/harness client: notice dead servers fast, reconnect forever."""
    return await nats.connect(
        servers=urls, user=user, password=password, name=name, error_cb=_connection_error,
        ping_interval=ping_interval, max_outstanding_pings=2, reconnect_time_wait=0.5,
        max_reconnect_attempts=-1, connect_timeout=2, allow_reconnect=True,
    )


#: Fields a successful reply to each operation must carry (besides `instance_id`).
REPLY_FIELDS: dict[str, tuple[str, ...]] = {
    "enroll": ("sha256", "version_id"), "put": ("sha256", "version_id"),
    "get": ("data", "sha256"), "health": ("status",), "start": ("session_id", "vault_id")}


def _malformed(why: str, data: bytes) -> VaultUnavailable:
    return VaultUnavailable("error", f"malformed reply: {why} ({data[:80]!r})")


def parse_reply(op: str, data: bytes) -> VaultReply:
    """The reply to `op` as a VaultReply, or VaultUnavailable saying why it is not one."""
    try:
        reply = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise _malformed("not JSON", data) from None
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise _malformed("not an object with a boolean 'ok'", data)
    if not reply["ok"]:
        error = reply.get("error")
        if not isinstance(error, str):
            raise _malformed("an error reply without an 'error' text", data)
        if reply.get("busy") is True:
            retry = reply.get("retry_after")
            raise VaultUnavailable("busy", error.removeprefix("busy: "),
                                   float(retry) if isinstance(retry, int | float) else None)
        raise VaultUnavailable("error", error)
    missing = [k for k in ("instance_id", *REPLY_FIELDS.get(op, ()))
               if not isinstance(reply.get(k), str)]
    if missing:
        raise _malformed(f"no {', '.join(missing)} in a reply to {op}", data)
    if op == "get":
        try:
            base64.b64decode(reply["data"], validate=True)
        except ValueError:  # binascii.Error, or a text that is not even ASCII
            raise _malformed("its data is not base64", data) from None
    return VaultReply(reply["instance_id"], reply)


class VaultApi(Protocol):
    """What probes and the canary need from a path to the vault service (the apps' HTTPS
    API, `drills.api_client.ApiClient`, or NATS request/reply, `VaultClient`)."""

    async def enroll(self, vault_id: str, data: bytes, timeout: float) -> VaultReply: ...

    async def put(self, vault_id: str, data: bytes, timeout: float) -> VaultReply: ...

    async def get(self, vault_id: str, timeout: float) -> bytes: ...


class VaultClient:
    """Request/reply calls to the vault service over one NATS connection."""

    __slots__ = ("nc",)

    def __init__(self, nc: NatsClient) -> None:
        self.nc = nc

    async def call(self, op: str, body: dict[str, Any], timeout: float,
                   target: str | None = None) -> VaultReply:
        """Send one request and return the reply, or raise VaultUnavailable."""
        payload = dict(body, deadline=time.time() + timeout)
        subj = target or subject(op)
        try:
            msg = await self.nc.request(subj, json.dumps(payload).encode(), timeout=timeout)
        except NoRespondersError:
            raise VaultUnavailable("no-responders", f"no enclave is listening on {subj}") from None
        except NatsTimeout:
            raise VaultUnavailable("timeout", f"no reply on {subj} within {timeout:g}s") from None
        except Exception as exc:  # connection closed/reconnecting: the service is unreachable
            raise VaultUnavailable("error", f"{type(exc).__name__}: {exc}") from None
        return parse_reply(op, msg.data)

    async def enroll(self, vault_id: str, data: bytes, timeout: float) -> VaultReply:
        """Enroll a new vault holding `data`."""
        return await self.call("enroll", {"vault_id": vault_id, "data": b64(data)}, timeout)

    async def put(self, vault_id: str, data: bytes, timeout: float) -> VaultReply:
        """Replace a vault's data; the reply means it is durable."""
        return await self.call("put", {"vault_id": vault_id, "data": b64(data)}, timeout)

    async def get(self, vault_id: str, timeout: float) -> bytes:
        """Read and decrypt a vault's data."""
        reply = await self.call("get", {"vault_id": vault_id}, timeout)
        return unb64(reply.fields["data"])

    async def health(self, timeout: float, instance_id: str | None = None) -> VaultReply:
        """Ask any worker, or the worker of `instance_id`, whether it serves."""
        target = instance_health_subject(instance_id) if instance_id else None
        return await self.call("health", {}, timeout, target=target)
