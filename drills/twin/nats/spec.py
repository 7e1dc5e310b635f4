"""What a NATS cluster of the twin is, as data: its nodes, their ports, how it runs.

A spec is all any process needs to find and control a cluster: `allocate` makes one on
free 127.0.0.1 ports, `to_dict`/`from_dict` carry it through the twin's state file.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import asdict, astuple, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from drills.errors import ConfigError
from drills.twin.ports import free_ports

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,40}$")  # fits docker names and DNS labels


class Backend(StrEnum):
    """How the nodes run: host processes, or containers of a Docker engine."""

    PROCESS = "process"
    CONTAINER = "container"


class NodeState(StrEnum):
    """What a node is doing, as far as the operating system, Docker or the network can tell."""

    RUNNING = "running"
    STOPPED = "stopped"
    FROZEN = "frozen"
    PARTITIONED = "partitioned"  # running, but cut off from its peers and its clients


@dataclass(frozen=True, slots=True)
class NatsNode:
    """One server of the cluster and the host ports (on 127.0.0.1) it answers on.

    On the process backend the client and cluster ports belong to the cluster's proxy
    (see `netfault`), which forwards to the server's inner ports; 0 means no proxy.
    """

    name: str
    client_port: int
    cluster_port: int
    monitor_port: int
    inner_client_port: int = 0
    inner_cluster_port: int = 0

    @property
    def url(self) -> str:
        """Client URL of this node."""
        return f"nats://127.0.0.1:{self.client_port}"


@dataclass(frozen=True, slots=True)
class NatsClusterSpec:
    """Everything needed to start, find and control a cluster from any process."""

    region: str
    cluster_name: str
    backend: Backend
    workdir: str  # absolute; holds configs, pid files, logs and JetStream stores
    user: str
    password: str
    nodes: tuple[NatsNode, ...]
    control_port: int = 0  # the proxy's control port (process backend)
    #: Seconds between the servers' pings to clients and routes (nats-server default 2m);
    #: a frozen or cut-off peer goes stale after 2 unanswered pings.
    ping_interval: float = 120.0

    @property
    def ports(self) -> set[int]:
        """Every port the cluster's nodes and proxy use."""
        return {p for n in self.nodes for p in astuple(n)[1:] if p} | {self.control_port} - {0}

    @property
    def urls(self) -> list[str]:
        """Client URLs of all nodes, for `nats.connect(servers=...)`."""
        return [node.url for node in self.nodes]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form that `from_dict` turns back into an equal spec."""
        nodes = [asdict(node) for node in self.nodes]
        return {**asdict(self), "backend": self.backend.value, "nodes": nodes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NatsClusterSpec:
        """Rebuild a spec saved with `to_dict`; `ConfigError` if it is malformed."""
        try:
            texts = {k: str(data[k]) for k in ("region", "cluster_name", "workdir", "user")}
            spec = cls(
                **texts,
                backend=Backend(data["backend"]),
                password=str(data["password"]),
                nodes=tuple(NatsNode(**node) for node in data["nodes"]),
                control_port=int(data.get("control_port", 0)),
                ping_interval=float(data.get("ping_interval", 120.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"NATS cluster spec is malformed ({exc!r}); allocate anew") from exc
        if not Path(spec.workdir).is_absolute() or not spec.nodes:
            raise ConfigError("a NATS cluster spec needs an absolute workdir and a node at least")
        return spec

    def __repr__(self) -> str:
        # The password must never reach a log line or a traceback through repr().
        return (f"NatsClusterSpec(region={self.region!r}, cluster_name={self.cluster_name!r}, "
                f"backend={self.backend.value!r}, nodes={[n.name for n in self.nodes]})")


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One node as status output shows it; `handle` is its pid or container id."""

    name: str
    state: NodeState
    url: str
    handle: str | None


def allocate(
    region: str,
    workdir: Path,
    backend: Backend,
    user: str,
    password: str,
    size: int = 3,
    cluster_name: str | None = None,
    ping_interval: float = 120.0,
    avoid: Collection[int] = (),
) -> NatsClusterSpec:
    """Make the spec of a `size`-node cluster on free 127.0.0.1 ports, none of `avoid` (the
    ports of another cluster allocated but not started yet); nothing starts."""
    cluster_name = cluster_name or f"twin-{region}"
    for what, value in (("region", region), ("cluster name", cluster_name)):
        if not _NAME_RE.match(value):
            raise ConfigError(f"NATS {what} {value!r} must be lower-case letters, digits, - or .")
    if size < 1 or not user or not password:
        raise ConfigError("a NATS cluster needs at least one node, a user and a password")
    backend = Backend(backend)
    # Process nodes sit behind the proxy: two more (inner) ports each, and its control port.
    per_node = 5 if backend is Backend.PROCESS else 3
    p = free_ports(per_node * size + (1 if backend is Backend.PROCESS else 0), avoid)
    nodes = tuple(
        NatsNode(f"nats-{region}-{i}", *p[per_node * i : per_node * (i + 1)]) for i in range(size)
    )
    control = p[-1] if backend is Backend.PROCESS else 0
    workdir = Path(workdir).resolve()
    return NatsClusterSpec(
        region, cluster_name, backend, str(workdir), user, password, nodes, control,
        ping_interval,
    )
