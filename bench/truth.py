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
  request a new worker executed. The same logs hold each request a worker refused as busy,
  with the deadlines of the work that filled its queue: a freeze ends for callers at the
  last refusal owed to the work sent while the workers were frozen, if that comes after
  the SIGCONT.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import statistics
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drills.faults import FaultContext, FreezeWorkers
from drills.measure import Recovery
from drills.measure.timeline import ProbeResult
from drills.twin import manager

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


def thaw_truth(stops: Sequence[Mark], conts: Sequence[Mark], instance_ids: Iterable[str],
               log_dir: Path | None = None, caller_timeout: float = 0.0) -> Truth:
    """The truth of a freeze: its kills' own marks, then what the thawed workers logged.

    A SIGCONT says when the workers could run again, not when callers were served again.
    A thawed worker first takes the requests sent to it while it was frozen (those whose
    callers still wait: sent less than `caller_timeout` before); a request it refused as
    busy while they held its queue is an outage its caller saw after the SIGCONT. The
    service is back once the last such refusal was made (one instant: the next request
    finds room). Without refusals, or without `log_dir`, the truth is the SIGCONT window.
    """
    if not stops or len(conts) != len(stops):
        raise TruthError(f"{len(stops)} SIGSTOP and {len(conts)} SIGCONT marks: a frozen "
                         "worker was replaced before the thaw, the freeze has no single end")
    first, last = min(m.before for m in conts), max(m.after for m in conts)
    down_at = stops[0].before
    if log_dir is not None:
        owed = [r.mono for r in refusals(log_dir, instance_ids)
                if r.mono > first and any(d - caller_timeout < last for d in r.held)]
        if owed and max(owed) > last:
            return Truth(max(owed), max(owed), down_at,
                         "SIGCONT, then the last refusal owed to the freeze's backlog")
    return Truth(first, last, down_at, "SIGCONT")


def exec_log_dir(pids: Iterable[int]) -> Path | None:
    """Where the workers `pids` log what they execute and refuse ($DRILLS_EXEC_LOG_DIR in
    their environment), or None if they do not."""
    for pid in pids:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for entry in environ:
            if entry.startswith(b"DRILLS_EXEC_LOG_DIR="):
                return Path(entry.split(b"=", 1)[1].decode())
    return None


@contextlib.contextmanager
def twin_in(state_dir: Path, vaults: int = 24, **env: str) -> Iterator[Any]:
    """A twin started in `state_dir` (with `env` inherited by its processes, e.g.
    DRILLS_EXEC_LOG_DIR), always stopped after."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield manager.up(state_dir, vaults=vaults)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        manager.down(state_dir)


@dataclass(frozen=True, slots=True)
class Served:
    """One request a worker executed, from its own log: when it started (monotonic), and
    when its caller stopped waiting (`deadline`, carried by the request, on the same clock)."""

    instance_id: str
    mono: float
    op: str
    deadline: float


@dataclass(frozen=True, slots=True)
class Refused:
    """One request a worker refused as busy, from its own log: when (monotonic), and the
    deadlines (monotonic) of the work that filled its queue then."""

    instance_id: str
    mono: float
    held: tuple[float, ...]


def _logged(log_dir: Path, instance_ids: Iterable[str] | None) -> Iterator[
        tuple[str, dict[str, Any], float]]:
    """(instance id, entry, wall-to-monotonic offset) for every whole line of the logs."""
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
            # requests' wall-clock deadlines onto the monotonic clock.
            yield path.stem, entry, float(entry["mono"]) - float(entry["started"])


def served(log_dir: Path, instance_ids: Iterable[str] | None = None) -> list[Served]:
    """Every request executed by the workers of `instance_ids` (default: all), in order."""
    out = [Served(iid, float(entry["mono"]), str(entry["op"]),
                  float(entry["deadline"]) + offset)
           for iid, entry, offset in _logged(log_dir, instance_ids)
           if not entry.get("refused")]
    return sorted(out, key=lambda s: s.mono)


def refusals(log_dir: Path, instance_ids: Iterable[str] | None = None) -> list[Refused]:
    """Every request refused as busy by the workers of `instance_ids`, in order."""
    out = [Refused(iid, float(entry["mono"]), tuple(float(d) + offset for d in entry["held"]))
           for iid, entry, offset in _logged(log_dir, instance_ids) if entry.get("refused")]
    return sorted(out, key=lambda r: r.mono)


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
        # The lower end is the last failed probe's send time: past the truth's start only
        # when a request sent after the service was back failed.
        return "a request sent after the truth failed"


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
