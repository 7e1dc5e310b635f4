"""boto3 clients for the twin or a real account, built in one place and passed in.

Faults, probes and recovery procedures take clients; they never build their own, so the
same code drives the local twin (endpoint set) and a real account (endpoint unset).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=3,
                 read_timeout=10)


class Clients:
    """A cache of boto3 clients keyed by (service, region)."""

    __slots__ = ("_cache", "_hooks", "_lock", "_session", "credentials", "default_region",
                 "endpoint_url")

    def __init__(self, endpoint_url: str | None = None, default_region: str = "us-east-1",
                 credentials: dict[str, str] | None = None) -> None:
        self.endpoint_url = endpoint_url
        self.default_region = default_region
        self.credentials = credentials or {}
        self._cache: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._session: boto3.session.Session | None = None
        self._hooks: list[tuple[str, Callable[..., Any]]] = []

    def __call__(self, service: str, region: str | None = None) -> Any:
        """The client for `service` in `region` (default region when omitted)."""
        key = (service, region or self.default_region)
        with self._lock:
            if key not in self._cache:
                # A session of our own, used only under the lock (boto3's default session is
                # not thread-safe): its loader parses each service model and the endpoint
                # rules once, not once a client (about 0.1 s each on 2 cores).
                if self._session is None:
                    self._session = boto3.session.Session(**self.credentials)
                client = self._session.client(
                    service, region_name=key[1], endpoint_url=self.endpoint_url, config=_CONFIG)
                for event, handler in self._hooks:
                    client.meta.events.register(event, handler)
                self._cache[key] = client
            return self._cache[key]

    def on(self, event: str, handler: Callable[..., Any]) -> None:
        """Register a botocore event handler (e.g. "before-call.*.*") on every client these
        Clients have built and will build."""
        with self._lock:
            self._hooks.append((event, handler))
            for client in self._cache.values():
                client.meta.events.register(event, handler)

    @classmethod
    def for_twin(cls, endpoint_url: str, region: str = "us-east-1") -> Clients:
        """Clients aimed at the local twin's AWS endpoint with its fake credentials."""
        return cls(endpoint_url, region, {"aws_access_key_id": "testing",
                                          "aws_secret_access_key": "testing"})
