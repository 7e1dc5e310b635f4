"""EC2 Auto Scaling instance refresh, which moto 5.2 lacks, patched into the moto server.

StartInstanceRefresh / DescribeInstanceRefreshes / CancelInstanceRefresh
(API_StartInstanceRefresh.html, API_InstanceRefresh.html, API_CancelInstanceRefresh.html):
one active refresh per group (`InstanceRefreshInProgress` otherwise), Status `Pending` ->
`InProgress` -> `Successful` (or `Cancelling` -> `Cancelled`), PercentageComplete,
InstancesToUpdate, preferences with AWS's defaults (MinHealthyPercentage 90). moto answers
NotImplemented. This module keeps the refresh records; the twin's ASG controller, which
knows when an instance is healthy, performs the replacements through `autoscaling.py`'s
`replace-instance` route and reports progress through the routes below.

Twin-only control endpoints (`POST /drills-twin/<route>`), taking
`{"region": ..., "account": <optional>}` plus:

    autoscaling/instance-refreshes       {"group"}: the active refreshes, with the instances
                                         each must replace
    autoscaling/update-instance-refresh  {"group", "id", "status"?, "percentage"?,
                                         "to_update"?, "reason"? ("" clears it)}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError
from moto.autoscaling.models import AutoScalingBackend
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.moto_api._internal import mock_random

from drills.twin.fidelity.autoscaling import (
    Route,
    backend_for,
    control_route,
    group_named,
    page,
    resolve_image,
)

__all__ = ["ROUTES", "install"]

_MARK = "_drills_twin_instance_refresh"
ACTIVE = ("Pending", "InProgress", "Cancelling")
TERMINAL = ("Successful", "Failed", "Cancelled")
DEFAULT_MIN_HEALTHY = 90  # "If you do not specify this property, the default is 90 percent"


class InstanceRefreshInProgress(AutoscalingClientError):
    """AWS: an active instance refresh blocks starting another one."""

    code = "InstanceRefreshInProgress"
    message = ("An Instance Refresh is already in progress and blocks the execution of this "
               "Instance Refresh.")


class ActiveInstanceRefreshNotFound(AutoscalingClientError):
    """AWS: CancelInstanceRefresh needs a Pending or InProgress refresh."""

    code = "ActiveInstanceRefreshNotFound"


@dataclass(slots=True)
class InstanceRefresh:
    """One instance refresh (API_InstanceRefresh.html) and what it has to replace."""

    group: str
    preferences: dict[str, Any]
    to_replace: list[str]
    refresh_id: str = field(default_factory=lambda: str(mock_random.uuid4()))
    status: str = "Pending"
    status_reason: str | None = None
    start: datetime = field(default_factory=utcnow)
    end: datetime | None = None
    percentage: int = 0
    to_update: int = 0

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "InstanceRefreshId": self.refresh_id, "AutoScalingGroupName": self.group,
            "Status": self.status, "StartTime": self.start, "PercentageComplete": self.percentage,
            "InstancesToUpdate": self.to_update, "Preferences": self.preferences,
            "Strategy": "Rolling",
            "ProgressDetails": {"LivePoolProgress": {"PercentageComplete": self.percentage,
                                                     "InstancesToUpdate": self.to_update}}}
        if self.status_reason:
            out["StatusReason"] = self.status_reason
        if self.end is not None:
            out["EndTime"] = self.end
        return out

    def to_control(self) -> dict[str, Any]:
        return {"id": self.refresh_id, "status": self.status, "preferences": self.preferences,
                "to_replace": self.to_replace, "start": self.start.timestamp()}


def _refreshes(backend: AutoScalingBackend, group: str) -> list[InstanceRefresh]:
    store = backend.__dict__.setdefault("_drills_refreshes", {})
    return store.setdefault(group, [])  # type: ignore[no-any-return]


def _preferences(raw: dict[str, Any]) -> dict[str, Any]:
    prefs = {"MinHealthyPercentage": DEFAULT_MIN_HEALTHY, "SkipMatching": False,
             "AutoRollback": False, "ScaleInProtectedInstances": "Ignore",
             "StandbyInstances": "Ignore", **{k: v for k, v in raw.items() if v is not None}}
    low = int(prefs["MinHealthyPercentage"])
    if not 0 <= low <= 100:
        raise ValidationError("MinHealthyPercentage must be between 0 and 100.")
    high = prefs.get("MaxHealthyPercentage")
    if high is not None and int(high) != 100:
        # Launch-before-terminate needs capacity above desired, which moto's group cannot
        # hold; refuse loudly rather than replace differently from what was asked.
        raise ValidationError("The drills twin replaces instances terminate-first only: "
                              "MaxHealthyPercentage must be 100 (the default).")
    return prefs


def _start_instance_refresh(self: AutoScalingResponse) -> ActionResult:
    backend = self.autoscaling_backend
    group = group_named(backend, self._get_param("AutoScalingGroupName"))
    history = _refreshes(backend, group.name)
    if any(r.status in ACTIVE for r in history):
        raise InstanceRefreshInProgress()
    prefs = _preferences(self._get_param("Preferences") or {})
    image = resolve_image(group)[0]
    ids = [s.instance.id for s in group.instance_states
           # SkipMatching: leave instances that already run the image launches use now
           if not (prefs["SkipMatching"] and s.instance.image_id == image)]
    refresh = InstanceRefresh(group.name, prefs, sorted(ids), to_update=len(ids))
    history.append(refresh)
    return ActionResult({"InstanceRefreshId": refresh.refresh_id})


def _describe_instance_refreshes(self: AutoScalingResponse) -> ActionResult:
    backend = self.autoscaling_backend
    group = group_named(backend, self._get_param("AutoScalingGroupName"))
    wanted = set(self._get_param("InstanceRefreshIds") or [])
    items = [r.to_api() for r in reversed(_refreshes(backend, group.name))
             if not wanted or r.refresh_id in wanted]
    return ActionResult(page(items, "InstanceRefreshes", self._get_param("NextToken"),
                              self._get_param("MaxRecords") or 50))


def _cancel_instance_refresh(self: AutoScalingResponse) -> ActionResult:
    backend = self.autoscaling_backend
    group = group_named(backend, self._get_param("AutoScalingGroupName"))
    active = [r for r in _refreshes(backend, group.name) if r.status in ("Pending", "InProgress")]
    if not active:
        raise ActiveInstanceRefreshNotFound(
            f"No in progress or pending Instance Refresh found for Auto Scaling group {group.name}")
    active[-1].status = "Cancelling"
    return ActionResult({"InstanceRefreshId": active[-1].refresh_id})


# ------------------------------------------------------------------ install


def install() -> None:
    """Add the instance refresh actions to moto's Auto Scaling API (idempotent)."""
    if getattr(AutoScalingResponse, _MARK, False):
        return
    AutoScalingResponse.start_instance_refresh = _start_instance_refresh  # type: ignore[attr-defined]
    AutoScalingResponse.describe_instance_refreshes = _describe_instance_refreshes  # type: ignore[attr-defined]
    AutoScalingResponse.cancel_instance_refresh = _cancel_instance_refresh  # type: ignore[attr-defined]
    setattr(AutoScalingResponse, _MARK, True)


