"""CloudWatch alarms that evaluate metrics and fire actions, patched into the moto process.

moto 5.2.1 stores alarms and metric data but never evaluates an alarm, never runs an action,
keeps no history, and starts every alarm in `OK`. What AWS documents, and this module does:

- "Using Amazon CloudWatch alarms" (AlarmThatSendsEmail.html, "Evaluating an alarm"): each
  period the alarm takes the statistic of its metric over each of the last EvaluationPeriods
  periods; it goes to ALARM when DatapointsToAlarm (default: EvaluationPeriods) of them
  breach the threshold, to OK otherwise. A period without data is handled by
  TreatMissingData: `missing` (default; all periods missing -> INSUFFICIENT_DATA),
  `notBreaching`, `breaching`, `ignore` (the state is kept).
- PutMetricAlarm (API_PutMetricAlarm.html): "When this operation creates an alarm, the
  alarm state is immediately set to INSUFFICIENT_DATA"; "When you update an existing
  alarm, its state is left unchanged".
- A state change updates StateValue, StateReason, StateReasonData, StateUpdatedTimestamp
  and StateTransitionedTimestamp (API_MetricAlarm.html), writes a `StateUpdate` history
  item ("Alarm updated from OK to ALARM") and runs the actions of the new state
  (AlarmActions / OKActions / InsufficientDataActions) when ActionsEnabled; each action
  leaves an `Action` history item ("Successfully executed action <arn>"). An SNS action
  publishes the alarm notification JSON (AlarmName, NewStateValue, NewStateReason,
  StateChangeTime, OldStateValue, Trigger, ...) with the subject
  `ALARM: "<name>" in <region name>`.
- SetAlarmState (API_SetAlarmState.html) changes the state like an evaluation would, and so
  runs the actions; the next evaluation sets it back from the data.
- DescribeAlarmHistory (API_DescribeAlarmHistory.html): items of type ConfigurationUpdate,
  StateUpdate and Action, filtered by AlarmName, HistoryItemType, StartDate/EndDate,
  newest first unless ScanBy=TimestampAscending; kept after the alarm is deleted.

Evaluation runs in a daemon thread of the moto process, started by the first CloudWatch
call (the server forks after installing the fidelity layer; threads do not survive a fork).
Each alarm is evaluated shortly after each boundary of its period (CloudWatch aligns
periods to the clock), over the periods that have ended. Math-expression and composite
alarms are stored but not evaluated.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from moto.cloudwatch.models import Alarm, CloudWatchBackend, MetricDatumBase, cloudwatch_backends
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.responses import ActionResult
from moto.sns.models import sns_backends

__all__ = ["ROUTES", "evaluate_all", "install"]

_MARK = "_drills_twin_fidelity"
_ORIGINAL: dict[str, Callable[..., Any]] = {}
_LOCK = threading.RLock()
_TICK = 0.2  # seconds between looks at the clock; alarms run on their own period
OK, ALARM, INSUFFICIENT = "OK", "ALARM", "INSUFFICIENT_DATA"
REGION_NAMES = {"us-east-1": "US East (N. Virginia)", "us-east-2": "US East (Ohio)",
                "us-west-1": "US West (N. California)", "us-west-2": "US West (Oregon)",
                "eu-west-1": "EU (Ireland)", "eu-central-1": "EU (Frankfurt)"}
_COMPARE: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}

_logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One item of DescribeAlarmHistory (API_AlarmHistoryItem.html)."""

    alarm: str
    alarm_type: str
    timestamp: datetime
    item_type: str  # ConfigurationUpdate | StateUpdate | Action
    summary: str
    data: dict[str, Any]

    def to_api(self) -> dict[str, Any]:
        return {"AlarmName": self.alarm, "AlarmType": self.alarm_type, "Timestamp": self.timestamp,
                "HistoryItemType": self.item_type, "HistorySummary": self.summary,
                "HistoryData": json.dumps(self.data)}


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(when: datetime) -> str:
    return _aware(when).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def _history(backend: CloudWatchBackend) -> list[HistoryItem]:
    return backend.__dict__.setdefault("_drills_history", [])  # type: ignore[no-any-return]


