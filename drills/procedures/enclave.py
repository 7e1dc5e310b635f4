"""Runbook 4.1: enclave instances fail to launch because their AMI is gone (steps 1-2), and
forcing new instances (step 4).

Step 1 (diagnosis) reads the group's launch template version, the AMI that
`/vettid/nitro-enclave/current-ami` names and whether it exists, and the recent scaling
activities. Step 2 puts the previous known-good AMI back into the parameter and starts an
instance refresh. That recovery works only when the launch template takes its AMI from the
parameter (`ImageId: resolve:ssm:/vettid/nitro-enclave/current-ami`, resolved by EC2 at each
launch): a template that pins an AMI ID keeps launching the missing image whatever the
parameter says, so `require_ssm_ami` makes that a precondition with a clear message.

Step 4 ("force new instances") sets the desired capacity to 0 and back, waiting until the group
has drained instead of the runbook's bare `sleep 60`.

Every call is one the runbook prints, so the same code recovers the twin and an account.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from drills.clients import Clients
from drills.errors import ConfigError, RecoveryError

Progress = Callable[[str], None]
SSM_PREFIX = "resolve:ssm:"


@dataclass(frozen=True, slots=True)
class ActivityLine:
    """One line of `describe-scaling-activities --query Activities[].{Time,Status,Cause}`."""

    time: str
    status: str
    cause: str
    message: str


@dataclass(frozen=True, slots=True)
class LaunchDiagnosis:
    """What runbook 4.1's diagnosis and step 1 show."""

    asg: str
    desired: int
    in_service: int
    launch_template_id: str
    template_version: str
    image_ref: str  # the template version's ImageId, e.g. resolve:ssm:/vettid/...
    current_ami: str  # the parameter's value
    ami_exists: bool
    activities: tuple[ActivityLine, ...]

    @property
    def failing_launches(self) -> tuple[ActivityLine, ...]:
        """Recent launches that failed."""
        return tuple(a for a in self.activities if a.status == "Failed")

    @property
    def ami_missing(self) -> bool:
        """Launches fail because the AMI the template resolves to does not exist."""
        return not self.ami_exists and any(self.current_ami in a.message
                                           for a in self.failing_launches)

    def summary(self) -> str:
        """One line for the drill's output."""
        return (f"{self.asg}: desired {self.desired}, InService {self.in_service}; template "
                f"{self.launch_template_id} v{self.template_version} ImageId {self.image_ref}; "
                f"current-ami {self.current_ami} "
                f"{'exists' if self.ami_exists else 'DOES NOT EXIST'}; "
                f"{len(self.failing_launches)} of the last {len(self.activities)} activities "
                "failed")


def _group(clients: Clients, asg: str, region: str) -> dict[str, Any]:
    groups = clients("autoscaling", region).describe_auto_scaling_groups(
        AutoScalingGroupNames=[asg])["AutoScalingGroups"]
    if not groups:
        raise ConfigError(f"Auto Scaling group {asg!r} does not exist in {region}; check the "
                          "stack output EnclaveASGName")
    return dict(groups[0])


def launch_template_image(clients: Clients, asg: str, region: str) -> tuple[str, str, str]:
    """(template id, version, ImageId) of the launch template version `asg` launches from."""
    spec = _group(clients, asg, region).get("LaunchTemplate")
    if not spec:
        raise ConfigError(f"{asg} has no launch template (a launch configuration or mixed "
                          "instances policy?); runbook 4.1 expects a launch template")
    versions = clients("ec2", region).describe_launch_template_versions(
        LaunchTemplateId=spec["LaunchTemplateId"], Versions=[spec["Version"]]
    )["LaunchTemplateVersions"]
    data = versions[0]["LaunchTemplateData"]
    return spec["LaunchTemplateId"], str(versions[0]["VersionNumber"]), str(data["ImageId"])


def image_exists(clients: Clients, region: str, ami: str) -> bool:
    """`aws ec2 describe-images --image-ids <ami>` lists it as available."""
    try:
        images = clients("ec2", region).describe_images(ImageIds=[ami])["Images"]
    except ClientError as exc:
        if exc.response["Error"]["Code"].startswith("InvalidAMIID"):
            return False
        raise
    return any(i.get("State") == "available" for i in images)


def recent_activities(clients: Clients, asg: str, region: str,
                      count: int = 5) -> tuple[ActivityLine, ...]:
    """`describe-scaling-activities --max-items <count>`, newest first."""
    found = clients("autoscaling", region).describe_scaling_activities(
        AutoScalingGroupName=asg, MaxRecords=count)["Activities"]
    return tuple(ActivityLine(str(a["StartTime"]), a["StatusCode"], a.get("Cause", ""),
                              f"{a.get('StatusMessage', '')} {a.get('Description', '')}")
                 for a in found[:count])


