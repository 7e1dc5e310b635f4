"""NATS faults on real nats-server processes: the busiest nodes chosen, journaled before
acting, bad input refused before anything, reverted until the cluster is whole, rebuilt
from the journal by rollback; and the NATS drills run end to end on the container backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from drills.capabilities import ALL
from drills.clients import Clients
from drills.errors import CapabilityMissing, FaultError
from drills.faults import AllowList, BlastRadius, FaultContext, FaultInjector, rollback
from drills.faults.nats import FreezeNodes, KillNodes, PartitionNodes, _client_connections
from drills.journal import FaultState, Journal
from drills.loop import LoopThread
from drills.twin.nats import (
    NatsCluster,
    NatsClusterSpec,
    NodeState,
    cluster_for,
    docker_available,
)
from drills.twin.nats.cluster import wait_for

REGION = "us-east-1"
REPO = Path(__file__).resolve().parents[2]
ENV = "twin:test"


async def _quiet(_: Exception) -> None:
    """nats-py prints every lost connection; the test kills their server on purpose."""


class TwinStandIn:
    """What NATS faults ask of the twin: its cluster, controllable from this process."""

    def __init__(self, spec: NatsClusterSpec) -> None:
        self.spec = spec

    def nats(self, region: str) -> NatsCluster:
        assert region == REGION
        return cluster_for(self.spec)


@pytest.fixture
def ctx(cluster: NatsCluster) -> Iterator[FaultContext]:
    """A fault context on the test cluster, which is whole again after each test."""
    yield FaultContext(Clients(), TwinStandIn(cluster.spec), ALL)
    for node in cluster.spec.nodes:
        cluster.heal_node(node.name)
        cluster.start_node(node.name)
    cluster.wait_formed(timeout=60)


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.jsonl")


def _injector(journal: Journal) -> FaultInjector:
    # Two of three nodes at once, as the quorum drill (@full_outage) does; the cap itself is
    # tested in test_blast.
    return FaultInjector(journal, "run-1", ENV, AllowList({"nats": ("*",)}),
                         BlastRadius(full_outage=True))


def test_kill_chooses_the_busiest_node_and_revert_makes_the_cluster_whole(
        cluster: NatsCluster, ctx: FaultContext, journal: Journal) -> None:
    """KillNodes kills the node with the most client connections (journaled first, with the
    node's name); revert restarts it and returns once the cluster is whole."""
    busiest = cluster.spec.nodes[1].name
    loop = LoopThread("test-clients")
    try:  # three client connections to node 1 only make it the busiest
        for _ in range(3):
            loop.run(nats.connect(cluster.node(busiest).url, user="u", password="p",
                                  max_reconnect_attempts=0, error_cb=_quiet), timeout=10)
        port = cluster.node(busiest).monitor_port
        assert wait_for(lambda: _client_connections(port) >= 3, 10)
        injector = _injector(journal)
        active = injector.inject(KillNodes(ctx, {"region": REGION, "count": 1}))
        assert active.fault.params["nodes"] == [busiest]
        assert cluster.node_state(busiest) is NodeState.STOPPED
        entry = journal.pending()[0]
        assert (entry.kind, entry.target, entry.params["nodes"]) == (
            "nats.kill-nodes", cluster.spec.cluster_name, [busiest])
        injector.revert(active)
    finally:
        loop.close()
    assert [s.state for s in cluster.describe()] == [NodeState.RUNNING] * 3
    assert all(cluster.formation_problem(n) is None for n in cluster.spec.nodes)
    assert journal.pending() == []


@pytest.mark.parametrize(("kind", "state"), [(FreezeNodes, NodeState.FROZEN),
                                             (PartitionNodes, NodeState.PARTITIONED),
                                             (KillNodes, NodeState.STOPPED)])
def test_each_fault_acts_on_as_many_nodes_as_asked_and_reverts(
        cluster: NatsCluster, ctx: FaultContext, journal: Journal, kind: type,
        state: NodeState) -> None:
    """Two nodes frozen, partitioned or killed at once read so; revert brings both back."""
    injector = _injector(journal)
    active = injector.inject(kind(ctx, {"region": REGION, "count": 2}))
    chosen = active.fault.params["nodes"]
    assert len(set(chosen)) == 2
    assert {cluster.node_state(n) for n in chosen} == {state}
    injector.revert(active)
    assert {s.state for s in cluster.describe()} == {NodeState.RUNNING}


@pytest.mark.parametrize("count", [0, 4])
def test_a_count_the_cluster_cannot_give_is_refused_before_anything(
        cluster: NatsCluster, ctx: FaultContext, journal: Journal, count: int) -> None:
    """Asking for 0 nodes, or more than run, is a FaultError naming the range; nothing is
    journaled and every node keeps running."""
    with pytest.raises(FaultError, match=r"ask for 1\.\.3"):
        _injector(journal).inject(KillNodes(ctx, {"region": REGION, "count": count}))
    assert journal.pending() == []
    assert {s.state for s in cluster.describe()} == {NodeState.RUNNING}


def test_nats_faults_refuse_anything_but_the_twin(journal: Journal) -> None:
    """On a target without the `processes` capability (a real account), a NATS fault is
    refused before it is journaled: it acts on processes only the twin runs."""
    with pytest.raises(CapabilityMissing, match=r"needs what this target cannot do.*processes"):
        _injector(journal).inject(KillNodes(FaultContext(Clients()), {"count": 1,
                                                                      "cluster": "x"}))
    assert journal.pending() == []


def test_rollback_restarts_nodes_a_killed_run_left_down(
        cluster: NatsCluster, ctx: FaultContext, journal: Journal) -> None:
    """A kill left pending by a run that died is rebuilt from its journal entry alone and
    reverted by rollback: the node runs again and the entry reads reverted."""
    active = _injector(journal).inject(KillNodes(ctx, {"region": REGION, "count": 1}))
    victim = active.fault.params["nodes"][0]
    assert cluster.node_state(victim) is NodeState.STOPPED
    results = rollback(Journal(journal.path), ctx, ENV)  # a new process reads the file
    assert [r.reverted for r in results] == [True]
    assert cluster.node_state(victim) is NodeState.RUNNING
    assert Journal(journal.path).entries()[-1].state is FaultState.REVERTED


@pytest.mark.docker
@pytest.mark.long
def test_nats_drills_pass_on_the_container_backend(tmp_path: Path) -> None:
    """The NATS features, run by `drills run ... --nats container` on a twin of their own
    (containers for every NATS node), pass: every RTO and RPO measured within objective."""
    if reason := docker_available():
        pytest.skip(reason)
    features = sorted(str(p) for p in (REPO / "features" / "scenarios").glob("nats_*.feature"))
    env = {**os.environ, "DRILLS_STATE_DIR": str(tmp_path / "twin"),
           "DRILLS_JOURNAL": str(tmp_path / "journal.jsonl")}
    run = subprocess.run(
        [sys.executable, "-m", "drills.cli", "run", *features, "--nats", "container",
         "--reports", str(tmp_path / "reports"), "--run-id", "nats-container"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1500, check=False)
    report = tmp_path / "reports" / "nats-container" / "report.json"
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    data = json.loads(report.read_text())
    assert data["target"]["nats_backend"] == "container"
    drills = data["drills"]
    assert len(drills) == 5
    assert {d["status"] for d in drills} == {"passed"}
    assert all(m["met"] for d in drills for m in d["measurements"])
    assert all(r["met"] and r["lost"] == 0 for d in drills for r in d["rpo"])
    assert not (tmp_path / "twin" / "state.json").exists()  # the run took its twin down
