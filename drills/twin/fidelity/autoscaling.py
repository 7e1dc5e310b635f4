"""EC2 Auto Scaling behaviours moto 5.2 lacks, patched into the moto server process.

What AWS documents, and this module makes moto do (moto 5.2.1: none of it):

- Launch templates may name their AMI as `resolve:ssm:<parameter>[:<version|label>]`; the
  parameter is resolved at every launch ("Use a Systems Manager parameter instead of an AMI
  ID", EC2 User Guide, create-launch-template.html#use-an-ssm-parameter-instead-of-an-ami-id).
  moto passes the literal string on as the instance's ImageId.
- An instance whose AMI does not exist cannot launch; the launch is asynchronous to the API
  call that caused it (SetDesiredCapacity and friends succeed) and shows up as a scaling
  activity with StatusCode `Failed` and a StatusMessage naming the image ("Troubleshoot
  Amazon EC2 Auto Scaling: EC2 instance launch failures", ts-as-instancelaunchfailure.html:
  "The AMI ID ... does not exist"). moto launches the instance anyway.
- DescribeScalingActivities lists the group's launches and terminations with Description,
  Cause, StatusCode, StatusMessage, Progress, StartTime and EndTime, newest first
  (API_DescribeScalingActivities.html, API_Activity.html). moto always answers `[]`.
- A terminated instance stays in the group's Instances with LifecycleState `Terminating`
  until EC2 has shut it down, and only then leaves the list ("Amazon EC2 Auto Scaling
  instance lifecycle", ec2-auto-scaling-lifecycle.html: scale-in instances "are detached from
  the Auto Scaling group and enter the Terminating state", then `Terminated`). moto drops it
  from the list in the call that terminates it. In the twin the instance's software is a
  worker process: for a group a host has claimed (`autoscaling/host`), the instance is listed
  `Terminating` until the host reports its worker stopped (`autoscaling/terminated`), or
  `TERMINATION_LIMIT` seconds at most. A caller that waits for the list to empty (runbook
  5.3 before its sync, 4.1 step 4) thus waits until nothing on the instance can answer.
- Instance refresh: see `instance_refresh.py`, which builds on this module.

Twin-only control endpoints (no such thing in AWS; `POST /drills-twin/<route>`), all taking
`{"region": ..., "account": <optional>}` plus:

    autoscaling/fulfil-capacity          {"group"}: launch what the group lacks (the ASG's
                                         retry of failed launches, paced by the controller)
    autoscaling/replace-instance         {"instance_id", "cause", "unhealthy": bool}:
                                         take it out of service as the ASG would (a health
                                         check or an instance refresh); it is replaced
    autoscaling/host                     {"group"}: a host runs the software of the group's
                                         instances; their terminations wait for it
    autoscaling/terminated               {"instance_id"}: the host stopped the instance's
                                         software; it leaves the group's list
"""

from __future__ import annotations

import contextvars
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from moto.autoscaling.exceptions import ValidationError
from moto.autoscaling.models import (
    AutoScalingBackend,
    FakeAutoScalingGroup,
    InstanceState,
    autoscaling_backends,
)
from moto.autoscaling.responses import AutoScalingResponse
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.exceptions import JsonRESTError, ServiceException
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.moto_api._internal import mock_random
from moto.ssm.models import ssm_backends

__all__ = ["ROUTES", "Route", "backend_for", "control_route", "group_named", "install",
           "page", "resolve_image"]

_MARK = "_drills_twin_fidelity"
#: The longest an instance stays `Terminating` when its host never reports it stopped (a
#: host that died): EC2's shutdown of an instance whose OS does not answer.
TERMINATION_LIMIT = 60.0
_ORIGINAL: dict[str, Callable[..., Any]] = {}
SSM_PREFIX = "resolve:ssm:"

# Set while an API call explains why capacity changes, so the activities it causes say so.
_cause_prefix: contextvars.ContextVar[str] = contextvars.ContextVar("cause_prefix", default="")
_termination_cause: contextvars.ContextVar[str] = contextvars.ContextVar("term_cause",
                                                                          default="")


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------ scaling activities


