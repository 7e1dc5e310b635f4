"""The pytest plugin (entry point `pytest11: drills`): options, fixtures, timeline, evidence.

State lives in `config.stash`; evidence writers are observers fed from pytest and pytest-bdd
hooks. The target (the twin, started on demand, or an account) is only set up when a drill
asks for it, so ordinary tests never pay for it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from drills import __version__
from drills.config import Settings, load_settings
from drills.drill import Drill
from drills.errors import DrillError, ObjectiveBreached
from drills.evidence import default_writers
from drills.evidence.model import DrillRecord, RunRecord, Status, StepRecord
from drills.evidence.observer import Observers
from drills.faults import FaultInjector, rollback
from drills.journal import Journal, utc_now
from drills.loop import LoopThread
from drills.progress import ProgressObserver
from drills.target import AccountTarget, Target, TwinTarget
from drills.vault import VaultClient

TAGS = {
    "monthly": "runbook 7.1 monthly DR test",
    "quarterly": "runbook 7.2 quarterly failover test",
    "annual": "runbook 7.3 annual full DR exercise",
    "scenario": "a runbook section 3 failure scenario",
    "enclave": "Nitro Enclave ASG component",
    "nats": "NATS cluster component",
    "kms": "KMS sealing key component",
    "s3": "S3 vault data component",
    "monitoring": "CloudWatch monitoring component",
    "dynamodb": "DynamoDB metadata tables",
    "ssm": "SSM parameters",
    "preflight": "runbook 2.1-2.4 backup verification, a pre-flight any run can include",
    "twin_only": "destructive beyond repair: runs only on the local twin",
}

RUN_KEY = pytest.StashKey["DrillsRun"]()
DRILL_KEY = pytest.StashKey[DrillRecord]()


class DrillInterrupted(KeyboardInterrupt):
    """SIGTERM, turned into an interruption so faults are reverted on the way out."""


class DrillsRun:
    """Everything one pytest session of drills shares; kept in `config.stash`."""

    def __init__(self, config: pytest.Config) -> None:
        opt = config.getoption
        self.config = config
        self.settings: Settings = load_settings(
            Path(opt("drills_objectives")) if opt("drills_objectives") else None)
        self.run_id = opt("drills_run_id") or new_run_id(opt("drills_exercise"))
        self.report_root = Path(opt("drills_reports"))
        self.journal = Journal(Path(opt("drills_journal")))
        self.observers = Observers(default_writers())
        self.record = RunRecord(
            run_id=self.run_id, exercise=opt("drills_exercise"),
            selection=list(config.args), target={}, tool_version=__version__,
            git_revision=_git_revision(config.rootpath), started_utc=utc_now(),
            objectives=_objectives_dict(self.settings),
            participants=_participants(opt("drills_participant")))
        self.target: Target | None = None
        self.loop: LoopThread | None = None
        self.client: VaultClient | None = None
        self._started_twin: Path | None = None
        self.completed: set[str] = set()  # drills whose call phase finished

    @property
    def report_dir(self) -> Path:
        return self.report_root / self.run_id

    def ensure_target(self) -> Target:
        """Start (or attach to) the target once; roll back what a killed run left behind."""
        if self.target is not None:
            return self.target
        opt = self.config.getoption
        if opt("drills_target") == "aws":
            self.target = AccountTarget(region=opt("drills_region"))
        else:
            from drills.twin import manager

            state_dir = Path(opt("drills_state_dir")) if opt("drills_state_dir") else None
            twin = manager.running_twin(state_dir or manager.default_state_dir())
            if twin is None:
                twin = manager.up(state_dir, timing=opt("drills_timing"),
                                  backend=opt("drills_nats"), progress=self.say)
                self._started_twin = Path(twin.state.state_dir)
            self.target = TwinTarget(twin)
        self.record.target = self.target.describe()
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

    def ensure_client(self) -> tuple[LoopThread, VaultClient]:
        target = self.ensure_target()
        if self.loop is None or self.client is None:
            self.loop = LoopThread()
            self.client = target.connect(self.loop)
        return self.loop, self.client

    def say(self, message: str) -> None:
        _write(self.config, message)

    def close(self) -> None:
        if self.loop is not None:
            if self.client is not None:
                # Closing a dead connection must not mask the run's result.
                with contextlib.suppress(Exception):
                    self.loop.run(self.client.nc.close(), timeout=5)
            self.loop.close()
        if self._started_twin is not None:
            from drills.twin import manager

            manager.down(self._started_twin, progress=self.say)


def new_run_id(exercise: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{exercise}-{secrets.token_hex(2)}"


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
                       "consecutive": settings.probes.consecutive}}


def _participants(values: list[str] | None) -> list[dict[str, str]]:
    out = []
    for value in values or []:
        name, _, role = value.partition(":")
        out.append({"name": name.strip(), "role": role.strip() or "participant"})
    return out


def _write(config: pytest.Config, message: str) -> None:
    """Write a line to the terminal even while pytest captures output."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    try:
        if capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(message)
        else:
            reporter.write_line(message)
    except OSError:
        pass  # a closed terminal (e.g. `| head`) must never break a drill or its cleanup


