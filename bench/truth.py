"""Ground truth for bench/rto_accuracy.py, taken apart from the figures it checks, and each
measured run judged against it.

Two sources, neither of them the harness's probes nor its fault journal:

- **The syscalls themselves.** `time.monotonic()` is read immediately before and after
  each `os.kill(pid, SIGSTOP)` / `os.kill(pid, SIGCONT)`, with nothing in between (no
  journal write, no fsync, no AWS call). A freeze's true end is the window from just before
  the first SIGCONT to just after the last one returned: from then on every worker can run.
- **The workers' own log of served requests** (`$DRILLS_EXEC_LOG_DIR/<instance-id>.jsonl`,
  one line per executed request, `mono` read by the worker just before it executes it).
  CLOCK_MONOTONIC is one clock for every process of the machine, so those instants compare
  with the harness's directly. An outage driven through the AWS API ends at the first
  request a new worker executed.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drills.faults import FaultContext, FreezeWorkers
from drills.measure import Recovery
from drills.measure.timeline import Outcome, ProbeResult

KINDS = ("full", "partial", "capacity")
PATHS = ("nats", "api")


@dataclass(frozen=True, slots=True)
class Mark:
    """One syscall, with the monotonic clock read immediately before and after it."""

    before: float
    after: float


def kill_marked(pid: int, sig: signal.Signals) -> Mark:
    """Send `sig` to `pid`; nothing runs between the clock reads and the syscall."""
    before = time.monotonic()
    os.kill(pid, sig)
    after = time.monotonic()
    return Mark(before, after)


class MarkedFreeze(FreezeWorkers):
    """`FreezeWorkers` whose every kill is marked: the same kind, the same journal entry and
    the same rollback (the class registers no kind of its own), so the injector journals it
    and takes its origin exactly as a drill's, while the marks stay out of that path."""

    def __init__(self, ctx: FaultContext, params: Mapping[str, Any]) -> None:
        super().__init__(ctx, params)
        self.stops: list[Mark] = []
        self.conts: list[Mark] = []

    def inject(self) -> None:
        for pid in self.params["workers"].values():
            self.stops.append(kill_marked(pid, signal.SIGSTOP))

    def revert(self) -> None:
        for pid in self.params.get("workers", {}).values():
            try:
                self.conts.append(kill_marked(pid, signal.SIGCONT))
            except ProcessLookupError:  # replaced meanwhile: nothing to thaw
                continue


@dataclass(frozen=True, slots=True)
class Truth:
    """When the service really came back (monotonic), known to lie in [earliest, latest],
    and when it really went down; `source` says who observed it."""

    earliest: float
    latest: float
    down_at: float
    source: str

    @property
    def at(self) -> float:
        """The instant compared with the measured RTO: the end of the window (every worker
        runnable again, or the first request executed)."""
        return self.latest

    def inside(self, lower: float, upper: float) -> bool:
        """True when the whole truth window lies within [lower, upper]."""
        return lower <= self.earliest and self.latest <= upper


class TruthError(Exception):
    """The ground truth of a run could not be established (no marks, no served request)."""


def thaw_truth(fault: MarkedFreeze) -> Truth:
    """The truth of a freeze: its kills' own marks."""
    if not fault.stops or len(fault.conts) != len(fault.stops):
        raise TruthError(f"{len(fault.stops)} SIGSTOP and {len(fault.conts)} SIGCONT marks: "
                         "a frozen worker was replaced before the thaw, the freeze has no "
                         "single end")
    return Truth(min(m.before for m in fault.conts), max(m.after for m in fault.conts),
                 fault.stops[0].before, "SIGCONT")


@dataclass(frozen=True, slots=True)
class Served:
    """One request a worker executed, from its own log: when it started (monotonic), and
    when its caller stopped waiting (`deadline`, carried by the request, on the same clock)."""

    instance_id: str
    mono: float
    op: str
    deadline: float


def served(log_dir: Path, instance_ids: Iterable[str] | None = None) -> list[Served]:
    """Every request executed by the workers of `instance_ids` (default: all), in order."""
    out = []
    paths = (sorted(log_dir.glob("*.jsonl")) if instance_ids is None
             else [log_dir / f"{iid}.jsonl" for iid in instance_ids])
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written right now
            # `started` (wall) and `mono` were read together: the offset moves the
            # request's wall-clock deadline onto the monotonic clock.
            offset = float(entry["mono"]) - float(entry["started"])
            out.append(Served(path.stem, float(entry["mono"]), str(entry["op"]),
                              float(entry["deadline"]) + offset))
    return sorted(out, key=lambda s: s.mono)


def replacement_truth(log_dir: Path, old: Iterable[str], since: float) -> Truth:
    """The truth of an outage that replaced the workers `old`: the last request one of them
    executed, and the first one any other worker executed after `since` (the injection;
    earlier lines are from workers of earlier runs)."""
    old = set(old)
    every = served(log_dir)
    before = [s.mono for s in every if s.instance_id in old]
    after = [s.mono for s in every if s.instance_id not in old and s.mono > since]
    if not before or not after:
        raise TruthError(f"the workers' logs in {log_dir} hold {len(before)} request(s) served "
                         f"by the old workers and {len(after)} by new ones; both are needed")
    return Truth(after[0], after[0], before[-1], "exec log")


