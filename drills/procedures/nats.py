"""Runbook 4.2 "NATS Cluster Failure", automated with the calls the runbook prints.

Diagnosis: the NATS instances are the running EC2 instances tagged Application=vettid-nats,
and `systemctl is-active nats-server` sent through SSM Run Command says where the service
is down. Step 1 "If NATS process crashed": `sudo systemctl restart nats-server` on each
instance through SSM (AWS-RunShellScript), one `send-command` per instance as the runbook's
loop does; then we wait until every invocation has finished (what `aws ssm wait
command-executed` does) and fail clearly if one did not succeed. The same calls work on the
twin, whose SSM agents act on its NATS nodes, and on an account.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from drills.clients import Clients
from drills.errors import RecoveryError

Progress = Callable[[str], None]

RESTART = "sudo systemctl restart nats-server"  # runbook 4.2 step 1, verbatim
IS_ACTIVE = "systemctl is-active nats-server"
APPLICATION = "vettid-nats"
_TERMINAL = ("Success", "Failed", "Cancelled", "TimedOut")


@dataclass(frozen=True, slots=True)
class CommandResult:
    """How one SSM command invocation ended on one instance."""

    instance_id: str
    command_id: str
    status: str  # Success | Failed | Cancelled | TimedOut (or the last seen, on timeout)
    details: str
    response_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.status == "Success"


def nats_instances(clients: Clients, region: str) -> list[str]:
    """Runbook 4.2 diagnosis: ids of the running instances tagged Application=vettid-nats."""
    pages = clients("ec2", region).get_paginator("describe_instances").paginate(Filters=[
        {"Name": "tag:Application", "Values": [APPLICATION]},
        {"Name": "instance-state-name", "Values": ["running"]}])
    return sorted(i["InstanceId"] for page in pages for r in page["Reservations"]
                  for i in r["Instances"])


def run_shell(clients: Clients, region: str, instance_ids: Sequence[str], commands: list[str],
              progress: Progress, timeout: float = 300.0, poll: float = 0.25
              ) -> list[CommandResult]:
    """Send AWS-RunShellScript `commands` to each instance and wait for every invocation."""
    ssm = clients("ssm", region)
    sent = {}
    for iid in instance_ids:  # one command per instance, as the runbook's for-loop does
        try:
            reply = ssm.send_command(InstanceIds=[iid], DocumentName="AWS-RunShellScript",
                                     Parameters={"commands": commands})
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise RecoveryError(f"SSM refused to run {commands} on {iid} in {region} "
                                f"({err.get('Code')}: {err.get('Message')}); check that its SSM "
                                "agent is online (aws ssm describe-instance-information)") from None
        sent[iid] = reply["Command"]["CommandId"]
    deadline = time.monotonic() + timeout
    results: dict[str, CommandResult] = {}
    while True:
        for iid, command_id in sent.items():
            if iid not in results or results[iid].status not in _TERMINAL:
                results[iid] = _invocation(ssm, command_id, iid)
        waiting = [iid for iid in sent if results[iid].status not in _TERMINAL]
        if not waiting:
            return [results[iid] for iid in sent]
        if time.monotonic() > deadline:
            raise RecoveryError(f"SSM commands on {waiting} did not finish within {timeout:g}s "
                                f"(last status {results[waiting[0]].status}); look at them with "
                                "aws ssm list-command-invocations --details")
        progress(f"runbook 4.2: waiting for {len(waiting)} SSM command(s) to finish on "
                 f"{', '.join(waiting)}")
        time.sleep(poll)


def _invocation(ssm: Any, command_id: str, instance_id: str) -> CommandResult:
    try:
        got = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "InvocationDoesNotExist":
            raise
        # AWS creates invocations shortly after SendCommand returns: not there yet.
        return CommandResult(instance_id, command_id, "Pending", "Pending", -1, "", "")
    return CommandResult(instance_id, command_id, got["Status"], got.get("StatusDetails", ""),
                         int(got.get("ResponseCode", -1)), got.get("StandardOutputContent", ""),
                         got.get("StandardErrorContent", ""))


def instances_where_down(clients: Clients, region: str, progress: Progress,
                         instance_ids: Sequence[str] | None = None) -> list[str]:
    """Diagnosis: the NATS instances on which nats-server is not active."""
    ids = list(instance_ids) if instance_ids is not None else nats_instances(clients, region)
    results = run_shell(clients, region, ids, [IS_ACTIVE], progress)
    # `systemctl is-active` exits 0 when active, 3 when not: anything else is no answer.
    unknown = [r for r in results if r.response_code not in (0, 3)]
    if unknown:
        raise RecoveryError(f"could not tell whether nats-server runs on {unknown[0].instance_id}"
                            f" ({unknown[0].details}: {unknown[0].stderr[:200]})")
    return [r.instance_id for r in results if r.response_code == 3]


def restart_nats(clients: Clients, region: str, progress: Progress,
                 instance_ids: Sequence[str] | None = None,
                 timeout: float = 300.0) -> list[CommandResult]:
    """Runbook 4.2 step 1: restart nats-server on the NATS instances (default: all of them)."""
    ids = list(instance_ids) if instance_ids is not None else nats_instances(clients, region)
    if not ids:
        raise RecoveryError(f"no running instance tagged Application={APPLICATION} in {region}; "
                            "runbook 4.2 step 2 (replace unhealthy instances) applies instead")
    progress(f"runbook 4.2 step 1: restarting nats-server on {', '.join(ids)} via SSM")
    results = run_shell(clients, region, ids, [RESTART], progress, timeout)
    if failed := [r for r in results if not r.ok]:
        first = failed[0]
        raise RecoveryError(f"restarting nats-server failed on {first.instance_id} "
                            f"({first.status}/{first.details}, exit {first.response_code}: "
                            f"{first.stderr[:200] or 'no output'}); see runbook 4.2 step 2-3")
    return results