@dataclass(slots=True)
class Activity:
    """One scaling activity, as API_Activity.html describes it."""

    group: FakeAutoScalingGroup
    description: str
    cause: str
    status_code: str = "Successful"
    status_message: str | None = None
    details: dict[str, str] = field(default_factory=dict)
    start: datetime = field(default_factory=utcnow)
    end: datetime = field(default_factory=utcnow)
    activity_id: str = field(default_factory=lambda: str(mock_random.uuid4()))

    def to_api(self) -> dict[str, Any]:
        out = {"ActivityId": self.activity_id, "AutoScalingGroupName": self.group.name,
               "AutoScalingGroupARN": self.group.arn, "Description": self.description,
               "Cause": self.cause, "StartTime": self.start, "EndTime": self.end,
               "StatusCode": self.status_code, "Progress": 100,
               "Details": json.dumps(self.details)}
        if self.status_message:
            out["StatusMessage"] = self.status_message
        return out


def _activities(backend: AutoScalingBackend) -> dict[str, list[Activity]]:
    return backend.__dict__.setdefault("_drills_activities", {})  # type: ignore[no-any-return]


def _record(activity: Activity) -> None:
    group = activity.group
    _activities(group.autoscaling_backend).setdefault(group.name, []).append(activity)


# ------------------------------------------------------------------ terminations


@dataclass(slots=True)
class _Terminating:
    state: InstanceState
    since: float  # monotonic


def _terminating(group: FakeAutoScalingGroup) -> dict[str, _Terminating]:
    return group.__dict__.setdefault("_drills_terminating", {})  # type: ignore[no-any-return]


def _hold(group: FakeAutoScalingGroup, removed: list[InstanceState]) -> None:
    """Keep `removed` listed as Terminating while the group's host stops their software."""
    if not group.__dict__.get("_drills_hosted"):
        return
    for state in removed:
        state.lifecycle_state = "Terminating"
        _terminating(group)[state.instance.id] = _Terminating(state, time.monotonic())


def _instances(self: FakeAutoScalingGroup) -> list[InstanceState]:
    """The group's Instances as DescribeAutoScalingGroups lists them: its members, then
    those still terminating."""
    held, now = _terminating(self), time.monotonic()
    for iid in [i for i, t in held.items() if now - t.since > TERMINATION_LIMIT]:
        del held[iid]
    return [*self.instance_states, *(t.state for t in held.values())]


# ------------------------------------------------------------------ launches


def resolve_image(group: FakeAutoScalingGroup) -> tuple[str, str | None]:
    """(image id the next launch uses, why it cannot launch or None)."""
    raw = _ORIGINAL["image_id"](group) or ""
    if not raw:
        return raw, None  # no ImageId to check: moto launches as it always did
    if raw.startswith(SSM_PREFIX):
        name = raw[len(SSM_PREFIX):]
        ssm = ssm_backends[group.account_id][group.region]
        try:
            param = ssm.get_parameter(name)
        except Exception:  # moto raises for unknown versions or labels
            param = None
        if param is None:
            return raw, f"The SSM parameter '{name}' named by the launch template does not exist."
        raw = param.value
    ec2 = group.autoscaling_backend.ec2_backend
    try:
        found = ec2.describe_images(ami_ids=[raw])
    except Exception:  # InvalidAMIID.NotFound / Malformed
        found = []
    if not any(image.state == "available" for image in found):
        return raw, f"The image id '[{raw}]' does not exist."
    return raw, None


def _image_id(self: FakeAutoScalingGroup) -> str:
    """The AMI the group launches now: an SSM parameter reference is resolved."""
    return resolve_image(self)[0]


def _replace_instances(self: FakeAutoScalingGroup, count_needed: int,
                       propagated_tags: dict[str, str]) -> None:
    before = len(self.instance_states)
    now = utcnow()
    cause = (f"{_cause_prefix.get()}At {_stamp(now)} an instance was started in response to "
             "a difference between desired and actual capacity, increasing the capacity from "
             f"{before} to {before + count_needed}.")
    image, problem = resolve_image(self)
    if problem is not None:
        # AWS launches asynchronously: the API call that asked for capacity succeeds and
        # the failure is only visible as an activity; the group stays below desired.
        for _ in range(count_needed):
            _record(Activity(self, f"Launching a new EC2 instance.  Status Reason: {problem} "
                             "Launching EC2 instance failed.", cause, "Failed",
                             f"{problem} Launching EC2 instance failed.",
                             {"Availability Zone": ",".join(self.availability_zones)}))
        return
    known = {s.instance.id for s in self.instance_states}
    _ORIGINAL["replace_autoscaling_group_instances"](self, count_needed, propagated_tags)
    for state in self.instance_states:
        if state.instance.id not in known:
            _record(Activity(self, f"Launching a new EC2 instance: {state.instance.id}", cause,
                             details={"Availability Zone": str(state.availability_zone),
                                      "ImageId": image}, start=now))


