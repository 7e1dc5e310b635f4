"""A vault API for the load tests: the twin's own routes (`drills.twin.api.build_app`) over
TLS, in a thread of the test process, with an in-memory vault behind them instead of NATS
and enclaves, so locust's users can be driven in seconds and the service broken on cue."""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from drills.twin.api import Lambda, build_app
from drills.twin.tls import make_api_tls
from drills.vault import VaultReply, VaultUnavailable


@dataclass
class Vaults:
    """The in-memory service: vaults by id, and how it fails right now."""

    data: dict[str, bytes] = field(default_factory=dict)
    history: dict[str, list[bytes]] = field(default_factory=dict)
    down: bool = False  # every request: 500 "no responders"
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def roll_back(self, vault_id: str) -> None:
        """Lose the vault's last write: it holds its previous content again."""
        with self.lock:
            self.history[vault_id].pop()
            self.data[vault_id] = self.history[vault_id][-1]


class _Nats:
    async def close(self) -> None:
        return None


class FakeEnclaves:
    """Answers the Lambda's calls as the enclaves would, from `Vaults`."""

    def __init__(self, vaults: Vaults) -> None:
        self.vaults, self.nc = vaults, _Nats()

    async def call(self, op: str, body: dict[str, Any], timeout: float,
                   target: str | None = None) -> VaultReply:
        v = self.vaults
        with v.lock:
            v.calls += 1
            if v.down:
                raise VaultUnavailable("no-responders", "no enclave is listening")
            attest = {"attestation": base64.b64encode(b"document").decode()}
            vault_id = str(body.get("vault_id", ""))
            if op == "start":
                return VaultReply("i-fake", {"session_id": f"s-{uuid.uuid4().hex[:6]}",
                                             "vault_id": vault_id, **attest})
            if op in ("enroll", "put"):
                if op == "put" and vault_id not in v.data:
                    raise VaultUnavailable("error", f"vault {vault_id} is not enrolled")
                data = base64.b64decode(body["data"])
                v.data[vault_id] = data
                v.history.setdefault(vault_id, []).append(data)
                return VaultReply("i-fake", {"sha256": hashlib.sha256(data).hexdigest(),
                                             "version_id": str(len(v.history[vault_id])),
                                             **attest})
            if op == "get":
                if vault_id not in v.data:
                    raise VaultUnavailable("error", f"NoSuchKey: {vault_id}")
                data = v.data[vault_id]
                return VaultReply("i-fake", {"data": base64.b64encode(data).decode(),
                                             "sha256": hashlib.sha256(data).hexdigest(),
                                             **attest})
            return VaultReply("i-fake", {"status": "ok"})


class FakeApi:
    """The API server in a thread: `url`, `ca` (its CA bundle), `vaults` (the service)."""

    def __init__(self, directory: Path) -> None:
        self.vaults = Vaults()
        self.ca = make_api_tls(directory, ["127.0.0.1"])
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        self.url = f"https://127.0.0.1:{port}"

        async def make_lambda() -> Lambda:
            return Lambda([FakeEnclaves(self.vaults)], 1.0)  # type: ignore[list-item]

        config = uvicorn.Config(build_app(make_lambda), host="127.0.0.1", port=port,
                                ssl_certfile=str(directory / "api.pem"),
                                ssl_keyfile=str(directory / "api.key"), log_level="warning",
                                access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="fake-api", daemon=True)

    def start(self) -> FakeApi:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the fake vault API did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