# ------------------------------------------------------------------ twin-only control


def instance_refreshes(request: dict[str, Any]) -> dict[str, Any]:
    """The group's active refreshes with the instances each must replace."""
    backend = backend_for(request)
    group = group_named(backend, request.get("group"))
    return {"refreshes": [r.to_control() for r in _refreshes(backend, group.name)
                          if r.status in ACTIVE]}


def update_instance_refresh(request: dict[str, Any]) -> dict[str, Any]:
    """Record a refresh's progress, as the controller drives it."""
    backend = backend_for(request)
    group = group_named(backend, request.get("group"))
    refresh = next((r for r in _refreshes(backend, group.name)
                    if r.refresh_id == request.get("id")), None)
    if refresh is None:
        raise ValidationError(f"no instance refresh {request.get('id')} for {group.name}")
    status = request.get("status")
    if status is not None:
        if status not in ACTIVE + TERMINAL:
            raise ValidationError(f"unknown instance refresh status {status!r}")
        refresh.status = status
        if status in TERMINAL:
            refresh.end = utcnow()
    if request.get("percentage") is not None:
        refresh.percentage = max(0, min(100, math.floor(float(request["percentage"]))))
    if request.get("to_update") is not None:
        refresh.to_update = max(0, int(request["to_update"]))
    if "reason" in request:  # "" clears it
        refresh.status_reason = str(request["reason"] or "") or None
    return refresh.to_control()


#: Twin-only control endpoints, served at POST /drills-twin/<name>.
ROUTES: dict[str, Route] = {
    "autoscaling/instance-refreshes": control_route(instance_refreshes),
    "autoscaling/update-instance-refresh": control_route(update_instance_refresh),
}