def _group_set_desired(self: FakeAutoScalingGroup, new_capacity: int | None) -> None:
    before = {s.instance.id: s for s in self.instance_states}
    count = len(before)
    _ORIGINAL["group_set_desired_capacity"](self, new_capacity)
    after = {s.instance.id for s in self.instance_states}
    _hold(self, [s for i, s in before.items() if i not in after])
    for iid in [i for i in before if i not in after]:
        _record(Activity(self, f"Terminating EC2 instance: {iid}",
                         f"{_cause_prefix.get()}At {_stamp(utcnow())} an instance was taken out "
                         "of service in response to a difference between desired and actual "
                         f"capacity, shrinking the capacity from {count} to {len(after)}."))


def _backend_set_desired(self: AutoScalingBackend, group_name: str,
                         desired_capacity: int | None) -> None:
    group = self.autoscaling_groups.get(group_name)
    old = group.desired_capacity if group else None
    token = _cause_prefix.set(f"At {_stamp(utcnow())} a user request explicitly set group "
                              f"desired capacity changing the desired capacity from {old} to "
                              f"{desired_capacity}.  ")
    try:
        _ORIGINAL["backend_set_desired_capacity"](self, group_name, desired_capacity)
    finally:
        _cause_prefix.reset(token)


def _terminate_instance(self: AutoScalingBackend, instance_id: str,
                        should_decrement: bool) -> Any:
    group = next((g for g in self.autoscaling_groups.values()
                  if any(s.instance.id == instance_id for s in g.instance_states)), None)
    before = group.desired_capacity if group else 0
    for state in group.instance_states if group else []:
        # moto's AttachInstances forgets the back-reference its terminate_instance needs.
        if state.instance.id == instance_id and not hasattr(state.instance, "autoscaling_group"):
            state.instance.autoscaling_group = group  # type: ignore[attr-defined]
    start = utcnow()
    member = next((s for s in group.instance_states if s.instance.id == instance_id), None
                  ) if group else None
    result = _ORIGINAL["terminate_instance"](self, instance_id, should_decrement)
    if group is not None:
        _hold(group, [member] if member is not None else [])
        why = _termination_cause.get() or "in response to a user request"
        shrink = (f", shrinking the capacity from {before} to {group.desired_capacity}"
                  if group.desired_capacity != before else "")
        _record(Activity(group, f"Terminating EC2 instance: {instance_id}",
                         f"At {_stamp(start)} an instance was taken out of service {why}{shrink}.",
                         start=start))
    return result


def _describe_scaling_activities(self: AutoScalingResponse) -> ActionResult:
    backend = self.autoscaling_backend
    name = self._get_param("AutoScalingGroupName")
    wanted = set(self._get_param("ActivityIds") or [])
    found = [a for group, acts in _activities(backend).items() if name in (None, group)
             for a in acts if not wanted or a.activity_id in wanted]
    found.sort(key=lambda a: a.start, reverse=True)  # newest first, as AWS lists them
    return ActionResult(page([a.to_api() for a in found], "Activities",
                              self._get_param("NextToken"), self._get_param("MaxRecords") or 100))


def page(items: list[dict[str, Any]], key: str, token: str | None,
         limit: int) -> dict[str, Any]:
    """One page of `items` under `key`, with the NextToken of the next page if any."""
    start = int(token) if token and token.isdigit() else 0
    out: dict[str, Any] = {key: items[start:start + int(limit)]}
    if start + int(limit) < len(items):
        out["NextToken"] = str(start + int(limit))
    return out


# ------------------------------------------------------------------ install


def install() -> None:
    """Patch moto's Auto Scaling with the behaviours above (idempotent)."""
    if getattr(FakeAutoScalingGroup, _MARK, False):
        return
    _ORIGINAL["image_id"] = FakeAutoScalingGroup.image_id.fget  # type: ignore[attr-defined]
    FakeAutoScalingGroup.image_id = property(_image_id)  # type: ignore[assignment,method-assign]
    FakeAutoScalingGroup.instances = property(_instances)  # type: ignore[assignment,method-assign]
    for owner, name, key, patch in (
        (FakeAutoScalingGroup, "replace_autoscaling_group_instances",
         "replace_autoscaling_group_instances", _replace_instances),
        (FakeAutoScalingGroup, "set_desired_capacity", "group_set_desired_capacity",
         _group_set_desired),
        (AutoScalingBackend, "set_desired_capacity", "backend_set_desired_capacity",
         _backend_set_desired),
        (AutoScalingBackend, "terminate_instance", "terminate_instance", _terminate_instance),
    ):
        _ORIGINAL[key] = getattr(owner, name)
        setattr(owner, name, patch)
    AutoScalingResponse.describe_scaling_activities = _describe_scaling_activities  # type: ignore[method-assign]
    setattr(FakeAutoScalingGroup, _MARK, True)


