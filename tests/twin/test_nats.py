"""The NATS twin on real nats-server processes and containers: no mocks."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import nats
import nats.errors
import pytest

from drills.errors import ConfigError, TwinError
from drills.twin.nats import (
    Backend,
    NatsCluster,
    NatsClusterSpec,
    NodeState,
    allocate,
    cluster_for,
    docker_available,
    netfault,
)
from drills.twin.nats.cluster import wait_for

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
STREAM = "ORDERS"

BACKENDS = [
    pytest.param(Backend.PROCESS, id="process"),
    pytest.param(Backend.CONTAINER, id="container", marks=pytest.mark.docker),
]


@pytest.fixture(params=BACKENDS)
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> NatsClusterSpec:
    """A fresh 3-node spec with its own workdir and a cluster name no other test uses."""
    if request.param is Backend.CONTAINER and (reason := docker_available()):
        pytest.skip(reason)
    name = f"t-{uuid.uuid4().hex[:8]}"
    return allocate("test", tmp_path / "nats", request.param, "drills", "s3cret", cluster_name=name)


@pytest.fixture
def cluster(spec: NatsClusterSpec) -> Iterator[NatsCluster]:
    """A started cluster, stopped at teardown whatever the test did to it."""
    started = cluster_for(spec)
    try:
        started.start()
        yield started
    finally:
        started.stop()


async def _quiet(_: Exception) -> None:
    """nats-py prints every lost connection by default; the tests cause them on purpose."""


async def _connect(spec: NatsClusterSpec, urls: list[str]) -> Any:
    return await nats.connect(
        servers=urls,
        user=spec.user,
        password=spec.password,
        connect_timeout=2,
        reconnect_time_wait=0.5,
        max_reconnect_attempts=20,
        error_cb=_quiet,
    )


async def _retry(call: Callable[[], Awaitable[T]], timeout: float = 20.0) -> T:
    """Retry a JetStream call through a leader election (~5-7 s), up to a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await call()
        except nats.errors.Error:
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.2)


async def _publish(js: Any, msg_id: str) -> Any:
    """Publish with an ack; the message id makes a retried (ghost) write count once."""
    headers = {"Nats-Msg-Id": msg_id}
    return await _retry(lambda: js.publish(f"{STREAM}.new", msg_id.encode(), 2, headers=headers))


async def _create_stream_and_publish(spec: NatsClusterSpec, urls: list[str]) -> tuple[int, int]:
    """(sequence of the first acked message, replicas of the stream that stored it)"""
    nc = await _connect(spec, urls)
    try:
        js = nc.jetstream()
        # Placement may lag formation by a fraction of a second ("no suitable peers").
        await _retry(lambda: js.add_stream(name=STREAM, subjects=[f"{STREAM}.>"], num_replicas=3))
        ack = await _publish(js, "first")
        info = await js.stream_info(STREAM)
        return int(ack.seq), 1 + len(info.cluster.replicas or [])
    finally:
        await nc.close()


async def _publish_and_count(spec: NatsClusterSpec, urls: list[str], msg_id: str) -> int:
    nc = await _connect(spec, urls)
    try:
        js = nc.jetstream()
        await _publish(js, msg_id)
        info = await _retry(lambda: js.stream_info(STREAM))
        return int(info.state.messages)
    finally:
        await nc.close()


def _peers(cluster: NatsCluster, name: str) -> set[str]:
    """Names of the servers a node has routes to, from its monitor port."""
    url = f"http://127.0.0.1:{cluster.node(name).monitor_port}/routez"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
    with opener.open(url, timeout=2) as resp:
        return {route["remote_name"] for route in json.load(resp)["routes"]}


def _leftovers(spec: NatsClusterSpec) -> list[str]:
    """Live nats-server processes or containers/networks that still belong to `spec`."""
    if spec.backend is Backend.PROCESS:
        found = []
        for proc in Path("/proc").iterdir():
            try:  # a zombie has an empty cmdline: it is dead, only not reaped yet
                argv = (proc / "cmdline").read_bytes() if proc.name.isdigit() else b""
            except OSError:
                continue
            if spec.workdir.encode() in argv:
                found.append(f"pid {proc.name}")
        return found
    import docker

    client = docker.from_env()
    try:
        prefix = f"drills-{spec.cluster_name}"
        containers = client.containers.list(all=True, filters={"name": prefix})
        networks = client.networks.list(names=[prefix])
        return [c.name for c in containers] + [n.name for n in networks]
    finally:
        client.close()


