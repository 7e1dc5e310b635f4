"""What NATS drills measure beyond a drill's own figures.

- The vault service until it is *stable* again. After a frozen or partitioned NATS node the
  other servers keep routing part of the requests to the dead node until its route times
  out (two unanswered pings), so failures come and go: the settle window is at least two
  ping intervals of the cluster.
- The NATS cluster whole again: every node healthy, routed to every peer, a meta leader.
- JetStream writes: their outage and recovery, from acknowledged publishes, and their RPO.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from drills.errors import ObjectiveBreached
from drills.evidence.model import Measurement, RpoMeasurement
from drills.measure.jetstream import JetStreamCanary

if TYPE_CHECKING:
    from drills.drill import Drill


def settle_window(drill: Drill) -> float:
    """The drill's settle window, and at least the two pings that notice a dead route."""
    return max(drill.settle, 2 * drill.target.nats_ping_interval)


def measure_service_stable(drill: Drill, component: str) -> Measurement:
    """Service RTO after the last fault, once probes have not failed for the NATS settle
    window (failures come and go until a dead node's routes time out)."""
    return drill.measure_service(component, settle=settle_window(drill))


def measure_cluster(drill: Drill, component: str, cluster: Any,
                    poll: float = 0.25) -> Measurement:
    """Time from the last fault until every NATS node is a full member of the cluster."""
    def problem() -> str | None:
        for node in cluster.spec.nodes:
            why = cluster.formation_problem(node)
            if why is not None:
                return f"{node.name} {why}"
        return None

    measurement, _ = drill.measure_polled(
        "cluster", component, problem, poll=poll,
        what=f"NATS cluster {cluster.spec.cluster_name} to be whole",
        method=(f"polled every NATS node's monitor every {poll:g} s: healthy (/healthz), "
                "routed to every peer (/routez), JetStream meta leader with every follower "
                "current (/jsz)"))
    return measurement


def wait_jetstream_failure(drill: Drill, canary: JetStreamCanary, timeout: float) -> float:
    """Block until a JetStream publish fails after the last fault; returns detection time."""
    fault = drill.last_fault

    def failed(publishes: Sequence[Any]) -> bool:
        drill.progress("waiting for JetStream publishes to fail")
        return any(p.done >= fault.injected_at and not p.acked for p in publishes)

    if not canary.wait(failed, timeout):
        acked = sum(p.acked for p in canary.publishes() if p.done >= fault.injected_at)
        raise ObjectiveBreached(f"JetStream writes did not stop within {timeout:g}s of "
                                f"'{fault.fault.describe()}' ({acked} publishes acknowledged "
                                f"since); the stream {canary.stream} kept its quorum")
    return min(p.done for p in canary.publishes()
               if p.done >= fault.injected_at and not p.acked) - fault.injected_at


def measure_jetstream_writes(drill: Drill, canary: JetStreamCanary,
                             component: str) -> Measurement:
    """RTO of JetStream writes after the last fault, from acknowledged publishes."""
    settle = settle_window(drill)
    return drill.measure_probes(
        component, canary.results, interval=canary.interval, name="jetstream-writes",
        what="JetStream writes to recover", settle=settle,
        method=(f"JetStream publishes with ack to R{canary.replicas} stream {canary.stream} "
                f"every {canary.interval * 1000:g} ms (ack timeout {canary.timeout:g} s, "
                f"Nats-Msg-Id de-duplication); recovered = first ack after the last failure, "
                f"with none failed for {settle:g} s after"))


def measure_jetstream_rpo(drill: Drill, canary: JetStreamCanary,
                          component: str) -> RpoMeasurement:
    """Stop the canary, read the stream back, and measure lost acknowledged publishes."""
    canary.stop()
    drill.progress("reading every JetStream message back", every=0.0)
    return drill.conclude_rpo(
        component, canary.verify(),
        f"{canary.rate:g} JetStream publishes per second to R{canary.replicas} stream "
        f"{canary.stream}, every acknowledged one read back by id and hash")
