"""Observers of a run: a no-op base class; evidence writers and progress override what they need."""

from __future__ import annotations

from pathlib import Path

from drills.evidence.model import (
    DrillRecord,
    FaultRecord,
    Measurement,
    NotificationRecord,
    RpoMeasurement,
    RunRecord,
    StepRecord,
)


class RunObserver:
    """Receives every event of a run; each method does nothing unless overridden."""

    def run_started(self, run: RunRecord) -> None:
        """A run began (report directory chosen, nothing injected yet)."""

    def drill_started(self, run: RunRecord, drill: DrillRecord) -> None:
        """A drill (scenario) began."""

    def step_started(self, drill: DrillRecord, step: StepRecord) -> None:
        """A step began."""

    def step_finished(self, drill: DrillRecord, step: StepRecord) -> None:
        """A step ended (its status and duration are set)."""

    def fault_changed(self, drill: DrillRecord, fault: FaultRecord) -> None:
        """A fault was injected or reverted."""

    def measured(self, drill: DrillRecord, measurement: Measurement) -> None:
        """A recovery figure was measured."""

    def rpo_measured(self, drill: DrillRecord, measurement: RpoMeasurement) -> None:
        """Data loss was measured."""

    def notified(self, drill: DrillRecord, notification: NotificationRecord) -> None:
        """A notification of the communication procedures was sent."""

    def waiting(self, drill: DrillRecord, message: str) -> None:
        """A step is waiting on a condition; `message` says on what and how far it got."""

    def drill_finished(self, run: RunRecord, drill: DrillRecord) -> None:
        """A drill ended (status set, faults reverted)."""

    def run_finished(self, run: RunRecord, report_dir: Path) -> None:
        """The run ended; write files into `report_dir`."""


class Observers(RunObserver):
    """Fans every event out to a list of observers, in order."""

    def __init__(self, observers: list[RunObserver] | None = None) -> None:
        self.observers = list(observers or [])

    def add(self, observer: RunObserver) -> None:
        self.observers.append(observer)

    def run_started(self, run: RunRecord) -> None:
        for o in self.observers:
            o.run_started(run)

    def drill_started(self, run: RunRecord, drill: DrillRecord) -> None:
        for o in self.observers:
            o.drill_started(run, drill)

    def step_started(self, drill: DrillRecord, step: StepRecord) -> None:
        for o in self.observers:
            o.step_started(drill, step)

    def step_finished(self, drill: DrillRecord, step: StepRecord) -> None:
        for o in self.observers:
            o.step_finished(drill, step)

    def fault_changed(self, drill: DrillRecord, fault: FaultRecord) -> None:
        for o in self.observers:
            o.fault_changed(drill, fault)

    def measured(self, drill: DrillRecord, measurement: Measurement) -> None:
        for o in self.observers:
            o.measured(drill, measurement)

    def rpo_measured(self, drill: DrillRecord, measurement: RpoMeasurement) -> None:
        for o in self.observers:
            o.rpo_measured(drill, measurement)

    def notified(self, drill: DrillRecord, notification: NotificationRecord) -> None:
        for o in self.observers:
            o.notified(drill, notification)

    def waiting(self, drill: DrillRecord, message: str) -> None:
        for o in self.observers:
            o.waiting(drill, message)

    def drill_finished(self, run: RunRecord, drill: DrillRecord) -> None:
        for o in self.observers:
            o.drill_finished(run, drill)

    def run_finished(self, run: RunRecord, report_dir: Path) -> None:
        for o in self.observers:
            o.run_finished(run, report_dir)
