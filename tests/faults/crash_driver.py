"""The harness the crash sweep kills: injects one fault through the real injector and journal
against a running twin, stops at a kill point and waits there to be SIGKILLed.

    python -m tests.faults.crash_driver REQUEST.json     # one harness
    python -m tests.faults.crash_driver --serve          # a process per line of stdin

REQUEST names the twin (`state_dir`), the `journal`, the fault (`kind`, `params`), the kill
`point`, the `ready` file and the `log`. At the point the driver writes the ready file (what
it did so far) and sleeps; the test then kills it. `--serve` imports everything once and
forks a process per request path read from stdin, answering with its pid: each is a process
of its own, killed alone, without paying for the imports again (a second or more a process
on a loaded machine, 78 times). A request whose `action` is `rollback` is `drills rollback`
as a user runs it (`drills.cli.main` with the twin and the journal in its environment), in
a process of its own; its exit code goes to the file `exit` names. Kill points (`POINTS`):

- `journaled`: the journal holds the fault (`injecting`), nothing has acted yet;
- `acted`: `inject()` returned, and the journal does not know it yet (still `injecting`):
  whatever `inject()` learned in memory (an id it created) died with the harness;
- `reverting`: `revert()` has made its first mutating call (an AWS write, a control route,
  a NATS node acted on, a signal sent, a runbook command) and the journal does not know it; a
  revert that makes no mutating call stops when it returns, before the journal records it.

Everything that stops the driver lives here, in the test's own process tree: the library has
no crash hook, so no setting can make a real run stop at one by accident.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drills import cli
from drills.clients import Clients
from drills.faults import BlastRadius, Fault, FaultInjector
from drills.faults import kms as kms_faults
from drills.faults.base import FaultContext
from drills.journal import FaultState, Journal
from drills.procedures import region as region_procedure
from drills.target import TwinTarget
from drills.twin import control, manager

POINTS = ("journaled", "acted", "reverting")
#: Operations of AWS APIs that only read (every other one changes something).
READS = ("Describe", "Get", "List", "Head", "Lookup", "Scan", "Query", "BatchGet")
#: Subcommands of the `aws` CLI that only read.
CLI_READS = ("describe-", "get-", "list-", "head-", "wait")
#: Methods of a NATS cluster handle that act on a node.
NATS_ACTIONS = frozenset({"start_node", "stop_node", "kill_node", "freeze_node", "thaw_node",
                          "partition_node", "heal_node"})
#: A driver nobody kills (its test died) ends itself after this many seconds.
ORPHAN_TIMEOUT = 600.0


class KillPoint:
    """Stops the driver for good once it reaches `point`: writes `ready`, then sleeps. Only
    one thread stops there; any other that acts afterwards stops too, before going on."""

    def __init__(self, point: str, ready: Path) -> None:
        self.point, self.ready = point, ready
        self.reverting = False  # the `reverting` tripwire: set just before revert() runs
        self.done: list[str] = []  # what the revert did so far, for the ready file
        self._lock = threading.Lock()
        self._reached = False

    def reach(self, point: str, detail: str = "") -> None:
        """Stop here if `point` is this driver's kill point."""
        if point != self.point:
            return
        with self._lock:
            first, self._reached = not self._reached, True
        if first:
            tmp = self.ready.with_suffix(".tmp")
            tmp.write_text(json.dumps({"point": point, "pid": os.getpid(), "detail": detail,
                                       "done": self.done}), encoding="utf-8")
            tmp.replace(self.ready)  # whole or absent: the test polls for it
        time.sleep(ORPHAN_TIMEOUT)
        os._exit(3)

    def acted(self, what: str) -> None:
        """A mutating call completed: once the revert runs, the middle of the revert is here."""
        if self.reverting:
            self.done.append(what)
            self.reach("reverting", what)


class StoppingJournal(Journal):
    """The real journal; stops the driver once the fault is on disk before it acts, and once
    it has acted before the journal says so."""

    __slots__ = ("kill",)

    def __init__(self, path: Path, kill: KillPoint) -> None:
        super().__init__(path)
        self.kill = kill

    def record_injecting(self, *args: Any, **kwargs: Any) -> str:
        fault_id = super().record_injecting(*args, **kwargs)
        self.kill.reach("journaled", fault_id)
        return fault_id

    def record(self, fault_id: str, state: FaultState, error: str | None = None) -> None:
        if state is FaultState.INJECTED:
            self.kill.reach("acted", fault_id)
        super().record(fault_id, state, error)


def tripwire_clients(endpoint_url: str, kill: KillPoint) -> Clients:
    """The twin's clients; every AWS write that succeeds tells the kill point."""
    def after_call(model: Any, http_response: Any = None, **_: Any) -> None:
        ok = http_response is None or http_response.status_code < 300
        if ok and not model.name.startswith(READS):
            kill.acted(f"{model.service_model.service_name}:{model.name}")

    clients = Clients.for_twin(endpoint_url)
    clients.on("after-call", after_call)
    return clients


