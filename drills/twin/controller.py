"""The ASG controller: what EC2 Auto Scaling does on AWS and moto does not.

moto keeps the ASG's bookkeeping (instances, desired capacity, replacement on terminate),
but nothing runs on its instances and nothing notices when they die. This controller closes
that gap, in one process per twin:
- every InService instance gets one enclave worker, started only after the instance's
  boot delay (a new instance is not serving the moment the API lists it);
- an instance whose worker has died, whose EC2 state is stopped, or which was marked
  Unhealthy is replaced after the health-check delay, through
  `TerminateInstanceInAutoScalingGroup(ShouldDecrementDesiredCapacity=False)` as the ASG
  would, with an activity line like AWS's scaling activities;
- an instance that left the group (scale-in, termination) has its worker stopped.

Run: python -m drills.twin.controller --state-dir DIR
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drills.clients import Clients
from drills.journal import utc_now
from drills.twin.state import TwinState
from drills.twin.timing import TimingProfile, profile


@dataclass(slots=True)
class Tracked:
    """One instance the controller has seen, and its worker."""

    instance_id: str
    region: str
    ready_at: float  # monotonic time its boot completes
    worker: subprocess.Popen[bytes] | None = None
    unhealthy_since: float | None = None
    reason: str = ""


def worker_record(state: TwinState, instance_id: str) -> Path:
    """Where the controller records a worker's pid, for faults and `twin down`."""
    return state.workers_dir / f"{instance_id}.json"


class Controller:
    """Reconciles workers with the ASG, one pass per `reconcile_interval`."""

    def __init__(self, state: TwinState, timing: TimingProfile) -> None:
        self.state, self.timing = state, timing
        self.clients = Clients.for_twin(state.aws_url)
        self.tracked: dict[str, Tracked] = {}
        self.activities = Path(state.state_dir) / "activities.jsonl"
        state.workers_dir.mkdir(parents=True, exist_ok=True)

    def log(self, region: str, description: str, cause: str) -> None:
        """Append a scaling activity (what AWS shows in describe-scaling-activities)."""
        line = json.dumps({"at": utc_now(), "region": region, "description": description,
                           "cause": cause})
        with self.activities.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def reconcile(self) -> None:
        now = time.monotonic()
        for region in self.state.regions.values():
            asg = self.clients("autoscaling", region.name)
            groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[region.asg])
            members = {i["InstanceId"]: i for g in groups["AutoScalingGroups"]
                       for i in g["Instances"] if i["LifecycleState"] == "InService"}
            ec2_states = self._ec2_states(region.name, list(members))
            for iid, member in members.items():
                self._reconcile_instance(region.name, iid, member, ec2_states.get(iid), now)
            for iid in [i for i, t in self.tracked.items()
                        if t.region == region.name and i not in members]:
                self._retire(self.tracked.pop(iid), "instance left the Auto Scaling group")

    def _ec2_states(self, region: str, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        found = self.clients("ec2", region).describe_instances(InstanceIds=ids)
        return {i["InstanceId"]: i["State"]["Name"]
                for r in found["Reservations"] for i in r["Instances"]}

    def _reconcile_instance(self, region: str, iid: str, member: dict[str, Any],
                            ec2_state: str | None, now: float) -> None:
        t = self.tracked.get(iid)
        if t is None:
            t = self.tracked[iid] = Tracked(iid, region, now + self.timing.boot_delay)
            self.log(region, f"Launching a new EC2 instance: {iid}",
                     "An instance was started in response to a difference between desired "
                     "and actual capacity")
        if t.worker is None and now >= t.ready_at and ec2_state == "running":
            t.worker = self._start_worker(region, iid)
        reason = ""
        if member.get("HealthStatus") == "Unhealthy":
            reason = "an instance was taken out of service after being marked unhealthy"
        elif ec2_state in ("stopping", "stopped", "shutting-down", "terminated"):
            reason = f"EC2 instance status is {ec2_state}"
        elif t.worker is not None and t.worker.poll() is not None:
            reason = f"the enclave process exited with code {t.worker.returncode}"
        if not reason:
            t.unhealthy_since = None
            return
        if t.unhealthy_since is None:
            t.unhealthy_since, t.reason = now, reason
        if now - t.unhealthy_since >= self.timing.health_check_delay:
            self._replace(t)

    def _start_worker(self, region: str, iid: str) -> subprocess.Popen[bytes]:
        log = (self.state.workers_dir / f"{iid}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "drills.twin.worker", "--state-dir", self.state.state_dir,
             "--region", region, "--instance-id", iid],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        worker_record(self.state, iid).write_text(json.dumps(
            {"instance_id": iid, "region": region, "pid": proc.pid, "started": utc_now()}))
        return proc

    def _replace(self, t: Tracked) -> None:
        asg = self.clients("autoscaling", t.region)
        try:
            asg.set_instance_health(InstanceId=t.instance_id, HealthStatus="Unhealthy")
            asg.terminate_instance_in_auto_scaling_group(InstanceId=t.instance_id,
                                                         ShouldDecrementDesiredCapacity=False)
        except Exception as exc:  # the instance may have gone meanwhile; next pass sees it
            self.log(t.region, f"Failed to replace {t.instance_id}", str(exc))
            return
        self.log(t.region, f"Terminating EC2 instance: {t.instance_id}",
                 f"an instance was taken out of service in response to a health check: "
                 f"{t.reason}")
        self._retire(self.tracked.pop(t.instance_id), t.reason)

    def _retire(self, t: Tracked, reason: str) -> None:
        if t.worker is not None:
            stop_process(t.worker.pid, timeout=5.0)
            t.worker.wait(timeout=1)
        worker_record(self.state, t.instance_id).unlink(missing_ok=True)

    def shutdown(self) -> None:
        for t in list(self.tracked.values()):
            self._retire(t, "twin shutting down")
        self.tracked.clear()


def stop_process(pid: int, timeout: float) -> None:
    """SIGTERM (and SIGCONT, in case it is frozen), then SIGKILL after `timeout`."""
    for sig in (signal.SIGTERM, signal.SIGCONT):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def pid_alive(pid: int) -> bool:
    """True when `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="ASG controller of the drills local twin.")
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    state = TwinState.load(Path(args.state_dir))
    controller = Controller(state, profile(state.profile))
    stopping = False

    def request_stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    pid_file = Path(state.state_dir) / "controller.pid"
    pid_file.write_text(str(os.getpid()))
    try:
        while not stopping:
            started = time.monotonic()
            try:
                controller.reconcile()
            except Exception as exc:  # the AWS endpoint may blip; keep reconciling
                print(f"{utc_now()} reconcile failed: {exc}", file=sys.stderr, flush=True)
            time.sleep(max(0.0, controller.timing.reconcile_interval -
                           (time.monotonic() - started)))
    finally:
        controller.shutdown()
        pid_file.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
