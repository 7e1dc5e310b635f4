"""Turn probe observations into recovery figures: RTO, time to detect, outage timeline.

A probe that *succeeded* proves the service worked when its reply arrived; a probe that
*failed* proves it did not work at some point while it was in flight. So the moment of
recovery lies between the last failure observed before the recovery run and the first
success of that run. We report the conservative end (the observed success) as the RTO and
the width of that bracket as its uncertainty; both come only from probe timestamps.
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
    """How the outage after a fault ended, as seen by the probes."""

    NO_OUTAGE = "no-outage"  # no probe failed after the fault
    RECOVERED = "recovered"  # failures, then a run of K consecutive successes
    NOT_RECOVERED = "not-recovered"  # failures and no K-run before the end of observation
    NO_DATA = "no-data"  # no probe completed after the fault


@dataclass(frozen=True, slots=True)
class Outage:
    """A maximal run of failed probes (by completion time)."""

    start: float  # completion of the first failure, seconds after injection
    end: float  # completion of the last failure, seconds after injection
    failures: int
    first_detail: str


@dataclass(frozen=True, slots=True)
class Recovery:
    """Recovery figures for one fault, all in seconds relative to the injection."""

    verdict: Verdict
    rto: float | None  # injection -> first success of the K-run (observed, conservative)
    rto_lower: float | None  # injection -> last evidence of failure before that run
    time_to_detect: float | None  # injection -> first failure observed
    outages: tuple[Outage, ...]
    probes: int
    failures: int
    consecutive: int
    interval: float

    @property
    def uncertainty(self) -> float | None:
        """Width of the bracket in which the service really came back.

        With no failure seen, an outage shorter than one probe interval may have slipped
        between two probes, so the interval is the uncertainty.
        """
        if self.verdict is Verdict.NO_OUTAGE:
            return self.interval
        if self.rto is None or self.rto_lower is None:
            return None
        return self.rto - self.rto_lower

    @property
    def flapping(self) -> bool:
        """True when the service failed again after having answered, before recovering."""
        return len(self.outages) > 1


def _evidence_of_failure(probe: ProbeResult) -> float:
    """Latest moment a failed probe proves the service was down.

    An error reply proves it up to its arrival; a timeout only proves the request sent
    at `sent` was not served, so the service may have come back any time after that.
    """
    return probe.done if probe.outcome is Outcome.ERROR else probe.sent


def compute_recovery(
    probes: Sequence[ProbeResult],
    injected_at: float,
    *,
    consecutive: int = 3,
    interval: float,
) -> Recovery:
    """Compute the recovery after a fault injected at monotonic time `injected_at`.

    Only probes completed after the injection count; they are ordered by completion,
    because that is when each observation was made.
    """
    if consecutive < 1:
        raise ConfigError(f"consecutive successes must be >= 1, got {consecutive}")
    seen = sorted((p for p in probes if p.done >= injected_at), key=lambda p: (p.done, p.seq))
    failures = [p for p in seen if not p.ok]

    def result(verdict: Verdict, rto: float | None = None, lower: float | None = None,
               detect: float | None = None, outages: tuple[Outage, ...] = ()) -> Recovery:
        return Recovery(verdict, rto, lower, detect, outages, len(seen), len(failures),
                        consecutive, interval)

    if not seen:
        return result(Verdict.NO_DATA)
    outages = _outages(seen, injected_at)
    if not failures:
        # Nothing failed: the service never went down as far as probes can tell; the
        # outage, if any, was shorter than one probe interval.
        return result(Verdict.NO_OUTAGE, 0.0, 0.0)
    detect = failures[0].done - injected_at
    run_start = _recovery_run(seen, consecutive)
    if run_start is None:
        return result(Verdict.NOT_RECOVERED, detect=detect, outages=outages)
    first_ok = seen[run_start]
    before = [p for p in seen[:run_start] if not p.ok]
    lower = max(_evidence_of_failure(p) for p in before) - injected_at
    rto = first_ok.done - injected_at
    return result(Verdict.RECOVERED, rto, max(0.0, min(lower, rto)), detect, outages)


def _recovery_run(seen: Sequence[ProbeResult], k: int) -> int | None:
    """Index of the first success of the first K-run of successes after the last failure."""
    last_fail = max(i for i, p in enumerate(seen) if not p.ok)
    tail = seen[last_fail + 1 :]
    if len(tail) < k:
        return None
    return last_fail + 1


def _outages(seen: Sequence[ProbeResult], origin: float) -> tuple[Outage, ...]:
    runs: list[Outage] = []
    current: list[ProbeResult] = []
    for probe in [*seen, None]:
        if probe is not None and not probe.ok:
            current.append(probe)
            continue
        if current:
            runs.append(Outage(current[0].done - origin, current[-1].done - origin,
                               len(current), current[0].detail))
            current = []
    return tuple(runs)
