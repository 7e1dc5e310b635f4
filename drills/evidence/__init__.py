"""Evidence of a run: the typed model, observers, and the writers that turn it into files."""

from __future__ import annotations

from drills.evidence.json_report import JsonReportWriter
from drills.evidence.observer import Observers, RunObserver


def default_writers() -> list[RunObserver]:
    """The writers every run uses, in the order they write (report.json first)."""
    return [JsonReportWriter()]


__all__ = ["JsonReportWriter", "Observers", "RunObserver", "default_writers"]