def _log(backend: CloudWatchBackend, alarm: Alarm, item_type: str, summary: str,
         data: dict[str, Any], when: datetime | None = None) -> None:
    kind = "CompositeAlarm" if alarm.rule else "MetricAlarm"
    _history(backend).append(HistoryItem(alarm.name, kind, when or _now(), item_type, summary,
                                         data))


# ------------------------------------------------------------------ state changes


def transition(backend: CloudWatchBackend, alarm: Alarm, state: str, reason: str,
               reason_data: dict[str, Any] | None = None) -> bool:
    """Move `alarm` to `state`, with history and actions; False when it already was there."""
    with _LOCK:
        old, old_reason = alarm.state_value, alarm.state_reason
        if old == state:
            return False  # AWS keeps the reason and timestamps of the last change
        now = _now()
        alarm.state_value, alarm.state_reason = state, reason
        alarm.state_reason_data = json.dumps(reason_data or {})
        alarm.state_updated_timestamp = now
        alarm.state_transitioned_timestamp = now  # type: ignore[attr-defined]
        _log(backend, alarm, "StateUpdate", f"Alarm updated from {old} to {state}", {
            "version": "1.0", "oldState": {"stateValue": old, "stateReason": old_reason},
            "newState": {"stateValue": state, "stateReason": reason,
                         "stateReasonData": reason_data or {}}}, now)
        if alarm.actions_enabled:
            actions = {ALARM: alarm.alarm_actions, OK: alarm.ok_actions,
                       INSUFFICIENT: alarm.insufficient_data_actions}[state]
            for arn in actions or []:
                _run_action(backend, alarm, arn, old, now)
        return True


def notification(backend: CloudWatchBackend, alarm: Alarm, old: str,
                 when: datetime) -> dict[str, Any]:
    """The JSON CloudWatch publishes to SNS for a state change."""
    return {
        "AlarmName": alarm.name, "AlarmDescription": alarm.description,
        "AWSAccountId": backend.account_id,
        "AlarmConfigurationUpdatedTimestamp": _iso(alarm.configuration_updated_timestamp),
        "NewStateValue": alarm.state_value, "NewStateReason": alarm.state_reason,
        "StateChangeTime": _iso(when),
        "Region": REGION_NAMES.get(backend.region_name, backend.region_name),
        "AlarmArn": alarm.alarm_arn, "OldStateValue": old, "OKActions": alarm.ok_actions,
        "AlarmActions": alarm.alarm_actions,
        "InsufficientDataActions": alarm.insufficient_data_actions,
        "Trigger": {"MetricName": alarm.metric_name, "Namespace": alarm.namespace,
                    "StatisticType": "Statistic", "Statistic": (alarm.statistic or "").upper(),
                    "Unit": alarm.unit,
                    "Dimensions": [{"value": d.value, "name": d.name} for d in alarm.dimensions],
                    "Period": alarm.period, "EvaluationPeriods": alarm.evaluation_periods,
                    "DatapointsToAlarm": alarm.datapoints_to_alarm or alarm.evaluation_periods,
                    "ComparisonOperator": alarm.comparison_operator,
                    "Threshold": alarm.threshold,
                    "TreatMissingData": alarm.treat_missing_data or "missing"}}


