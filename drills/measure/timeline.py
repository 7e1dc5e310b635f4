"""Turn probe observations into recovery figures: RTO, time to detect, outage timeline.

A probe that *succeeded* proves the service worked when its reply arrived; a probe that
*failed* proves it did not work at some point while it was in flight. So the moment of
recovery lies between the last failure observed before the recovery run and the first
success of that run. We report the conservative end (the observed success) as the RTO and
the width of that bracket as its uncertainty; both come only from probe timestamps.

The fault itself takes time to act (`inject_span`: from just before its first mutating
call until the call returned), and the outage may begin anywhere in it. RTO is counted from
the start of that span; the lower end of the bracket from its end, so the bracket widens by
the span at the start just as it does at the end.

Recovered means K consecutive successes after the last failure, and none since for a
settle window: failures that come back after K successes make the verdict `flapping`, and
the RTO runs to the start of the last stable run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from drills.errors import ConfigError


class Outcome(StrEnum):
    """What one probe observed."""

    OK = "ok"
    ERROR = "error"  # the service answered, with an error (fast failure)
    TIMEOUT = "timeout"  # no answer within the probe's timeout


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe: when it was sent and answered, on the monotonic clock and in UTC."""

    seq: int
    sent: float  # time.monotonic() when sent
    done: float  # time.monotonic() when the answer (or timeout) came
    sent_utc: str
    outcome: Outcome
    detail: str = ""

    @property
    def ok(self) -> bool:
        """True when the probe saw the service work."""
        return self.outcome is Outcome.OK

    @property
    def latency(self) -> float:
        """Seconds between sending and the answer (or timeout)."""
        return self.done - self.sent


class Verdict(StrEnum):
    """How a measured figure ended, as observed."""

    NO_OUTAGE = "no-outage"  # no probe failed after the fault
    RECOVERED = "recovered"  # failures, then K consecutive successes that held (settled)
    FLAPPING = "flapping"  # recovered, but failures came back after K successes on the way
    NOT_RECOVERED = "not-recovered"  # no settled recovery within the measurement window
    NO_DATA = "no-data"  # no probe completed after the fault
    REACHED = "reached"  # an awaited event (an alarm, a page) happened
    NOT_REACHED = "not-reached"  # it did not happen within the window

    @property
    def recovered(self) -> bool:
        """True for the verdicts that carry an RTO that can meet an objective."""
        return self in (Verdict.NO_OUTAGE, Verdict.RECOVERED, Verdict.FLAPPING,
                        Verdict.REACHED)


@dataclass(frozen=True, slots=True)
class Outage:
    """Failed probes not separated by K consecutive successes (by completion time)."""

    start: float  # completion of the first failure, seconds after injection
    end: float  # completion of the last failure, seconds after injection
    failures: int
    first_detail: str


@dataclass(frozen=True, slots=True)
class Recovery:
    """Recovery figures for one fault, all in seconds relative to the injection."""

    verdict: Verdict
    rto: float | None  # injection -> first success of the last stable run (conservative)
    rto_lower: float | None  # end of the injection -> last evidence of failure before it
    time_to_detect: float | None  # injection -> first failure observed
    outages: tuple[Outage, ...]
    probes: int
    failures: int
    consecutive: int
    interval: float
    inject_span: float = 0.0
    settled: bool = True  # no failure for the settle window (False: not recovered yet)

    @property
    def uncertainty(self) -> float | None:
        """Width of the bracket in which the service really came back.

        With no failure seen, an outage shorter than one probe interval (plus the time the
        fault took to act) may have slipped between two probes.
        """
        if self.verdict is Verdict.NO_OUTAGE:
            return self.interval + self.inject_span
        if self.rto is None or self.rto_lower is None:
            return None
        return self.rto - self.rto_lower

    @property
    def flapping(self) -> bool:
        """True when the service failed again after having recovered."""
        return len(self.outages) > 1


def _evidence_of_failure(probe: ProbeResult) -> float:
    """Latest moment a failed probe proves the service was down: its send time.

    A timeout only proves the request sent at `sent` was not served. An error reply proves
    the service down when the reply was made, somewhere between `sent` and `done` (a busy
    or no-responders answer is made at once, then travels back): the service may have come
    back while it travelled, so only `sent` is proven.
    """
    return probe.sent


