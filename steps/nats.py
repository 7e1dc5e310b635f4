"""Steps for the NATS cluster (runbook 3.3, 4.2): nodes crash, freeze or are cut off; SSM
restarts; the cluster, the vault service and JetStream writes measured back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from pytest_bdd import given, parsers, then, when

from drills.capabilities import Capability, needs
from drills.drill import Drill
from drills.errors import ConfigError, ObjectiveBreached
from drills.faults import ActiveFault
from drills.faults.nats import FreezeNodes, KillNodes, PartitionNodes
from drills.measure.jetstream import JetStreamCanary
from drills.measure.nats import (
    measure_cluster,
    measure_jetstream_rpo,
    measure_jetstream_writes,
    measure_service_stable,
    wait_jetstream_failure,
)
from drills.procedures import nats as runbook

if TYPE_CHECKING:
    from drills.twin.nats import NatsCluster

FORM_TIMEOUT = 60.0
DETECT_TIMEOUT = 60.0


def _cluster(drill: Drill) -> NatsCluster:
    """The NATS nodes themselves (a target with the `processes` capability)."""
    cluster: NatsCluster = drill.target.nats_cluster(drill.target.region)
    return cluster


def _fault(drill: Drill, kind: type, count: int) -> Iterator[ActiveFault]:
    active = drill.inject(kind, count=count)
    yield active
    drill.revert(active)


@given("the NATS cluster is whole")
@needs(Capability.PROCESSES)
def cluster_whole(drill: Drill) -> None:
    """Every node healthy, routed to every peer, and a JetStream meta leader with every
    follower current (a previous drill may have just brought a node back)."""
    _cluster(drill).wait_formed(timeout=FORM_TIMEOUT)


@when(parsers.re(r"the NATS server crashes on (?P<count>\d+) instances?"),
      converters={"count": int})
def nats_crash(drill: Drill, count: int) -> Iterator[ActiveFault]:
    """SIGKILL nats-server (docker kill) on N nodes, the busiest first; reverted at teardown
    by starting them again and waiting until the cluster is whole."""
    yield from _fault(drill, KillNodes, count)


@when("the NATS server crashes on every instance")
def nats_crash_all(drill: Drill) -> Iterator[ActiveFault]:
    """SIGKILL nats-server on every node: runbook 3.3, no enclave can be reached."""
    yield from _fault(drill, KillNodes, len(_cluster(drill).spec.nodes))


@when(parsers.re(r"the NATS server freezes on (?P<count>\d+) instances?"),
      converters={"count": int})
def nats_freeze(drill: Drill, count: int) -> Iterator[ActiveFault]:
    """SIGSTOP nats-server (docker pause) on N nodes: their sockets stay open and silent, so
    clients and peers notice only through pings; thawed at teardown."""
    yield from _fault(drill, FreezeNodes, count)


@when(parsers.re(r"(?P<count>\d+) NATS instances? (?:is|are) cut off from the network"),
      converters={"count": int})
def nats_partition(drill: Drill, count: int) -> Iterator[ActiveFault]:
    """Drop every packet to and from N nodes (peers and clients alike), sockets left open;
    healed at teardown."""
    yield from _fault(drill, PartitionNodes, count)


@when("the operator restarts NATS on all instances via SSM (runbook 4.2 step 1)")
def restart_all(drill: Drill) -> None:
    """Runbook 4.2 step 1 as printed: for every running instance tagged
    Application=vettid-nats, `send-command AWS-RunShellScript sudo systemctl restart
    nats-server`; waits until every invocation succeeded."""
    drill.target.prepare_nats_instances(drill.target.region)
    runbook.restart_nats(drill.target.clients, drill.target.region, drill.progress)


@when(parsers.re(r"the operator restarts NATS via SSM on (?P<count>\d+) instances? where it "
                 r"is down"), converters={"count": int})
def restart_some(drill: Drill, count: int) -> None:
    """Diagnose with `systemctl is-active nats-server` through SSM, then restart nats-server
    (runbook 4.2 step 1) on the first N instances where it is down."""
    drill.target.prepare_nats_instances(drill.target.region)
    down = runbook.instances_where_down(drill.target.clients, drill.target.region,
                                        drill.progress)
    if len(down) < count:
        raise ConfigError(f"nats-server is down on {len(down)} instance(s) ({down}), fewer "
                          f"than the {count} to restart; check the step's count")
    runbook.restart_nats(drill.target.clients, drill.target.region, drill.progress,
                         instance_ids=down[:count])


@given("the enclave workers are noted", target_fixture="enclave_workers")
@needs(Capability.PROCESSES)
def note_workers(drill: Drill) -> dict[str, int]:
    """Instance id -> pid of every enclave process now, to compare after."""
    return drill.target.enclave_processes(drill.target.region)


@then("the enclave workers reconnected by themselves (same processes, all serving)")
@needs(Capability.PROCESSES)
def workers_reconnected(drill: Drill, enclave_workers: dict[str, int]) -> None:
    """No worker was restarted or replaced to get through the NATS outage, and every one
    answers its own health subject again: their NATS clients reconnected on their own."""
    now = drill.target.enclave_processes(drill.target.region)
    if now != enclave_workers:
        raise ObjectiveBreached(f"enclave workers changed during the drill ({enclave_workers} "
                                f"before, {now} after): they did not reconnect by themselves")
    capacity = drill.capacity()
    if capacity.serving < len(now):
        raise ObjectiveBreached(f"only {capacity.serving} of {len(now)} enclave workers answer "
                                "their health subject after the NATS outage")


@then(parsers.parse('the NATS cluster is whole again within the "{component}" objective'))
@needs(Capability.PROCESSES)
def cluster_recovers(drill: Drill, component: str) -> None:
    """Measured time from the fault until every node is a full member again."""
    drill.assert_met(measure_cluster(drill, component, _cluster(drill)))


@then(parsers.parse('vault operations are stable again within the "{component}" objective'))
def operations_stable(drill: Drill, component: str) -> None:
    """Service RTO from probes, taken only once no probe has failed for a settle window:
    after a frozen or cut-off node, failures come and go until its routes time out."""
    drill.assert_met(measure_service_stable(drill, component))


@given("a JetStream canary publishes acknowledged messages to an R3 stream",
       target_fixture="jetstream_canary")
def jetstream_canary(drill: Drill) -> Iterator[JetStreamCanary]:
    """Create stream VETTID_DRILL (3 replicas), publish with acks and Nats-Msg-Id, and wait
    for the first acknowledged publishes; the stream is deleted at teardown."""
    client = drill.target.connect(drill.loop, name="drills-jetstream")
    canary = JetStreamCanary(drill.loop, client.nc)
    try:
        canary.create_stream()
        canary.start()
        k = drill.settings.probes.consecutive
        if not canary.wait(lambda ps: sum(p.acked for p in ps) >= k, DETECT_TIMEOUT):
            raise ConfigError(f"JetStream stream {canary.stream} acknowledged fewer than {k} "
                              f"publishes in {DETECT_TIMEOUT:g}s; fix the cluster first")
        yield canary
    finally:
        canary.stop()
        try:
            canary.delete_stream()
        finally:
            drill.loop.run(client.nc.close(), timeout=10)


@then("JetStream writes stop")
def jetstream_stops(drill: Drill, jetstream_canary: JetStreamCanary) -> None:
    """A publish made after the fault gets no acknowledgement."""
    wait_jetstream_failure(drill, jetstream_canary, DETECT_TIMEOUT)


@then(parsers.parse('JetStream writes recover within the "{component}" objective'))
def jetstream_recovers(drill: Drill, jetstream_canary: JetStreamCanary, component: str) -> None:
    """Measured RTO of acknowledged JetStream publishes, from the fault."""
    drill.assert_met(measure_jetstream_writes(drill, jetstream_canary, component))


@then(parsers.parse('no acknowledged JetStream message is lost (the "{component}" RPO '
                    "objective)"))
def jetstream_rpo(drill: Drill, jetstream_canary: JetStreamCanary, component: str) -> None:
    """Every acknowledged publish is in the stream, intact (ghost writes reported apart)."""
    measure_jetstream_rpo(drill, jetstream_canary, component)