def diagnose(clients: Clients, asg: str, region: str, param: str) -> LaunchDiagnosis:
    """Runbook 4.1 diagnosis and step 1: group state, template, AMI, recent activities."""
    group = _group(clients, asg, region)
    template, version, image_ref = launch_template_image(clients, asg, region)
    current = clients("ssm", region).get_parameter(Name=param)["Parameter"]["Value"]
    return LaunchDiagnosis(
        asg=asg, desired=int(group["DesiredCapacity"]),
        in_service=sum(i["LifecycleState"] == "InService" for i in group["Instances"]),
        launch_template_id=template, template_version=version, image_ref=image_ref,
        current_ami=current, ami_exists=image_exists(clients, region, current),
        activities=recent_activities(clients, asg, region))


def require_ssm_ami(clients: Clients, asg: str, region: str, param: str) -> None:
    """Fail clearly unless the group's template resolves its AMI from `param`."""
    _, version, image_ref = launch_template_image(clients, asg, region)
    if image_ref != SSM_PREFIX + param:
        raise ConfigError(
            f"the launch template version {version} of {asg} has ImageId {image_ref!r}, not "
            f"'{SSM_PREFIX}{param}': runbook 4.1 step 2 (put-parameter, then instance "
            "refresh) cannot change the AMI it launches; make the template resolve the "
            "parameter, or amend the runbook to create a launch template version")


def use_ssm_ami(clients: Clients, asg: str, region: str, param: str) -> bool:
    """Make the group launch from a template version whose ImageId resolves `param`.

    Creates a new version (copy of the one in use, ImageId replaced), makes it the default
    and points the group at `$Default`. Idempotent; True when something changed.
    """
    template, version, image_ref = launch_template_image(clients, asg, region)
    if image_ref == SSM_PREFIX + param:
        return False
    ec2 = clients("ec2", region)
    source = ec2.describe_launch_template_versions(
        LaunchTemplateId=template, Versions=[version])["LaunchTemplateVersions"][0]
    # The whole source data, not SourceVersion alone: moto does not merge the source in.
    new = ec2.create_launch_template_version(
        LaunchTemplateId=template, SourceVersion=version,
        VersionDescription=f"AMI from SSM parameter {param} (runbook 4.1 step 2)",
        LaunchTemplateData={**source["LaunchTemplateData"], "ImageId": SSM_PREFIX + param},
    )["LaunchTemplateVersion"]
    ec2.modify_launch_template(LaunchTemplateId=template,
                               DefaultVersion=str(new["VersionNumber"]))
    clients("autoscaling", region).update_auto_scaling_group(
        AutoScalingGroupName=asg,
        LaunchTemplate={"LaunchTemplateId": template, "Version": "$Default"})
    return True


def previous_known_good_ami(clients: Clients, region: str, param: str) -> str:
    """The newest earlier value of `param` whose image still exists (from parameter history).

    The runbook says `<previous-ami-id>`; the parameter's own history is where an on-call
    engineer finds it without knowing the release history by heart.
    """
    ssm = clients("ssm", region)
    history: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"Name": param}
    while True:
        page = ssm.get_parameter_history(**kwargs)
        history.extend(page["Parameters"])
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    history.sort(key=lambda p: int(p["Version"]), reverse=True)
    current = history[0]["Value"] if history else None
    for entry in history[1:]:
        if entry["Value"] != current and image_exists(clients, region, entry["Value"]):
            return str(entry["Value"])
    raise RecoveryError(f"no earlier value of {param} names an existing AMI; register or "
                        "copy a known-good enclave AMI, then put it into the parameter")


def roll_back_ami(clients: Clients, region: str, param: str, ami: str) -> None:
    """Runbook 4.1 step 2: `aws ssm put-parameter --name <param> --value <ami> --overwrite`."""
    if not image_exists(clients, region, ami):
        raise RecoveryError(f"refusing to roll {param} back to {ami}: that image does not "
                            "exist either; pick an AMI that describe-images lists")
    clients("ssm", region).put_parameter(Name=param, Value=ami, Type="String", Overwrite=True)


def start_instance_refresh(clients: Clients, asg: str, region: str,
                           min_healthy: int | None = None) -> str:
    """Runbook 4.1 step 2: `aws autoscaling start-instance-refresh`; returns its id."""
    kwargs: dict[str, Any] = {"AutoScalingGroupName": asg}
    if min_healthy is not None:
        kwargs["Preferences"] = {"MinHealthyPercentage": min_healthy}
    return str(clients("autoscaling", region).start_instance_refresh(**kwargs)[
        "InstanceRefreshId"])


