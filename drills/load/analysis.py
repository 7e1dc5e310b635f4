"""A drill's load in figures: three windows, a per-second series, the load objectives.

Every request counts where it completed (as a probe does), on the harness's monotonic clock:

    before the fault    drill start .. first fault's first action
    fault to recovery   first fault .. the last of the drill's recovery figures
    after recovery      recovery    .. drill end (the settle window, the RPO check, ...)

Latency percentiles (nearest rank, seconds) are those of answered requests: a failure is in
the error rate, not in the latency (an instant "no responders" is not a fast answer).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from drills.config import LoadSettings
from drills.evidence.model import LoadObjectiveResult, LoadPoint, LoadWindow
from drills.load.records import Request

BEFORE, DURING, AFTER = "before the fault", "fault to recovery", "after recovery"


@dataclass(frozen=True, slots=True)
class Marks:
    """The instants (monotonic) that cut a drill's load into windows."""

    start: float  # the drill's first step
    end: float  # the drill's end
    fault: float | None = None  # its first fault's first action (None: no fault)
    recovered: float | None = None  # the last of its recovery figures (None: none)

    @property
    def origin(self) -> float:
        """Time zero of the drill's figures: its first fault, else its start."""
        return self.fault if self.fault is not None else self.start

    def spans(self) -> list[tuple[str, float | None, float | None]]:
        """(window, start, end) in monotonic time; None edges: the window does not exist."""
        if self.fault is None:
            return [(BEFORE, self.start, self.end), (DURING, None, None), (AFTER, None, None)]
        recovered = None if self.recovered is None else min(max(self.recovered, self.fault),
                                                           self.end)
        return [(BEFORE, self.start, self.fault),
                (DURING, self.fault, self.end if recovered is None else recovered),
                (AFTER, recovered, None if recovered is None else self.end)]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile by nearest rank (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def window(name: str, requests: Sequence[Request], start: float | None, end: float | None,
           origin: float, last: bool = False) -> LoadWindow:
    """The figures of the requests completed in [start, end) ([start, end] when `last`)."""
    if start is None or end is None:
        return LoadWindow(name, None, None, 0, 0, 0.0, None, None, None, None)
    inside = [r for r in requests if start <= r.at < end or (last and r.at == end)]
    failed = [r for r in inside if not r.ok]
    answered = [r.latency for r in inside if r.ok]
    span = end - start

    def q(x: float) -> float | None:
        value = percentile(answered, x)
        return None if value is None else round(value, 4)

    return LoadWindow(
        name, round(start - origin, 3), round(end - origin, 3), len(inside), len(failed),
        round(len(inside) / span, 3) if span > 0 else 0.0,
        round(len(failed) / len(inside), 4) if inside else None, q(0.50), q(0.95), q(0.99),
        dict(sorted(Counter(r.outcome for r in failed).items())))


def windows(requests: Sequence[Request], marks: Marks) -> list[LoadWindow]:
    """The three windows of a drill."""
    spans = marks.spans()
    closing = max(i for i, (_, start, _end) in enumerate(spans) if start is not None)
    return [window(name, requests, start, end, marks.origin, last=i == closing)
            for i, (name, start, end) in enumerate(spans)]


def series(requests: Sequence[Request], marks: Marks, step: float = 1.0) -> list[LoadPoint]:
    """Requests and errors completed per `step` seconds, from the drill's start to its end,
    on seconds aligned with its origin (t = 0 at the fault)."""
    first = math.floor((marks.start - marks.origin) / step)
    last = math.ceil((marks.end - marks.origin) / step)
    counts = {k: [0, 0] for k in range(first, max(last, first + 1))}
    for r in requests:
        if marks.start <= r.at <= marks.end:
            k = min(max(math.floor((r.at - marks.origin) / step), first), last - 1)
            counts.setdefault(k, [0, 0])
            counts[k][0] += 1
            counts[k][1] += not r.ok
    return [LoadPoint(round(k * step, 3), n, e) for k, (n, e) in sorted(counts.items())]


def judge(settings: LoadSettings, figures: Sequence[LoadWindow]) -> list[LoadObjectiveResult]:
    """The load objectives that are set, against the windows.

    - `max_error_rate_during_fault`: the error rate from the fault to recovery; a window
      without a request (no outage the probes saw, or no load) has nothing that failed.
    - `p95_latency_after_recovery`: the p95 of answered requests after recovery; with no
      answered request after recovery (none measured, or no load) it is not met."""
    by_name = {w.name: w for w in figures}
    out = []
    if settings.max_error_rate_during_fault is not None:
        during = by_name[DURING]
        limit = settings.max_error_rate_during_fault
        out.append(LoadObjectiveResult(
            "max_error_rate_during_fault", limit, during.error_rate,
            during.error_rate is None or during.error_rate <= limit,
            "" if during.requests else "no load request completed from the fault to recovery"))
    if settings.p95_latency_after_recovery is not None:
        after = by_name[AFTER]
        limit = settings.p95_latency_after_recovery
        out.append(LoadObjectiveResult(
            "p95_latency_after_recovery", limit, after.p95,
            after.p95 is not None and after.p95 <= limit,
            "" if after.p95 is not None else "no answered load request after recovery"))
    return out
