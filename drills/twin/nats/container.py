"""Nodes as containers of the local Docker engine, on a bridge network of their own.

A partition is made inside the container's own network namespace: iptables there drops
every packet in or out (but loopback), so peers on the bridge and clients coming through
the published ports both lose it, and every socket stays open, as on a real network.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from drills.errors import TwinError
from drills.twin.nats.cluster import NatsCluster, tail, wait_for
from drills.twin.nats.process import nats_server_binary
from drills.twin.nats.spec import NatsNode, NodeState

IMAGE_REPOSITORY = "drills/nats-server"
_INNER_PORTS = (4222, 6222, 8222)  # client, cluster, monitor inside every container
_STOP_GRACE = 10  # seconds a node gets to shut down cleanly before SIGKILL
_CUT_MARK = "drills-partition"  # comment on our iptables rules, so heal removes only ours


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


class ContainerCluster(NatsCluster):
    """Nodes as containers `drills-<cluster>-<node>` on a bridge network of their own,
    publishing the spec's ports on 127.0.0.1 so that a restarted container keeps them."""

    def __init__(self, spec: Any) -> None:
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

    def partition_node(self, name: str) -> None:
        container = self._container(name)
        if container is None or container.status != "running":
            raise TwinError(f"NATS container {self.container_name(name)} is not running; "
                            "only a running node can be partitioned")
        if self._cut(container):
            return
        # INPUT and OUTPUT of the container's own namespace: its peers on the bridge and
        # the published ports both go through them; loopback inside stays up.
        for chain, side in (("INPUT", "-i"), ("OUTPUT", "-o")):
            self._iptables(container, "-I", chain, "!", side, "lo", "-m", "comment",
                           "--comment", _CUT_MARK, "-j", "DROP")

    def heal_node(self, name: str) -> None:
        container = self._container(name)
        if container is None or container.status != "running":
            return  # a stopped container's namespace, rules and all, is gone
        for chain, side in (("INPUT", "-i"), ("OUTPUT", "-o")):
            rule = (chain, "!", side, "lo", "-m", "comment", "--comment", _CUT_MARK,
                    "-j", "DROP")
            while self._iptables(container, "-C", *rule, check=False) == 0:
                self._iptables(container, "-D", *rule)

    def partitioned(self) -> set[str]:
        return {n.name for n in self.spec.nodes
                if (c := self._container(n.name)) is not None and c.status == "running"
                and self._cut(c)}

    def _cut(self, container: Any) -> bool:
        rules = self._iptables(container, "-S", capture=True)
        return _CUT_MARK in str(rules)

    def _iptables(self, container: Any, *args: str, check: bool = True,
                  capture: bool = False) -> Any:
        """Run iptables in the network namespace of `container` (nsenter, as root)."""
        pid = int(container.attrs["State"]["Pid"])
        cmd = ["nsenter", "-t", str(pid), "-n", "iptables", "-w", *args]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TwinError(f"could not run iptables for {container.name} ({exc}); the "
                            "container backend partitions need nsenter and iptables") from exc
        if check and out.returncode != 0:
            raise TwinError(f"iptables {' '.join(args)} failed in {container.name}: "
                            f"{out.stderr.strip()}")
        return out.stdout if capture else out.returncode

    def _process_state(self, name: str) -> NodeState:
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
        if not wait_for(lambda: getattr(self._container(name), "status", "exited") == reached, 10):
            raise TwinError(f"container {container.name} did not become {reached} after {action}")

    def _handle(self, name: str) -> str | None:
        container = self._container(name)
        return None if container is None else f"container {container.short_id}"

    def _log_tail(self, name: str) -> str:
        container = self._container(name)
        return "(no container)" if container is None else tail(container.logs(tail=200))


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
