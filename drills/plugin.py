"""The pytest plugin (entry point `pytest11: drills`): options, hooks, fixtures.

Session state lives in `config.stash` (a `drills.session.DrillsRun`); evidence writers are
observers fed from pytest and pytest-bdd hooks. The target (the twin, started on demand, or
an account) is only set up when a drill asks for it, so ordinary tests never pay for it.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd.parser import ScenarioTemplate, Step
from pytest_bdd.scenario import scenario_wrapper_template_registry
from pytest_bdd.steps import StepFunctionContext, step_function_context_registry

from drills.boundary import is_aws_error
from drills.capabilities import Capability, skip_reason, step_needs, tag_needs
from drills.config import OBJECTIVES_ENV
from drills.drill import Drill
from drills.errors import EXIT_FAILED, ConfigError, DrillError, ObjectiveBreached, TargetNotAllowed
from drills.evidence.model import DrillRecord, Status, StepRecord, StopRecord
from drills.faults import BlastRadius, FaultInjector
from drills.human import Crew
from drills.journal import utc_now
from drills.progress import ProgressObserver
from drills.session import DrillsRun, classify, interruptible, stoppable
from drills.tags import TAGS
from drills.target import TARGETS

RUN_KEY = pytest.StashKey[DrillsRun]()
DRILL_KEY = pytest.StashKey[DrillRecord]()
_START_KEY = pytest.StashKey[float]()
_STEP_KEY = pytest.StashKey[tuple[StepRecord, float]]()
_EXIT_KEY = pytest.StashKey[int]()  # what a failed drill means for the run's exit code
_PLANNED_KEY = pytest.StashKey[int]()  # steps the scenario has


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
    group.addoption("--drills-region", default=None,
                    help="primary region (default: [environment] primary_region, us-east-1)")
    group.addoption("--drills-api-url", default=None,
                    help="the vault API of an account target (else [api] url)")
    group.addoption("--drills-objectives", default=os.environ.get(OBJECTIVES_ENV),
                    help="TOML file overriding the runbook's objectives")
    group.addoption("--drills-reports", default=None,
                    help="where run reports go (default: a new temporary folder, so that only "
                         "`drills run` writes into the project's reports/)")
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
    group.addoption("--drills-dry-run", action="store_true", default=False,
                    help="plan every drill (faults, their calls and targets, procedures) "
                         "without acting: reads only, any mutating AWS call fails the run")
    group.addoption("--drills-allow-production", action="store_true", default=False,
                    help="drill a production target ([allow] production_accounts, or an "
                         "account alias with 'prod'); recorded in the report")
    _add_load_options(group)
    _add_exercise_options(group)


def _add_exercise_options(group: pytest.OptionGroup) -> None:
    """The annual exercise (runbook 7.3): the people at the terminal and the soak in DR."""
    group.addoption("--drills-operator", action="append", metavar="NAME:ROLE",
                    help="a person answering human steps at the terminal (repeatable; roles: "
                         "executor, scribe, incident-commander, on-call-l1 to on-call-l4)")
    group.addoption("--drills-interactive", action="store_true", default=False,
                    help="prompt the operators on the controlling terminal (/dev/tty); "
                         "without it human steps are acknowledged automatically")
    group.addoption("--drills-soak", default=None, metavar="DURATION",
                    help="how long to operate in the DR region after failover (e.g. 4h, "
                         "2m, 90s; default: none, the soak step is skipped)")


def _add_load_options(group: pytest.OptionGroup) -> None:
    """Load during drills (drills.load): simulated apps on the vault API, run by locust."""
    group.addoption("--drills-load", default=None, metavar="USERS[/SPAWN_RATE]",
                    help="run USERS simulated apps on the vault API through every drill "
                         "(default: [load] users of the objectives file, else none)")
    group.addoption("--drills-load-workers", type=int, default=None, metavar="N",
                    help="a locust master and N local worker processes (default one process)")
    group.addoption("--drills-load-remote-workers", type=int, default=None, metavar="M",
                    help="also wait for M locust workers started on other machines")
    group.addoption("--drills-master-host", default=None, metavar="HOST",
                    help="address the locust master listens on (default 127.0.0.1)")
    group.addoption("--drills-master-port", type=int, default=None, metavar="PORT",
                    help="port the locust master listens on (default: a free one)")


def pytest_configure(config: pytest.Config) -> None:
    for tag, text in TAGS.items():
        config.addinivalue_line("markers", f"{tag}: {text}")
    try:
        config.stash[RUN_KEY] = DrillsRun(config, lambda m: _write(config, m))
    except DrillError as exc:
        raise pytest.UsageError(str(exc)) from None
    run = config.stash[RUN_KEY]
    signals = contextlib.ExitStack()
    signals.enter_context(interruptible())
    signals.enter_context(stoppable(lambda: str(run.stopped or "a stop condition fired")))
    config.add_cleanup(signals.close)
    if not config.getoption("collectonly"):
        config.stash[RUN_KEY].observers.add(ProgressObserver(lambda m: _write(config, m)))


def _template(item: pytest.Item) -> ScenarioTemplate | None:
    function = getattr(item, "function", None)
    return scenario_wrapper_template_registry.get(function) if function else None


def feature_path(item: pytest.Item) -> Path | None:
    """The .feature file of a pytest-bdd scenario item (None for any other test)."""
    template = _template(item)
    return Path(template.feature.filename).resolve() if template is not None else None


def drill_needs(item: pytest.Item) -> frozenset[Capability]:
    """What a scenario needs of its target beyond the AWS APIs: what its tags need
    (`@twin_only`), and what the step definitions of its steps need (`drills.capabilities`)."""
    needed = tag_needs(marker.name for marker in item.iter_markers())
    for _step, definitions in scenario_steps(item):
        for definition in definitions:
            needed |= step_needs(definition.step_func)
    return needed


def scenario_steps(item: pytest.Item) -> list[tuple[Step, list[StepFunctionContext]]]:
    """A scenario item's steps (its example's values filled in), each with the step
    definitions that match it (empty for a test that is no drill)."""
    template = _template(item)
    if template is None:
        return []
    callspec = getattr(item, "callspec", None)
    example = callspec.params.get("_pytest_bdd_example", {}) if callspec is not None else {}
    definitions = list(step_function_context_registry.values())
    return [(step, [d for d in definitions if d.type in (None, step.type)
                    and d.parser.is_matching(step.name)])
            for step in template.render(example).steps]


def acts_on_target(item: pytest.Item) -> bool:
    """Whether a drill will open the target: it is not skipped and a step of it takes the
    `drill` or `drills_target` fixture."""
    if item.get_closest_marker("skip") is not None:
        return False
    return any({"drill", "drills_target"} & set(inspect.signature(d.step_func).parameters)
               for _step, definitions in scenario_steps(item) for d in definitions)


@dataclass(frozen=True, slots=True)
class Planned:
    """A drill a run selected (`drills run --list`): its feature (under features/, without
    `.feature`), its scenario, and why it will be skipped (None: it will run)."""

    feature: str
    scenario: str
    skipped: str | None

    @classmethod
    def of(cls, item: pytest.Item) -> Planned | None:
        """The drill a collected item is, with the skip the plugin marked it with (None for
        a test that is no drill)."""
        template, path = _template(item), feature_path(item)
        if template is None or path is None:
            return None
        base = item.config.rootpath / "features"
        feature = path.relative_to(base) if path.is_relative_to(base) else path
        skip = item.get_closest_marker("skip")
        return cls(str(feature.with_suffix("")), template.name,
                   str(skip.kwargs.get("reason", "skipped")) if skip is not None else None)


class Lister:
    """A pytest plugin object for `drills run --list`: keeps the drills this plugin selected
    (with its skips) and any collection error, and silences pytest's own report of them."""

    def __init__(self) -> None:
        self.planned: list[Planned] = []
        self.errors: list[str] = []

    @pytest.hookimpl(trylast=True)  # after the terminal plugin registered its reporter
    def pytest_configure(self, config: pytest.Config) -> None:
        config.pluginmanager.unregister(name="terminalreporter")

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.errors.append(report.longreprtext)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.planned = [p for p in map(Planned.of, session.items) if p is not None]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep only scenarios of the features named with --drills-feature (files or folders);
    an @expected_breach scenario passes only by breaching (strict xfail on the breach; not
    in a dry run, where nothing breaches); a
    scenario that needs what the target cannot do (`@twin_only`, or a capability its steps
    need) is skipped, with the reason, before anything runs."""
    target = TARGETS[config.getoption("drills_target")]
    dry_run = config.getoption("drills_dry_run")
    for item in items:
        if item.get_closest_marker("expected_breach") is not None and not dry_run:
            item.add_marker(pytest.mark.xfail(
                raises=ObjectiveBreached, strict=True,
                reason="the runbook procedure this drill follows is known to breach"))
        missing = drill_needs(item) - target.capabilities
        if missing:
            item.add_marker(pytest.mark.skip(reason=skip_reason(missing, target.kind)))
    wanted = [Path(p).resolve() for p in config.getoption("drills_feature")]
    if not wanted:
        return

    def selected(item: pytest.Item) -> bool:
        feature = feature_path(item)
        return feature is not None and any(feature == w or w in feature.parents
                                           for w in wanted)

    keep = [i for i in items if selected(i)]
    config.hook.pytest_deselected(items=[i for i in items if i not in keep])
    items[:] = keep


def pytest_collection_finish(session: pytest.Session) -> None:
    """Once the drills are known and before the first one: open the target and refuse one
    the allow-lists do not clear ([allow] accounts, regions, production), bad input (exit 2)
    with nothing touched; then start the run's load (`--load`), so that it runs through
    every steady-state check (a locust that cannot start is bad input too)."""
    run = session.config.stash.get(RUN_KEY, None)
    if run is None or session.config.getoption("collectonly"):
        return
    if not any(map(acts_on_target, session.items)):
        return  # no drill (pytest-bdd scenario) will act on the target
    try:
        run.ensure_target()
    except TargetNotAllowed as exc:
        raise pytest.UsageError(f"drills: {exc}") from None
    except Exception:
        return  # the first drill reports why the target cannot be opened
    if not run.load_settings.enabled:
        return
    try:
        run.start_load()
    except ConfigError as exc:
        raise pytest.UsageError(f"drills: {exc}") from None


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config
                             ) -> tuple[str, str, str] | None:
    """Under `drills run`, no progress dot for a drill: its own lines say how it went, and
    the dot would land at the start of the next drill's first line."""
    run = config.stash.get(RUN_KEY, None)
    if run is not None and run.dry_run and run.via_cli and report.when == "call":
        return report.outcome, "", ""  # the plan's own lines say it all
    if report.when != "call" or run is None or not run.via_cli or not any(
            d.drill_id == report.nodeid for d in run.record.drills):
        return None
    if hasattr(report, "wasxfail"):
        return ("xfailed" if report.skipped else "xpassed"), "", ""
    return report.outcome, "", ""


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
    request.node.stash[_PLANNED_KEY] = len(scenario.steps)
    run.record.drills.append(record)
    request.node.stash[_START_KEY] = time.monotonic()