def _run_action(backend: CloudWatchBackend, alarm: Alarm, arn: str, old: str,
                when: datetime) -> None:
    message = notification(backend, alarm, old, when)
    data: dict[str, Any] = {"actionState": "Succeeded",
                            "stateUpdateTimestamp": int(when.timestamp() * 1000),
                            "notificationResource": arn, "publishedMessage": message}
    try:
        parts = arn.split(":")
        if parts[2] != "sns":
            raise ValueError("the twin runs SNS alarm actions only")
        region_name = REGION_NAMES.get(parts[3], parts[3])
        sns_backends[parts[4]][parts[3]].publish(
            json.dumps(message), arn=arn,
            subject=f'{alarm.state_value}: "{alarm.name}" in {region_name}'[:100])
        summary = f"Successfully executed action {arn}"
    except Exception as exc:  # a missing topic is recorded, as AWS does, not raised
        data["actionState"], data["error"] = "Failed", str(exc)
        summary = f"Failed to execute action {arn}. Received error: \"{exc}\""
    _log(backend, alarm, "Action", summary, data, when)


# ------------------------------------------------------------------ evaluation


def _values(data: list[MetricDatumBase], start: datetime,
            end: datetime) -> list[tuple[float, ...]]:
    """(sum, min, max, count) of each datum in [start, end)."""
    out: list[tuple[float, ...]] = []
    for d in data:
        stamp = d.timestamp if d.timestamp.tzinfo else d.timestamp.replace(tzinfo=UTC)
        if start <= stamp < end:
            value = getattr(d, "value", None)
            if value is not None:
                out.append((value, value, value, 1.0))
            else:  # a StatisticValues datum
                out.append(tuple(float(getattr(d, a)) for a in
                                 ("sum", "min", "max", "sample_count")))
    return out


def _statistic(values: list[tuple[float, ...]], statistic: str) -> float:
    total, count = sum(v[0] for v in values), sum(v[3] for v in values)
    return {"Sum": total, "SampleCount": count, "Average": total / count if count else 0.0,
            "Minimum": min(v[1] for v in values),
            "Maximum": max(v[2] for v in values)}[statistic]


def _matching(backend: CloudWatchBackend, alarm: Alarm) -> list[MetricDatumBase]:
    # An alarm watches one metric: same namespace, name and exactly the same dimensions.
    wanted = sorted((d.name, d.value) for d in alarm.dimensions)
    return [d for d in list(backend.metric_data)
            if d.namespace == alarm.namespace and d.name == alarm.metric_name
            and sorted((x.name, x.value) for x in d.dimensions) == wanted
            and (not alarm.unit or d.unit == alarm.unit)]


def evaluate(backend: CloudWatchBackend, alarm: Alarm, boundary: datetime) -> None:
    """Evaluate `alarm` over the EvaluationPeriods periods that end at `boundary`."""
    compare = _COMPARE.get(alarm.comparison_operator or "")
    if compare is None or alarm.metric_data_queries or alarm.rule or not alarm.statistic:
        return
    period, n = int(alarm.period), int(alarm.evaluation_periods)
    m = int(alarm.datapoints_to_alarm or n)
    missing = alarm.treat_missing_data or "missing"
    data = _matching(backend, alarm)
    points: list[tuple[datetime, float | None]] = []
    for i in range(n):  # newest period first, as CloudWatch lists recent datapoints
        end = boundary - timedelta(seconds=period * i)
        values = _values(data, end - timedelta(seconds=period), end)
        stamp = end - timedelta(seconds=period)
        points.append((stamp, _statistic(values, alarm.statistic) if values else None))
    present = [(t, v) for t, v in points if v is not None]
    breaching = sum(1 for _, v in present if compare[0](v, float(alarm.threshold)))
    if missing == "breaching":
        breaching += len(points) - len(present)
    if not present and missing in ("missing", "ignore"):
        if missing == "ignore":
            return
        transition(backend, alarm, INSUFFICIENT,
                   f"Insufficient Data: {n} datapoint{'s' if n > 1 else ''} were unknown.",
                   _reason_data(alarm, boundary, points))
        return
    state = ALARM if breaching >= m else OK
    shown = ", ".join(f"{v} ({t.strftime('%d/%m/%y %H:%M:%S')})" for t, v in present)
    verb = "was" if breaching == 1 else "were"
    if state == ALARM:
        detail = f"{breaching} out of the last {n} datapoints [{shown}] {verb} {compare[1]}"
    else:
        kept = len(present) - breaching
        verb = "was" if kept == 1 else "were"
        detail = f"{kept} out of the last {n} datapoints [{shown}] {verb} not {compare[1]}"
    old = alarm.state_value
    reason = (f"Threshold Crossed: {detail} the threshold ({float(alarm.threshold)}) (minimum "
              f"{m if state == ALARM else 1} datapoint{'s' if state == ALARM and m > 1 else ''}"
              f" for {old} -> {state} transition).")
    transition(backend, alarm, state, reason, _reason_data(alarm, boundary, points))


