"""One pytest session of drills: its settings, journal, target, observers and run record,
and the signals that end it. The plugin (`drills.plugin`) keeps one `DrillsRun` in
`config.stash`; this module holds everything that is not a pytest hook or fixture.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pytest_bdd.parser import Step
from pytest_bdd.steps import StepFunctionContext

from drills import __version__
from drills.api_client import ApiClient
from drills.boundary import is_aws_error, translate
from drills.clients import Clients
from drills.config import LoadSettings, Settings, duration, load_settings
from drills.dryrun import CallGuard, PlanningDrill, plan_drill
from drills.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STOPPED,
    EXIT_TARGET,
    ConfigError,
    DrillError,
    DrillStopped,
    DryRunViolation,
    FaultError,
    NotSteady,
    ObjectiveBreached,
    TargetError,
    TwinError,
)
from drills.evidence import default_writers
from drills.evidence.model import RunRecord, Status
from drills.evidence.observer import Observers
from drills.faults import BlastRadius, FaultInjector, rollback
from drills.guard import clear
from drills.human import Crew, Operator, crew
from drills.hygiene import drill_vault_prefix
from drills.journal import Journal, utc_now
from drills.loop import LoopThread
from drills.plan import DrillPlan, RunPlan
from drills.stop import AlarmWatch, Tripped
from drills.target import AccountTarget, Target, TwinTarget
from drills.twin.ports import port_range
from drills.vault import VaultApi, VaultClient

if TYPE_CHECKING:
    from drills.load.run import LoadRun

Say = Callable[[str], None]


@dataclass(slots=True)
class Paths:
    """How a run reaches the service: its event loop, the probes' path (`app`: the apps'
    HTTPS API, or NATS), and the harness's own NATS connection."""

    loop: LoopThread
    app: VaultApi
    nats: VaultClient | None
    name: str  # "api" or "nats"

    def close(self) -> None:
        """Close the connections (a dead one must not mask the run's result), then the loop."""
        closers = [self.nats.nc.close()] if self.nats is not None else []
        if isinstance(self.app, ApiClient):
            closers.append(self.app.close())
        for closing in closers:
            with contextlib.suppress(Exception):
                self.loop.run(closing, timeout=5)
        self.loop.close()


class DrillInterrupted(KeyboardInterrupt):
    """SIGTERM (or SIGINT), turned into an interruption so faults are reverted on the way out."""


#: What the thread watching the stop alarms sends the main thread to stop the run.
STOP_SIGNAL = signal.SIGUSR2


@contextlib.contextmanager
def stoppable(reason: Callable[[], str]) -> Iterator[None]:
    """Turn STOP_SIGNAL into `DrillStopped` (with `reason()`) in the main thread while the
    block runs; a handler someone else installed is left alone (the injector still refuses
    every fault once stopped)."""
    previous = signal.getsignal(STOP_SIGNAL)

    def on_stop(signum: int, frame: Any) -> None:
        raise DrillStopped(reason())

    on_stop.drills_stop = True  # type: ignore[attr-defined]  # see stop_main_thread
    if previous not in (signal.SIG_DFL, None):
        yield
        return
    signal.signal(STOP_SIGNAL, on_stop)
    try:
        yield
    finally:
        signal.signal(STOP_SIGNAL, previous)


