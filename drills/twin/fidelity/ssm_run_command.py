"""SSM Run Command runs its commands on the twin's instances; moto 5.2 only records them.

Runbook 4.2 step 1 restarts NATS "on all instances via SSM": `send-command` with document
`AWS-RunShellScript` and `commands=["sudo systemctl restart nats-server"]`. What AWS
documents (SSM API Reference: SendCommand, GetCommandInvocation, Command; "Understanding
command statuses", https://docs.aws.amazon.com/systems-manager/latest/userguide/monitor-commands.html),
and this module makes moto do:

- SendCommand returns at once with the command `Pending`; the commands then run on each
  managed node: the invocation goes `Pending` -> `InProgress` -> `Success`, or `Failed`
  when the script's exit code is not zero. `ResponseCode` is -1 until it has run, then the
  exit code; `StandardOutputContent` / `StandardErrorContent` hold what the script printed.
- The command is `Success` when every invocation succeeded, else `Failed`.
- A command runs on the instances it names (InstanceIds) and the running ones its Targets
  select, nowhere else.
- An instance that does not exist, or is shutting down or terminated, is refused with
  `InvalidInstanceId`; a node no SSM Agent answers on gets an `Undeliverable` invocation.

moto 5.2.1 answers `Success` for every instance at once, runs nothing, accepts any id, and
adds every instance of the region to a command that has no Targets.

What runs where: only instances the twin registered an agent for run anything. Today that
is each NATS node's instance (tag Application=vettid-nats), whose agent knows the unit
`nats-server` and acts on the node through the twin's NATS cluster controller:
`systemctl start|stop|restart|status|is-active nats-server` (with or without `sudo`).
Any other command fails with exit code 127, never pretends to succeed.

Twin-only control endpoint (no such thing in AWS; `POST /drills-twin/<route>`):

    ssm/register-nats-agent  {"region", "instance_id", "node", "cluster": <NatsClusterSpec
                             dict>, "account"?}: commands sent to that instance act on
                             node `node` of that cluster
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.exceptions import JsonRESTError
from moto.ec2.models import ec2_backends
from moto.ssm.exceptions import SSMException
from moto.ssm.models import Command, SimpleSystemManagerBackend
from moto.ssm.responses import SimpleSystemManagerResponse

__all__ = ["ROUTES", "InvalidInstanceId", "install", "run_script"]

_MARK = "_drills_twin_fidelity_run_command"
_ORIGINAL: dict[str, Callable[..., Any]] = {}
_SHELL_DOCUMENT = "AWS-RunShellScript"
_UNIT = "nats-server"
_INVALID_STATES = ("shutting-down", "terminated")  # SendCommand's InvalidInstanceId


class InvalidInstanceId(SSMException):
    """AWS: the managed node does not exist, has no running agent, or is terminated."""

    def __init__(self, instance_ids: list[str]) -> None:
        super().__init__("InvalidInstanceId",
                         f"Instances {instance_ids} not in a valid state for account")


@dataclass(frozen=True, slots=True)
class NatsAgent:
    """What runs on one NATS instance: node `node` of the cluster `spec` describes."""

    node: str
    spec: dict[str, Any] = field(repr=False)  # holds the NATS password: never in a repr
    lock: threading.Lock = field(repr=False, default_factory=threading.Lock)  # one job a time


_AGENTS: dict[tuple[str, str, str], NatsAgent] = {}  # (account, region, instance id)
# Between the backend call and the HTTP answer of one SendCommand (same server thread):
# the run starts only once the answer is built, so it says `Pending` as AWS's does.
_REQUEST = threading.local()


# ------------------------------------------------------------------ the script


def run_script(commands: list[str], agent: NatsAgent) -> tuple[int, str, str]:
    """Run AWS-RunShellScript's `commands` on a NATS instance: (exit code, stdout, stderr).

    As in the shell script the document writes, every line runs and the script's exit code
    is the last line's.
    """
    from drills.twin.nats import NatsClusterSpec, NodeState, cluster_for

    code, out, err = 0, [], []
    cluster = cluster_for(NatsClusterSpec.from_dict(agent.spec))
    for line in commands:
        words = shlex.split(line)
        if words[:1] == ["sudo"]:
            words = words[1:]
        verb = words[1] if len(words) == 3 and words[0] == "systemctl" else ""
        if words[2:] not in ([_UNIT], [f"{_UNIT}.service"]) or verb not in (
                "start", "stop", "restart", "status", "is-active"):
            code = 127
            err.append(f"{line}: the twin's NATS instances run only "
                       f"`systemctl start|stop|restart|status|is-active {_UNIT}`")
            continue
        try:
            if verb in ("stop", "restart"):
                cluster.stop_node(agent.node)  # SIGTERM (and SIGCONT), as systemd stops
            if verb in ("start", "restart"):
                cluster.start_node(agent.node)
        except Exception as exc:  # the unit failed: systemctl says so and exits 1
            code = 1
            err.append(f"Job for {_UNIT}.service failed: {exc}")
            continue
        state = cluster.node_state(agent.node)
        active = state is not NodeState.STOPPED
        if verb == "is-active":
            out.append("active" if active else "inactive")
        elif verb == "status":
            out.append(f"{_UNIT}.service - NATS Server ({agent.node})\n     Active: "
                       + ("active (running)" if active else "inactive (dead)"))
        code = 3 if verb in ("status", "is-active") and not active else 0
    return code, "\n".join(out), "\n".join(err)


# ------------------------------------------------------------------ patches


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _send_command(self: SimpleSystemManagerBackend, *args: Any, **kwargs: Any) -> Command:
    ec2 = ec2_backends[self.account_id][self.region_name]
    named = list(kwargs.get("instance_ids") or (args[3] if len(args) > 3 else []) or [])
    bad = [iid for iid in named
           if (inst := ec2.get_instance_by_id(iid)) is None or inst.state in _INVALID_STATES]
    if bad:
        raise InvalidInstanceId(bad)
    command: Command = _ORIGINAL["send_command"](self, *args, **kwargs)
    # moto resolves empty Targets as "every instance of the region" and runs the command
    # there too; AWS runs it on the named instances, plus running ones Targets select.
    targeted = {iid for iid in command.instance_ids if iid not in named
                and command.targets and (inst := ec2.get_instance_by_id(iid)) is not None
                and inst.state not in _INVALID_STATES}
    keep = set(named) | targeted
    command.instance_ids = [iid for iid in command.instance_ids if iid in keep]
    command.invocations = [i for i in command.invocations if i["InstanceId"] in keep]
    command.target_count = len(command.instance_ids)
    command.status, command.status_details = "Pending", "Pending"
    for invocation in command.invocations:
        invocation.update({"Status": "Pending", "StatusDetails": "Pending", "ResponseCode": -1,
                           "ExecutionStartDateTime": "", "ExecutionEndDateTime": "",
                           "ExecutionElapsedTime": "", "StandardOutputContent": "",
                           "StandardErrorContent": ""})
    run = threading.Thread(target=_run, args=(self.account_id, self.region_name, command),
                           name=f"ssm-{command.command_id}", daemon=True)
    if getattr(_REQUEST, "answering", False):
        _REQUEST.runs.append(run)
    else:  # called in-process, without an HTTP answer to wait for
        run.start()
    return command


def _send_command_response(self: SimpleSystemManagerResponse) -> Any:
    _REQUEST.answering, _REQUEST.runs = True, []
    try:
        return _ORIGINAL["send_command_response"](self)
    finally:
        runs, _REQUEST.answering, _REQUEST.runs = _REQUEST.runs, False, []
        for run in runs:
            run.start()


def _run(account: str, region: str, command: Command) -> None:
    """Run a command on every target, one thread per instance, as the agents would."""
    command.status = command.status_details = "InProgress"
    threads = [threading.Thread(target=_invoke, args=(account, region, command, invocation),
                                daemon=True) for invocation in command.invocations]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    details = [i["StatusDetails"] for i in command.invocations]
    if all(d == "Success" for d in details):
        command.status = command.status_details = "Success"
    else:
        command.status = "Failed"
        command.status_details = "Failed" if "Failed" in details else "Incomplete"
    command.error_count = details.count("Failed")
    command.completed_count = len(details)


def _invoke(account: str, region: str, command: Command, invocation: dict[str, Any]) -> None:
    agent = _AGENTS.get((account, region, invocation["InstanceId"]))
    if agent is None:
        invocation.update({"Status": "Failed", "StatusDetails": "Undeliverable"})
        return
    with agent.lock:
        started = datetime.now(UTC)
        invocation.update({"Status": "InProgress", "StatusDetails": "InProgress",
                           "ExecutionStartDateTime": started.isoformat()})
        if command.document_name != _SHELL_DOCUMENT:
            code, out, err = 1, "", f"the twin's agents run only {_SHELL_DOCUMENT}"
        else:
            code, out, err = run_script(list(command.parameters.get("commands", [])), agent)
        ended = datetime.now(UTC)
        status = "Success" if code == 0 else "Failed"
        invocation.update({
            "Status": status, "StatusDetails": status, "ResponseCode": code,
            "StandardOutputContent": out[:24000], "StandardErrorContent": err[:8000],
            "ExecutionEndDateTime": ended.isoformat(),
            "ExecutionElapsedTime": f"PT{(ended - started).total_seconds():.3f}S"})


def install() -> None:
    """Patch moto's SSM so SendCommand runs its commands on the twin's registered agents."""
    if getattr(SimpleSystemManagerBackend, _MARK, False):
        return
    _ORIGINAL["send_command"] = SimpleSystemManagerBackend.send_command
    SimpleSystemManagerBackend.send_command = _send_command  # type: ignore[method-assign]
    _ORIGINAL["send_command_response"] = SimpleSystemManagerResponse.send_command
    SimpleSystemManagerResponse.send_command = _send_command_response  # type: ignore[method-assign]
    setattr(SimpleSystemManagerBackend, _MARK, True)


# ------------------------------------------------------------------ control endpoint


def register_nats_agent(request: dict[str, Any]) -> dict[str, Any]:
    """Make commands sent to `instance_id` act on NATS node `node` of `cluster`."""
    try:
        account = str(request.get("account") or DEFAULT_ACCOUNT_ID)
        region, iid, node = str(request["region"]), str(request["instance_id"]), request["node"]
        spec = dict(request["cluster"])
    except (KeyError, TypeError, ValueError) as exc:
        raise JsonRESTError("ValidationException",
                            f"need region, instance_id, node and cluster ({exc})") from None
    if ec2_backends[account][region].get_instance_by_id(iid) is None:
        raise JsonRESTError("InvalidInstanceID.NotFound", f"instance {iid} does not exist")
    if node not in {n.get("name") for n in spec.get("nodes", [])}:
        raise JsonRESTError("ValidationException", f"cluster has no node {node!r}")
    old = _AGENTS.get((account, region, iid))
    _AGENTS[(account, region, iid)] = NatsAgent(
        node, spec, old.lock if old is not None else threading.Lock())
    return {"instance_id": iid, "node": node, "registered": _now()}


#: Twin-only control endpoints, served at POST /drills-twin/<name>.
ROUTES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "ssm/register-nats-agent": register_nats_agent,
}