def pytest_bdd_before_step(request: pytest.FixtureRequest, feature: Any, scenario: Any,
                           step: Any, step_func: Any) -> None:
    record = request.node.stash.get(DRILL_KEY, None)
    if record is None:
        return
    if not record.steps:
        run = request.config.stash[RUN_KEY]
        if "drill" in request.fixturenames:
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
    status, text, _code = classify(exception)
    _end_step(request, status, text)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """In a dry run, a drill is planned instead of run (`drills.dryrun`)."""
    run = pyfuncitem.config.stash.get(RUN_KEY, None)
    planned = Planned.of(pyfuncitem)
    if run is None or not run.dry_run or planned is None:
        return None
    run.plan_drill(pyfuncitem, planned.feature, planned.scenario, [
        (step, definitions[0] if definitions else None)
        for step, definitions in scenario_steps(pyfuncitem)])
    return True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    record = item.stash.get(DRILL_KEY, None)
    run = item.config.stash.get(RUN_KEY, None)
    if record is None or run is None:
        if run is not None and run.dry_run:
            _dry_run_report(item, call, report, run)
        return report
    if call.when == "call":
        run.completed.add(item.nodeid)
        exc = call.excinfo.value if call.excinfo else None
        planned = item.stash.get(_PLANNED_KEY, 0)
        if hasattr(report, "wasxfail") and report.skipped and len(record.steps) < planned:
            # The breach must be the one the last step shows: an earlier one is a failure.
            failed = record.steps[-1] if record.steps else None
            record.status = Status.FAILED
            record.error = (f"an @expected_breach drill breached before its last step, at "
                            f"'{failed.keyword} {failed.text}' ({exc})" if failed else str(exc))
            report.outcome, report.longrepr = "failed", record.error
            del report.wasxfail
            item.stash[_EXIT_KEY] = EXIT_FAILED
        elif hasattr(report, "wasxfail") and report.skipped:
            record.status = Status.EXPECTED_BREACH
            record.error = f"{type(exc).__name__}: {exc}" if exc else None
        elif report.failed and exc is None:  # a strict xfail that did not breach
            record.status = Status.FAILED
            record.error = ("the breach this @expected_breach drill exists to show did not "
                            "happen: the procedure was fixed (remove the tag) or the drill no "
                            "longer detects it")
        elif report.failed:
            record.status, record.error, code = classify(exc)
            item.stash[_EXIT_KEY] = code
            if exc is not None and (isinstance(exc, DrillError) or is_aws_error(exc)):
                report.longrepr = record.error  # our messages say it all: no traceback
        elif report.skipped:
            record.status = Status.SKIPPED
    elif call.when == "teardown":
        if report.failed and record.status.ok:
            record.status = Status.ERROR
            record.error = report.longreprtext[-2000:]
        record.duration = time.monotonic() - item.stash[_START_KEY]
        record.ended_utc = record.ended_utc or utc_now()
        run.drill_ended(record.status, item.stash.get(_EXIT_KEY, EXIT_FAILED))
        run.observers.drill_finished(run.record, record)
    return report