def stop_main_thread() -> None:
    """Send STOP_SIGNAL to the main thread, if `stoppable` handles it there (a handler of
    someone else's is not ours to call, and the default one would end the process)."""
    if getattr(signal.getsignal(STOP_SIGNAL), "drills_stop", False):
        signal.pthread_kill(threading.main_thread().ident or 0, STOP_SIGNAL)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGTERM into `DrillInterrupted` while the block runs (SIGINT already raises
    KeyboardInterrupt); the previous handler is restored on the way out."""
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        raise DrillInterrupted("SIGTERM received: reverting faults and stopping")

    if previous not in (signal.SIG_DFL, None):
        yield  # someone else handles SIGTERM (an embedding program): leave it to them
        return
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def classify(exc: BaseException | None) -> tuple[Status, str, int]:
    """A drill's status, the error text for what ended it, and what that means for the run's
    exit code (None: it passed)."""
    if exc is None:
        return Status.PASSED, "", EXIT_OK
    if is_aws_error(exc):
        exc = translate(exc)
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, NotSteady):
        return Status.NOT_STEADY, text, EXIT_TARGET
    if isinstance(exc, ObjectiveBreached | AssertionError):
        return Status.FAILED, text, EXIT_FAILED
    if isinstance(exc, TargetError):
        return Status.ERROR, text, EXIT_TARGET
    if isinstance(exc, ConfigError):  # refused before acting: an allow-list, a blast radius
        return Status.ERROR, text, EXIT_BAD_INPUT
    return Status.ERROR, text, EXIT_FAILED


def new_run_id(exercise: str) -> str:
    """'<UTC time>-<exercise>-<4 hex>': sortable, and unique on one machine."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{exercise}-{secrets.token_hex(2)}"


