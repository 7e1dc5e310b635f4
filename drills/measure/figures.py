"""Figures against objectives: the one place each kind of evidence record is assembled.

Three ways a recovery is observed, one constructor each:

- probes on a fixed schedule (`Recovery`, from `timeline.compute_recovery`);
- a condition polled until it holds (`poll_until`, e.g. the ASG back at capacity);
- an event with a timestamp of its own (an alarm's state change, a page's delivery);

and one for data loss (`RpoResult`). Every figure is relative to the fault's first action.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from drills.config import Objective
from drills.evidence.model import LostWriteRecord, Measurement, OutageRecord, RpoMeasurement
from drills.measure.rpo import RpoResult
from drills.measure.timeline import Recovery, Verdict


@dataclass(frozen=True, slots=True)
class Polled:
    """A condition polled until it held: when it was seen to hold, and the last poll that
    saw it not hold (the recovery lies between them). Monotonic times."""

    held: bool
    at: float  # the poll that saw it hold (or the last poll, when it never did)
    lower: float  # the last poll that saw it not hold (or `since`, if none did)
    problem: str  # why it did not hold at the last poll that failed ("" if none)


def poll_until(check: Callable[[], str | None], *, since: float, deadline: float, poll: float,
               progress: Callable[[str], None],
               stopped: threading.Event | None = None) -> Polled:
    """Call `check` every `poll` seconds until it returns None (holds) or `deadline` passes
    (or `stopped` is set); `check` returns why the condition does not hold yet, which goes
    to `progress`."""
    lower, problem = since, ""
    stopped = stopped or threading.Event()
    while True:
        polled = time.monotonic()
        why = check()
        if why is None:
            return Polled(True, polled, lower, problem)
        lower, problem = polled, why
        if time.monotonic() >= deadline or stopped.is_set():
            return Polled(False, polled, lower, problem)
        progress(why)
        stopped.wait(min(poll, max(0.0, deadline - time.monotonic())))


class Watch:
    """`poll_until` in a thread of its own from now: conditions that come true at once (DR
    capacity, a DNS change INSYNC, the first request served in DR) are each observed from
    the start, not one after another. A check that raises ends the watch with its error."""

    def __init__(self, name: str, check: Callable[[], str | None], *, since: float,
                 deadline: float, poll: float) -> None:
        self.name, self.since = name, since
        self.last = ""  # why it did not hold at the latest poll
        self._stopped = threading.Event()
        self._result: Polled | None = None
        self._error: BaseException | None = None

        def noted(why: str) -> None:
            self.last = why

        def run() -> None:
            try:
                self._result = poll_until(check, since=since, deadline=deadline, poll=poll,
                                          progress=noted, stopped=self._stopped)
            except BaseException as exc:  # handed to whoever waits for the result
                self._error = exc

        self._thread = threading.Thread(target=run, name=f"drills-watch-{name}", daemon=True)
        self._thread.start()

    def result(self, progress: Callable[[str], None]) -> Polled:
        """Wait for the watch to end (reporting what it last saw), and return what it saw."""
        while self._thread.is_alive():
            progress(self.last or "not yet")
            self._thread.join(0.25)
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(5.0)


def from_recovery(name: str, objective: Objective, rec: Recovery, fault_id: str | None,
                  method: str, path: str = "") -> Measurement:
    """A figure measured by probes."""
    return Measurement(
        name=name, component=objective.component, objective_rto=objective.rto,
        verdict=rec.verdict, rto=rec.rto, rto_lower=rec.rto_lower,
        uncertainty=rec.uncertainty, time_to_detect=rec.time_to_detect,
        met=_met(rec.verdict, rec.rto, objective), fault_id=fault_id, method=method,
        probes=rec.probes, failures=rec.failures, path=path,
        outages=[OutageRecord(o.start, o.end, o.failures, o.first_detail)
                 for o in rec.outages])


def from_poll(name: str, objective: Objective, polled: Polled, origin: float,
              inject_span: float, fault_id: str | None, method: str) -> Measurement:
    """A figure measured by polling a condition from a fault that began at `origin`."""
    if not polled.held:
        return Measurement(
            name=name, component=objective.component, objective_rto=objective.rto,
            verdict=Verdict.NOT_RECOVERED, rto=None, rto_lower=None, uncertainty=None,
            time_to_detect=None, met=False, fault_id=fault_id,
            method=f"{method}; still not so at the last poll: {polled.problem}")
    rto = polled.at - origin
    lower = max(0.0, min(rto, polled.lower - origin - inject_span))
    return Measurement(
        name=name, component=objective.component, objective_rto=objective.rto,
        verdict=Verdict.RECOVERED, rto=rto, rto_lower=lower, uncertainty=rto - lower,
        time_to_detect=None, met=_met(Verdict.RECOVERED, rto, objective), fault_id=fault_id,
        method=method)


def from_event(name: str, objective: Objective, figure: float | None, uncertainty: float,
               fault_id: str | None, method: str) -> Measurement:
    """A figure read from an event's own timestamp (None: the event did not happen)."""
    verdict = Verdict.NOT_REACHED if figure is None else Verdict.REACHED
    return Measurement(
        name=name, component=objective.component, objective_rto=objective.rto,
        verdict=verdict, rto=figure,
        rto_lower=None if figure is None else max(0.0, figure - uncertainty),
        uncertainty=None if figure is None else uncertainty, time_to_detect=None,
        met=_met(verdict, figure, objective), fault_id=fault_id, method=method)


def rpo_measurement(objective: Objective, result: RpoResult, method: str,
                    expected_loss: bool = False) -> RpoMeasurement:
    """Data loss against the objective's RPO (acknowledged writes that may be lost)."""
    return RpoMeasurement(
        component=objective.component, objective_writes=objective.rpo_writes,
        acknowledged=result.acknowledged, unacknowledged=result.unacknowledged,
        lost=result.lost_count, loss_window=result.loss_window, unverified=result.unverified,
        met=result.lost_count <= objective.rpo_writes and result.unverified == 0,
        lost_writes=[LostWriteRecord(x.seq, x.item, x.reason, x.acked_utc, x.detail)
                     for x in result.lost],
        method=f"{method}; {result.note}" if result.note else method,
        expected_loss=expected_loss, uncertain=result.uncertain)


def _met(verdict: Verdict, rto: float | None, objective: Objective) -> bool:
    return verdict.recovered and rto is not None and rto <= objective.rto
