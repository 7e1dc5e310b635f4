"""Faults of the NATS cluster (runbook 3.3, 4.2): nodes crash, freeze or are cut off.

They act on the nats-server processes or containers the twin runs (they require `processes`): on an
account the same failures would be caused on the NATS instances themselves. Which nodes:
those holding the most client connections (workers, probes), so that clients are hit.
Every revert brings the chosen nodes back and waits until the cluster is whole again
(each node healthy, routed to every peer, a JetStream meta leader known).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from drills.capabilities import Capability
from drills.errors import FaultError
from drills.faults.base import Fault, Share
from drills.twin.nats.cluster import monitor_get
from drills.twin.nats.spec import NodeState

REJOIN_TIMEOUT = 60.0  # seconds a reverted node gets to rejoin before the revert fails


class _NatsFault(Fault):
    target_kind = "nats"
    requires = frozenset({Capability.PROCESSES})
    # Enclaves whose NATS is gone fail their health checks and are replaced (runbook 3.3).
    raises_alarms = frozenset({"nats_alarm", "enclave_alarm"})
    action = ""  # what inject() does, for describe()

    @property
    def target(self) -> str:
        # Read before prepare() (allow-list check): the cluster's name comes from the twin.
        if "cluster" not in self.params:
            self.params["cluster"] = self._cluster().spec.cluster_name
        return str(self.params["cluster"])


    def _cluster(self) -> Any:  # drills.twin.nats.NatsCluster
        return self.ctx.twin.nats(self.region)

    def describe(self) -> str:
        nodes = self.params.get("nodes") or [f"{self.params['count']} node(s)"]
        return f"{self.action} NATS {', '.join(nodes)} of cluster {self.target}"

    def prepare(self) -> None:
        cluster = self._cluster()
        count = int(self.params["count"])
        running = [n for n in cluster.spec.nodes if cluster.node_state(n.name) is NodeState.RUNNING]
        if count < 1 or count > len(running):
            raise FaultError(f"cannot {self.action} {count} NATS node(s) of cluster "
                             f"{cluster.spec.cluster_name}: {len(running)} of "
                             f"{len(cluster.spec.nodes)} are running; ask for 1..{len(running)}")
        # The busiest nodes first: a failure nobody is connected to would prove little.
        load = {n.name: _client_connections(n.monitor_port) for n in running}
        chosen = sorted(running, key=lambda n: (-load[n.name], n.name))[:count]
        self.params["nodes"] = [n.name for n in chosen]
        self.params["cluster_size"] = len(cluster.spec.nodes)
        self.params["client_connections"] = load  # evidence: who was on the failed nodes
        self.params["backend"] = cluster.spec.backend.value

    def share(self) -> Share:
        return Share(f"nodes of NATS cluster {self.target}", len(self.params["nodes"]),
                     int(self.params["cluster_size"]))

    def _each(self, action: Callable[[str], None]) -> None:
        """Act on every chosen node at once: N nodes failing is one event, not N in a row."""
        nodes = list(self.params.get("nodes", []))
        with ThreadPoolExecutor(max(len(nodes), 1)) as pool:
            list(pool.map(action, nodes))  # list(): re-raise the first failure

    def _rejoin(self) -> None:
        """Wait until every node of the cluster is a full member again."""
        self._cluster().wait_formed(timeout=REJOIN_TIMEOUT)


class KillNodes(_NatsFault):
    """SIGKILL (docker kill) N nodes, as a crash of nats-server would; revert restarts them."""

    kind = "nats.kill-nodes"
    calls = ("process:SIGKILL nats-server (docker kill)",)
    revert_calls = ("process:start nats-server",)
    action = "kill"

    def inject(self) -> None:
        self._each(self._cluster().kill_node)

    def revert(self) -> None:
        self._each(self._cluster().start_node)  # already running (the runbook did it): no-op
        self._rejoin()


class FreezeNodes(_NatsFault):
    """SIGSTOP (docker pause) N nodes: sockets stay open, nothing answers; revert thaws."""

    kind = "nats.freeze-nodes"
    calls = ("process:SIGSTOP nats-server (docker pause)",)
    revert_calls = ("process:SIGCONT nats-server (docker unpause)",)
    action = "freeze"

    def inject(self) -> None:
        self._each(self._cluster().freeze_node)

    def revert(self) -> None:
        # start_node thaws a frozen node, and starts one that was stopped meanwhile.
        self._each(self._cluster().start_node)
        self._rejoin()


class PartitionNodes(_NatsFault):
    """Cut N nodes off the network (peers and clients), sockets left open; revert heals."""

    kind = "nats.partition-nodes"
    calls = ("process:cut nats-server off its peers and clients",)
    revert_calls = ("process:heal nats-server's network", "process:start nats-server")
    action = "partition"

    def inject(self) -> None:
        self._each(self._cluster().partition_node)

    def revert(self) -> None:
        cluster = self._cluster()

        def heal(name: str) -> None:
            cluster.heal_node(name)
            cluster.start_node(name)  # no-op when it runs; restarts it if it died meanwhile

        self._each(heal)
        self._rejoin()


def _client_connections(monitor_port: int) -> int:
    """Client connections a node holds now (0 if its monitor does not answer)."""
    status, body = monitor_get(monitor_port, "/varz")
    return int(body.get("connections", 0)) if status == 200 and isinstance(body, dict) else 0