class DrillsRun:
    """Everything one pytest session of drills shares; kept in `config.stash`."""

    def __init__(self, config: pytest.Config, say: Say) -> None:
        opt = config.getoption
        self.config, self.say = config, say
        self.settings: Settings = load_settings(
            Path(opt("drills_objectives")) if opt("drills_objectives") else None)
        self.run_id = opt("drills_run_id") or new_run_id(opt("drills_exercise"))
        # A bare `pytest` (the test suite) keeps its evidence out of the project's reports/:
        # only `drills run`, which always names the folder, writes there.
        reports = opt("drills_reports")
        self.report_root = Path(reports) if reports else Path(
            tempfile.mkdtemp(prefix="drills-reports-"))
        share_ports_between_workers()
        self.journal = Journal(_per_worker(Path(opt("drills_journal"))))
        self.observers = Observers(default_writers())
        self.record = RunRecord(
            run_id=self.run_id, exercise=opt("drills_exercise"),
            selection=list(config.args), target=self._asked_target(), tool_version=__version__,
            git_revision=_git_revision(config.rootpath), started_utc=utc_now(),
            objectives=_objectives_dict(self.settings),
            participants=_participants(opt("drills_participant")))
        self.operators = [Operator.parse(v) for v in opt("drills_operator") or []]
        self.interactive = bool(opt("drills_interactive"))
        if self.interactive:  # without a terminal nobody answered: no participation shown
            self.record.participants += [
                {"name": o.name, "role": o.role.value} for o in self.operators
                if {"name": o.name, "role": o.role.value} not in self.record.participants]
        self.crew: Crew | None = None  # opened by the first human step (`ensure_crew`)
        soak = opt("drills_soak")
        self.soak: float | None = duration(soak, "--soak") if soak else None
        self.target: Target | None = None
        self.paths: Paths | None = None
        self._started_twin: Path | None = None
        self.completed: set[str] = set()  # drills whose call phase finished
        self.exits: list[int] = []  # what each drill that did not pass means for the exit code
        self.via_cli = bool(opt("drills_run_id"))  # `drills run` names every run it starts
        self.load_settings = _load_settings(self.settings, opt)
        self.load: LoadRun | None = None  # while simulated apps load the API (--load)
        self.dry_run = bool(opt("drills_dry_run"))
        if self.dry_run:  # apps on the API would write: a dry run plans without load
            self.load_settings = replace(self.load_settings, users=0)
        self.guard = CallGuard()  # counts the calls; refuses non-reads only in a dry run
        self.plan = RunPlan(self.run_id, self.record.target)
        self._tidied = False  # tidy_target ran
        self.allow_production = bool(opt("drills_allow_production"))
        #: The stop condition that ended the run (`watch_stop_alarms`), if one did.
        self.stopped: Tripped | None = None
        self.stop_errors: list[str] = []  # faults the stop could not revert

    @property
    def report_dir(self) -> Path:
        return self.report_root / self.run_id

    def ensure_target(self) -> Target:
        """Start (or attach to) the target once; roll back what a killed run left behind."""
        if self.target is not None:
            return self.target
        try:
            target = self._open_target()
            # Before anything is touched, the pending faults' rollback included.
            cleared = clear(target.identity(), self.settings.clearance, named=target.named,
                            capabilities=target.capabilities,
                            allow_production=self.allow_production)
            self.record.target = {**target.describe(), **cleared.describe()}
        except Exception as exc:
            raise translate(exc, "opening the target") from exc
        self.target = target
        if self.dry_run:
            self.guard.watch(self.target.clients)
            self.plan.target = self.record.target
            pending = self.journal.pending()
            if pending:  # reverting them would act: say so, leave them
                self.say(f"drills: {len(pending)} fault(s) left pending in {self.journal.path} "
                         "by an earlier run; a dry run does not revert them: `drills rollback`")
            return self.target
        for result in rollback(self.journal, self.target.fault_context(), self.target.env_id):
            note = (f"reverted fault {result.entry.fault_id} ({result.entry.kind} on "
                    f"{result.entry.target}) left pending by run {result.entry.run_id}")
            if result.abandoned:
                note = f"abandoned fault {result.entry.fault_id}: {result.error}"
            elif not result.reverted:
                note = f"could not revert fault {result.entry.fault_id}: {result.error}"
            self.say(f"drills: {note}")
        self.observers.run_started(self.record)
        return self.target

    def _asked_target(self) -> dict[str, Any]:
        """What the run was asked to drill, until the target itself describes it (the report
        says where, even when the target could not be opened)."""
        opt = self.config.getoption
        return {"kind": "account" if opt("drills_target") == "aws" else "twin",
                "region": opt("drills_region") or self.settings.names.primary_region}

    def _open_target(self) -> Target:
        opt = self.config.getoption
        if opt("drills_target") == "aws":
            api = self.settings.api
            if opt("drills_api_url"):
                api = replace(api, url=opt("drills_api_url"))
            clients = None
            if self.dry_run:  # counted from the first call (the account id)
                clients = Clients(endpoint_url=None, default_region=opt("drills_region")
                                  or self.settings.names.primary_region)
                self.guard.watch(clients)
            return AccountTarget(region=opt("drills_region"), api=api,
                                 names=self.settings.names, clients=clients)
        from drills.twin import manager

        state_dir = _per_worker(Path(opt("drills_state_dir")) if opt("drills_state_dir")
                                else manager.default_state_dir())
        twin = manager.running_twin(state_dir)
        if twin is None and self.dry_run:
            raise TwinError(f"no twin is running in {state_dir}, and a dry run starts none "
                            "(that would provision it); start one with `drills twin up` and "
                            "run again")
        if twin is None:
            twin = manager.up(state_dir, timing=opt("drills_timing"),
                              backend=opt("drills_nats"), progress=self.say)
            self._started_twin = Path(twin.state.state_dir)
        return TwinTarget(twin)

    def ensure_paths(self) -> Paths:
        """The event loop, the path probes take to the service (the apps' API by default),
        and a NATS connection for the harness's own checks (None on an account without
        DRILLS_NATS_URL, where no step may need it)."""
        target = self.ensure_target()
        if self.paths is None:
            loop = LoopThread()
            try:
                nats: VaultClient | None = target.connect(loop)
            except ConfigError:
                if self.settings.probes.path == "nats" or target.kind == "twin":
                    raise
                nats = None
            except Exception as exc:
                raise TargetError(f"the vault service's NATS could not be reached "
                                  f"({type(exc).__name__}: {exc}); check the NATS URLs and "
                                  "credentials of the target") from exc
            app: VaultApi | None = nats if self.settings.probes.path == "nats" else target.api()
            if app is None:
                raise ConfigError("probes.path is nats but the target has no NATS URL")
            self.paths = Paths(loop, app, nats, self.settings.probes.path)
        return self.paths

    def plan_drill(self, item: pytest.Item, feature: str, scenario: str,
                   steps: list[tuple[Step, StepFunctionContext | None]]) -> None:
        """Dry run: plan one drill, show and keep its plan; DryRunViolation if planning made
        a mutating call, FaultError when the real run would fail at one of its faults."""
        try:
            self._plan_drill(item, feature, scenario, steps)
        except Exception as exc:
            self.exits.append(error_exit(exc))
            raise

    def _plan_drill(self, item: pytest.Item, feature: str, scenario: str,
                    steps: list[tuple[Step, StepFunctionContext | None]]) -> None:
        target = self.ensure_target()
        before = self.guard.mutating_calls
        full_outage = item.get_closest_marker("full_outage") is not None
        drill = PlanningDrill(target, self.settings,
                              target.allow_list(dict(self.settings.allow)),
                              BlastRadius(self.settings.max_share, full_outage))
        try:
            plan = plan_drill(item, steps, drill, feature, scenario)
        finally:
            self.plan.reads, self.plan.mutating = self.guard.reads, self.guard.mutating
        self.plan.drills.append(plan)
        for line in plan.lines():
            self.say(line)
        if self.guard.mutating_calls > before:
            raise DryRunViolation(f"planning {feature} :: {scenario} made "
                                  f"{self.guard.mutating_calls - before} mutating call(s)")
        if plan.problems:
            raise FaultError(f"{feature} :: {scenario} would fail when run, at "
                             + "; ".join(plan.problems) + "; fix that before drilling it")

    def plan_skipped(self, drill_id: str, planned: Any) -> None:
        """Dry run: a drill the run would skip (`drills.plugin.Planned`), with the reason."""
        plan = DrillPlan(drill_id, planned.feature, planned.scenario,
                         skipped=planned.skipped or "skipped")
        self.plan.drills.append(plan)
        self.say(next(plan.lines()))

    def finish_plan(self) -> None:
        """Dry run: write plan.json and plan.txt into the report folder, say what it took."""
        self.plan.reads, self.plan.mutating = self.guard.reads, self.guard.mutating
        if self.plan.drills:
            self.plan.write(self.report_dir)
        self.say(self.plan.summary())
    def ensure_crew(self) -> Crew:
        """The people answering human steps: at the terminal in an interactive run (the
        terminal opened once), else automated (`drills.human.crew`)."""
        if self.crew is None:
            self.crew = crew(self.operators, self.interactive)
            if self.crew.why_automated:
                self.say(f"drills: human steps are acknowledged automatically and marked "
                         f"automated: {self.crew.why_automated}")
        return self.crew

    def watch_stop_alarms(self, injector: FaultInjector, target: Target,
                          drill: str) -> AlarmWatch | None:
        """Watch the `[stop]` alarms while a drill runs (None: none configured); one that
        trips reverts every fault of the drill at once, refuses any further fault, and stops
        the run (STOP_SIGNAL to the main thread: `stoppable`)."""
        stop = self.settings.stop
        if not stop.alarms:
            return None

        def on_stop(tripped: Tripped) -> None:
            self.stopped = tripped
            self.say(f"drills: {tripped} (during {drill})")
            self.stop_errors = injector.halt(str(tripped))
            stop_main_thread()

        return AlarmWatch(target.clients("cloudwatch", target.region), stop.alarms, stop.poll,
                          lambda: injector.expected_alarms(target.names), on_stop).start()

    def drill_ended(self, status: Status, exit_code: int) -> None:
        """Note what a finished drill means for the run's exit code."""
        if not status.ok:
            self.exits.append(exit_code or EXIT_FAILED)

    def exit_code(self) -> int:
        """0 every drill passed; 4 a stop condition ended the run; 1 one failed (breach or
        error); 2 one was refused before it acted (an allow-list, the blast radius); 3 the
        target was unreachable, misconfigured or not steady, and nothing else failed."""
        if self.stopped is not None:
            return EXIT_STOPPED
        for code in (EXIT_FAILED, EXIT_BAD_INPUT):
            if code in self.exits:
                return code
        return EXIT_TARGET if self.exits else EXIT_OK

    def start_load(self) -> None:
        """Start the run's load (`--load`, [load]) on the target before any drill; a locust
        that cannot start is a ConfigError (exit 2), raised before any fault."""
        if not self.load_settings.enabled or self.load is not None:
            return
        from drills.load.run import LoadRun

        load = LoadRun(self.load_settings, self.ensure_target(), self.report_dir, self.say,
                       prefix=f"{drill_vault_prefix('load')}-{self.run_id[-4:]}")
        load.start()
        self.load = load

    def stop_load(self) -> None:
        """Stop the load (idempotent): before the report is sealed, its files are evidence."""
        if self.load is not None:
            self.load.stop()

    def close(self) -> None:
        self.stop_load()
        if self.crew is not None:
            self.crew.close()
        if self.paths is not None:
            self.paths.close()
        self.tidy_target()
        if self._started_twin is not None:
            from drills.twin import manager

            manager.down(self._started_twin, progress=self.say)

    def tidy_target(self) -> None:
        """Once (before the report is sealed): delete the vaults the drills made on the
        target (probe hygiene), and note in the report how the target was read. A failed
        deletion is said and noted, with what to do; the run's result stands."""
        if self.target is None or self._tidied:
            return
        self._tidied = True
        note: str | None
        try:
            swept = self.target.sweep_drill_vaults()
        except Exception as exc:  # the run's result stands; the operator finishes the job
            note = (f"{translate(exc, 'deleting the drills own vaults')}; run `drills "
                    "rollback --target aws` to delete them")
        else:
            note = None if swept is None else f"deleted {swept} (probe hygiene)"
        for line in [*self.target.notes, *([note] if note else [])]:
            self.say(f"drills: {line}")
            self.record.notes.append(line)