def _dry_run_report(item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport,
                    run: DrillsRun) -> None:
    """A drill a dry run skips goes into the plan with the reason; one it could not plan
    says why without a traceback (our messages say it all)."""
    skipped = Planned.of(item)
    if report.skipped and skipped is not None:
        run.plan_skipped(item.nodeid, skipped)
    exc = call.excinfo.value if call.excinfo else None
    if report.failed and isinstance(exc, DrillError):
        report.longrepr = f"{type(exc).__name__}: {exc}"


# trylast: after pytest's own teardown has reverted what was left, and after junitxml and
# cucumberjson wrote their files, so MANIFEST.sha256 seals those too.
@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    run = session.config.stash.get(RUN_KEY, None)
    if run is None:
        return
    # SIGINT and SIGTERM alike (`interruptible`): pytest ends the session as interrupted,
    # after its teardown reverted the faults.
    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    try:
        if run.dry_run:
            run.finish_plan()
        if run.record.drills:
            stopped = run.stopped
            for drill in run.record.drills:
                if drill.drill_id not in run.completed:  # stopped half-way
                    drill.status = (Status.STOPPED if stopped is not None else
                                    Status.INTERRUPTED if interrupted else Status.ERROR)
                    drill.error = (str(stopped) if stopped is not None else drill.error
                                   or "the run was interrupted during this drill")
                    drill.ended_utc = drill.ended_utc or utc_now()
                    if stopped is not None and run.record.stop is None:
                        run.record.stop = StopRecord.of(stopped, drill.name, run.stop_errors)
            run.record.ended_utc = utc_now()
            statuses = {d.status for d in run.record.drills}
            run.record.status = (Status.STOPPED if stopped is not None else
                                 Status.INTERRUPTED if interrupted else Status.ERROR
                                 if Status.ERROR in statuses else Status.FAILED
                                 if Status.FAILED in statuses else Status.NOT_STEADY
                                 if Status.NOT_STEADY in statuses else Status.PASSED)
            run.report_dir.mkdir(parents=True, exist_ok=True)
            run.stop_load()  # its files are evidence: complete before the report is sealed
            run.tidy_target()  # the drills' vaults deleted, as the report says
            run.observers.run_finished(run.record, run.report_dir)
    finally:
        run.close()


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def drills_run(pytestconfig: pytest.Config) -> DrillsRun:
    """The run's shared state: settings, journal, observers, report directory."""
    return pytestconfig.stash[RUN_KEY]


