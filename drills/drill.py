"""One drill (a Gherkin scenario) at run time: its faults, probes, measurements, evidence.

Step definitions stay thin: they call a `Drill` method and act on what it returns, so the
logic lives here, typed and testable, and every event reaches the observers. Every figure a
drill records is relative to its fault's first action (`ActiveFault.injected_at`), and the
same instant is the origin of the probe timeline, the alarm and the page.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from drills.config import Objective, Settings
from drills.errors import MeasurementError, NotSteady, ObjectiveBreached, ProbeError
from drills.evidence.fmt import secs
from drills.evidence.model import (
    DrillRecord,
    FaultRecord,
    Measurement,
    PhaseRecord,
    ProbePoint,
    RpoMeasurement,
    RunbookFinding,
)
from drills.evidence.observer import RunObserver
from drills.faults import ActiveFault, Fault, FaultInjector
from drills.journal import utc_at, utc_now
from drills.loop import LoopThread
from drills.measure import figures
from drills.measure.canary import CanaryWriter
from drills.measure.figures import Polled, Watch
from drills.measure.probes import ProbeRunner
from drills.measure.rpo import RpoResult, Truth, verify
from drills.measure.timeline import Outcome, ProbeResult, Recovery, Verdict, compute_recovery
from drills.target import Capacity, Target
from drills.vault import VaultApi, VaultClient

#: Where a probe-based figure's observations come from: a callable giving them all so far.
Results = Callable[[], Sequence[ProbeResult]]


class Drill:
    """The live state of one drill; created per scenario by the pytest plugin."""

    def __init__(self, record: DrillRecord, settings: Settings, target: Target,
                 injector: FaultInjector, loop: LoopThread, client: VaultApi,
                 observer: RunObserver, nats: VaultClient | None = None,
                 path: str = "api") -> None:
        self.record, self.settings, self.target = record, settings, target
        self.injector, self.loop, self.client, self.observer = injector, loop, client, observer
        self._nats, self.path = nats, path
        self.probes: ProbeRunner | None = None
        self.canary: CanaryWriter | None = None
        self.settled_at: float | None = None
        self.rpo_truth: Truth | None = None  # what the fault must lose, by the canary's record
        self.watches: list[Watch] = []  # conditions polled in the background (`watch`)
        self._last_progress = 0.0
        record.probe_interval = settings.probes.interval

    @property
    def nats(self) -> VaultClient:
        """The harness's NATS connection to the service (per-instance health, NATS probes)."""
        if self._nats is None:
            raise ProbeError("this step needs the vault service's NATS, which this target does "
                             "not expose; on an account, set DRILLS_NATS_URL")
        return self._nats

    def capacity(self) -> Capacity:
        """The enclave ASG as observed now: desired, InService, and actually serving."""
        return self.target.capacity(self.loop, self.nats)

    @property
    def settle(self) -> float:
        """Seconds without a failure after K successes before the service counts as
        recovered: the objectives file's [probes] settle, else the target's default."""
        configured = self.settings.probes.settle
        return self.target.settle if configured is None else configured

    # -- progress ---------------------------------------------------------------------------
    def progress(self, message: str, *, every: float = 1.0) -> None:
        """Tell observers what we wait on, at most once per `every` seconds of waiting."""
        now = time.monotonic()
        if self._last_progress == 0.0:
            self._last_progress = now  # the first second of a wait is not worth a line
        elif now - self._last_progress >= every:
            self._last_progress = now
            self.observer.waiting(self.record, message)

    def _quiet_start(self) -> None:
        self._last_progress = 0.0

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
                                 active.fault.describe(), active.injected_utc,
                                 inject_seconds=round(active.inject_span, 4))
            self.record.faults.append(record)
        record.reverted_utc, record.revert_error = active.reverted_utc, active.revert_error
        self.observer.fault_changed(self.record, record)

    @property
    def last_fault(self) -> ActiveFault:
        if not self.injector.active:
            raise ProbeError("no fault has been injected in this drill yet; a measuring step "
                             "must come after a 'When ...' step that injects one")
        return self.injector.active[-1]

    # -- probes and the steady state --------------------------------------------------------
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
        """The steady-state hypothesis: the enclave ASG serves at desired capacity and K
        consecutive probes succeed, within `timeout`; NotSteady if not (nothing drilled)."""
        self._quiet_start()
        probes, k = self._running_probes(), self.settings.probes.consecutive
        start = time.monotonic()
        deadline = start + timeout

        def capacity_problem() -> str | None:
            seen = self.capacity()
            return None if seen.restored else (
                f"{self.target.asg_name()} serves {seen.serving} of {seen.desired} desired "
                f"(InService {seen.in_service})")

        polled = figures.poll_until(capacity_problem, since=start, deadline=deadline,
                                    poll=0.25, progress=lambda why: self.progress(
                                        f"steady state: waiting for capacity: {why}"))
        if not polled.held:
            raise NotSteady(f"the vault service was not in its steady state before the fault: "
                            f"{polled.problem} after {timeout:g}s; fix the service before "
                            "drilling it (drills twin status)")
        since = time.monotonic()

        def steady(results: list[ProbeResult]) -> bool:
            recent = [r for r in results if r.done >= since][-k:]
            return len(recent) == k and all(r.ok for r in recent)

        if not probes.wait_for(steady, max(0.0, deadline - time.monotonic()), lambda s, t: (
                self.progress(f"steady state: waiting for {k} consecutive successful probes "
                              f"({s.ok} ok, {s.failed} failed, {t:.0f}s"
                              + (f"; last error: {s.last_detail[:80]})" if s.failed else ")"))),
                since=since):
            last = probes.summary(since)
            raise NotSteady(f"the vault service was not in its steady state before the fault: "
                            f"no {k} consecutive successful probes in {timeout:g}s ({last.ok} "
                            f"ok, {last.failed} failed; last error: {last.last_detail or 'none'})"
                            "; fix the service before drilling it")

    def wait_for_failure(self, kind: str, timeout: float) -> float:
        """Block until a probe fails with `kind` after the last fault; returns detection time."""
        self._quiet_start()
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
    def measure_service(self, component: str, settle: float | None = None,
                        fault: ActiveFault | None = None) -> Measurement:
        """Wait for the service to recover from `fault` (default: the last one), then
        measure its RTO."""
        probes = self._running_probes()
        k, interval = self.settings.probes.consecutive, self.settings.probes.interval
        settle = self.settle if settle is None else settle
        return self.measure_probes(
            component, probes.results, interval=interval, settle=settle, fault=fault,
            method=(f"synthetic vault reads every {interval * 1000:g} ms through {self._door()}, "
                    f"enclave, KMS and S3; recovered = first of {k} consecutive successes "
                    f"after the last failure, with none for {settle:g} s after"))

    def _door(self) -> str:
        """The path probes take, in words."""
        return ("the vault API (HTTPS, the Lambdas, NATS; attestation verified as the apps "
                "verify it)" if self.path == "api" else "NATS request/reply")

    def measure_probes(self, component: str, results: Results, *, method: str,
                       interval: float, name: str = "service", what: str = "recovery",
                       fault: ActiveFault | None = None, outage_expected: bool = False,
                       settle: float | None = None, path: str = "",
                       origin: float | None = None) -> Measurement:
        """Wait until `results` show a settled recovery from `fault` (default: the last one)
        within the objective's measurement window, then record the RTO they measure.

        Recovered = the first of K consecutive successes after the last failure, with no
        failure for `settle` seconds after; with no failure at all (unless
        `outage_expected`), K successes once the service has settled. `origin` (monotonic)
        measures from another moment than the fault's first action, e.g. a decision to roll
        back."""
        self._quiet_start()
        objective = self.settings.objectives.for_component(component)
        fault = fault or self.last_fault
        start = fault.injected_at if origin is None else origin
        span = fault.inject_span if origin is None else 0.0
        k = self.settings.probes.consecutive
        settle = self.settle if settle is None else settle

        def recovery(observed: Sequence[ProbeResult], until: float | None = None) -> Recovery:
            return compute_recovery(observed, start, consecutive=k, interval=interval,
                                    inject_span=span, settle=settle, observed_until=until)

        def done(observed: Sequence[ProbeResult]) -> bool:
            rec = recovery(observed, time.monotonic())
            if rec.verdict in (Verdict.RECOVERED, Verdict.FLAPPING):
                return True
            since = max(self.settled_at or start, start)
            return (not outage_expected and rec.verdict is Verdict.NO_OUTAGE and rec.settled
                    and sum(r.ok for r in observed if r.done >= since) >= k)

        deadline = start + objective.window + settle
        while not done(observed := results()) and time.monotonic() < deadline:
            after = [r for r in observed if r.done >= start]
            failed = [r for r in after if not r.ok]
            last = after[-1] if after else None
            self.progress(f"waiting for {what} ({self._objective_note(objective, start)}): "
                          f"{len(after) - len(failed)} ok / {len(failed)} failed since the fault"
                          + (f", last error {last.detail[:60]}"
                             if last is not None and last.outcome is not Outcome.OK else ""))
            time.sleep(min(interval, 0.1))
        rec = recovery(results(), time.monotonic())
        return self.record_measurement(figures.from_recovery(
            name, objective, rec, fault.fault_id, method, path=path or self.path))

    def measure_polled(self, name: str, component: str, check: Callable[[], str | None], *,
                       method: str, poll: float = 0.25, fault: ActiveFault | None = None,
                       what: str = "", down_until: float | None = None
                       ) -> tuple[Measurement, Polled]:
        """Poll `check` (None = restored, else why not) from the last fault until it holds
        or the objective's window ends; record the figure; return it and what polling saw.
        `down_until`: a monotonic time before which it is known not to hold (a lower bound)."""
        self._quiet_start()
        objective = self.settings.objectives.for_component(component)
        fault = fault or self.last_fault
        polled = figures.poll_until(
            check, since=down_until or fault.injected_at,
            deadline=fault.injected_at + objective.window,
            poll=poll, progress=lambda why: self.progress(
                f"waiting for {what or name}: {why} "
                f"({self._objective_note(objective, fault.injected_at)})"))
        measurement = self.record_measurement(figures.from_poll(
            name, objective, polled, fault.injected_at, fault.inject_span, fault.fault_id,
            method))
        return measurement, polled

    def watch(self, name: str, component: str, check: Callable[[], str | None], *,
              poll: float = 0.25) -> Watch:
        """Start polling `check` in the background from now, until it holds or the
        component's measurement window after the last fault ends (`measure_watched`)."""
        objective = self.settings.objectives.for_component(component)
        fault = self.last_fault
        watch = Watch(name, check, since=time.monotonic(),
                      deadline=fault.injected_at + objective.window, poll=poll)
        self.watches.append(watch)
        return watch

    def measure_watched(self, watch: Watch, component: str, *, method: str,
                        what: str = "") -> tuple[Measurement, Polled]:
        """Wait for a watch started by `watch` and record its figure from the last fault."""
        self._quiet_start()
        objective = self.settings.objectives.for_component(component)
        fault = self.last_fault
        polled = watch.result(lambda why: self.progress(
            f"waiting for {what or watch.name}: {why} "
            f"({self._objective_note(objective, fault.injected_at)})"))
        measurement = self.record_measurement(figures.from_poll(
            watch.name, objective, polled, fault.injected_at, fault.inject_span,
            fault.fault_id, method))
        return measurement, polled

    def measure_capacity(self, component: str, poll: float = 0.25) -> Measurement:
        """Wait until the enclave ASG serves at desired capacity again; measure how long."""
        def problem() -> str | None:
            seen = self.capacity()
            return None if seen.restored else (
                f"desired {seen.desired}, InService {seen.in_service}, serving {seen.serving}")

        measurement, polled = self.measure_polled(
            "capacity", component, problem, poll=poll,
            what=f"{self.target.asg_name()} to serve at desired capacity",
            method=(f"polled the Auto Scaling group every {poll:g} s: desired capacity "
                    "reached by InService, Healthy instances that answer a health check"))
        if polled.held:
            self.settled_at = polled.at
        return measurement

    def record_event(self, name: str, component: str, figure: float | None,
                     uncertainty: float, method: str) -> Measurement:
        """Record a figure read from an event's own timestamp (an alarm, a page), seconds
        after the last fault's first action; None: it did not happen in time."""
        objective = self.settings.objectives.for_component(component)
        return self.record_measurement(figures.from_event(
            name, objective, figure, uncertainty, self.last_fault.fault_id, method))

    def phase(self, name: str, detail: str, at: float | None = None,
              reached: bool = True) -> PhaseRecord:
        """Put a moment on the exercise's phase timeline: `at` (monotonic; default now),
        relative to the first fault; `reached=False`: the phase never came."""
        origin = self.injector.active[0].injected_at if self.injector.active else None
        when = time.monotonic() if at is None else at
        record = PhaseRecord(name, round(when - origin, 3) if reached and origin else None,
                             utc_at(when) if reached else "", detail)
        self.record.phases.append(record)
        self.progress(f"phase {name}: {detail}", every=0.0)
        return record

    def runbook_finding(self, section: str, title: str, detail: str,
                        severity: str = "medium") -> None:
        """Record something wrong in the runbook itself that this drill ran into."""
        self.record.runbook_findings.append(RunbookFinding(section, title, detail, severity))
        self.progress(f"finding against runbook {section}: {title}", every=0.0)

    def record_measurement(self, measurement: Measurement) -> Measurement:
        """Add a recovery figure to the drill's evidence and tell the observers."""
        self.record.measurements.append(measurement)
        self.observer.measured(self.record, measurement)
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
    def _objective_note(objective: Objective, since: float) -> str:
        """'12.3s after the fault, objective 5m' or, past it, that it is breached."""
        elapsed = time.monotonic() - since
        note = f"{secs(elapsed)} after the fault, {objective.component} objective " \
               f"{secs(objective.rto)}"
        if elapsed > objective.rto:
            note += f" BREACHED; still measuring, up to {secs(objective.window)}"
        return note

    # -- data loss ----------------------------------------------------------------------------
    def start_canary(self, rate: float = 5.0) -> CanaryWriter:
        """Start acknowledged canary writes in the background (idempotent)."""
        if self.canary is None:
            self.canary = CanaryWriter(self.loop, self.client, rate=rate)
            self.canary.start()
        return self.canary

    def _running_canary(self) -> CanaryWriter:
        if self.canary is None:
            raise ProbeError("no canary writer is running; add 'Given a canary writer makes "
                             "acknowledged vault writes' before the fault")
        return self.canary

    def wait_for_canary(self, count: int, timeout: float) -> None:
        """Block until the canary holds `count` acknowledged writes (made before the fault)."""
        canary = self._running_canary()
        self._quiet_start()
        deadline = time.monotonic() + timeout
        while (acked := sum(w.acked for w in canary.writes())) < count:
            if time.monotonic() > deadline:
                raise NotSteady(
                    f"the service acknowledged only {acked} of {count} canary writes in "
                    f"{timeout:g}s before the fault; fix the service before drilling it")
            self.progress(f"waiting for {count} acknowledged canary writes ({acked} so far)")
            time.sleep(0.05)

    def measure_rpo(self, component: str) -> RpoMeasurement:
        """Stop the canary, read every acknowledged write back (the vault through the
        service, its ledger item in DynamoDB), measure loss against the objective."""
        canary = self._running_canary()
        canary.stop()
        self.progress("verifying every acknowledged canary write", every=0.0)
        result = verify(self.loop, self.client, canary.writes(), ledger=self.target.ledger())
        method = (f"{canary.method}; each acknowledged write checked after recovery: the vault "
                  "read back through the service and hash-checked, and its ledger item in "
                  "DynamoDB")
        if self.rpo_truth is not None:  # the drill knows what its fault must have lost
            problem = self.rpo_truth.disagreement(result)
            if problem is not None:
                raise MeasurementError(f"the RPO detector disagrees with the canary's own "
                                       f"record: {problem}; the measured loss cannot be "
                                       "trusted")
            result = replace(result, uncertain=len(self.rpo_truth.uncertain))
            method += ("; checked write by write against the canary's own record of what the "
                       f"fault must lose: it agrees ({len(self.rpo_truth.lost)} certainly "
                       f"lost, {len(self.rpo_truth.uncertain)} uncertain)")
        return self.conclude_rpo(component, result, method)

    def conclude_rpo(self, component: str, result: RpoResult, method: str, *,
                     expected_loss: bool = False) -> RpoMeasurement:
        """Record a data-loss result against the component's RPO objective; raise
        ObjectiveBreached when it is missed (unless the loss is the point of the drill)."""
        objective = self.settings.objectives.for_component(component)
        measurement = figures.rpo_measurement(objective, result, method, expected_loss)
        self.record.rpo.append(measurement)
        self.observer.rpo_measured(self.record, measurement)
        if not measurement.met and not expected_loss:
            lost = ", ".join(f"{x.item} ({x.reason})" for x in result.lost[:5])
            more = f" and {result.lost_count - 5} more" if result.lost_count > 5 else ""
            raise ObjectiveBreached(
                f"{component} RPO breached: {result.lost_count} of {result.acknowledged} "
                f"acknowledged writes lost (window {secs(result.loss_window)})"
                + (f": {lost}{more}" if lost else "")
                + f", {result.unverified} unverifiable; objective {objective.rpo_writes} lost")
        return measurement

    # -- end --------------------------------------------------------------------------------
    def finish(self) -> list[str]:
        """Stop probes, revert anything still injected, capture the probe timeline."""
        for watch in self.watches:
            watch.stop()
        # Also those a stop condition reverted from its own thread, not yet in the record.
        unrecorded = {f.fault_id for f in self.record.faults if f.reverted_utc is None}
        pending = [a for a in self.injector.active
                   if a.reverted_utc is None or a.fault_id in unrecorded]
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