def _load_settings(settings: Settings, opt: Callable[[str], Any]) -> LoadSettings:
    """[load] of the objectives file with `--load` and its companions over it."""
    from drills.load import with_options

    return with_options(settings.load, opt("drills_load"), opt("drills_load_workers"),
                        opt("drills_load_remote_workers"), opt("drills_master_host"),
                        opt("drills_master_port"))


def share_ports_between_workers() -> None:
    """Under pytest-xdist, give each worker a slice of the twin's port range of its own
    (`DRILLS_PORT_RANGE`), so that twins started at the same moment never pick one port."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or "DRILLS_PORT_RANGE" in os.environ:
        return
    count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), 1)
    ports = port_range()
    span = len(ports) // count
    low = ports.start + int(worker[2:]) * span
    os.environ["DRILLS_PORT_RANGE"] = f"{low}-{low + span}"


def _per_worker(path: Path) -> Path:
    """`path`, or under pytest-xdist `path` suffixed with the worker's id (gw0, gw1, ...):
    each worker drills a twin of its own and journals its own faults."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return path.with_name(f"{path.stem}-{worker}{path.suffix}") if worker else path


def error_exit(exc: BaseException) -> int:
    """The exit code an error that ended a command stands for."""
    if is_aws_error(exc):
        exc = translate(exc)
    return exc.exit_code if isinstance(exc, DrillError) else EXIT_FAILED


def _git_revision(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _objectives_dict(settings: Settings) -> dict[str, Any]:
    o = settings.objectives
    return {"source": settings.source, "rto": o.rto, "rpo_writes": o.rpo_writes,
            "mttr": o.mttr,
            "components": {name: {"rto": c.rto, "rpo_writes": c.rpo_writes,
                                  "priority": c.priority} for name, c in o.components.items()},
            "probes": {"interval": settings.probes.interval, "timeout": settings.probes.timeout,
                       "consecutive": settings.probes.consecutive,
                       "settle": settings.probes.settle}}


def _participants(values: list[str] | None) -> list[dict[str, str]]:
    out = []
    for value in values or []:
        name, _, role = value.partition(":")
        out.append({"name": name.strip(), "role": role.strip() or "participant"})
    return out
