"""The controller of one cluster, whatever runs its nodes: start, stop, break, watch.

Every method works from any process: a backend finds its nodes through the spec alone
(pid files in the workdir, or deterministic container names), never through the memory
of the process that started them.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from drills.errors import ConfigError, TwinError
from drills.twin.nats.spec import NatsClusterSpec, NatsNode, NodeState, NodeStatus

# Monitor probes go to 127.0.0.1 only, never through an HTTP(S)_PROXY of the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

_Check = Callable[[NatsNode], str | None]  # None when the node is fine, else what is wrong


class NatsCluster(ABC):
    """Start, stop and break the nodes of one cluster; every method works cross-process."""

    def __init__(self, spec: NatsClusterSpec) -> None:
        self.spec = spec

    def start(self, timeout: float = 30.0) -> None:
        """Start all nodes; return once each answers /healthz, sees its peers and a leader."""
        if up := [n.name for n in self.spec.nodes if self.node_state(n.name) != NodeState.STOPPED]:
            raise TwinError(
                f"NATS cluster {self.spec.cluster_name} already has {', '.join(up)} running; "
                "stop it first (drills twin down)"
            )
        try:
            self._prepare()
            # In parallel: each node retries its routes every second until peers listen.
            with ThreadPoolExecutor(len(self.spec.nodes)) as pool:
                list(pool.map(self.start_node, [n.name for n in self.spec.nodes]))
            self.wait_formed(timeout=timeout)
        except BaseException:
            self.stop()  # a half-started cluster would block the next start
            raise

    @abstractmethod
    def stop(self) -> None:
        """Stop all nodes and leave no process or container behind; idempotent."""

    @abstractmethod
    def start_node(self, name: str) -> None:
        """Start (or restart, on the same ports and store) one node; thaw it if frozen."""

    @abstractmethod
    def stop_node(self, name: str) -> None:
        """Stop one node gracefully (SIGTERM / docker stop), SIGKILL after a grace period."""

    @abstractmethod
    def kill_node(self, name: str) -> None:
        """Kill one node abruptly (SIGKILL / docker kill), as a crash would."""

    @abstractmethod
    def freeze_node(self, name: str) -> None:
        """Suspend one node (SIGSTOP / docker pause): its sockets stay open, it never answers."""

    @abstractmethod
    def thaw_node(self, name: str) -> None:
        """Resume a frozen node (SIGCONT / docker unpause)."""

    @abstractmethod
    def partition_node(self, name: str) -> None:
        """Cut one node off the network: nothing reaches it or leaves it, sockets stay open."""

    @abstractmethod
    def heal_node(self, name: str) -> None:
        """End a node's partition (idempotent); held traffic flows again."""

    @abstractmethod
    def partitioned(self) -> set[str]:
        """Names of the nodes currently cut off by `partition_node`."""

    @abstractmethod
    def _process_state(self, name: str) -> NodeState:
        """RUNNING, FROZEN or STOPPED, as the operating system or Docker sees the node."""

    @abstractmethod
    def _handle(self, name: str) -> str | None:
        """The pid or container id of a node (None if it has none), for status output."""

    @abstractmethod
    def _log_tail(self, name: str) -> str:
        """The last lines a node logged, for error messages."""

    @abstractmethod
    def _endpoints(self, node: NatsNode) -> dict[str, Any]:
        """Backend part of a node's config: listen/http/... plus `store_dir`, `cluster_listen`
        and `routes`."""

    def node_state(self, name: str) -> NodeState:
        """Whether a node runs, is frozen, is partitioned, or is stopped (or never started)."""
        state = self._process_state(name)
        if state is NodeState.RUNNING and name in self.partitioned():
            return NodeState.PARTITIONED
        return state

    def node(self, name: str) -> NatsNode:
        """The node called `name`; `ConfigError` if the cluster has none."""
        for node in self.spec.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.spec.nodes)
        raise ConfigError(f"NATS cluster {self.spec.cluster_name} has no node {name!r} ({known})")

    def healthy(self, name: str) -> bool:
        """True if the node's monitor /healthz answers 200 within a second."""
        return monitor_get(self.node(name).monitor_port, "/healthz")[0] == 200

    def wait_healthy(self, names: Iterable[str] | None = None, timeout: float = 30.0) -> None:
        """Block until the named nodes (default: all) are healthy; `TwinError` on timeout."""
        nodes = [self.node(n) for n in names] if names is not None else self.spec.nodes
        self._wait(nodes, timeout, self._health_problem, "become healthy")

    def wait_formed(self, names: Iterable[str] | None = None, timeout: float = 30.0) -> None:
        """Block until the named nodes (default: all) are healthy, route to every peer and
        know a JetStream meta leader; `TwinError` on timeout."""
        nodes = [self.node(n) for n in names] if names is not None else self.spec.nodes
        self._wait(nodes, timeout, self.formation_problem, "form a cluster")

    def formation_problem(self, node: NatsNode) -> str | None:
        """What keeps `node` from being a full member of the cluster, or None."""
        if problem := self._health_problem(node):
            return problem
        needed = len(self.spec.nodes) - 1
        routez = monitor_get(node.monitor_port, "/routez")[1]
        routes = (routez.get("routes") or []) if isinstance(routez, dict) else []
        # Since 2.10 each pair of servers keeps a pool of routes: count peers, not routes.
        if (seen := len({r.get("remote_name") for r in routes})) < needed:
            return f"sees {seen} of {needed} peers"
        jsz = monitor_get(node.monitor_port, "/jsz")[1]
        meta = (jsz.get("meta_cluster") or {}) if isinstance(jsz, dict) else {}
        if needed and not meta.get("leader"):
            return "knows no JetStream meta leader yet"
        if needed and meta.get("leader") == node.name:
            # Only the leader's view of its followers says whether it can place an R3 stream
            # yet; before that, stream creation fails with "no suitable peers for placement".
            ready = [r for r in meta.get("replicas") or []
                     if r.get("current") and not r.get("offline")]
            if len(ready) < needed:
                return f"JetStream meta leader has {len(ready)} of {needed} followers current"
        return None

    def describe(self) -> list[NodeStatus]:
        """State, URL and pid or container id of every node."""
        return [
            NodeStatus(n.name, self.node_state(n.name), n.url, self._handle(n.name))
            for n in self.spec.nodes
        ]

    def _prepare(self) -> None:
        """Write every node's config before any starts."""
        for node in self.spec.nodes:
            self._write_config(node)

    def _wait(self, nodes: Iterable[NatsNode], timeout: float, problem: _Check, goal: str) -> None:
        pending, deadline = list(nodes), time.monotonic() + timeout
        while pending := [n for n in pending if problem(n) is not None]:
            if time.monotonic() >= deadline:
                node = pending[0]
                raise TwinError(
                    f"NATS node {node.name} of cluster {self.spec.cluster_name} did not {goal} "
                    f"within {timeout:g}s ({problem(node)}); its last log lines:\n"
                    f"{self._log_tail(node.name)}"
                )
            time.sleep(0.1)

    def _health_problem(self, node: NatsNode) -> str | None:
        status, body = monitor_get(node.monitor_port, "/healthz")
        return None if status == 200 else f"/healthz answered {status or 'nothing'}: {body}"

    def _peers(self, node: NatsNode) -> list[NatsNode]:
        return [peer for peer in self.spec.nodes if peer != node]

    def _path(self, node: NatsNode, suffix: str = "") -> Path:
        """<workdir>/<node><suffix>: .conf, .pid, .log, or the JetStream store itself."""
        return Path(self.spec.workdir) / f"{node.name}{suffix}"

    def _write_config(self, node: NatsNode) -> None:
        # nats-server reads JSON as config: json.dumps gets the quoting right for free.
        ends = self._endpoints(node)
        routes, listen = ends.pop("routes"), ends.pop("cluster_listen")
        advertise = ends.pop("cluster_advertise", None)
        store = {"store_dir": ends.pop("store_dir"), "max_memory_store": 256 << 20}
        config = {
            "server_name": node.name,
            "jetstream": {**store, "max_file_store": 1 << 30},
            "authorization": {"user": self.spec.user, "password": self.spec.password},
            "ping_interval": f"{self.spec.ping_interval:g}s",
            "ping_max": 2,
            **ends,
        }
        if routes:  # a single node runs without a cluster block
            cluster = {"name": self.spec.cluster_name, "listen": listen, "routes": routes}
            config["cluster"] = cluster | ({"advertise": advertise} if advertise else {})
        self._path(node).mkdir(parents=True, exist_ok=True)
        self._path(node, ".conf").write_text(json.dumps(config, indent=2) + "\n")


def monitor_get(port: int, path: str, timeout: float = 1.0) -> tuple[int, Any]:
    """(HTTP status, JSON body) from a monitor port on 127.0.0.1; (0, reason) if silent."""
    try:
        with _OPENER.open(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        with exc:
            body = exc.read().decode(errors="replace")
        with contextlib.suppress(ValueError):
            return exc.code, json.loads(body)
        return exc.code, body
    except (OSError, ValueError) as exc:  # refused, reset, timed out (frozen), not JSON
        return 0, str(exc)


def tail(log: bytes, lines: int = 15) -> str:
    """The last lines of a log, without the warnings our own /healthz polling causes."""
    text = log.decode(errors="replace").splitlines()
    return "\n".join([line for line in text if "Healthcheck failed" not in line][-lines:])


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True