# -- pytest hooks ----------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("drills", "disaster-recovery drills")
    group.addoption("--drills-target", choices=["twin", "aws"], default="twin",
                    help="run drills on the local twin (default) or a real AWS account")
    group.addoption("--drills-region", default="us-east-1", help="primary region (us-east-1)")
    group.addoption("--drills-objectives", default=os.environ.get("DRILLS_OBJECTIVES"),
                    help="TOML file overriding the runbook's objectives")
    group.addoption("--drills-reports", default="reports", help="where run reports go")
    group.addoption("--drills-run-id", default=None, help="run id (default: generated)")
    group.addoption("--drills-exercise", default="ad-hoc",
                    choices=["monthly", "quarterly", "annual", "ad-hoc"],
                    help="exercise type recorded in the report")
    group.addoption("--drills-participant", action="append", metavar="NAME:ROLE",
                    help="a participant and role for the report (repeatable)")
    group.addoption("--drills-journal",
                    default=os.environ.get("DRILLS_JOURNAL", ".drills/journal.jsonl"),
                    help="fault journal (default .drills/journal.jsonl)")
    group.addoption("--drills-state-dir", default=os.environ.get("DRILLS_STATE_DIR"),
                    help="twin state directory (default .drills/twin)")
    group.addoption("--drills-nats", choices=["process", "container"], default="process",
                    help="NATS backend when the plugin starts a twin")
    group.addoption("--drills-feature", action="append", default=[], metavar="PATH",
                    help="only run scenarios of this .feature file or folder (repeatable)")
    group.addoption("--drills-timing", choices=["fast", "realistic"], default="fast",
                    help="twin timing profile when the plugin starts a twin")


