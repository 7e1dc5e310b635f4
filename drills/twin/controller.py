"""The ASG controller: what EC2 Auto Scaling does on AWS and moto does not.

moto keeps the ASG's bookkeeping (instances, desired capacity, replacement on terminate),
but nothing runs on its instances and nothing notices when they die. This controller closes
that gap, in one process per twin:
- every InService instance gets one enclave worker, started only after the instance's
  boot delay (a new instance is not serving the moment the API lists it; instances that
  exist when the controller starts are taken as booted long ago), answering `GET /health`
  on a loopback port of its own, recorded in its worker record;
- it plays the load balancer's health checker: every registered target of the group's
  target groups (in use by a load balancer) gets `GET <HealthCheckPath>` every
  HealthCheckIntervalSeconds with HealthCheckTimeoutSeconds, and each result goes to the
  moto process (`elbv2/health-check-results`), which keeps the thresholds and the states
  DescribeTargetHealth answers (`drills.twin.fidelity.elbv2`);
- it follows the group's HealthCheckType, as the EC2 Auto Scaling User Guide's "Health
  checks for instances in an Auto Scaling group" describes. `EC2`: an instance is replaced
  when it is no longer `running` or was marked Unhealthy (at once), or when its status
  checks fail (its AMI does not exist: it cannot boot; seen at the next status check);
  a crashed enclave process goes unnoticed, as on AWS. `ELB`: also when its target group
  reports it `unhealthy`. Health checks honour HealthCheckGracePeriod ("Set the health check
  grace period"), except that an instance no longer running is replaced at once. A
  replacement goes through `TerminateInstanceInAutoScalingGroup(
  ShouldDecrementDesiredCapacity=False)` as the ASG would, with AWS's activity cause;
- an instance that left the group (scale-in, termination) has its worker stopped;
- a group below desired capacity because launches failed (e.g. its AMI was deregistered)
  retries them with a growing delay, as the ASG does, through the moto process's
  `autoscaling/fulfil-capacity` route, which records each attempt as a scaling activity;
- instance refreshes started with StartInstanceRefresh are carried out: old instances are
  replaced in batches that keep MinHealthyPercentage of the desired capacity healthy, the
  next batch starting once every instance serves and has warmed up; the refresh goes
  Pending -> InProgress -> Successful with its PercentageComplete;
- the metrics the runbook's alarms watch are published (`drills.twin.monitor`);
- at start-up, the timing profile is applied to what the stack carries (the group's grace
  period, the target group's health check) and to the DynamoDB PITR lag (`apply_profile`).

Run: python -m drills.twin.controller --state-dir DIR
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from drills.clients import Clients
from drills.errors import TwinError
from drills.journal import utc_now
from drills.twin import control as twin_control
from drills.twin.elb import HEALTHY, HealthChecker, TargetGroup
from drills.twin.monitor import MetricPublisher
from drills.twin.ports import free_port
from drills.twin.procs import find, live_pid, stop_process
from drills.twin.state import RegionState, TwinState
from drills.twin.timing import TimingProfile, profile

#: The group's health check types (CreateAutoScalingGroup's HealthCheckType).
EC2, ELB = "EC2", "ELB"

#: The module of an enclave worker process, and of this controller: markers in their argv.
WORKER_MODULE = "drills.twin.worker"
CONTROLLER_MODULE = "drills.twin.controller"


@dataclass(slots=True)
class Tracked:
    """One instance the controller has seen, and its worker."""

    instance_id: str
    region: str
    launched: float  # monotonic time it came InService (grace and warm-up count from it)
    ready_at: float  # monotonic time its boot completes
    health_port: int  # its loopback port for `GET /health` (its address, on the twin)
    worker: subprocess.Popen[bytes] | None = None
    unhealthy_since: float | None = None
    reason: str = ""
    cause: str = ""  # the activity's cause, as AWS words it for this kind of check
    image_missing: str | None = None  # the AMI it was launched from, when that does not exist
    serving_since: float | None = None  # monotonic time its worker started


@dataclass(frozen=True, slots=True)
class Problem:
    """Why the ASG's health check finds an instance unhealthy, and how it acts on that."""

    reason: str
    cause: str  # AWS's words, in the scaling activity's cause
    after: float = 0.0  # seconds it must persist (a status check runs once a minute)
    graced: bool = True  # the grace period applies (not to an instance no longer running)


