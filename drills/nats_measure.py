"""What NATS drills measure beyond `Drill`'s own figures.

- The vault service until it is *stable* again. After a frozen or partitioned NATS node the
  other servers keep routing part of the requests to the dead node until its route times
  out, so failures come and go for a minute or more: K successes in a row do not mean
  recovered. We wait until no probe has failed for a settle window, then take the RTO at
  the first success after the last failure (`drills.measure.compute_recovery`).
- The NATS cluster whole again: every node healthy, routed to every peer, a meta leader.
- JetStream writes: their outage and recovery, from acknowledged publishes, and their RPO.

Each figure is recorded on the drill and reported to its observers like `Drill`'s own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from drills.drill import Drill
from drills.errors import ObjectiveBreached, ProbeError
from drills.evidence.fmt import secs
from drills.evidence.model import Measurement, OutageRecord, RpoMeasurement
from drills.jetstream import JetStreamCanary
from drills.measure import ProbeResult, Verdict, compute_recovery

SETTLE = 10.0  # seconds without a failure that make a flapping service count as recovered


def _stable(results: Sequence[ProbeResult], since: float, settle: float, k: int) -> bool:
    """No failure for `settle` seconds (or ever since `since`) and K successes after it."""
    after = [r for r in results if r.done >= since]
    last_failure = max((r.done for r in after if not r.ok), default=since)
    successes = sum(1 for r in after if r.ok and r.done > last_failure)
    return time.monotonic() - last_failure >= settle and successes >= k


def _wait_stable(drill: Drill, results: Callable[[], Sequence[ProbeResult]], what: str,
                 budget: float, settle: float, poll: float = 0.1) -> bool:
    fault, k = drill.last_fault, drill.settings.probes.consecutive
    deadline = fault.injected_at + budget
    while not _stable(results(), fault.injected_at, settle, k):
        if time.monotonic() >= deadline:
            return False
        seen = [r for r in results() if r.done >= fault.injected_at]
        failed = sum(not r.ok for r in seen)
        drill.progress(f"waiting until {what} stay up for {settle:g}s: {len(seen) - failed} ok"
                       f" / {failed} failed since the fault", every=5.0)
        time.sleep(poll)
    return True


def _recovery_measurement(drill: Drill, name: str, component: str,
                          results: Sequence[ProbeResult], interval: float, stable: bool,
                          method: str) -> Measurement:
    objective = drill.settings.objectives.for_component(component)
    fault, k = drill.last_fault, drill.settings.probes.consecutive
    rec = compute_recovery(results, fault.injected_at, consecutive=k, interval=interval)
    verdict = rec.verdict.value if stable else Verdict.NOT_RECOVERED.value
    rto = rec.rto if stable else None
    met = stable and rec.verdict in (Verdict.RECOVERED, Verdict.NO_OUTAGE) and (
        rto is not None and rto <= objective.rto)
    measurement = Measurement(
        name=name, component=component, objective_rto=objective.rto, verdict=verdict,
        rto=rto, rto_lower=rec.rto_lower if stable else None,
        uncertainty=rec.uncertainty if stable else None, time_to_detect=rec.time_to_detect,
        met=met, fault_id=fault.fault_id, method=method, probes=rec.probes,
        failures=rec.failures,
        outages=[OutageRecord(o.start, o.end, o.failures, o.first_detail) for o in rec.outages])
    drill.record_measurement(measurement)
    return measurement


def measure_service_stable(drill: Drill, component: str, settle: float = SETTLE) -> Measurement:
    """Service RTO after the last fault, once probes have not failed for `settle` seconds."""
    if drill.probes is None:
        raise ProbeError("probes are not running; add 'Given vault probes are running' "
                         "before the fault")
    probes, interval = drill.probes, drill.settings.probes.interval
    objective = drill.settings.objectives.for_component(component)
    stable = _wait_stable(drill, probes.results, "vault operations", objective.window + settle,
                          settle)
    method = (f"synthetic vault reads every {interval * 1000:g} ms through NATS, enclave, KMS "
              f"and S3; recovered = first success after the last failure, once none has "
              f"failed for {settle:g} s (failures may come and go)")
    return _recovery_measurement(drill, "service", component, probes.results(), interval,
                                 stable, method)


def measure_cluster(drill: Drill, component: str, cluster: Any,
                    poll: float = 0.25) -> Measurement:
    """Time from the last fault until every NATS node is a full member of the cluster."""
    objective = drill.settings.objectives.for_component(component)
    fault = drill.last_fault
    deadline, lower = fault.injected_at + objective.window, fault.injected_at
    while True:
        polled = time.monotonic()
        problems = {n.name: p for n in cluster.spec.nodes
                    if (p := cluster.formation_problem(n)) is not None}
        if not problems or polled >= deadline:
            break
        lower = polled
        name, problem = next(iter(problems.items()))
        drill.progress(f"waiting for NATS cluster {cluster.spec.cluster_name} to be whole: "
                       f"{name} {problem} ({secs(polled - fault.injected_at)} after the fault)")
        time.sleep(poll)
    whole = not problems
    rto = polled - fault.injected_at if whole else None
    measurement = Measurement(
        name="cluster", component=component, objective_rto=objective.rto,
        verdict="recovered" if whole else "not-recovered", rto=rto,
        rto_lower=lower - fault.injected_at if whole else None,
        uncertainty=polled - lower if whole else None, time_to_detect=None,
        met=whole and rto is not None and rto <= objective.rto, fault_id=fault.fault_id,
        method=(f"polled every NATS node's monitor every {poll:g} s: healthy (/healthz), "
                "routed to every peer (/routez), JetStream meta leader with every follower "
                "current (/jsz)"))
    drill.record_measurement(measurement)
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


def measure_jetstream_writes(drill: Drill, canary: JetStreamCanary, component: str,
                             settle: float = SETTLE) -> Measurement:
    """RTO of JetStream writes after the last fault, from acknowledged publishes."""
    objective = drill.settings.objectives.for_component(component)
    stable = _wait_stable(drill, canary.results, "JetStream writes", objective.window + settle,
                          settle)
    method = (f"JetStream publishes with ack to R{canary.replicas} stream {canary.stream} every "
              f"{canary.interval * 1000:g} ms (ack timeout {canary.timeout:g} s, Nats-Msg-Id "
              f"de-duplication); recovered = first ack after the last failure, once none has "
              f"failed for {settle:g} s")
    return _recovery_measurement(drill, "jetstream-writes", component, canary.results(),
                                 canary.interval, stable, method)


def measure_jetstream_rpo(drill: Drill, canary: JetStreamCanary,
                          component: str) -> RpoMeasurement:
    """Stop the canary, read the stream back, and measure lost acknowledged publishes."""
    objective = drill.settings.objectives.for_component(component)
    canary.stop()
    drill.progress("reading every JetStream message back", every=0.0)
    result = canary.verify()
    measurement = RpoMeasurement(
        component=component, objective_writes=objective.rpo_writes,
        acknowledged=result.acknowledged, unacknowledged=result.unacknowledged,
        lost=len(result.lost), loss_window=result.loss_window, unverified=result.unverified,
        met=len(result.lost) <= objective.rpo_writes and result.unverified == 0,
        lost_writes=[{"seq": x.publish.seq, "msg_id": x.publish.msg_id, "reason": x.reason,
                      "acked_utc": x.publish.sent_utc} for x in result.lost],
        method=(f"{canary.rate:g} JetStream publishes per second to R{canary.replicas} stream "
                f"{canary.stream}, every acknowledged one read back by id and hash; "
                f"{result.ghosts} unacknowledged publishes were stored all the same (ghost "
                f"writes), {result.duplicates} ids stored twice"))
    drill.record_rpo(measurement)
    if not measurement.met:
        raise ObjectiveBreached(
            f"{component} JetStream RPO breached: {len(result.lost)} of {result.acknowledged} "
            f"acknowledged publishes lost (window {secs(result.loss_window)}), "
            f"{result.unverified} unreadable; objective {objective.rpo_writes} lost")
    return measurement