def test_cluster_forms_and_serves_an_r3_stream(cluster: NatsCluster) -> None:
    """start() returns a formed cluster: all nodes run, see each other, and an R3 stream
    takes an acknowledged publish."""
    names = [node.name for node in cluster.spec.nodes]
    assert [status.state for status in cluster.describe()] == [NodeState.RUNNING] * 3
    assert all(status.handle for status in cluster.describe())
    assert all(cluster.healthy(name) for name in names)
    assert _peers(cluster, names[0]) == set(names[1:])
    assert asyncio.run(_create_stream_and_publish(cluster.spec, cluster.spec.urls)) == (1, 3)


def test_killed_node_is_stopped_and_the_others_keep_serving(cluster: NatsCluster) -> None:
    """After kill_node the node reads STOPPED, and the two others stay healthy and keep
    acknowledging writes to the R3 stream (quorum 2 of 3)."""
    spec = cluster.spec
    asyncio.run(_create_stream_and_publish(spec, spec.urls))
    victim, *survivors = spec.nodes
    cluster.kill_node(victim.name)
    assert cluster.node_state(victim.name) is NodeState.STOPPED
    assert not cluster.healthy(victim.name)
    cluster.wait_healthy([n.name for n in survivors], timeout=20)
    urls = [n.url for n in survivors]
    assert asyncio.run(_publish_and_count(spec, urls, "after-kill")) == 2


def test_frozen_node_reads_frozen_and_thaw_restores_it(cluster: NatsCluster) -> None:
    """freeze_node suspends a node (FROZEN, /healthz silent); thaw_node makes it RUNNING
    and healthy again."""
    name = cluster.spec.nodes[2].name
    cluster.freeze_node(name)
    assert cluster.node_state(name) is NodeState.FROZEN
    assert not cluster.healthy(name)
    cluster.thaw_node(name)
    assert cluster.node_state(name) is NodeState.RUNNING
    cluster.wait_healthy([name], timeout=20)


def test_stopped_node_restarts_on_its_ports_and_rejoins(cluster: NatsCluster) -> None:
    """A node stopped gracefully and started again answers on the same ports, routes to
    both peers again and serves the stream written before it stopped."""
    spec = cluster.spec
    asyncio.run(_create_stream_and_publish(spec, spec.urls))
    node = spec.nodes[1]
    cluster.stop_node(node.name)
    assert cluster.node_state(node.name) is NodeState.STOPPED
    assert not cluster.healthy(node.name)
    cluster.start_node(node.name)
    cluster.wait_healthy([node.name], timeout=30)
    assert cluster.node_state(node.name) is NodeState.RUNNING
    assert _peers(cluster, node.name) == {n.name for n in spec.nodes} - {node.name}
    assert asyncio.run(_publish_and_count(spec, [node.url], "after-restart")) == 2


def test_cluster_is_controlled_from_its_spec_alone(cluster: NatsCluster) -> None:
    """A spec that went through JSON controls the cluster: another process kills a node
    by it, and a second NatsCluster object stops the cluster the first one started."""
    saved = json.dumps(cluster.spec.to_dict())
    restored = NatsClusterSpec.from_dict(json.loads(saved))
    assert restored == cluster.spec
    victim = restored.nodes[0].name
    script = (
        "import json, sys\n"
        "from drills.twin.nats import NatsClusterSpec, cluster_for\n"
        "spec = NatsClusterSpec.from_dict(json.load(sys.stdin))\n"
        "cluster_for(spec).kill_node(sys.argv[1])\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, victim], input=saved, text=True, cwd=REPO, check=True
    )
    assert cluster.node_state(victim) is NodeState.STOPPED
    cluster_for(restored).stop()
    assert [s.state for s in cluster.describe()] == [NodeState.STOPPED] * 3
    assert _leftovers(cluster.spec) == []