def _reason_data(alarm: Alarm, boundary: datetime,
                 points: list[tuple[datetime, float | None]]) -> dict[str, Any]:
    start = boundary - timedelta(seconds=int(alarm.period) * int(alarm.evaluation_periods))
    return {"version": "1.0", "queryDate": _iso(_now()), "startDate": _iso(start),
            "statistic": alarm.statistic, "period": int(alarm.period),
            "recentDatapoints": [v for _, v in points if v is not None],
            "threshold": float(alarm.threshold),
            "evaluatedDatapoints": [{"timestamp": _iso(t), **({"value": v} if v is not None
                                                            else {})} for t, v in points]}


def _delay(period: int) -> float:
    """Wait after a period ends before evaluating it, so late datapoints still count."""
    return min(0.1 * period, 5.0)


def evaluate_all(now: float | None = None) -> int:
    """Evaluate every alarm whose period has ended since its last evaluation; returns count."""
    now = time.time() if now is None else now
    done = 0
    for _account, regions in list(cloudwatch_backends.items()):
        for _region, backend in list(regions.items()):
            for alarm in list(backend.alarms.values()):
                period = int(alarm.period or 0)
                if period <= 0:
                    continue
                boundary = math.floor((now - _delay(period)) / period) * period
                if getattr(alarm, "_drills_evaluated", None) == boundary:
                    continue
                alarm._drills_evaluated = boundary  # type: ignore[attr-defined]
                try:
                    evaluate(backend, alarm, datetime.fromtimestamp(boundary, UTC))
                except Exception:  # one odd alarm must not stop the others: say which, go on
                    _logger.exception("evaluating alarm %s failed", alarm.name)
                    continue
                done += 1
    return done


class _Evaluator:
    """The daemon thread that evaluates alarms; one per (forked) process."""

    pid = 0
    lock = threading.Lock()

    @classmethod
    def ensure(cls) -> None:
        if cls.pid == os.getpid():
            return
        with cls.lock:
            if cls.pid != os.getpid():
                threading.Thread(target=cls.run, name="drills-alarm-evaluator",
                                 daemon=True).start()
                cls.pid = os.getpid()

    @staticmethod
    def run() -> None:
        while True:
            try:
                with _LOCK:
                    evaluate_all()
            except Exception:  # e.g. a backend changing under us: logged, next tick retries
                _logger.exception("alarm evaluation pass failed")
            time.sleep(_TICK)


# ------------------------------------------------------------------ patched API


def _backend_property(self: CloudWatchResponse) -> CloudWatchBackend:
    _Evaluator.ensure()
    return _ORIGINAL["cloudwatch_backend"](self)  # type: ignore[no-any-return]


