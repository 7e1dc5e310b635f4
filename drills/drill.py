"""One drill (a Gherkin scenario) at run time: its faults, probes, measurements, evidence.

Step definitions stay thin: they call a `Drill` method and assert on what it returns, so
the logic lives here, typed and testable, and every event reaches the observers.
"""

from __future__ import annotations

import time
from typing import Any

from drills.config import Objective, Settings
from drills.errors import ObjectiveBreached, ProbeError
from drills.evidence.fmt import secs
from drills.evidence.model import (
    DrillRecord,
    FaultRecord,
    Measurement,
    OutageRecord,
    ProbePoint,
    RpoMeasurement,
)
from drills.evidence.observer import RunObserver
from drills.faults import ActiveFault, Fault, FaultInjector
from drills.journal import utc_now
from drills.loop import LoopThread
from drills.measure import Outcome, Recovery, Verdict, compute_recovery
from drills.probes import ProbeRunner
from drills.rpo import CanaryWriter, verify
from drills.target import Capacity, Target
from drills.vault import VaultClient


class Drill:
    """The live state of one drill; created per scenario by the pytest plugin."""

    def __init__(self, record: DrillRecord, settings: Settings, target: Target,
                 injector: FaultInjector, loop: LoopThread, client: VaultClient,
                 observer: RunObserver) -> None:
        self.record, self.settings, self.target = record, settings, target
        self.injector, self.loop, self.client, self.observer = injector, loop, client, observer
        self.probes: ProbeRunner | None = None
        self.canary: CanaryWriter | None = None
        self.settled_at: float | None = None
        self._last_progress = 0.0
        record.probe_interval = settings.probes.interval

    # -- progress ---------------------------------------------------------------------------
    def progress(self, message: str, *, every: float = 1.0) -> None:
        """Tell observers what we wait on, at most once per `every` seconds of waiting."""
        now = time.monotonic()
        if self._last_progress == 0.0:
            self._last_progress = now  # the first second of a wait is not worth a line
        elif now - self._last_progress >= every:
            self._last_progress = now
            self.observer.waiting(self.record, message)

    # -- faults -----------------------------------------------------------------------------
    def inject(self, kind: type[Fault], **params: Any) -> ActiveFault:
        """Journal and inject a fault of `kind` on this drill's target."""
        fault = kind(self.target.fault_context(), {"region": self.target.region, **params})
        active = self.injector.inject(fault)
        self._fault_event(active)
        return active

    def revert(self, active: ActiveFault) -> None:
        """Revert one fault (idempotent)."""
        try:
            self.injector.revert(active)
        finally:
            self._fault_event(active)

    def _fault_event(self, active: ActiveFault) -> None:
        record = next((f for f in self.record.faults if f.fault_id == active.fault_id), None)
        if record is None:
            record = FaultRecord(active.fault_id, active.kind, active.fault.target,
                                 active.fault.describe(), active.injected_utc)
            self.record.faults.append(record)
        record.reverted_utc, record.revert_error = active.reverted_utc, active.revert_error
        self.observer.fault_changed(self.record, record)

    @property
    def last_fault(self) -> ActiveFault:
        if not self.injector.active:
            raise ProbeError("no fault has been injected in this drill yet; a measuring step "
                             "must come after a 'When ...' step that injects one")
        return self.injector.active[-1]

    # -- probes -----------------------------------------------------------------------------
    def start_probes(self) -> ProbeRunner:
        """Start background probes against the target's vaults (idempotent)."""
        if self.probes is None:
            self.probes = ProbeRunner(self.loop, self.client, self.target.known_vaults(),
                                      self.settings.probes)
            self.probes.start()
        return self.probes

    def _running_probes(self) -> ProbeRunner:
        if self.probes is None:
            raise ProbeError("probes are not running; add 'Given vault probes are running' "
                             "before the fault")
        return self.probes

    def wait_until_serving(self, timeout: float) -> None:
        """Block until K consecutive probes succeed (the steady-state hypothesis)."""
        self._last_progress = 0.0
        probes, k = self._running_probes(), self.settings.probes.consecutive
        start = time.monotonic()

        def steady(results: list[Any]) -> bool:
            recent = [r for r in results if r.done >= start][-k:]
            return len(recent) == k and all(r.ok for r in recent)

        if not probes.wait_for(steady, timeout, lambda s, t: self.progress(
                f"steady state: waiting for {k} consecutive successful probes "
                f"({s.ok} ok, {s.failed} failed, {t:.0f}s"
                + (f"; last error: {s.last_detail[:80]})" if s.failed else ")")), since=start):
            raise ObjectiveBreached(f"the vault service did not reach a steady state in "
                                    f"{timeout:g}s (no {k} consecutive successful probes); "
                                    "fix the service before drilling it")

    def wait_for_failure(self, kind: str, timeout: float) -> float:
        """Block until a probe fails with `kind` after the last fault; returns detection time."""
        self._last_progress = 0.0
        probes, fault = self._running_probes(), self.last_fault

        def failed(results: list[Any]) -> bool:
            return any(r.done >= fault.injected_at and not r.ok and kind in r.detail
                       for r in results)

        if not probes.wait_for(failed, timeout, lambda s, t: self.progress(
                f"waiting for vault operations to fail with {kind!r} ({t:.0f}s)")):
            seen = {r.detail.split(":")[0] for r in probes.results()
                    if r.done >= fault.injected_at and not r.ok}
            raise ObjectiveBreached(
                f"vault operations did not fail with {kind!r} within {timeout:g}s of "
                f"'{fault.fault.describe()}' (failures seen: {sorted(seen) or 'none'})")
        first = min(r.done for r in probes.results()
                    if r.done >= fault.injected_at and not r.ok and kind in r.detail)
        return first - fault.injected_at

    # -- measurement ------------------------------------------------------------------------
    def measure_service(self, component: str) -> Measurement:
        """Wait for the service to recover from the last fault, then measure its RTO."""
        probes = self._running_probes()
        k, interval = self.settings.probes.consecutive, self.settings.probes.interval
        return self.measure_probes(
            component, probes, interval=interval,
            method=(f"synthetic vault reads every {interval * 1000:g} ms through NATS, enclave, "
                    f"KMS and S3; recovered = first of {k} consecutive successes"))

    def measure_probes(self, component: str, probes: ProbeRunner, *, method: str,
                       interval: float, name: str = "service", what: str = "recovery",
                       fault: ActiveFault | None = None,
                       outage_expected: bool = False) -> Measurement:
        """Wait until `probes` show recovery from `fault` (default: the last one), within the
        objective's measurement window, then record the RTO they measure.

        Recovered = the first of K consecutive successes after a failure; with no failure at
        all (unless `outage_expected`), K successes once the service has settled."""
        self._last_progress = 0.0
        objective = self.settings.objectives.for_component(component)
        fault = fault or self.last_fault
        k = self.settings.probes.consecutive

        def recovery(results: list[Any]) -> Recovery:
            return compute_recovery(results, fault.injected_at, consecutive=k,
                                    interval=interval)

        def recovered(results: list[Any]) -> bool:
            rec = recovery(results)
            if rec.verdict is Verdict.RECOVERED:
                return True
            settled = self.settled_at or fault.injected_at
            return not outage_expected and rec.verdict is Verdict.NO_OUTAGE and sum(
                r.ok for r in results if r.done >= settled) >= k

        probes.wait_for(recovered, objective.remaining(fault.injected_at), lambda s, t: (
            self.progress(f"waiting for {what} ({self._objective_note(objective, fault)}): "
                          f"{s.ok} ok / {s.failed} failed since the fault"
                          + (f", last error {s.last_detail[:60]}"
                             if s.last is not Outcome.OK else ""))),
            since=fault.injected_at)
        rec = recovery(probes.results())
        met = rec.verdict in (Verdict.RECOVERED, Verdict.NO_OUTAGE) and (
            rec.rto is not None and rec.rto <= objective.rto)
        return self.record_measurement(Measurement(
            name=name, component=component, objective_rto=objective.rto,
            verdict=rec.verdict.value, rto=rec.rto, rto_lower=rec.rto_lower,
            uncertainty=rec.uncertainty, time_to_detect=rec.time_to_detect, met=met,
            fault_id=fault.fault_id, method=method, probes=rec.probes, failures=rec.failures,
            outages=[OutageRecord(o.start, o.end, o.failures, o.first_detail)
                     for o in rec.outages]))

    def measure_capacity(self, component: str, poll: float = 0.25) -> Measurement:
        """Wait until the enclave ASG serves at desired capacity again; measure how long."""
        self._last_progress = 0.0
        objective = self.settings.objectives.for_component(component)
        fault = self.last_fault
        lower = fault.injected_at
        observed: Capacity | None = None
        deadline = fault.injected_at + objective.window
        while True:
            polled_at = time.monotonic()
            observed = self.target.capacity(self.loop, self.client)
            if observed.restored:
                break
            lower = polled_at
            if time.monotonic() >= deadline:
                break
            self.progress(f"waiting for {self.target.asg_name()} to serve at desired capacity: "
                          f"desired {observed.desired}, InService {observed.in_service}, "
                          f"serving {observed.serving} "
                          f"({self._objective_note(objective, fault)})")
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
        now = time.monotonic()
        restored = observed.restored
        if restored:
            self.settled_at = now
        rto = now - fault.injected_at if restored else None
        measurement = Measurement(
            name="capacity", component=component, objective_rto=objective.rto,
            verdict="recovered" if restored else "not-recovered", rto=rto,
            rto_lower=lower - fault.injected_at if restored else None,
            uncertainty=(now - lower) if restored else None, time_to_detect=None,
            met=restored and rto is not None and rto <= objective.rto, fault_id=fault.fault_id,
            method=(f"polled the Auto Scaling group every {poll:g} s: desired capacity "
                    "reached by InService, Healthy instances that answer a health check"))
        return self.record_measurement(measurement)

    def record_measurement(self, measurement: Measurement) -> Measurement:
        """Add a recovery figure to the drill's evidence and tell the observers."""
        self.record.measurements.append(measurement)
        self.observer.measured(self.record, measurement)
        return measurement

    def record_rpo(self, measurement: RpoMeasurement) -> RpoMeasurement:
        """Add a data-loss figure to the drill's evidence and tell the observers."""
        self.record.rpo.append(measurement)
        self.observer.rpo_measured(self.record, measurement)
        return measurement

    def assert_met(self, measurement: Measurement) -> None:
        """Raise ObjectiveBreached, with the figures, when a measurement missed its objective."""
        if measurement.met:
            return
        if measurement.rto is None:
            window = self.settings.objectives.for_component(measurement.component).window
            figure = f"no recovery within {secs(window)} of the fault"
        else:
            figure = f"measured RTO {secs(measurement.rto)}"
        raise ObjectiveBreached(
            f"{measurement.component} objective breached ({measurement.name}): {figure} "
            f"(verdict {measurement.verdict}) against an objective of "
            f"{secs(measurement.objective_rto)}")

    @staticmethod
    def _objective_note(objective: Objective, fault: ActiveFault) -> str:
        """'12.3s after the fault, objective 5m' or, past it, that it is breached."""
        elapsed = time.monotonic() - fault.injected_at
        note = f"{secs(elapsed)} after the fault, {objective.component} objective " \
               f"{secs(objective.rto)}"
        if elapsed > objective.rto:
            note += f" BREACHED; still measuring, up to {secs(objective.window)}"
        return note

    # -- data loss ----------------------------------------------------------------------------
    def start_canary(self, rate: float = 10.0) -> CanaryWriter:
        """Start acknowledged canary writes in the background (idempotent)."""
        if self.canary is None:
            self.canary = CanaryWriter(self.loop, self.client, rate=rate)
            self.canary.start()
        return self.canary

    def wait_for_canary(self, count: int, timeout: float) -> None:
        """Block until the canary holds `count` acknowledged writes (made before the fault)."""
        if self.canary is None:
            raise ProbeError("no canary writer is running; add 'Given a canary writer makes "
                             "acknowledged vault writes' first")
        self._last_progress = 0.0
        deadline = time.monotonic() + timeout
        while (acked := sum(w.acked for w in self.canary.writes())) < count:
            if time.monotonic() > deadline:
                raise ObjectiveBreached(
                    f"the service acknowledged only {acked} of {count} canary writes in "
                    f"{timeout:g}s before the fault; fix the service before drilling it")
            self.progress(f"waiting for {count} acknowledged canary writes ({acked} so far)")
            time.sleep(0.05)

    def measure_rpo(self, component: str) -> RpoMeasurement:
        """Stop the canary, read every acknowledged write back, measure loss vs objective."""
        if self.canary is None:
            raise ProbeError("no canary writer is running; add 'Given a canary writer makes "
                             "acknowledged vault writes' before the fault")
        objective = self.settings.objectives.for_component(component)
        self.canary.stop()
        self.progress("verifying every acknowledged canary write", every=0.0)
        result = verify(self.loop, self.client, self.canary.writes())
        measurement = RpoMeasurement(
            component=component, objective_writes=objective.rpo_writes,
            acknowledged=result.acknowledged, unacknowledged=result.unacknowledged,
            lost=result.lost_count, loss_window=result.loss_window,
            unverified=result.unverified,
            met=result.lost_count <= objective.rpo_writes and result.unverified == 0,
            lost_writes=[{"seq": x.write.seq, "vault_id": x.write.vault_id,
                          "reason": x.reason, "acked_utc": x.write.sent_utc}
                         for x in result.lost],
            method=(f"{self.canary.rate:g} acknowledged enrolments per second through the "
                    "service, each read back and hash-checked after recovery"))
        self.record_rpo(measurement)
        if not measurement.met:
            raise ObjectiveBreached(
                f"{component} RPO breached: {result.lost_count} of {result.acknowledged} "
                f"acknowledged writes lost (window {secs(result.loss_window)}), "
                f"{result.unverified} unverifiable; objective {objective.rpo_writes} lost")
        return measurement

    # -- end --------------------------------------------------------------------------------
    def finish(self) -> list[str]:
        """Stop probes, revert anything still injected, capture the probe timeline."""
        pending = [a for a in self.injector.active if a.reverted_utc is None]
        errors = self.injector.revert_all()
        for active in pending:
            self._fault_event(active)
        if self.canary is not None:
            self.canary.stop()
        if self.probes is not None:
            self.probes.stop()
            origin = self.injector.active[0].injected_at if self.injector.active else (
                min((r.sent for r in self.probes.results()), default=0.0))
            self.record.probes = [
                ProbePoint(round(r.done - origin, 4), round(r.latency, 4), r.ok,
                           r.outcome.value, r.sent_utc, r.detail)
                for r in self.probes.results()]
        self.record.ended_utc = utc_now()
        return errors