@pytest.fixture(scope="session")
def drills_target(drills_run: DrillsRun) -> Any:
    """The system under drill, started or attached once per session."""
    return drills_run.ensure_target()


@pytest.fixture(scope="session")
def crew(drills_run: DrillsRun) -> Crew:
    """The people answering human steps (`drills.human`): at the terminal, or automated."""
    return drills_run.ensure_crew()


@pytest.fixture
def drill(request: pytest.FixtureRequest, drills_run: DrillsRun) -> Iterator[Drill]:
    """The running drill of this scenario; reverts whatever is left at teardown."""
    record = request.node.stash.get(DRILL_KEY, None)
    if record is None:
        raise DrillError("the `drill` fixture only works inside a pytest-bdd scenario")
    target = drills_run.ensure_target()
    paths = drills_run.ensure_paths()
    settings = drills_run.settings
    injector = FaultInjector(drills_run.journal, drills_run.run_id, target.env_id,
                             target.allow_list(dict(settings.allow)),
                             BlastRadius(settings.max_share, "full_outage" in record.tags))
    current = Drill(record, settings, target, injector, paths.loop, paths.app,
                    drills_run.observers, nats=paths.nats, path=paths.name)
    watch = drills_run.watch_stop_alarms(injector, target, record.name)
    yield current
    if watch is not None:
        watch.stop()
        record.deviations.extend(watch.errors)
    errors = current.finish()
    record.deviations.extend(errors)
    breach = _conclude_load(drills_run, current)
    if errors:
        raise DrillError("; ".join(errors))
    if breach is not None:
        raise breach


def _conclude_load(run: DrillsRun, drill: Drill) -> ObjectiveBreached | None:
    """The load during this drill into its record (--load); a load objective it missed."""
    return run.load.conclude(drill) if run.load is not None else None