@dataclass(frozen=True, slots=True)
class Backlog:
    """What thawed workers executed after the thaw for requests sent before it."""

    count: int
    last: float | None  # when the last of them started (monotonic)


def backlog(log_dir: Path, instance_ids: Iterable[str], thawed_at: float,
            caller_timeout: float) -> Backlog:
    """Requests sent before `thawed_at` (deadline - `caller_timeout`: the timeout of whoever
    sent them to the enclave, the probe or the API's Lambda) that the thawed workers
    executed after it: the queue a freeze leaves, served before new requests (a diagnostic
    beside SIGCONT, which says when the workers could run, not when they served again)."""
    stale = [s.mono for s in served(log_dir, instance_ids)
             if s.mono > thawed_at and s.deadline - caller_timeout < thawed_at]
    return Backlog(len(stale), max(stale, default=None))


# -- each run against its truth ----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Run:
    """One outage measured on one path, beside its truth."""

    kind: str
    path: str
    duration: float | None  # the freeze asked for; None for capacity
    injected_at: float
    truth: Truth
    recovery: Recovery
    lower_probe: ProbeResult | None  # the failure that set the bracket's lower end
    backlog: Backlog | None  # freezes: what the thawed workers served late (diagnostic)
    latency: float  # median probe latency just before the fault (how loaded the service is)
    load: float  # the machine's 1-minute load average when the run ended

    @property
    def rto(self) -> float | None:
        return self.recovery.rto

    @property
    def true_rto(self) -> float:
        return self.truth.at - self.injected_at

    @property
    def error(self) -> float | None:
        return None if self.rto is None else self.rto - self.true_rto

    @property
    def bracket(self) -> tuple[float, float] | None:
        """[lower, upper] of the stated bracket, monotonic."""
        rec = self.recovery
        if rec.rto is None or rec.rto_lower is None:
            return None
        return self.injected_at + rec.rto_lower, self.injected_at + rec.rto

    @property
    def covered(self) -> bool:
        return self.bracket is not None and self.truth.inside(*self.bracket)

    @property
    def miss(self) -> str:
        """Why the truth lies outside the bracket, from the probe that set the end it crossed
        ("" when it is inside)."""
        if self.covered:
            return ""
        if self.bracket is None or self.lower_probe is None:
            return "no recovery measured"
        if self.bracket[1] < self.truth.latest:
            return "upper end before the truth: the recovery run began while a worker was frozen"
        probe = self.lower_probe
        if probe.sent >= self.truth.latest:
            return "a request sent after the truth failed"
        if probe.outcome is Outcome.ERROR and self.kind == "full":
            return "an error reply made after the truth (every worker was frozen before it)"
        return "an error reply sent before the truth, received after it (made when: unknown)"


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(runs: Sequence[Run]) -> str:
    """The error distribution and coverage per kind and path, then over every run."""
    lines = [f"\n{'kind':<8} {'path':<4} {'runs':>4} {'mean ms':>8} {'median':>7} "
             f"{'p95 |e|':>8} {'max |e|':>8} {'mean ± ms':>9} {'coverage':>8}"]
    groups = sorted({(r.kind, r.path) for r in runs}, key=lambda g: (KINDS.index(g[0]),
                                                                    PATHS.index(g[1])))
    for kind, path in [*groups, ("all", "")]:
        chosen = [r for r in runs if kind == "all" or (r.kind, r.path) == (kind, path)]
        errors = [r.error for r in chosen if r.error is not None]
        widths = [r.recovery.uncertainty for r in chosen if r.recovery.uncertainty is not None]
        absolute = [abs(e) for e in errors]
        covered = sum(r.covered for r in chosen)
        if not errors:
            lines.append(f"{kind:<8} {path:<4} {len(chosen):>4} (no RTO measured)")
            continue
        lines.append(f"{kind:<8} {path:<4} {len(chosen):>4} "
                     f"{statistics.mean(errors) * 1000:8.1f} "
                     f"{statistics.median(errors) * 1000:7.1f} "
                     f"{percentile(absolute, 0.95) * 1000:8.1f} {max(absolute) * 1000:8.1f} "
                     f"{statistics.mean(widths) * 1000:9.1f} {covered:>4}/{len(chosen)}")
    misses = collections.Counter(r.miss for r in runs if not r.covered)
    if misses:
        lines.append("\nnot covered, by cause:")
        lines += [f"  {count:3d}  {cause}" for cause, count in misses.most_common()]
    return "\n".join(lines)


def last_line(runs: Sequence[Run], failed: int) -> str:
    """Over every run of every kind and path; a run not carried out counts as not covered."""
    absolute = [abs(r.error) * 1000 for r in runs if r.error is not None]
    p95 = percentile(absolute, 0.95) if absolute else float("nan")
    worst = max(absolute) if absolute else float("nan")
    return (f"rto_accuracy: p95_abs_error_ms={p95:.1f} max_abs_error_ms={worst:.1f} "
            f"coverage={sum(r.covered for r in runs)}/{len(runs) + failed}")