# ------------------------------------------------------------------ twin-only control


def group_named(backend: AutoScalingBackend, name: str | None) -> FakeAutoScalingGroup:
    """The group called `name`, or the ValidationError AWS answers."""
    group = backend.autoscaling_groups.get(name or "")
    if group is None:
        raise ValidationError(f"AutoScalingGroup name not found - AutoScalingGroup {name} "
                              "not found")
    return group


def backend_for(request: dict[str, Any]) -> AutoScalingBackend:
    """The Auto Scaling backend a control request names by region (and account)."""
    region = request.get("region")
    if not isinstance(region, str) or not region:
        raise ValidationError('"region" is required')
    return autoscaling_backends[str(request.get("account") or DEFAULT_ACCOUNT_ID)][region]


@contextmanager
def _termination(cause: str) -> Iterator[None]:
    token = _termination_cause.set(cause)
    try:
        yield
    finally:
        _termination_cause.reset(token)


def fulfil_capacity(request: dict[str, Any]) -> dict[str, Any]:
    """Launch what the group lacks (the ASG retrying after failed launches)."""
    backend = backend_for(request)
    group = group_named(backend, request.get("group"))
    missing = (group.desired_capacity or 0) - len(group.instance_states)
    known = {s.instance.id for s in group.instance_states}
    if missing > 0:
        group.set_desired_capacity(group.desired_capacity)
    launched = [s.instance.id for s in group.instance_states if s.instance.id not in known]
    failed = None
    if missing > len(launched):
        failed = next((a.status_message for a in reversed(_activities(backend).get(group.name, []))
                       if a.status_code == "Failed"), None)
    return {"missing": max(missing, 0), "launched": launched, "failed": failed}


def replace_instance(request: dict[str, Any]) -> dict[str, Any]:
    """Take an instance out of service as the ASG does for a health check or a refresh."""
    backend = backend_for(request)
    iid, cause = request.get("instance_id"), str(request.get("cause") or "")
    if not isinstance(iid, str) or not any(s.instance.id == iid for g in
                                           backend.autoscaling_groups.values()
                                           for s in g.instance_states):
        raise ValidationError(f"Instance [{iid}] is not in an Auto Scaling group.")
    if request.get("unhealthy"):
        backend.set_instance_health(iid, "Unhealthy")
    with _termination(cause or "in response to a user request"):
        backend.terminate_instance(iid, should_decrement=False)
    return {"instance_id": iid}


def host(request: dict[str, Any]) -> dict[str, Any]:
    """A host runs the software of the group's instances: from now on a terminated instance
    is listed Terminating until the host reports its software stopped."""
    group = group_named(backend_for(request), request.get("group"))
    group.__dict__["_drills_hosted"] = True
    return {"group": group.name}


def terminated(request: dict[str, Any]) -> dict[str, Any]:
    """The host stopped a terminating instance's software: it leaves the group's list."""
    iid = request.get("instance_id")
    held = any(_terminating(g).pop(str(iid), None) is not None
               for g in backend_for(request).autoscaling_groups.values())
    return {"instance_id": iid, "held": held}


Route = Callable[[dict[str, Any]], dict[str, Any]]


def control_route(handler: Route) -> Route:
    """Answer moto's service errors as the control app's JSON errors (HTTP 400)."""

    def wrapped(request: dict[str, Any]) -> dict[str, Any]:
        try:
            return handler(request)
        except ServiceException as exc:
            raise JsonRESTError(exc.code, exc.message) from exc

    wrapped.__doc__ = handler.__doc__
    return wrapped


#: Twin-only control endpoints, served at POST /drills-twin/<name>.
ROUTES: dict[str, Route] = {
    "autoscaling/fulfil-capacity": control_route(fulfil_capacity),
    "autoscaling/replace-instance": control_route(replace_instance),
    "autoscaling/host": control_route(host),
    "autoscaling/terminated": control_route(terminated),
}
