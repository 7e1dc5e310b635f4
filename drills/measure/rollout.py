"""What a rollout does to the service: capacity sampled while an instance refresh runs, and
the app population's outcomes per cohort in the windows around it (runbook 6)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from drills.api_client import Outcome, Population
from drills.evidence.model import CohortRecord


class CapacityWatch:
    """Polls `serving()` (instances serving now, and desired) in a thread until stopped, and
    keeps the fewest seen serving."""

    def __init__(self, serving: Callable[[], tuple[int, int]], poll: float = 0.25) -> None:
        self.serving, self.poll = serving, poll
        self.lowest: int | None = None
        self.desired = self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capacity-watch", daemon=True)

    def start(self) -> CapacityWatch:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                serving, desired = self.serving()
            except Exception:  # a poll that fails says nothing about capacity: not a sample
                self._stop.wait(self.poll)
                continue
            self.samples += 1
            self.desired = max(self.desired, desired)
            self.lowest = serving if self.lowest is None else min(self.lowest, serving)
            self._stop.wait(self.poll)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def cohort_windows(population: Population, windows: Sequence[tuple[str, float, float]],
                   origin: float) -> list[CohortRecord]:
    """Per cohort and window (name, monotonic start, end): requests and failures."""
    outcomes = population.outcomes()
    shares = {c.name: c.share for c in population.cohorts}
    out = []
    for name, start, end in windows:
        seen: dict[str, list[Outcome]] = {}
        for o in outcomes:
            if start <= o.at < end:
                seen.setdefault(o.cohort, []).append(o)
        for cohort in sorted(set(shares) | set(seen)):
            mine = seen.get(cohort, [])
            failed = [o for o in mine if o.result != "ok"]
            out.append(CohortRecord(
                cohort=cohort, share=shares.get(cohort, 0.0), window=name,
                start=round(start - origin, 3), end=round(end - origin, 3),
                requests=len(mine), failures=len(failed),
                attestation_failures=sum(o.result == "attestation" for o in failed),
                reasons=sorted({f"{o.result}: {o.reason}" if o.reason else o.result
                                for o in failed})))
    return out
