"""Live progress on the terminal: which drill, which step, what a long wait is waiting on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from drills.evidence.model import (
    DrillRecord,
    FaultRecord,
    Measurement,
    RpoMeasurement,
    RunRecord,
    Status,
    StepRecord,
)
from drills.evidence.observer import RunObserver

Write = Callable[[str], None]

MARK = {Status.PASSED: "ok", Status.FAILED: "FAILED", Status.ERROR: "ERROR",
        Status.SKIPPED: "skipped"}


def _secs(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}s"


def describe_measurement(m: Measurement) -> str:
    """One line: the figure, its bracket, the objective and the verdict."""
    verdict = "met" if m.met else "BREACHED"
    head = f"{m.name} RTO for {m.component} (objective {m.objective_rto:g}s): "
    if m.verdict == "no-outage":
        return head + (f"no outage observed in {m.probes} probes (an outage shorter than "
                       f"{_secs(m.uncertainty)} could pass unseen): {verdict}")
    if m.rto is None:
        return head + f"not recovered ({m.verdict}): {verdict}"
    low = m.rto - (m.uncertainty or 0.0)
    text = head + f"{_secs(m.rto)} (recovered between {_secs(low)} and {_secs(m.rto)}): {verdict}"
    if m.time_to_detect is not None:
        text += f"; first failure seen after {_secs(m.time_to_detect)}"
    return text


class ProgressObserver(RunObserver):
    """Writes one line per event through `write` (which must bypass output capture)."""

    def __init__(self, write: Write) -> None:
        self.write = write

    def run_started(self, run: RunRecord) -> None:
        self.write(f"drills: run {run.run_id} ({run.exercise}) on {run.target.get('kind')}")

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

    def waiting(self, drill: DrillRecord, message: str) -> None:
        self.write(f"           ... {message}")

    def drill_finished(self, run: RunRecord, drill: DrillRecord) -> None:
        self.write(f"< {MARK[drill.status]}: {drill.name} ({drill.duration:.1f}s)")

    def run_finished(self, run: RunRecord, report_dir: Path) -> None:
        passed = sum(d.status is Status.PASSED for d in run.drills)
        self.write(f"\ndrills: {passed}/{len(run.drills)} drills passed; "
                   f"report: {report_dir / 'report.json'}")