def compute_recovery(
    probes: Sequence[ProbeResult],
    injected_at: float,
    *,
    consecutive: int = 3,
    interval: float,
    inject_span: float = 0.0,
    settle: float = 0.0,
    observed_until: float | None = None,
) -> Recovery:
    """Compute the recovery after a fault whose first action began at monotonic `injected_at`
    and took `inject_span` seconds.

    Only probes completed after the injection count; they are ordered by completion,
    because that is when each observation was made. A success ends an outage only if it
    was sent after the outage's failures were (one in flight before proves nothing after).
    A recovery counts only once no probe has failed for `settle` seconds by
    `observed_until` (default: the last completion).
    """
    if consecutive < 1:
        raise ConfigError(f"consecutive successes must be >= 1, got {consecutive}")
    seen = sorted((p for p in probes if p.done >= injected_at), key=lambda p: (p.done, p.seq))
    failures = [p for p in seen if not p.ok]
    end = observed_until if observed_until is not None else (seen[-1].done if seen else 0.0)

    def result(verdict: Verdict, rto: float | None = None, lower: float | None = None,
               detect: float | None = None, outages: tuple[Outage, ...] = (),
               settled: bool = True) -> Recovery:
        return Recovery(verdict, rto, lower, detect, outages, len(seen), len(failures),
                        consecutive, interval, inject_span, settled)

    if not seen:
        return result(Verdict.NO_DATA)
    if not failures:
        # Nothing failed: the service never went down as far as probes can tell; the
        # outage, if any, was shorter than one probe interval.
        return result(Verdict.NO_OUTAGE, 0.0, 0.0, settled=end - injected_at >= settle)
    outages = _outages(seen, injected_at, consecutive)
    detect = failures[0].done - injected_at
    run_start = _recovery_run(seen, consecutive)
    if run_start is None:
        return result(Verdict.NOT_RECOVERED, detect=detect, outages=outages, settled=False)
    first_ok = seen[run_start]
    if end - first_ok.done < settle:  # back, but not for long enough to call it recovered
        return result(Verdict.NOT_RECOVERED, detect=detect, outages=outages, settled=False)
    before = [p for p in seen[:run_start] if not p.ok]
    lower = max(_evidence_of_failure(p) for p in before) - injected_at - inject_span
    rto = first_ok.done - injected_at
    verdict = Verdict.FLAPPING if len(outages) > 1 else Verdict.RECOVERED
    return result(verdict, rto, max(0.0, min(lower, rto)), detect, outages)


def _recovery_run(seen: Sequence[ProbeResult], k: int) -> int | None:
    """Index of the first success of the K-run of successes after the last failure (each
    sent after every failure was: a request already in flight when a later one failed
    proves nothing of the service after that failure)."""
    last_fail = max(i for i, p in enumerate(seen) if not p.ok)
    latest = max(p.sent for p in seen if not p.ok)
    tail = [i for i in range(last_fail + 1, len(seen)) if seen[i].sent > latest]
    if len(tail) < k:
        return None
    return tail[0]


def outages(seen: Sequence[ProbeResult], origin: float, k: int) -> tuple[Outage, ...]:
    """The outages among `seen` (sorted by answer time), in seconds after `origin`: failed
    probes not separated by K consecutive successes."""
    return _outages(sorted(seen, key=lambda p: p.done), origin, k)


def _outages(seen: Sequence[ProbeResult], origin: float, k: int) -> tuple[Outage, ...]:
    """Failures grouped into outages: a run of K successes (a recovery) ends an outage."""
    runs: list[Outage] = []
    current: list[ProbeResult] = []
    streak = 0
    for probe in seen:
        if not probe.ok:
            current.append(probe)
            streak = 0
            continue
        if current and probe.sent <= max(p.sent for p in current):
            continue  # in flight when a failure of this outage was sent: no proof it ended
        streak += 1
        if current and streak >= k:
            runs.append(_outage(current, origin))
            current = []
    if current:
        runs.append(_outage(current, origin))
    return tuple(runs)


def _outage(failed: Sequence[ProbeResult], origin: float) -> Outage:
    return Outage(failed[0].done - origin, failed[-1].done - origin, len(failed),
                  failed[0].detail)