class TripwireCluster:
    """A NATS cluster handle whose node actions tell the kill point once done."""

    def __init__(self, cluster: Any, kill: KillPoint) -> None:
        self._cluster, self._kill = cluster, kill

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._cluster, name)
        if name not in NATS_ACTIONS:
            return attr

        def act(node: str) -> None:
            attr(node)
            self._kill.acted(f"nats:{name}:{node}")

        return act


class TripwireTwin:
    """The twin handle, with tripwired NATS clusters."""

    def __init__(self, twin: Any, kill: KillPoint) -> None:
        self._twin, self._kill = twin, kill

    def __getattr__(self, name: str) -> Any:
        return getattr(self._twin, name)

    def nats(self, region: str = "us-east-1") -> TripwireCluster:
        return TripwireCluster(self._twin.nats(region), self._kill)


def _tripwire(owner: Any, name: str, mutates: Callable[..., str | None], kill: KillPoint
              ) -> None:
    """Replace `owner.name` with a wrapper that tells the kill point after each call that
    `mutates(*args)` names (None: the call only read)."""
    real = getattr(owner, name)

    def call_and_tell(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        what = mutates(*args, **kwargs)
        if what is not None:
            kill.acted(what)
        return result

    setattr(owner, name, call_and_tell)


def _control_route(aws_url: str, route: str, *_: Any) -> str | None:
    return None if route.endswith("status") else f"control:{route}"


def _cli_command(argv: Any, *_: Any, **__: Any) -> str | None:
    words = [str(w) for w in argv]
    if words[:1] != ["aws"]:
        return f"command:{' '.join(words[:3])}"
    command = [w for w in words[1:] if not w.startswith("-")][:2]
    if len(command) == 2 and command[1].startswith(CLI_READS):
        return None
    return f"aws {' '.join(command)}"


def _tripwire_everything(kill: KillPoint) -> None:
    """Signals sent to processes (enclave workers, the API), control routes of the twin's AWS
    endpoint and runbook commands (the `aws` CLI) count as acting, as AWS writes do."""
    _tripwire(os, "kill", lambda pid, sig: f"kill:{pid}:{sig}", kill)
    _tripwire(control, "request", _control_route, kill)
    _tripwire(kms_faults, "control_request", _control_route, kill)
    _tripwire(region_procedure, "run", _cli_command, kill)


def main(request_path: str) -> int:
    """Inject the request's fault, stopping at its kill point; 1 if it never got there."""
    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    kill = KillPoint(request["point"], Path(request["ready"]))
    twin = manager.running_twin(Path(request["state_dir"]))
    if twin is None:
        print(f"no twin is running in {request['state_dir']}", file=sys.stderr)
        return 2
    target = TwinTarget(twin)
    ctx = FaultContext(tripwire_clients(twin.state.aws_url, kill), TripwireTwin(twin, kill),
                       target.capabilities, target.named)
    _tripwire_everything(kill)
    # Every kind at its widest, as its @full_outage drill injects it: a killed full outage
    # must be rolled back too.
    injector = FaultInjector(StoppingJournal(Path(request["journal"]), kill),
                             f"crash-sweep-{request['point']}", target.env_id,
                             target.allow_list({}), BlastRadius(full_outage=True))
    fault = Fault.registry[request["kind"]](ctx, {"region": target.region,
                                                  **request["params"]})
    active = injector.inject(fault)
    revert = fault.revert

    def revert_then_stop() -> None:
        revert()
        kill.reach("reverting", "the revert returned without a mutating call")

    fault.revert = revert_then_stop  # type: ignore[method-assign]
    kill.reverting = True
    injector.revert(active)
    print("the driver passed its kill point without stopping", file=sys.stderr)
    return 1


def rollback(request_path: str) -> int:
    """`drills rollback` on the request's twin and journal; writes its exit code to `exit`."""
    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    os.environ.update(DRILLS_STATE_DIR=request["state_dir"], DRILLS_JOURNAL=request["journal"])
    code = cli.main(["rollback"])
    Path(request["exit"]).write_text(str(code), encoding="utf-8")
    return code


def run(request_path: str) -> int:
    """The request's action: a harness (the default) or a rollback."""
    action = json.loads(Path(request_path).read_text(encoding="utf-8")).get("action")
    return rollback(request_path) if action == "rollback" else main(request_path)


def serve() -> int:
    """Fork a process for each request path on stdin; print its pid. The children are
    reaped by the kernel (SIGCHLD ignored): the test watches their files and pids."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    if threading.active_count() != 1:  # fork copies one thread: others' locks would be held
        print("the driver server has threads; it cannot fork harnesses", file=sys.stderr)
        return 2
    for line in sys.stdin:
        request = line.strip()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                log = os.open(json.loads(Path(request).read_text(encoding="utf-8"))["log"],
                              os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(log, 1)
                os.dup2(log, 2)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # its own children are waited on
                code = run(request)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)  # never back into the server's loop
        print(pid, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(serve() if sys.argv[1:] == ["--serve"] else run(sys.argv[1]))
