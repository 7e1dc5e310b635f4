"""MTTR as people experience it (runbook section 1: "MTTR < 30 minutes, including
diagnosis"): the incident's time to recovery cut into the phases a post-incident review
names, each bounded by a moment the exercise observed.

    incident ─ detection ─▶ paged ─ response ─▶ acknowledged ─ diagnosis and decision ─▶
    decided ─ recovery ─▶ service recovered

Every moment is in seconds after the incident began (the fault's first action). A moment
that never came leaves both phases it bounds without a duration, and the total without a
figure when the service did not recover.
"""

from __future__ import annotations

from dataclasses import dataclass

from drills.evidence.model import MttrPhaseRecord, MttrRecord


@dataclass(frozen=True, slots=True)
class Moments:
    """The moments that bound the phases, seconds after the incident began (None: never)."""

    paged: float | None  # the page reached the on-call engineer
    acknowledged: float | None  # L1 acknowledged the page
    decided: float | None  # the incident commander approved the recovery (failover)
    recovered: float | None  # the service recovered, as the apps see it


PHASES = (
    ("detection", "incident began", "paged", "the fault's first action to the page's delivery"),
    ("response", "paged", "acknowledged", "the page's delivery to the L1 acknowledgement"),
    ("diagnosis-and-decision", "acknowledged", "decided",
     "the L1 acknowledgement to the incident commander's approval of the recovery"),
    ("recovery", "decided", "recovered",
     "the approval to the service's recovery as the apps see it (probes settled)"),
)


def mttr(moments: Moments, objective: float) -> MttrRecord:
    """The four phases and the total (the incident's start to the service's recovery)
    against `objective` seconds."""
    at = {"incident began": 0.0, "paged": moments.paged, "acknowledged": moments.acknowledged,
          "decided": moments.decided, "recovered": moments.recovered}
    phases = []
    for name, start_mark, end_mark, marks in PHASES:
        start, end = at[start_mark], at[end_mark]
        duration = round(end - start, 3) if start is not None and end is not None else None
        phases.append(MttrPhaseRecord(name, start, end, duration, marks))
    total = moments.recovered
    return MttrRecord(objective, total, total is not None and total <= objective, phases)
