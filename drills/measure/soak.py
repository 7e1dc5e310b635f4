"""Runbook 7.3 "4-hour operation in DR region": operate in the DR region for a while and
watch it, as the soak of a failover exercise.

While the soak runs, what already runs keeps running (the drill's probes, the canary and,
with `--load`, the simulated apps); the soak adds the replication backlog, read every
`sample` seconds where the target can read it, and a progress line on the long wait. At the
end, the probes and canary writes of the soak's window are summed up and every outage among
them is listed (each one a finding). An outage is a group of at least K failed probes not
separated by K successes (K: the probes' `consecutive`, the run of successes that means
recovered); fewer failures in a group (a probe timing out now and then) are counted and
noted, not called an outage. A soak shorter than the runbook's 4 hours is a rehearsal of
it, and labelled so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from drills.evidence.fmt import secs
from drills.evidence.model import OutageRecord, SoakRecord
from drills.journal import utc_at
from drills.measure.canary import CanaryWrite
from drills.measure.timeline import ProbeResult, outages

#: What runbook 7.3 requires: "4-hour operation in DR region".
REQUIRED = 4 * 3600.0


@dataclass(slots=True)
class Soak:
    """One soak: what to watch and how to report on the wait. `backlog` is None where the
    target cannot read the replication backlog; `origin` is the exercise's first fault
    (monotonic), the zero of the outages' times."""

    region: str
    duration: float
    probes: Callable[[], Sequence[ProbeResult]]
    canary: Callable[[], Sequence[CanaryWrite]]
    backlog: Callable[[], int] | None
    origin: float | None
    consecutive: int = 3
    sample: float = 1.0
    progress: Callable[[str], None] = lambda message: None
    backlogs: list[int] = field(default_factory=list)

    def run(self) -> SoakRecord:
        """Operate for `duration` seconds, then sum up the window."""
        start = time.monotonic()
        end = start + self.duration
        while (now := time.monotonic()) < end:
            if self.backlog is not None:
                self.backlogs.append(self.backlog())
            self.progress(self._line(start, now))
            time.sleep(min(self.sample, max(0.0, end - time.monotonic())))
        return self.summary(start, time.monotonic())

    def _line(self, start: float, now: float) -> str:
        seen = [p for p in self.probes() if p.done >= start]
        failed = sum(not p.ok for p in seen)
        acked = sum(w.acked for w in self.canary() if w.done >= start)
        backlog = f", replication backlog {self.backlogs[-1]}" if self.backlogs else ""
        label = "" if self.duration >= REQUIRED else " (rehearsal: the runbook requires 4h)"
        return (f"soak in {self.region}: {secs(now - start)} of {secs(self.duration)}{label}; "
                f"probes {len(seen) - failed} ok / {failed} failed, {acked} canary writes "
                f"acknowledged{backlog}")

    def summary(self, start: float, end: float) -> SoakRecord:
        """The soak's window [start, end] (monotonic) as evidence."""
        seen = [p for p in self.probes() if start <= p.done <= end]
        writes = [w for w in self.canary() if start <= w.done <= end]
        origin = start if self.origin is None else self.origin
        groups = outages(seen, origin, self.consecutive)
        found = [o for o in groups if o.failures >= self.consecutive]
        notes = [] if self.backlog is not None else [
            "replication backlog not observable on this target (it lacks the control "
            "capability); watch OperationsPendingReplication and ReplicationLatency instead"]
        if isolated := sum(o.failures for o in groups if o.failures < self.consecutive):
            notes.append(f"{isolated} failed probe(s) in groups of fewer than "
                         f"{self.consecutive}: not counted as an outage")
        ran = end - start
        return SoakRecord(
            region=self.region, required=REQUIRED, planned=self.duration, ran=round(ran, 3),
            rehearsal=ran < REQUIRED, start_utc=utc_at(start), end_utc=utc_at(end),
            start_at=round(start - self.origin, 3) if self.origin is not None else None,
            probes=len(seen), probe_failures=sum(not p.ok for p in seen),
            canary_acknowledged=sum(w.acked for w in writes),
            canary_failed=sum(not w.acked for w in writes),
            replication_samples=len(self.backlogs),
            replication_backlog_max=max(self.backlogs) if self.backlogs else None,
            outages=[OutageRecord(round(o.start, 3), round(o.end, 3), o.failures,
                                  o.first_detail) for o in found],
            notes=notes)