def test_stop_leaves_nothing_behind(cluster: NatsCluster) -> None:
    """stop() ends every node, even a frozen one, leaves no process, container or
    network behind, and may be called again."""
    assert _leftovers(cluster.spec)
    cluster.freeze_node(cluster.spec.nodes[0].name)
    cluster.stop()
    assert _leftovers(cluster.spec) == []
    cluster.stop()
    assert [s.state for s in cluster.describe()] == [NodeState.STOPPED] * 3


async def _reply_through(spec: NatsClusterSpec, responder_url: str, asker_url: str,
                         timeout: float = 1.0) -> bytes:
    """Ask on one node for an answer from a responder connected to another."""
    responder = await _connect(spec, [responder_url])
    asker = await _connect(spec, [asker_url])
    try:
        async def echo(msg: Any) -> None:
            await msg.respond(b"pong")

        await responder.subscribe("drills.echo", cb=echo)
        await responder.flush()
        # The subscription reaches the asker's server through a route a moment later.
        deadline = asyncio.get_running_loop().time() + 3
        while True:
            try:
                return bytes((await asker.request("drills.echo", b"ping", timeout=timeout)).data)
            except nats.errors.NoRespondersError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.05)
    finally:
        await asker.close()
        await responder.close()


def _routes(cluster: NatsCluster, name: str) -> set[str]:
    """Peers a node routes to, or an empty set if its monitor does not answer."""
    try:
        return _peers(cluster, name)
    except OSError:
        return set()


def test_partitioned_node_is_cut_off_and_rejoins_when_healed(cluster: NatsCluster) -> None:
    """partition_node cuts one node off peers and clients with sockets left open: it reads
    PARTITIONED, the majority still lists its routes to it (nothing was closed, unlike a
    crash), keeps an R3 stream writable and serves requests, while a client connected only
    to the cut-off node gets no answer; heal_node makes it a full member again."""
    spec = cluster.spec
    asyncio.run(_create_stream_and_publish(spec, spec.urls))
    victim, a, b = spec.nodes
    cluster.partition_node(victim.name)
    assert cluster.node_state(victim.name) is NodeState.PARTITIONED
    assert cluster.partitioned() == {victim.name}
    assert victim.name in _routes(cluster, a.name)  # a blackhole, not a reset
    with pytest.raises((nats.errors.Error, asyncio.TimeoutError, OSError)):
        asyncio.run(asyncio.wait_for(_reply_through(spec, a.url, victim.url), timeout=5))
    assert asyncio.run(_reply_through(spec, a.url, b.url)) == b"pong"
    assert asyncio.run(_publish_and_count(spec, [a.url, b.url], "during-partition")) == 2
    cluster.heal_node(victim.name)
    cluster.heal_node(victim.name)  # idempotent
    assert cluster.partitioned() == set()
    cluster.wait_formed(timeout=60)
    assert cluster.node_state(victim.name) is NodeState.RUNNING
    assert asyncio.run(_reply_through(spec, a.url, victim.url)) == b"pong"


def test_partition_of_an_unknown_node_changes_nothing(cluster: NatsCluster) -> None:
    """Partitioning a node the cluster does not have is a ConfigError, before any change."""
    with pytest.raises(ConfigError):
        cluster.partition_node("nats-test-9")
    assert cluster.partitioned() == set()


PROCESS_ONLY = pytest.mark.parametrize(
    "spec", [pytest.param(Backend.PROCESS, id="process")], indirect=True)


@PROCESS_ONLY
def test_proxy_knows_who_dialled_every_route(cluster: NatsCluster) -> None:
    """Process backend: each route through the proxy is tagged with the node that dialled
    it (read from the kernel), so a partition also cuts the routes a node opened itself."""
    log = Path(cluster.spec.workdir) / "netfault.log"
    assert "serving" in log.read_text()
    assert "dialler unknown" not in log.read_text()


@pytest.mark.parametrize("lookup", [netfault.socket_inode, netfault._proc_inode],
                         ids=["sock_diag", "proc"])
