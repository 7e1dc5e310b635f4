"""Replication lag from observed events: each write's acknowledgement, then the polls of the
other region that missed it and the first that saw it.

A write was made somewhere between sending it and its acknowledgement; we measure from the
acknowledgement, the event both AWS and the harness agree on. A poll that *saw* the copy
proves it was there when the poll's answer came; a poll that *missed* it proves it was not
there yet when the poll was sent. So each copy appeared between the start of the last poll
that missed it and the end of the first that saw it: the lag reported is the conservative
end (seen - acknowledged), and the bracket's width is its uncertainty (a poll interval and
one poll's round trip). Only polls sent after a write's acknowledgement count for it: the
`Tracker` is told which writes each poll looked for.

Percentiles are nearest-rank over the reported lags; the bracket of a percentile is the same
rank over the lower ends (the k-th smallest true lag lies between the k-th smallest lower
end and the k-th smallest upper end). A copy never seen counts as infinitely late.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from drills.config import Objective
from drills.errors import ConfigError
from drills.evidence.fmt import secs
from drills.evidence.model import Measurement
from drills.measure import figures


class Arrival(StrEnum):
    """How one write's copy arrived, against the objective."""

    WITHIN = "within"  # seen, lag within the objective
    LATE = "late"  # seen, after the objective
    MISSING = "missing"  # not seen before watching stopped


@dataclass(frozen=True, slots=True)
class Lag:
    """One write and what the polls of its copy saw, in monotonic seconds."""

    key: Hashable
    acked: float  # the write's acknowledgement
    last_miss: float | None  # start of the last poll (after the ack) that did not see it
    seen: float | None  # end of the first poll that saw it; None: never seen

    @property
    def lag(self) -> float | None:
        """Acknowledgement to the first poll that saw the copy (the upper end)."""
        return None if self.seen is None else self.seen - self.acked

    @property
    def lower(self) -> float | None:
        """The least the lag can have been: the last miss (or the ack itself), from the ack."""
        if self.seen is None:
            return None
        return max(0.0, (self.acked if self.last_miss is None else self.last_miss) - self.acked)

    def arrival(self, objective: float) -> Arrival:
        lag = self.lag
        if lag is None:
            return Arrival.MISSING
        return Arrival.WITHIN if lag <= objective else Arrival.LATE


class Tracker:
    """Per write key: its acknowledgement, and the polls that looked for its copy."""

    __slots__ = ("_acked", "_miss", "_seen")

    def __init__(self) -> None:
        self._acked: dict[Hashable, float] = {}
        self._miss: dict[Hashable, float] = {}
        self._seen: dict[Hashable, float] = {}

    def expect(self, key: Hashable, acked: float) -> None:
        """A write of `key` was acknowledged at `acked`: polls from now on look for it."""
        if key in self._acked:
            raise ConfigError(f"write {key!r} is already tracked; every write needs its own key")
        self._acked[key] = acked

    def pending(self) -> list[Hashable]:
        """Keys acknowledged and not seen yet, in the order they were written."""
        return [k for k in self._acked if k not in self._seen]

    def observe(self, started: float, ended: float, looked_for: Iterable[Hashable],
                present: Collection[Hashable]) -> None:
        """A poll sent at `started`, answered at `ended`, looked for `looked_for` (keys
        pending when it was sent) and found `present`."""
        for key in looked_for:
            if key in self._seen or key not in self._acked:
                continue
            if started < self._acked[key]:
                continue  # sent before the write was acknowledged: proves nothing about it
            if key in present:
                self._seen[key] = ended
            else:
                self._miss[key] = max(started, self._miss.get(key, started))

    def lags(self) -> list[Lag]:
        """Every tracked write, in the order written."""
        return [Lag(k, a, self._miss.get(k), self._seen.get(k)) for k, a in self._acked.items()]


def nearest_rank(values: Sequence[float], q: float) -> float:
    """The nearest-rank `q`-quantile (0 < q <= 1) of `values`: the smallest value with at
    least q of them at or below it (with fewer than 100 values, p99 is the maximum)."""
    if not values:
        raise ConfigError("a percentile of no values is undefined; measure at least one write")
    if not 0.0 < q <= 1.0:
        raise ConfigError(f"quantile must be in (0, 1], got {q!r}")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class Quantile:
    """One percentile of the lags: its figure and the bracket of the true value."""

    name: str  # "p50", "p99", "max"
    q: float
    lag: float | None  # None: it falls on a copy never seen
    lower: float | None

    @property
    def uncertainty(self) -> float | None:
        return None if self.lag is None or self.lower is None else self.lag - self.lower


QUANTILES = (("p50", 0.5), ("p99", 0.99), ("max", 1.0))


@dataclass(frozen=True, slots=True)
class LagSummary:
    """The lags of a set of writes against an objective (seconds)."""

    objective: float
    lags: tuple[Lag, ...]
    quantiles: tuple[Quantile, ...]

    @classmethod
    def of(cls, lags: Sequence[Lag], objective: float) -> LagSummary:
        """p50, p99 and max of `lags`; copies never seen count as infinitely late."""
        upper = [math.inf if x.lag is None else x.lag for x in lags]
        lower = [math.inf if x.lower is None else x.lower for x in lags]
        quantiles = []
        for name, q in QUANTILES:
            hi, lo = nearest_rank(upper, q), nearest_rank(lower, q)
            quantiles.append(Quantile(name, q, None if math.isinf(hi) else hi,
                                      None if math.isinf(lo) else lo))
        return cls(objective, tuple(lags), tuple(quantiles))

    def quantile(self, name: str) -> Quantile:
        return next(q for q in self.quantiles if q.name == name)

    def by_arrival(self, arrival: Arrival) -> list[Lag]:
        return [x for x in self.lags if x.arrival(self.objective) is arrival]

    @property
    def met(self) -> bool:
        """Every copy seen, and the slowest within the objective."""
        worst = self.quantile("max").lag
        return worst is not None and worst <= self.objective

    def describe(self) -> str:
        """'p50 0.21 s, p99 0.62 s, max 0.64 s (+0.06 s) of 40 writes; 0 late, 0 missing'."""
        parts = ", ".join(f"{q.name} {'not seen' if q.lag is None else secs(q.lag)}"
                          for q in self.quantiles)
        widest = max((x.lag - (x.lower or 0.0) for x in self.lags if x.lag is not None),
                     default=0.0)
        return (f"{parts} (each to within {secs(widest)}) of {len(self.lags)} writes; "
                f"{len(self.by_arrival(Arrival.LATE))} late, "
                f"{len(self.by_arrival(Arrival.MISSING))} never seen")


def lag_measurements(name: str, objective: Objective, summary: LagSummary,
                     method: str) -> list[Measurement]:
    """The evidence records of a lag distribution: one figure per quantile, named
    '<name> p50' etc., each against `objective` (a quantile that fell on a copy never seen
    did not happen within the window)."""
    return [figures.from_event(f"{name} {q.name}", objective, q.lag, q.uncertainty or 0.0,
                               None, method) for q in summary.quantiles]