def cancel_instance_refreshes(clients: Clients, asg: str, region: str, progress: Progress,
                              timeout: float = 120.0) -> list[str]:
    """`aws autoscaling cancel-instance-refresh` for a refresh still running, then wait until
    it is Cancelled (a new one cannot start before: InstanceRefreshInProgress)."""
    autoscaling = clients("autoscaling", region)

    def active() -> list[dict[str, Any]]:
        return [r for r in autoscaling.describe_instance_refreshes(
            AutoScalingGroupName=asg)["InstanceRefreshes"]
            if r["Status"] in ("Pending", "InProgress", "Cancelling")]

    cancelled = [r["InstanceRefreshId"] for r in active() if r["Status"] != "Cancelling"]
    if cancelled:
        autoscaling.cancel_instance_refresh(AutoScalingGroupName=asg)
    deadline = time.monotonic() + timeout
    while left := active():
        if time.monotonic() > deadline:
            raise RecoveryError(f"instance refresh {left[0]['InstanceRefreshId']} of {asg} is "
                                f"still {left[0]['Status']} {timeout:g}s after "
                                "cancel-instance-refresh")
        progress(f"waiting for refresh {left[0]['InstanceRefreshId']} to be cancelled "
                 f"({left[0]['Status']})")
        time.sleep(0.5)
    return cancelled


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    """How an instance refresh ended, as DescribeInstanceRefreshes reported it."""

    refresh_id: str
    status: str
    percentage: int
    reason: str
    statuses_seen: tuple[str, ...]  # every status observed, in order
    percentages_seen: tuple[int, ...]


def wait_for_instance_refresh(clients: Clients, asg: str, region: str, refresh_id: str,
                              timeout: float, progress: Progress,
                              poll: float = 0.5) -> RefreshOutcome:
    """Poll describe-instance-refreshes until the refresh ends or `timeout` passes."""
    autoscaling = clients("autoscaling", region)
    deadline = time.monotonic() + timeout
    statuses: list[str] = []
    percentages: list[int] = []
    while True:
        found = autoscaling.describe_instance_refreshes(
            AutoScalingGroupName=asg, InstanceRefreshIds=[refresh_id])["InstanceRefreshes"]
        if not found:
            raise RecoveryError(f"instance refresh {refresh_id} of {asg} is unknown; was it "
                                "started in another region?")
        refresh = found[0]
        status, pct = refresh["Status"], int(refresh.get("PercentageComplete") or 0)
        if not statuses or statuses[-1] != status:
            statuses.append(status)
        if not percentages or percentages[-1] != pct:
            percentages.append(pct)
        if status in ("Successful", "Failed", "Cancelled", "RollbackSuccessful",
                      "RollbackFailed"):
            return RefreshOutcome(refresh_id, status, pct, refresh.get("StatusReason", ""),
                                  tuple(statuses), tuple(percentages))
        if time.monotonic() >= deadline:
            return RefreshOutcome(refresh_id, status, pct,
                                  f"still {status} after {timeout:g}s", tuple(statuses),
                                  tuple(percentages))
        progress(f"runbook 4.1 step 2: instance refresh {refresh_id[:8]} {status}, "
                 f"{pct}% complete, {refresh.get('InstancesToUpdate', '?')} to update"
                 + (f": {refresh['StatusReason']}" if refresh.get("StatusReason") else ""))
        time.sleep(poll)


def instance_images(clients: Clients, asg: str, region: str) -> dict[str, str]:
    """InService instance id -> the AMI it runs."""
    ids = [i["InstanceId"] for i in _group(clients, asg, region)["Instances"]
           if i["LifecycleState"] == "InService"]
    if not ids:
        return {}
    found = clients("ec2", region).describe_instances(InstanceIds=ids)["Reservations"]
    return {i["InstanceId"]: i["ImageId"] for r in found for i in r["Instances"]}


def force_new_instances(clients: Clients, asg: str, region: str, desired: int,
                        progress: Progress, drain_timeout: float = 300.0) -> None:
    """Runbook 4.1 step 4: set desired capacity to 0, wait for the group to empty, set it back.

    The runbook sleeps 60 s between the two calls; we wait until the group has no instance
    left, which is what the sleep stands for, and fail clearly if it never empties.
    """
    autoscaling = clients("autoscaling", region)
    autoscaling.set_desired_capacity(AutoScalingGroupName=asg, DesiredCapacity=0)
    deadline = time.monotonic() + drain_timeout
    while True:
        group = autoscaling.describe_auto_scaling_groups(
            AutoScalingGroupNames=[asg])["AutoScalingGroups"][0]
        left = len(group["Instances"])
        if left == 0:
            break
        if time.monotonic() > deadline:
            raise RecoveryError(f"{asg} still has {left} instance(s) {drain_timeout:g}s after "
                                "desired capacity 0; check scale-in protection and lifecycle "
                                "hooks, then retry")
        progress(f"runbook 4.1 step 4: waiting for {asg} to drain ({left} instance(s) left)")
        time.sleep(0.5)
    autoscaling.set_desired_capacity(AutoScalingGroupName=asg, DesiredCapacity=desired)