def test_a_connections_socket_is_found_by_its_ports(lookup: Callable[[int, int], int | None]
                                                    ) -> None:
    """The proxy tells who dialled a route by the inode of the dialler's socket, looked up by
    its two loopback ports (in the kernel, else in /proc/net/tcp): that socket's inode, each
    end its own, none for ports no connection has."""
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname()) as dialled:
        accepted, _ = server.accept()
        with accepted:
            ends = [(dialled, dialled.getsockname()[1], server.getsockname()[1]),
                    (accepted, server.getsockname()[1], dialled.getsockname()[1])]
            for sock, local, remote in ends:
                inode = int(os.readlink(f"/proc/self/fd/{sock.fileno()}")[len("socket:["):-1])
                assert lookup(local, remote) == inode
            assert lookup(dialled.getsockname()[1], 1) is None


@PROCESS_ONLY
def test_proxy_restart_keeps_the_partition(spec: NatsClusterSpec) -> None:
    """Process backend: a proxy that dies and starts again puts the same partition back in
    force (its state file is the truth), and stop() leaves neither proxy nor partition."""
    cluster = cluster_for(spec)
    cluster.start()
    try:
        proxy = cluster.proxy  # type: ignore[attr-defined]
        name = spec.nodes[1].name
        cluster.partition_node(name)
        old = proxy.pid()
        os.kill(old, signal.SIGKILL)
        assert wait_for(lambda: proxy.pid() is None, 5)
        assert cluster.partitioned() == {name}  # read from the state file meanwhile
        cluster.start_node(spec.nodes[0].name)  # a start brings the proxy back
        assert proxy.pid() not in (None, old)
        assert cluster.partitioned() == {name}
    finally:
        cluster.stop()
    assert cluster.partitioned() == set()
    assert _leftovers(spec) == []


def test_start_fails_clearly_when_a_port_is_taken(spec: NatsClusterSpec) -> None:
    """If a node cannot bind its port, start() raises TwinError naming the node and
    showing its log, and leaves nothing running."""
    node = spec.nodes[1]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", node.client_port))
        squatter.listen()
        with pytest.raises(TwinError, match=f"{node.name}|{node.client_port}"):
            cluster_for(spec).start(timeout=10)
    assert _leftovers(spec) == []


def test_allocate_gives_distinct_ports_and_a_spec_that_round_trips(tmp_path: Path) -> None:
    """allocate() hands out 3 distinct ports per node and a JSON-safe spec; nothing runs."""
    spec = allocate("eu-west-1", tmp_path, Backend.PROCESS, "u", "p")
    ports = [p for n in spec.nodes for p in (n.client_port, n.cluster_port, n.monitor_port)]
    assert len(set(ports)) == 9
    assert spec.urls == [f"nats://127.0.0.1:{n.client_port}" for n in spec.nodes]
    assert [n.name for n in spec.nodes] == [f"nats-eu-west-1-{i}" for i in range(3)]
    assert NatsClusterSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert cluster_for(spec).node_state(spec.nodes[0].name) is NodeState.STOPPED


@pytest.mark.parametrize(
    "bad",
    [{}, {"backend": "vm"}, {"nodes": []}, {"workdir": "relative/dir"}],
    ids=["empty", "unknown-backend", "no-nodes", "relative-workdir"],
)
def test_malformed_spec_is_a_config_error(tmp_path: Path, bad: dict[str, Any]) -> None:
    """from_dict() rejects a damaged spec with ConfigError instead of a KeyError later."""
    data = allocate("r", tmp_path, Backend.PROCESS, "u", "p").to_dict() if bad else {}
    with pytest.raises(ConfigError):
        NatsClusterSpec.from_dict({**data, **bad})


def test_unknown_region_or_node_name_is_a_config_error(tmp_path: Path) -> None:
    """Names that cannot be a container or server name, and unknown nodes, are refused."""
    with pytest.raises(ConfigError):
        allocate("EU West", tmp_path, Backend.PROCESS, "u", "p")
    cluster = cluster_for(allocate("r", tmp_path, Backend.PROCESS, "u", "p"))
    with pytest.raises(ConfigError):
        cluster.kill_node("nats-r-9")
