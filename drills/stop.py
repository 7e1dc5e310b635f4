"""Stop conditions, as AWS FIS has them: CloudWatch alarms watched while a drill runs.

FIS "stop conditions" (fis/latest/userguide/stop-conditions.html): an experiment names
CloudWatch alarms; if one enters the ALARM state the experiment stops, and an alarm already
in ALARM when it starts keeps it from starting. Here `[stop] alarms` names them for every
drill of a run. An `AlarmWatch` reads them from the drill's start until its end, every
`[stop] poll` seconds, with DescribeAlarms (the state now) and DescribeAlarmHistory (a
transition to ALARM since the last read, even one that went back to OK between two reads).

One difference from FIS: a drill causes outages on purpose, so an alarm its own faults are
expected to raise (`Fault.raises_alarms`: the enclave alarm during an enclave fault) is not a
stop condition during that drill. Any other alarm in ALARM is: the watch calls `on_stop`
once, with what it saw, and ends (the plugin reverts every fault at once and stops the run).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from drills.boundary import explain
from drills.journal import utc_now


@dataclass(frozen=True, slots=True)
class Tripped:
    """A stop condition that fired: which alarm, why CloudWatch says it is in ALARM, and
    when the watch saw it (UTC)."""

    alarm: str
    reason: str
    seen_utc: str

    def __str__(self) -> str:
        return (f"stop condition: CloudWatch alarm {self.alarm} went to ALARM ({self.reason}); "
                "every fault was reverted and the run stopped; find out why before drilling "
                "again")


class AlarmWatch:
    """Polls the stop alarms in a thread of its own until `stop()` or until one trips."""

    __slots__ = ("_alarms", "_cloudwatch", "_expected", "_halt", "_on_stop", "_poll",
                 "_since", "_thread", "errors", "tripped")

    def __init__(self, cloudwatch: Any, alarms: tuple[str, ...], poll: float,
                 expected: Callable[[], frozenset[str]],
                 on_stop: Callable[[Tripped], None]) -> None:
        self._cloudwatch, self._alarms, self._poll = cloudwatch, alarms, poll
        self._expected, self._on_stop = expected, on_stop
        self._since = datetime.now(UTC)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drills-stop-alarms",
                                        daemon=True)
        self.tripped: Tripped | None = None
        #: Reads that failed (kept: a watch that cannot read its alarms protects nothing).
        self.errors: list[str] = []

    def start(self) -> AlarmWatch:
        """Read the alarms once now (an alarm already in ALARM trips at once), then poll."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the watch (idempotent); waits for a read under way."""
        self._halt.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)

    def check(self) -> Tripped | None:
        """One read: the first stop alarm in ALARM, or gone to it since the last read, that
        the drill's faults are not expected to raise (None: none)."""
        expected = self._expected()
        watched = [a for a in self._alarms if a not in expected]
        if not watched:
            return None
        now = datetime.now(UTC)
        found = self._in_alarm(watched) or self._went_to_alarm(watched, self._since)
        self._since = now
        if found is None:
            return None
        alarm, reason = found
        if alarm in self._expected():  # a fault injected meanwhile raises it
            return None
        return Tripped(alarm, reason, utc_now())

    def _in_alarm(self, names: list[str]) -> tuple[str, str] | None:
        pages = self._cloudwatch.get_paginator("describe_alarms").paginate(
            AlarmNames=names, AlarmTypes=["MetricAlarm", "CompositeAlarm"])
        for page in pages:
            for alarm in page.get("MetricAlarms", []) + page.get("CompositeAlarms", []):
                if alarm["StateValue"] == "ALARM":
                    return alarm["AlarmName"], alarm.get("StateReason", "")
        return None

    def _went_to_alarm(self, names: list[str], since: datetime) -> tuple[str, str] | None:
        for name in names:
            items = self._cloudwatch.describe_alarm_history(
                AlarmName=name, HistoryItemType="StateUpdate", StartDate=since,
                ScanBy="TimestampAscending")["AlarmHistoryItems"]
            for item in items:
                data = _json(item.get("HistoryData", ""))
                if data.get("newState", {}).get("stateValue") == "ALARM":
                    return name, str(data["newState"].get("stateReason")
                                     or item.get("HistorySummary", ""))
        return None

    def _run(self) -> None:
        while True:
            try:
                tripped = self.check()
            except Exception as exc:  # kept, and reported as the drill's deviations
                self.errors.append(f"reading the stop alarms failed: {explain(exc)}")
                tripped = None
            if tripped is not None:
                self.tripped = tripped
                self._on_stop(tripped)
                return
            if self._halt.wait(self._poll):
                return


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