@dataclass(slots=True)
class LaunchRetry:
    """Pacing of the ASG's retries while launches fail."""

    delay: float = 0.0
    next_at: float | None = None


@dataclass(slots=True)
class RefreshSeen:
    """What the controller last reported for one instance refresh."""

    reported: tuple[int, int] = (-1, -1)
    reason: str = ""
    batches: int = 0
    first_batch_at: float | None = None  # replacements launch from then on


def _terminating(group: dict[str, Any]) -> list[str]:
    """The group's instances on their way out (Terminating, Terminating:Wait/Proceed,
    Terminated): listed until shut down, never counted as capacity."""
    return [i["InstanceId"] for i in group["Instances"]
            if i["LifecycleState"].startswith("Terminat")]


def _live(group: dict[str, Any]) -> list[str]:
    """The group's instances that count towards its capacity (not those terminating)."""
    leaving = set(_terminating(group))
    return [i["InstanceId"] for i in group["Instances"] if i["InstanceId"] not in leaving]


def worker_record(state: TwinState, instance_id: str) -> Path:
    """Where the controller records a worker's pid and health port, for faults and `twin
    down`."""
    return state.workers_dir / f"{instance_id}.json"


class Controller:
    """Reconciles workers with the ASG, one pass per `reconcile_interval`."""

    def __init__(self, state: TwinState, timing: TimingProfile) -> None:
        self.state, self.timing = state, timing
        self.clients = Clients.for_twin(state.aws_url)
        self.tracked: dict[str, Tracked] = {}
        self.activities = Path(state.state_dir) / "activities.jsonl"
        self.retry: dict[str, LaunchRetry] = {}
        self.refreshes: dict[str, RefreshSeen] = {}
        self.images: dict[tuple[str, str], bool] = {}  # (region, AMI) -> exists
        self.retry_first, self.retry_longest = timing.launch_retry_first, timing.launch_retry_max
        self.checkers: dict[str, HealthChecker] = {}  # per region: each loop has its own
        self.target_groups: dict[tuple[str, ...], tuple[float, list[TargetGroup]]] = {}
        self.started: set[str] = set()  # regions passed once: their instances ran long before
        state.workers_dir.mkdir(parents=True, exist_ok=True)

    def _checker(self, region: str) -> HealthChecker:
        if region not in self.checkers:
            self.checkers[region] = HealthChecker(self.state.aws_url)
        return self.checkers[region]

    def control(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to one of the moto process's twin-only routes (`/drills-twin/<route>`)."""
        return twin_control.post(self.state.aws_url, route, body)

    def log(self, region: str, description: str, cause: str) -> None:
        """Append a scaling activity (what AWS shows in describe-scaling-activities)."""
        line = json.dumps({"at": utc_now(), "region": region, "description": description,
                           "cause": cause})
        with self.activities.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def reconcile(self) -> None:
        """One pass over every region (tests; `main` runs a loop per region)."""
        for region in self.state.regions.values():
            self.reconcile_region(region)

    def reconcile_region(self, region: RegionState) -> None:
        """One pass over one region: workers, ELB health checks, health replacements, launch
        retries, instance refreshes. Regions are reconciled independently: a region whose
        AWS endpoint stops answering (an outage) holds up only its own loop."""
        now = time.monotonic()
        if region.name not in self.started:  # its terminations wait for our workers to stop
            self.control("autoscaling/host", {"region": region.name, "group": region.asg})
        asg = self.clients("autoscaling", region.name)
        groups = asg.describe_auto_scaling_groups(
            AutoScalingGroupNames=[region.asg])["AutoScalingGroups"]
        members = {i["InstanceId"]: (g, i) for g in groups
                   for i in g["Instances"] if i["LifecycleState"] == "InService"}
        ec2 = self._ec2_instances(region.name, list(members))
        for iid in [i for i, t in list(self.tracked.items())  # the other region's loop writes it
                    if t.region == region.name and i not in members]:
            self._retire(self.tracked.pop(iid), "instance left the Auto Scaling group")
        for iid in [i for g in groups for i in _terminating(g)]:  # worker stopped (above)
            self.control("autoscaling/terminated", {"region": region.name, "instance_id": iid})
        for iid in members:
            self._track(region.name, iid, ec2.get(iid, {}), now)
        for group in groups:
            ports = {i["InstanceId"]: self._port(i["InstanceId"]) for i in group["Instances"]
                     if i["InstanceId"] in members}
            self._checker(region.name).check(
                region.name, self._target_groups(region.name, group, now), ports, now)
        for iid, (group, member) in members.items():
            self._judge(self.tracked[iid], group, member, ec2.get(iid, {}), now)
        for group in groups:
            for step in (self._retry_launches, self._drive_refreshes):
                try:
                    step(region.name, group, now)
                except Exception as exc:  # never let it stop the instances' reconcile
                    print(f"{utc_now()} {step.__name__} failed: {exc}", file=sys.stderr,
                          flush=True)
        self.started.add(region.name)

    def _ec2_instances(self, region: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        found = self.clients("ec2", region).describe_instances(InstanceIds=ids)
        return {i["InstanceId"]: i for r in found["Reservations"] for i in r["Instances"]}

    def _image_exists(self, region: str, image: str) -> bool:
        if (region, image) not in self.images:
            try:
                found = self.clients("ec2", region).describe_images(ImageIds=[image])["Images"]
            except ClientError as exc:
                if not exc.response["Error"]["Code"].startswith("InvalidAMIID"):
                    raise  # a blip, not an answer: the next pass asks again
                found = []
            exists = any(i.get("State") == "available" for i in found)
            if not exists:
                return False  # not cached: only "exists" is stable while an instance boots
            self.images[(region, image)] = True
        return self.images[(region, image)]

    def _track(self, region: str, iid: str, ec2: dict[str, Any], now: float) -> None:
        """Know the instance (its launch, its boot, its port); start its worker once booted."""
        t = self.tracked.get(iid)
        if t is None:
            image = str(ec2.get("ImageId") or "")
            # A boot needs its AMI: the worker is the software on that image.
            missing = None if image and self._image_exists(region, image) else image or "(none)"
            # The stack was running before the twin's clock began.
            booted = region not in self.started
            t = self.tracked[iid] = Tracked(iid, region, now,
                                            now if booted else now + self.timing.boot_delay,
                                            free_port())
            t.image_missing = missing
            if not booted:
                self.log(region, f"Launching a new EC2 instance: {iid}",
                         "An instance was started in response to a difference between "
                         "desired and actual capacity")
        if (t.worker is None and t.image_missing is None and now >= t.ready_at
                and ec2.get("State", {}).get("Name") == "running"):
            t.worker = self._start_worker(region, iid, str(ec2.get("ImageId")), t.health_port)
            t.serving_since = now

    def _port(self, iid: str) -> int | None:
        """Where the instance answers health checks: nowhere until its worker runs."""
        t = self.tracked.get(iid)
        return t.health_port if t is not None and t.worker is not None else None

    def _target_groups(self, region: str, group: dict[str, Any],
                       now: float) -> list[TargetGroup]:
        """The group's target groups, read again every few seconds (settings may change)."""
        arns = tuple(sorted(group.get("TargetGroupARNs") or []))
        if not arns:
            return []
        read_at, found = self.target_groups.get(arns, (-math.inf, []))
        if now - read_at >= 5.0:
            described = self.clients("elbv2", region).describe_target_groups(
                TargetGroupArns=list(arns))["TargetGroups"]
            found = [TargetGroup(g["TargetGroupArn"], g["TargetGroupName"],
                                 g.get("HealthCheckPath") or "/",
                                 float(g["HealthCheckIntervalSeconds"]),
                                 float(g["HealthCheckTimeoutSeconds"]),
                                 bool(g.get("LoadBalancerArns"))) for g in described]
            self.target_groups[arns] = (now, found)
        return found

    def _problem(self, t: Tracked, group: dict[str, Any], member: dict[str, Any],
                 ec2: dict[str, Any], now: float) -> Problem | None:
        """What the ASG's health check finds wrong with the instance, by its HealthCheckType."""
        ec2_state = ec2.get("State", {}).get("Name")
        if member.get("HealthStatus") == "Unhealthy":
            return Problem("it was marked unhealthy", "in response to a user health-check",
                           graced=False)
        if ec2_state in ("stopping", "stopped", "shutting-down", "terminated"):
            return Problem(f"EC2 instance status is {ec2_state}",
                           "in response to an EC2 health check indicating it has been "
                           "terminated or stopped", graced=False)
        if t.image_missing is not None and now >= t.ready_at:
            return Problem(f"the instance cannot boot: its image {t.image_missing} does not "
                           "exist", "in response to an EC2 instance status check failure",
                           after=self.timing.status_check_interval)
        if group.get("HealthCheckType") != ELB:
            return None  # EC2 checks only: a dead enclave process goes unnoticed, as on AWS
        for tg in self._target_groups(t.region, group, now):
            health = self._checker(t.region).state(tg.arn, t.instance_id)
            if health.get("State") == "unhealthy":
                exited = "" if t.worker is None or t.worker.poll() is None else (
                    f"; the enclave process exited with code {t.worker.returncode}")
                return Problem(f"target group {tg.name} reports it unhealthy "
                               f"({health.get('Reason')}: {health.get('Description')}){exited}",
                               "in response to an ELB system health check failure")
        return None

    def _judge(self, t: Tracked, group: dict[str, Any], member: dict[str, Any],
               ec2: dict[str, Any], now: float) -> None:
        """Replace the instance if its health check has failed long enough, past its grace."""
        problem = self._problem(t, group, member, ec2, now)
        if problem is None:
            t.unhealthy_since = None
            return
        if t.unhealthy_since is None or problem.reason != t.reason:
            t.unhealthy_since, t.reason, t.cause = now, problem.reason, problem.cause
        grace = float(group.get("HealthCheckGracePeriod") or 0)
        if problem.graced and now - t.launched < grace:
            return  # "the minimum amount of time ... to keep a new instance in service"
        if now - t.unhealthy_since >= problem.after:
            self._replace(t)

    def _start_worker(self, region: str, iid: str, image: str,
                      health_port: int) -> subprocess.Popen[bytes]:
        log = (self.state.workers_dir / f"{iid}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, "--state-dir", self.state.state_dir,
             "--region", region, "--instance-id", iid, "--image-id", image,
             "--health-port", str(health_port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        worker_record(self.state, iid).write_text(json.dumps(
            {"instance_id": iid, "region": region, "pid": proc.pid, "health_port": health_port,
             "started": utc_now()}))
        return proc

    def _replace(self, t: Tracked) -> None:
        cause = f"{t.cause} ({t.reason})"
        try:
            # Marked Unhealthy, then terminated without decrementing desired capacity, in
            # one call so the scaling activity carries the health check's cause.
            self.control("autoscaling/replace-instance", {
                "region": t.region, "instance_id": t.instance_id, "cause": cause,
                "unhealthy": True})
        except Exception as exc:  # the instance may have gone meanwhile; next pass sees it
            self.log(t.region, f"Failed to replace {t.instance_id}", str(exc))
            return
        self.log(t.region, f"Terminating EC2 instance: {t.instance_id}",
                 f"an instance was taken out of service {cause}")
        self._retire(self.tracked.pop(t.instance_id), t.reason)

    # -- failed launches ----------------------------------------------------------------
    def _retry_launches(self, region: str, group: dict[str, Any], now: float) -> None:
        """While the group lacks instances (launches failed), retry with a growing delay."""
        key = f"{region}/{group['AutoScalingGroupName']}"
        retry = self.retry.setdefault(key, LaunchRetry())
        if len(_live(group)) >= group["DesiredCapacity"]:
            self.retry[key] = LaunchRetry()
            return
        if retry.next_at is None:  # the launch that just failed was the first attempt
            retry.delay, retry.next_at = self.retry_first, now + self.retry_first
            return
        if now < retry.next_at:
            return
        result = self.control("autoscaling/fulfil-capacity", {
            "region": region, "group": group["AutoScalingGroupName"]})
        if result.get("failed"):
            retry.delay = min(retry.delay * 2, self.retry_longest)
            retry.next_at = now + retry.delay
            self.log(region, "Launching a new EC2 instance failed", str(result["failed"]))
        else:
            self.retry[key] = LaunchRetry()

    # -- instance refresh ----------------------------------------------------------------
    def _drive_refreshes(self, region: str, group: dict[str, Any], now: float) -> None:
        name = group["AutoScalingGroupName"]
        active = self.control("autoscaling/instance-refreshes",
                              {"region": region, "group": name})["refreshes"]
        for refresh in active:
            self._advance(region, group, refresh, now)

    def _update_refresh(self, region: str, group: str, refresh_id: str, **fields: Any) -> None:
        self.control("autoscaling/update-instance-refresh",
                     {"region": region, "group": group, "id": refresh_id, **fields})

    def _warmup(self, group: dict[str, Any], prefs: dict[str, Any]) -> float:
        if prefs.get("InstanceWarmup") is not None:
            return float(prefs["InstanceWarmup"])
        scaled = self.timing.instance_warmup
        return float(group.get("HealthCheckGracePeriod") or 0) if scaled is None else scaled

    def _waiting_on(self, iid: str, group: dict[str, Any], now: float, warmup: float,
                    seen: RefreshSeen) -> str | None:
        """Why a refresh cannot count `iid` as available yet (None: it can).

        Healthy means in service with its worker running; an instance launched since the
        refresh's first batch (a replacement) must also have warmed up.
        """
        t = self.tracked.get(iid)
        if t is None or t.worker is None or t.serving_since is None:
            return f"{iid} is still booting"
        if t.worker.poll() is not None or t.unhealthy_since is not None:
            return f"{iid} is unhealthy"
        for tg in self._target_groups(t.region, group, now):
            if tg.in_use and self._checker(t.region).state(tg.arn, iid).get("State") != HEALTHY:
                # AWS counts an instance of a group with a load balancer only once its
                # target passes the health checks ("Instance refresh ... health checks").
                return f"{iid} has not passed its {tg.name} health checks yet"
        if (seen.first_batch_at is not None and t.launched >= seen.first_batch_at
                and now - t.serving_since < warmup):
            return f"{iid} is warming up"
        return None

    def _advance(self, region: str, group: dict[str, Any], refresh: dict[str, Any],
                 now: float) -> None:
        name, rid, prefs = group["AutoScalingGroupName"], refresh["id"], refresh["preferences"]
        seen = self.refreshes.setdefault(rid, RefreshSeen())
        if refresh["status"] == "Cancelling":
            self._update_refresh(region, name, rid, status="Cancelled")
            self.log(region, f"Instance refresh {rid} cancelled", "user request")
            return
        if refresh["status"] == "Pending":
            self._update_refresh(region, name, rid, status="InProgress")
            self.log(region, f"Instance refresh {rid} in progress",
                     f"replacing {len(refresh['to_replace'])} instance(s)")
        desired = int(group["DesiredCapacity"])
        keep = math.ceil(desired * int(prefs.get("MinHealthyPercentage", 90)) / 100)
        warmup = self._warmup(group, prefs)
        present = sorted(_live(group))
        waits = {iid: why for iid in present
                 if (why := self._waiting_on(iid, group, now, warmup, seen)) is not None}
        old = [i for i in present if i in refresh["to_replace"]]
        total = len(refresh["to_replace"])
        updated = min(total - len(old),
                      sum(1 for i in present if i not in waits and i not in refresh["to_replace"]))
        # AWS: "Waiting for remaining instances to be available" until the group is at
        # desired capacity and every instance healthy (replacements also warmed up).
        reason = ""
        if len(present) < desired:
            reason = (f"Waiting for remaining instances to be available. The group has "
                      f"{len(present)} of {desired} instances; see the scaling activities.")
        elif waits:
            reason = ("Waiting for remaining instances to be available. For example: "
                      f"{next(iter(waits.values()))}.")
        if not old and not reason:
            self._update_refresh(region, name, rid, status="Successful", percentage=100,
                                 to_update=0, reason="")
            self.log(region, f"Instance refresh {rid} successful",
                     f"{total} instance(s) replaced in {seen.batches} batch(es)")
            self.refreshes.pop(rid, None)
            return
        progress = (100 * updated // total if total else 0, total - updated)
        if progress != seen.reported or reason != seen.reason:
            self._update_refresh(region, name, rid, percentage=progress[0],
                                 to_update=progress[1], reason=reason)
            seen.reported, seen.reason = progress, reason
        if reason:
            return  # the last batch must serve (and warm up), or capacity come back
        # Terminate-first batches: as many as may be out of service while MinHealthy
        # percent of desired stays healthy, and one at least (AWS replaces one at a time
        # when the percentage leaves no room).
        batch = old[:max(1, desired - keep)]
        seen.batches += 1
        if seen.first_batch_at is None:
            seen.first_batch_at = now
        for iid in batch:
            try:
                self.control("autoscaling/replace-instance", {
                    "region": region, "instance_id": iid,
                    "cause": "in response to an instance refresh", "unhealthy": False})
            except TwinError as exc:  # gone meanwhile: the next pass recounts
                self.log(region, f"Failed to replace {iid} for refresh {rid}", str(exc))
                continue
            self.log(region, f"Terminating EC2 instance: {iid}",
                     f"an instance was taken out of service in response to instance "
                     f"refresh {rid}")
            if iid in self.tracked:
                self._retire(self.tracked.pop(iid), "replaced by an instance refresh")

    def _retire(self, t: Tracked, reason: str) -> None:
        self._checker(t.region).forget(t.instance_id)
        if t.worker is not None:
            stop_process(t.worker.pid, WORKER_MODULE, t.instance_id, timeout=5.0)
            t.worker.wait(timeout=1)
        worker_record(self.state, t.instance_id).unlink(missing_ok=True)

    def shutdown(self) -> None:
        """Stop every worker this controller started."""
        for t in list(self.tracked.values()):
            self._retire(t, "twin shutting down")
        self.tracked.clear()


def apply_profile(state: TwinState, timing: TimingProfile, clients: Clients) -> None:
    """Apply the timing profile where AWS keeps the setting: the enclave group's grace
    period, its target groups' health check, and the twin's DynamoDB PITR lag (the stack
    carries AWS's defaults; `fast` compresses them)."""
    apply_settings(state.aws_url, timing)
    for region in state.regions.values():
        apply_group_profile(region, timing, clients)


def apply_settings(aws_url: str, timing: TimingProfile) -> None:
    """The profile's part that the moto process keeps for every region: the PITR lag, the
    replication lags (S3 CRR, DynamoDB global tables), Route 53's checks and changes."""
    twin_control.post(aws_url, "dynamodb/pitr-settings",
                      {"latest_restorable_lag": timing.pitr_latest_restorable_lag})
    for route in ("s3/replication-settings", "dynamodb/global-table-settings"):
        twin_control.post(aws_url, route, {"profile": timing.name})
    twin_control.post(aws_url, "route53/settings", {
        "interval_scale": timing.route53_interval_scale,
        "propagation_delay": timing.route53_propagation_delay,
        "metric_period": timing.metric_interval})


def apply_group_profile(region: RegionState, timing: TimingProfile, clients: Clients) -> bool:
    """The profile's grace period and target group health check on the region's enclave
    group; False if the group does not exist (yet)."""
    check = timing.target_group
    asg = clients("autoscaling", region.name)
    groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[region.asg])[
        "AutoScalingGroups"]
    for group in groups:
        asg.update_auto_scaling_group(AutoScalingGroupName=group["AutoScalingGroupName"],
                                      HealthCheckGracePeriod=timing.health_check_grace_period)
        for arn in group.get("TargetGroupARNs") or []:
            clients("elbv2", region.name).modify_target_group(
                TargetGroupArn=arn, HealthCheckIntervalSeconds=check.interval,
                HealthCheckTimeoutSeconds=check.timeout,
                HealthyThresholdCount=check.healthy, UnhealthyThresholdCount=check.unhealthy)
    return bool(groups)


def spawn(state_dir: Path) -> None:
    """Start the controller of the twin (or environment) in `state_dir`, detached, its log
    in `controller.log` there."""
    log = (state_dir / "controller.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", CONTROLLER_MODULE, "--state-dir",
                             str(state_dir)], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    # Its pid file at once (the controller writes it again once running): a stop must find
    # a controller that still waits for the stacks' groups.
    (state_dir / "controller.pid").write_text(str(proc.pid))


def running_pid(state_dir: str) -> int | None:
    """The pid of the live controller of `state_dir` (checked against /proc), else None."""
    return live_pid(Path(state_dir) / "controller.pid", CONTROLLER_MODULE, state_dir)


def running_state_dirs() -> list[Path]:
    """The state directories of every controller running on this machine (one per twin or
    environment), read from their command lines."""
    dirs = set()
    for argv in find(CONTROLLER_MODULE, "--state-dir").values():
        for flag, value in itertools.pairwise(argv):
            if flag == "--state-dir":
                dirs.add(Path(value))
    return sorted(dirs)


def stop(state_dir: str) -> None:
    """Stop the controller of `state_dir`, if it runs; it stops its workers first."""
    pid = running_pid(state_dir)
    if pid is not None:
        stop_process(pid, CONTROLLER_MODULE, state_dir, timeout=10)


def _until(attempt: Callable[[], object], deadline: float, what: str) -> None:
    """Call `attempt` every 0.1 s until it returns anything but False without raising, or
    `deadline` (monotonic) passes."""
    while True:
        try:
            if attempt() is not False:
                return
        except Exception as exc:  # the endpoint may still be settling; say so, then retry
            print(f"{utc_now()} {what} failed: {exc}", file=sys.stderr, flush=True)
        if time.monotonic() > deadline:
            print(f"{utc_now()} gave up {what} after 30 s", file=sys.stderr, flush=True)
            return
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="ASG controller of the drills local twin.")
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    state = TwinState.load(Path(args.state_dir))
    controller = Controller(state, profile(state.profile))
    deadline = time.monotonic() + 30
    # `drills twin up` starts this process with the AWS endpoint: both import at once.
    while not twin_control.answers(state.aws_url) and time.monotonic() < deadline:
        time.sleep(0.05)
    _until(lambda: apply_settings(state.aws_url, controller.timing), deadline,
           f"applying the {state.profile} profile")
    publisher = MetricPublisher(state, Clients.for_twin(state.aws_url)).start()
    stopping = False

    def request_stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    pid_file = Path(state.state_dir) / "controller.pid"
    pid_file.write_text(str(os.getpid()))
    def loop(region: RegionState) -> None:
        # `drills twin up` starts this process while it still creates the stacks. Before the
        # first pass the region's group must exist (the instances it starts with count as
        # booted long ago) and its grace period and health checks follow the profile.
        _until(lambda: stopping or apply_group_profile(region, controller.timing,
                                                       controller.clients),
               deadline, f"applying the {state.profile} profile to {region.asg}")
        while not stopping:
            started = time.monotonic()
            try:
                controller.reconcile_region(region)
            except Exception as exc:  # the AWS endpoint may blip; keep reconciling
                print(f"{utc_now()} reconcile of {region.name} failed: {exc}",
                      file=sys.stderr, flush=True)
            time.sleep(max(0.0, controller.timing.reconcile_interval -
                           (time.monotonic() - started)))

    loops = [threading.Thread(target=loop, args=(r,), name=f"reconcile-{r.name}", daemon=True)
             for r in state.regions.values()]
    try:
        for thread in loops:
            thread.start()
        while not stopping:
            time.sleep(0.2)
        for thread in loops:
            thread.join(timeout=15)
    finally:
        publisher.stop()
        controller.shutdown()
        for checker in controller.checkers.values():
            checker.pool.shutdown(wait=False, cancel_futures=True)
        pid_file.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
