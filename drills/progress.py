"""Live progress on the terminal: which drill, which step, what a long wait is waiting on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from drills.evidence.fmt import is_rehearsal, measure_label, rehearsal_note
from drills.evidence.model import (
    DrillRecord,
    FaultRecord,
    Measurement,
    NotificationRecord,
    RpoMeasurement,
    RunRecord,
    Status,
    StepRecord,
)
from drills.evidence.observer import RunObserver
from drills.measure.timeline import Verdict

Write = Callable[[str], None]

MARK = {Status.PASSED: "ok", Status.FAILED: "FAILED", Status.ERROR: "ERROR",
        Status.SKIPPED: "skipped", Status.NOT_STEADY: "NOT STEADY",
        Status.EXPECTED_BREACH: "EXPECTED BREACH", Status.INTERRUPTED: "INTERRUPTED",
        Status.STOPPED: "STOPPED"}


def _secs(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}s"


def describe_measurement(m: Measurement) -> str:
    """One line: the figure, its bracket, the objective and the verdict."""
    verdict = "met" if m.met else "BREACHED"
    head = f"{measure_label(m.name)} for {m.component} (objective {m.objective_rto:g}s): "
    if m.verdict == Verdict.NO_OUTAGE:
        return head + (f"no outage observed in {m.probes} probes (an outage shorter than "
                       f"{_secs(m.uncertainty)} could pass unseen): {verdict}")
    if m.rto is None:
        what = "did not happen" if m.verdict == Verdict.NOT_REACHED else "not recovered"
        return head + f"{what} ({m.verdict}): {verdict}"
    unc = m.uncertainty or 0.0
    if unc < 0.01:  # an event's own timestamp: a bracket would read "between x and x"
        text = head + f"{_secs(m.rto)} (±{unc * 1000:.0f} ms): {verdict}"
    else:
        text = (head + f"{_secs(m.rto)} (recovered between {_secs(m.rto - unc)} and "
                f"{_secs(m.rto)}): {verdict}")
    if m.verdict == Verdict.FLAPPING:
        text += f"; FLAPPING: {len(m.outages)} outages, RTO to the last stable run"
    if m.time_to_detect is not None:
        text += f"; first failure seen after {_secs(m.time_to_detect)}"
    return text


class ProgressObserver(RunObserver):
    """Writes one line per event through `write` (which must bypass output capture)."""

    def __init__(self, write: Write) -> None:
        self.write = write

    def run_started(self, run: RunRecord) -> None:
        self.write(f"drills: run {run.run_id} ({run.exercise}) on {run.target.get('kind')}")
        if note := rehearsal_note(run.target):
            self.write(f"drills: {note}")

    def drill_started(self, run: RunRecord, drill: DrillRecord) -> None:
        self.write(f"\n> drill: {drill.feature} :: {drill.name}")

    def step_finished(self, drill: DrillRecord, step: StepRecord) -> None:
        self.write(f"  [{MARK[step.status]:>6}] {step.keyword} {step.text} "
                   f"({step.duration:.2f}s)")

    def fault_changed(self, drill: DrillRecord, fault: FaultRecord) -> None:
        if fault.reverted_utc:
            self.write(f"           reverted: {fault.description}")
        elif fault.revert_error:
            self.write(f"           REVERT FAILED: {fault.description}: {fault.revert_error}")
        else:
            self.write(f"           injected: {fault.description} [{fault.fault_id}]")

    def measured(self, drill: DrillRecord, measurement: Measurement) -> None:
        self.write(f"           {describe_measurement(measurement)}")

    def rpo_measured(self, drill: DrillRecord, m: RpoMeasurement) -> None:
        self.write(f"           RPO for {m.component}: {m.lost} of {m.acknowledged} acknowledged "
                   f"writes lost (window {m.loss_window:.2f}s, {m.unacknowledged} never "
                   f"acknowledged, {m.unverified} unverifiable): "
                   f"{'met' if m.met else 'EXPECTED LOSS' if m.expected_loss else 'BREACHED'}")

    def notified(self, drill: DrillRecord, n: NotificationRecord) -> None:
        self.write(f"           notification sent: {n.kind} #{n.sequence} \"{n.subject}\" "
                   f"({n.after_declaration:.2f}s after the declaration)")

    def waiting(self, drill: DrillRecord, message: str) -> None:
        self.write(f"           ... {message}")

    def drill_finished(self, run: RunRecord, drill: DrillRecord) -> None:
        self.write(f"< {MARK[drill.status]}: {drill.name} ({drill.duration:.1f}s)")

    def run_finished(self, run: RunRecord, report_dir: Path) -> None:
        passed = sum(d.status.passed for d in run.drills)
        kind = " (a rehearsal on the twin)" if is_rehearsal(run.target) else ""
        self.write(f"\ndrills: {passed}/{len(run.drills)} drills passed{kind}; "
                   f"report: {report_dir / 'report.json'}")