def pytest_configure(config: pytest.Config) -> None:
    for tag, text in TAGS.items():
        config.addinivalue_line("markers", f"{tag}: {text}")
    try:
        config.stash[RUN_KEY] = DrillsRun(config)
    except DrillError as exc:
        raise pytest.UsageError(str(exc)) from None
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        raise DrillInterrupted("SIGTERM received: reverting faults and stopping")

    if previous in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, on_sigterm)
        def restore() -> None:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

        config.add_cleanup(restore)
    if not config.getoption("collectonly"):
        config.stash[RUN_KEY].observers.add(ProgressObserver(lambda m: _write(config, m)))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep only scenarios of the features named with --drills-feature (files or folders)."""
    wanted = [Path(p).resolve() for p in config.getoption("drills_feature")]
    if not wanted:
        return

    def selected(item: pytest.Item) -> bool:
        # pytest-bdd names each scenario test "<absolute feature path>: <scenario name>".
        doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
        feature = Path(doc.split(": ", 1)[0])
        return any(feature == w or w in feature.parents for w in wanted)

    keep = [i for i in items if selected(i)]
    config.hook.pytest_deselected(items=[i for i in items if i not in keep])
    items[:] = keep


def pytest_bdd_before_scenario(request: pytest.FixtureRequest, feature: Any,
                               scenario: Any) -> None:
    run = request.config.stash[RUN_KEY]
    record = DrillRecord(
        drill_id=request.node.nodeid, name=scenario.name, feature=feature.name,
        feature_path=str(feature.rel_filename), tags=sorted(scenario.tags | feature.tags),
        started_utc=utc_now(),
        description="\n\n".join(t.strip() for t in (feature.description,
                                                    scenario.description) if t and t.strip()))
    request.node.stash[DRILL_KEY] = record
    run.record.drills.append(record)
    record_started = time.monotonic()
    request.node.stash[_START_KEY] = record_started


_START_KEY = pytest.StashKey[float]()
_STEP_KEY = pytest.StashKey[tuple[StepRecord, float]]()


def pytest_bdd_before_step(request: pytest.FixtureRequest, feature: Any, scenario: Any,
                           step: Any, step_func: Any) -> None:
    record = request.node.stash.get(DRILL_KEY, None)
    if record is None:
        return
    if not record.steps:
        run = request.config.stash[RUN_KEY]
        run.ensure_target()  # start-up messages first, then the drill's own lines
        run.observers.drill_started(run.record, record)
    step_record = StepRecord(step.keyword, step.name, utc_now())
    record.steps.append(step_record)
    request.node.stash[_STEP_KEY] = (step_record, time.monotonic())
    request.config.stash[RUN_KEY].observers.step_started(record, step_record)


def _end_step(request: pytest.FixtureRequest, status: Status, error: str | None) -> None:
    record = request.node.stash.get(DRILL_KEY, None)
    if record is None or _STEP_KEY not in request.node.stash:
        return
    step_record, started = request.node.stash[_STEP_KEY]
    step_record.duration = time.monotonic() - started
    step_record.status, step_record.error = status, error
    request.config.stash[RUN_KEY].observers.step_finished(record, step_record)


def pytest_bdd_after_step(request: pytest.FixtureRequest, **_: Any) -> None:
    _end_step(request, Status.PASSED, None)


def pytest_bdd_step_error(request: pytest.FixtureRequest, exception: Exception,
                          **_: Any) -> None:
    status = Status.FAILED if isinstance(exception, ObjectiveBreached | AssertionError) else (
        Status.ERROR)
    _end_step(request, status, f"{type(exception).__name__}: {exception}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    record = item.stash.get(DRILL_KEY, None)
    if record is None:
        return report
    if call.when == "call":
        item.config.stash[RUN_KEY].completed.add(item.nodeid)
    if call.when == "call" and report.failed:
        exc = call.excinfo.value if call.excinfo else None
        record.status = Status.FAILED if isinstance(exc, ObjectiveBreached | AssertionError) \
            else Status.ERROR
        record.error = f"{type(exc).__name__}: {exc}" if exc else report.longreprtext[-2000:]
    elif call.when == "call" and report.skipped:
        record.status = Status.SKIPPED
    elif call.when == "teardown":
        if report.failed and record.status is Status.PASSED:
            record.status = Status.ERROR
            record.error = report.longreprtext[-2000:]
        record.duration = time.monotonic() - item.stash[_START_KEY]
        record.ended_utc = record.ended_utc or utc_now()
        run = item.config.stash[RUN_KEY]
        run.observers.drill_finished(run.record, record)
    return report


# trylast: after pytest's own teardown has reverted what was left, and after junitxml and
# cucumberjson wrote their files, so MANIFEST.sha256 seals those too.
@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    run = session.config.stash.get(RUN_KEY, None)
    if run is None:
        return
    try:
        if run.record.drills:
            for drill in run.record.drills:
                if drill.drill_id not in run.completed:  # interrupted (SIGTERM, Ctrl-C)
                    drill.status = Status.ERROR
                    drill.error = drill.error or "the run was interrupted during this drill"
                    drill.ended_utc = drill.ended_utc or utc_now()
            run.record.ended_utc = utc_now()
            statuses = {d.status for d in run.record.drills}
            run.record.status = (Status.ERROR if Status.ERROR in statuses else Status.FAILED
                                 if Status.FAILED in statuses else Status.PASSED)
            run.report_dir.mkdir(parents=True, exist_ok=True)
            run.observers.run_finished(run.record, run.report_dir)
    finally:
        run.close()


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def drills_run(pytestconfig: pytest.Config) -> DrillsRun:
    """The run's shared state: settings, journal, observers, report directory."""
    return pytestconfig.stash[RUN_KEY]


@pytest.fixture(scope="session")
def drills_target(drills_run: DrillsRun) -> Target:
    """The system under drill, started or attached once per session."""
    return drills_run.ensure_target()


@pytest.fixture
def drill(request: pytest.FixtureRequest, drills_run: DrillsRun) -> Iterator[Drill]:
    """The running drill of this scenario; reverts whatever is left at teardown."""
    record = request.node.stash.get(DRILL_KEY, None)
    if record is None:
        raise DrillError("the `drill` fixture only works inside a pytest-bdd scenario")
    target = drills_run.ensure_target()
    loop, client = drills_run.ensure_client()
    injector = FaultInjector(drills_run.journal, drills_run.run_id, target.env_id,
                             target.allow_list(dict(drills_run.settings.allow)))
    current = Drill(record, drills_run.settings, target, injector, loop, client,
                    drills_run.observers)
    yield current
    errors = current.finish()
    record.deviations.extend(errors)
    if errors:
        raise DrillError("; ".join(errors))