def _put_metric_alarm(self: CloudWatchBackend, *args: Any, **kwargs: Any) -> Alarm:
    name = kwargs.get("name", args[0] if args else None)
    with _LOCK:
        old = self.alarms.get(str(name))
        alarm: Alarm = _ORIGINAL["put_metric_alarm"](self, *args, **kwargs)
        if old is None:
            alarm.state_value = INSUFFICIENT
            alarm.state_reason = "Unchecked: Initial alarm creation"
            stamp = alarm.state_updated_timestamp
            alarm.state_transitioned_timestamp = stamp  # type: ignore[attr-defined]
            _log(self, alarm, "ConfigurationUpdate", f'Alarm "{alarm.name}" created',
                 {"type": "Create", "version": "1.0", "createdAlarm": _config(alarm)})
        else:
            for attr in ("state_value", "state_reason", "state_reason_data",
                         "state_updated_timestamp", "state_transitioned_timestamp"):
                setattr(alarm, attr, getattr(old, attr, alarm.state_updated_timestamp))
            _log(self, alarm, "ConfigurationUpdate", f'Alarm "{alarm.name}" updated',
                 {"type": "Update", "version": "1.0", "updatedAlarm": _config(alarm)})
    return alarm


def _config(alarm: Alarm) -> dict[str, Any]:
    return {"alarmName": alarm.name, "namespace": alarm.namespace,
            "metricName": alarm.metric_name, "period": alarm.period,
            "evaluationPeriods": alarm.evaluation_periods, "threshold": alarm.threshold,
            "comparisonOperator": alarm.comparison_operator, "statistic": alarm.statistic,
            "actionsEnabled": alarm.actions_enabled, "alarmActions": alarm.alarm_actions}


def _set_alarm_state(self: CloudWatchBackend, alarm_name: str, reason: str, reason_data: str,
                     state_value: str) -> None:
    # moto validates the name, the state and the JSON; then the change runs like ours.
    alarm = self.alarms.get(alarm_name)
    before = alarm.state_value if alarm else None
    _ORIGINAL["set_alarm_state"](self, alarm_name, reason, reason_data, state_value)
    assert alarm is not None
    assert before is not None
    alarm.state_value = before  # undo moto's silent change, then change it properly
    transition(self, alarm, state_value, reason, json.loads(reason_data) if reason_data else {})


def _describe_alarm_history(self: CloudWatchResponse) -> ActionResult:
    name = self._get_param("AlarmName")
    kind = self._get_param("HistoryItemType")
    types = self._get_param("AlarmTypes") or ["MetricAlarm", "CompositeAlarm"]
    start, end = self._get_param("StartDate"), self._get_param("EndDate")
    items = [h for h in list(_history(self.cloudwatch_backend))
             if (name is None or h.alarm == name) and (kind is None or h.item_type == kind)
             and h.alarm_type in types and (start is None or h.timestamp >= _aware(start))
             and (end is None or h.timestamp <= _aware(end))]
    items.sort(key=lambda h: h.timestamp,
               reverse=self._get_param("ScanBy") != "TimestampAscending")
    first = int(self._get_param("NextToken") or 0)
    limit = int(self._get_param("MaxRecords") or 100)
    result: dict[str, Any] = {"AlarmHistoryItems": [h.to_api() for h in
                                                    items[first:first + limit]]}
    if first + limit < len(items):
        result["NextToken"] = str(first + limit)
    return ActionResult(result)


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def install() -> None:
    """Patch moto's CloudWatch with alarm evaluation, history and actions (idempotent)."""
    if getattr(CloudWatchBackend, _MARK, False):
        return
    for name, patch in (("put_metric_alarm", _put_metric_alarm),
                        ("set_alarm_state", _set_alarm_state)):
        _ORIGINAL[name] = getattr(CloudWatchBackend, name)
        setattr(CloudWatchBackend, name, patch)
    _ORIGINAL["cloudwatch_backend"] = CloudWatchResponse.cloudwatch_backend.fget  # type: ignore[attr-defined]
    CloudWatchResponse.cloudwatch_backend = property(_backend_property)  # type: ignore[assignment,method-assign]
    CloudWatchResponse.describe_alarm_history = _describe_alarm_history  # type: ignore[attr-defined]
    setattr(CloudWatchBackend, _MARK, True)


#: No twin-only control endpoints: alarms are driven by the metrics the twin publishes.
ROUTES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}
