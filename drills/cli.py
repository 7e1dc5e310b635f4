"""The `drills` command: run drills, manage the local twin, roll back faults, read reports."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from drills.boundary import is_aws_error, translate
from drills.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STOPPED,
    ConfigError,
    DrillError,
    TwinError,
)
from drills.tags import CADENCES, check_expression

EPILOG = """examples:
  drills twin up                 start the local twin (moto, NATS cluster, enclave workers)
  eval "$(drills twin env)"      point the aws CLI and boto3 at it
  drills run monthly             run the monthly drills, write reports/<run-id>/
  drills run monthly --target aws --list
                                 which drills would run on an account, which are skipped
  drills run annual --soak 4h --operator Dana:incident-commander --operator Lee:executor
                                 the annual exercise, people prompted at this terminal
  drills rollback                revert any fault a killed run left behind
  drills rollback --target aws   ... and delete the drills' own vaults (drills-*) it left
  drills ci init github          scheduled drills and twin rehearsals in CI (also: gitlab)
"""


EXIT_CODES = """exit codes:
  0    every drill passed (an @expected_breach drill passes by showing its breach)
  1    an objective was breached, or a drill failed or could not be carried out
  2    bad input (unknown tag, missing file, bad objectives file), or refused by the
       guardrails (an account or region not in [allow], production without
       --allow-production, a fault over [blast] max_share): nothing was injected
  3    the target is unreachable or misconfigured (credentials, endpoint, missing
       resources), or the service was not in its steady state: nothing was drilled
  4    stopped: a [stop] alarm went to ALARM for another reason than the drill's own
       faults; every fault was reverted at once (report.json: status stopped, stop)
  130  interrupted (Ctrl-C or SIGTERM): every fault was reverted on the way out; the
       report says `interrupted`
--dry-run: 0 every drill planned with 0 mutating calls; 1 a mutating call was refused, or
  the run would fail at a fault (allow-list, a resource missing, prepare); 2 bad input;
  3 no twin is running or the target is unreachable
"""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _state_dir(args: argparse.Namespace) -> Path | None:
    return Path(args.state_dir) if args.state_dir else None


def cmd_twin(args: argparse.Namespace) -> int:
    from drills.twin import manager

    if args.twin_command == "up":
        twin = manager.up(
            _state_dir(args),
            timing=args.timing,
            backend=args.nats,
            vaults=args.vaults,
            desired=args.desired,
            progress=_say,
        )
        _say(f'twin ready in {twin.state.state_dir}; `eval "$(drills twin env)"` to use it')
        if args.attach:
            return _attach(twin.state.state_dir)
        return 0
    if args.twin_command == "down":
        if not manager.down(_state_dir(args), progress=_say):
            _say("no twin is running there; nothing to stop")
        return 0
    if args.twin_command == "status":
        try:
            rows = manager.status(_state_dir(args))
        except TwinError as exc:
            _say(f"drills: {exc}")
            return EXIT_FAILED  # no twin: nothing is healthy
        width = max(len(r.name) for r in rows)
        for row in rows:
            print(f"{'ok  ' if row.healthy else 'FAIL'}  {row.name:<{width}}  {row.detail}")
        return 0 if all(r.healthy for r in rows) else 1
    if args.twin_command == "env":
        for key, value in manager.env(_state_dir(args), args.region).items():
            print(f"export {key}={shlex.quote(value)}")
        return 0
    if args.twin_command == "build-enclave":
        return _build_enclave(args)
    raise AssertionError(args.twin_command)


def _build_enclave(args: argparse.Namespace) -> int:
    """Runbook 6.2 step 1 on the twin (./scripts/build-enclave.sh): register the AMI of an
    enclave build over the current one and print its id and PCRs, as the script does."""
    from drills.clients import Clients
    from drills.twin import manager
    from drills.twin.images import build_enclave

    twin = manager.Twin.load(_state_dir(args))  # TwinError (exit 2) when there is none
    clients = Clients.for_twin(twin.state.aws_url, args.region)
    current = clients("ssm", args.region).get_parameter(
        Name=twin.names.param_current_ami)["Parameter"]["Value"]
    build = build_enclave(clients("ec2", args.region), args.version, defect=args.defect,
                          from_ami=current)
    for line in build.lines():
        print(line)
    return 0


def _attach(state_dir: str) -> int:
    """Stay in the foreground until Ctrl-C, then take the twin down."""
    import signal

    from drills.twin import manager

    _say("attached; press Ctrl-C to stop the twin")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        manager.down(Path(state_dir), progress=_say)
    return 0


STATE_DIR_HELP = "twin state directory (default: $DRILLS_STATE_DIR or .drills/twin)"


def _pytest_args(args: argparse.Namespace, run_id: str, exercise: str) -> list[str]:
    """Translate `drills run` arguments into one pytest invocation of the feature suite
    (without the files it writes: `--list` writes none)."""
    project = Path(args.project).resolve()
    binder = project / "steps" / "test_drills.py"
    if not binder.exists():
        raise ConfigError(
            f"{binder} not found; run from the project root (the folder with "
            "features/ and steps/) or pass --project DIR"
        )
    out = [
        str(binder),
        "--rootdir",
        str(project),
        "-q",
        "--no-header",
        "-p",
        "no:cacheprovider",
        "-W",  # `drills` itself is imported before pytest starts: nothing to rewrite in it
        "ignore::pytest.PytestAssertRewriteWarning",
        f"--drills-run-id={run_id}",
        f"--drills-exercise={exercise}",
        f"--drills-reports={args.reports}",
        f"--drills-target={args.target}",
        f"--drills-nats={args.nats}",
        f"--drills-timing={args.timing}",
    ]
    if args.state_dir:
        out.append(f"--drills-state-dir={args.state_dir}")
    if args.objectives:
        out.append(f"--drills-objectives={args.objectives}")
    if args.region:
        out.append(f"--drills-region={args.region}")
    if args.api_url:
        out.append(f"--drills-api-url={args.api_url}")
    if args.allow_production:
        out.append("--drills-allow-production")
    for participant in args.participant or []:
        out.append(f"--drills-participant={participant}")
    if args.dry_run:
        out.append("--drills-dry-run")
    out += _load_args(args)
    out += _exercise_args(args)
    paths = [sel for sel in args.selection if sel.endswith(".feature") or Path(sel).is_dir()]
    tags = [sel for sel in args.selection if sel not in paths]
    for expression in tags:
        check_expression(expression)
    if args.preflight:
        if paths:
            paths.append(str(Path(args.project) / "features" / "preflight"))
        else:
            tags.append("preflight")
    for path in paths:
        if not Path(path).exists():
            raise ConfigError(
                f"feature path {path} does not exist; give a .feature file, a "
                "folder of them, or a tag such as monthly"
            )
        out.append(f"--drills-feature={Path(path).resolve()}")
    if tags:
        out += ["-m", " or ".join(f"({t})" for t in tags)]
    return out + list(args.pytest_args or [])


def _load_args(args: argparse.Namespace) -> list[str]:
    """`--load` and its companions as the plugin's options (checked here first: exit 2)."""
    from drills.load import parse_users

    out = []
    if args.load is not None:
        parse_users(args.load)
        out.append(f"--drills-load={args.load}")
    for option, value in (("load-workers", args.load_workers),
                          ("load-remote-workers", args.load_remote_workers),
                          ("master-host", args.master_host), ("master-port", args.master_port)):
        if value is not None:
            out.append(f"--drills-{option}={value}")
    return out


def _exercise_args(args: argparse.Namespace) -> list[str]:
    """`--operator` and `--soak` as the plugin's options (checked here first: exit 2). The
    run is interactive when an operator is named and stdin is a terminal: decided here,
    before pytest captures stdin."""
    from drills.config import duration
    from drills.human import Operator

    out = []
    for value in args.operator or []:
        Operator.parse(value)
        out.append(f"--drills-operator={value}")
    if args.operator and sys.stdin is not None and sys.stdin.isatty():
        out.append("--drills-interactive")
    if args.soak is not None:
        duration(args.soak, "--soak")
        out.append(f"--drills-soak={args.soak}")
    return out


def _add_exercise_arguments(run: argparse.ArgumentParser) -> None:
    """The annual exercise (runbook 7.3): people at the terminal, the soak in DR."""
    group = run.add_argument_group(
        "exercise", "the annual exercise (runbook 7.3): human steps and the soak in DR")
    group.add_argument(
        "--operator", action="append", metavar="NAME:ROLE",
        help="a person at this terminal who answers human steps (repeatable; ROLE: executor, "
        "scribe, incident-commander, on-call-l1 .. on-call-l4); with a terminal on stdin the "
        "run prompts them (runbook text, command to run) and records who acknowledged and "
        "when; without one (CI) human steps are acknowledged automatically and marked "
        "automated. In an interactive run operators are recorded as participants")
    group.add_argument(
        "--soak", metavar="DURATION",
        help="operate in the DR region this long after failover (e.g. 4h, 2m, 90s) with "
        "probes, the canary, --load and replication watched; runbook 7.3 requires 4h, a "
        "shorter soak is reported as a rehearsal; without --soak the soak step is skipped")


def _add_load_arguments(run: argparse.ArgumentParser) -> None:
    """Load during drills: simulated apps on the vault API, run by locust (drills.load)."""
    load = run.add_argument_group(
        "load", "simulated apps on the vault API through every drill (needs the `load` extra: "
        "pip install 'dr-drills[load]'); [load] in the objectives file sets the defaults")
    load.add_argument("--load", metavar="USERS[/SPAWN_RATE]",
                      help="run USERS apps (started SPAWN_RATE per second) from before the "
                      "first steady-state check to the end of the run, e.g. --load 20")
    load.add_argument("--load-workers", type=int, metavar="N",
                      help="a locust master and N local worker processes (default: one locust "
                      "process; each process uses at most one core)")
    load.add_argument("--load-remote-workers", type=int, metavar="M",
                      help="also wait for M workers started on other machines with `locust -f "
                      "<drills/load/locustfile.py> --worker --master-host HOST --master-port "
                      "PORT`")
    load.add_argument("--master-host", metavar="HOST",
                      help="address the locust master listens on (default 127.0.0.1; e.g. "
                      "0.0.0.0 for workers on other machines)")
    load.add_argument("--master-port", type=int, metavar="PORT",
                      help="port the locust master listens on (default: any free port)")


class _RunWatch:
    """A pytest plugin object that keeps the session's DrillsRun for `drills run`'s exit code."""

    def __init__(self) -> None:
        self.config: object | None = None

    def pytest_configure(self, config: object) -> None:
        self.config = config

    def exit_code(self) -> int | None:
        from drills.plugin import RUN_KEY

        stash = getattr(self.config, "stash", None)
        run = stash.get(RUN_KEY, None) if stash is not None else None
        return None if run is None else int(run.exit_code())


def cmd_run(args: argparse.Namespace) -> int:
    import pytest

    from drills.session import new_run_id

    if not args.selection:
        raise ConfigError(
            "say what to run: monthly, quarterly, annual, a tag expression such "
            "as 'enclave and not monthly', or feature paths"
        )
    exercise = (
        args.selection[0]
        if args.selection[0] in CADENCES and len(args.selection) == 1
        else "ad-hoc"
    )
    if args.dry_run and args.load is not None:
        raise ConfigError("--dry-run plans without load (simulated apps would write to the "
                          "service); leave out --load")
    run_id = args.run_id or new_run_id(exercise)
    pytest_args = _pytest_args(args, run_id, exercise)  # checks the selection first
    if args.list:
        return _list(args, pytest_args)
    report_dir = Path(args.reports) / run_id
    report_dir.mkdir(parents=True, exist_ok=True)  # junit/cucumber need it
    watch = _RunWatch()
    evidence = [] if args.dry_run else [f"--junitxml={report_dir / 'junit.xml'}",
                                        f"--cucumberjson={report_dir / 'cucumber.json'}"]
    code = int(pytest.main([*pytest_args, *evidence], plugins=[watch]))
    report = report_dir / ("plan.json" if args.dry_run else "report.json")
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        shutil.rmtree(report_dir, ignore_errors=True)
        raise _no_match(args)
    if code == pytest.ExitCode.USAGE_ERROR:
        if not any(report_dir.iterdir()):
            report_dir.rmdir()
        return EXIT_BAD_INPUT
    if code == pytest.ExitCode.INTERRUPTED:
        if report.exists():
            print(report.resolve())
        return EXIT_STOPPED if watch.exit_code() == EXIT_STOPPED else EXIT_INTERRUPTED
    if report.exists():
        print(report.resolve())
    drills_code = watch.exit_code()
    if drills_code is None or code not in (0, 1):
        return code
    return EXIT_FAILED if code == 1 and drills_code == 0 else drills_code


def _no_match(args: argparse.Namespace) -> ConfigError:
    return ConfigError(
        f"no drill matches {' '.join(args.selection)!r}; tags in use: "
        f"{', '.join(sorted(_tags_in_use(Path(args.project))))}; `drills steps` and "
        "features/ show what exists"
    )


def _list(args: argparse.Namespace, pytest_args: list[str]) -> int:
    """`drills run --list`: the drills the run would select, each to run or skipped with the
    reason, from a collection only (no target opened, nothing written or injected)."""
    import pytest

    from drills.plugin import Lister

    lister = Lister()
    code = int(pytest.main([*pytest_args, "--collect-only"], plugins=[lister]))
    if lister.errors:
        _say("\n".join(lister.errors))
        raise ConfigError("the features or steps could not be collected (above); fix them "
                          "before listing or running drills")
    if code == pytest.ExitCode.NO_TESTS_COLLECTED or (code == 0 and not lister.planned):
        raise _no_match(args)
    if code != pytest.ExitCode.OK:
        return code
    for drill in lister.planned:
        verdict = "run " if drill.skipped is None else "skip"
        why = f": {drill.skipped}" if drill.skipped is not None else ""
        print(f"{verdict}  {drill.feature} :: {drill.scenario}{why}")
    skipped = sum(drill.skipped is not None for drill in lister.planned)
    if skipped:
        print(_lacking(args.target))
    print(f"{len(lister.planned) - skipped} to run, {skipped} skipped on --target "
          f"{args.target}; nothing was started, injected or written")
    return EXIT_OK


def _lacking(target: str) -> str:
    """What the capabilities a `--target` lacks mean, for the reasons `--list` gives."""
    from drills.capabilities import ALL
    from drills.target import TARGETS

    lacks = sorted(ALL - TARGETS[target].capabilities)
    return "\n".join([f"the {TARGETS[target].kind} target lacks:"] +
                     [f"  {c.value}: {c.meaning}" for c in lacks])


def _tags_in_use(project: Path) -> set[str]:
    """The tags the project's features carry."""
    return {word[1:] for path in (project / "features").rglob("*.feature")
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip().startswith("@") for word in line.split()}


def cmd_rollback(args: argparse.Namespace) -> int:
    from drills.config import load_settings
    from drills.faults import rollback
    from drills.guard import clear
    from drills.journal import Journal
    from drills.target import target_for_rollback

    settings = load_settings(Path(args.objectives) if args.objectives else None)
    journal = Journal(Path(args.journal))
    pending = journal.pending()
    if not pending:
        _say(f"nothing to roll back: no pending fault in {journal.path}")
        if args.target != "aws":  # an account may still hold the vaults of a killed run
            return 0
    target = target_for_rollback(args.target, args.region, args.state_dir, settings.names)
    if target is not None:
        # The same allow-lists as a run; production needs no flag: reverting is the way out.
        clear(target.identity(), settings.clearance, named=target.named,
              capabilities=target.capabilities, allow_production=True)
    else:
        _say("no twin is running: faults on twins that are gone will be marked abandoned")
    ctx, env = (target.fault_context(), target.env_id) if target else (None, "")
    failed = 0
    for result in rollback(journal, ctx, env) if pending else ():
        entry = result.entry
        if result.reverted:
            _say(f"reverted {entry.fault_id}: {entry.kind} on {entry.target} (run {entry.run_id})")
        elif result.abandoned:
            _say(f"abandoned {entry.fault_id}: {result.error}")
        else:
            failed += 1
            _say(
                f"FAILED to revert {entry.fault_id}: {entry.kind} on {entry.target}: {result.error}"
            )
    if target is not None:
        try:
            swept = target.sweep_drill_vaults()
        except Exception as exc:
            failed += 1
            _say(f"FAILED: {translate(exc, 'deleting the drills own vaults')}")
        else:
            if swept is not None:
                _say(f"deleted {swept} (probe hygiene)")
    return 1 if failed else 0


def cmd_steps(args: argparse.Namespace) -> int:
    """List every step of the step library with its docstring."""
    import importlib
    import textwrap

    from pytest_bdd.steps import step_function_context_registry

    from drills.stepdoc import first_sentence, readable

    project = Path(args.project).resolve()
    if not (project / "steps").is_dir():
        raise ConfigError(f"no steps/ folder in {project}; run from the project root or pass "
                          "--project DIR")
    sys.path.insert(0, str(project))
    for module in sorted((project / "steps").glob("*.py")):
        if not module.stem.startswith(("_", "test_")):
            importlib.import_module(f"steps.{module.stem}")
    order = {"given": 0, "when": 1, "then": 2}
    contexts = sorted(step_function_context_registry.values(),
                      key=lambda c: (order.get(c.type or "", 3), c.parser.name))
    for ctx in contexts:
        where = f"{ctx.step_func.__module__}.{ctx.step_func.__name__}"
        is_regex = type(ctx.parser).__name__ == "re"
        print(f"{(ctx.type or 'step').capitalize():<5} {readable(ctx.parser.name, is_regex)}")
        for line in textwrap.wrap(f"{first_sentence(ctx.step_func)}  [{where}]", 94):
            print(f"      {line}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drills",
        description="Executable disaster-recovery drills with measured RTO/RPO.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--state-dir", help=STATE_DIR_HELP)
    # Also accepted after any subcommand (`drills twin down --state-dir X`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", default=argparse.SUPPRESS, help=STATE_DIR_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    twin = sub.add_parser("twin", help="manage the local twin of the vault stack")
    tsub = twin.add_subparsers(dest="twin_command", required=True)
    t_up = tsub.add_parser(
        "up", parents=[common], help="start the twin; returns once every component is healthy"
    )
    t_up.add_argument(
        "--nats",
        choices=["process", "container"],
        default="process",
        help="NATS backend: real nats-server processes (default) or Docker containers",
    )
    t_up.add_argument(
        "--timing",
        choices=["fast", "realistic"],
        default="fast",
        help="delays of AWS behaviours (boot, health checks); see README",
    )
    t_up.add_argument("--vaults", type=int, default=24, help="vaults to enroll (default 24)")
    t_up.add_argument(
        "--desired",
        type=int,
        default=2,
        help="enclave ASG desired capacity (default 2, as the runbook)",
    )
    t_up.add_argument(
        "--attach", action="store_true", help="stay in the foreground; Ctrl-C stops the twin"
    )
    tsub.add_parser("down", parents=[common], help="stop every process of the twin")
    tsub.add_parser(
        "status", parents=[common], help="show every component and its health (exit 1 if unhealthy)"
    )
    t_env = tsub.add_parser(
        "env", parents=[common], help="print shell exports that point aws/boto3 at the twin"
    )
    t_env.add_argument("--region", default="us-east-1")
    t_build = tsub.add_parser(
        "build-enclave", parents=[common],
        help="register an enclave build's AMI and print its id and PCR0/1/2 (runbook 6.2 "
             "step 1, what ./scripts/build-enclave.sh prints)")
    t_build.add_argument("--version", required=True, help="the build's version, e.g. 2.0.0")
    t_build.add_argument("--defect", choices=["crash-on-start", "wrong-pcrs"], default=None,
                         help="a build broken on purpose (for drills of runbook 6.3)")
    t_build.add_argument("--region", default="us-east-1")
    twin.set_defaults(func=cmd_twin)

    run = sub.add_parser(
        "run",
        parents=[common],
        help="run drills (monthly, quarterly, annual, a tag expression, feature paths)",
        description="Run matching drills through pytest-bdd on the twin (started if none is "
        "running, stopped after) or an account; writes reports/<run-id>/. A run on the twin is "
        "a rehearsal: it proves the procedures end to end, with recovery times set by the "
        "timing profile.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "selection",
        nargs="*",
        help="monthly | quarterly | annual | tag expression | features/... paths",
    )
    run.add_argument("--objectives", help="TOML file overriding the runbook objectives, with "
                     "[environment] names, [allow] accounts/regions/targets, [stop] alarms "
                     "and [blast] max_share (see README)")
    run.add_argument("--list", action="store_true",
                     help="only list the drills this run selects (feature :: scenario), each "
                     "to run or skipped with the reason (@twin_only, or a capability the "
                     "target lacks); starts no twin, calls no AWS API, injects nothing, "
                     "writes no file; exit 0")
    run.add_argument("--dry-run", action="store_true",
                     help="plan every selected drill without acting: per drill, the faults "
                     "its steps would inject (the AWS calls and what they act on, read from "
                     "the target) and the runbook procedures it would run; written to "
                     "reports/<run-id>/plan.json and plan.txt. Only read calls are made: "
                     "every boto3 call is counted and any other is refused before it is sent "
                     "and fails the run. Starts no twin (one must be running), journals, "
                     "injects, probes and writes nothing to the target; exit 0 when every "
                     "drill is planned with 0 mutating calls")
    run.add_argument("--preflight", action="store_true",
                     help="also run the @preflight backup verification (runbook 2.1-2.4)")
    run.add_argument("--reports", default="reports", help="report root (default reports/)")
    run.add_argument("--run-id", help="run id (default: UTC time, exercise, random suffix)")
    run.add_argument(
        "--target",
        choices=["twin", "aws"],
        default="twin",
        help="the local twin (default) or the AWS account of your credentials",
    )
    run.add_argument("--region", default=None,
                     help="the account's primary region (default: primary_region under "
                          "[environment] in the objectives file, else us-east-1)")
    run.add_argument("--api-url", default=None,
                     help="the vault API of an account target (else [api] url in the "
                          "objectives file, else $DRILLS_API_URL)")
    run.add_argument("--allow-production", action="store_true",
                     help="drill a production account ([allow] production_accounts, or an "
                          "IAM account alias containing 'prod'); refused without it; the "
                          "report records that it was given")
    run.add_argument(
        "--nats",
        choices=["process", "container"],
        default="process",
        help="NATS backend if a twin is started (default process)",
    )
    run.add_argument(
        "--timing",
        choices=["fast", "realistic"],
        default="fast",
        help="twin timing profile if a twin is started (default fast)",
    )
    run.add_argument(
        "--participant",
        action="append",
        metavar="NAME:ROLE",
        help="record a participant in the report (repeatable; for the annual exercise's "
        "roles: executor, scribe, incident-commander, on-call-l1 .. on-call-l4)",
    )
    run.add_argument("--project", default=".", help="folder holding features/ and steps/; "
                     "arguments after -- go to pytest (e.g. -- -k crash)")
    _add_load_arguments(run)
    _add_exercise_arguments(run)
    run.set_defaults(func=cmd_run)

    rb = sub.add_parser(
        "rollback",
        parents=[common],
        help="revert every fault a killed or failed run left pending in the journal",
    )
    rb.add_argument(
        "--journal",
        default=os.environ.get("DRILLS_JOURNAL", ".drills/journal.jsonl"),
        help="fault journal (default .drills/journal.jsonl)",
    )
    rb.add_argument("--target", choices=["twin", "aws"], default="twin",
                    help="aws: also delete every vault the drills made (ids drills-*) from "
                         "both regions' vault buckets and tables")
    rb.add_argument("--region", default=None,
                    help="the account's primary region (default: primary_region under "
                         "[environment] in the objectives file, else us-east-1)")
    rb.add_argument("--objectives",
                    help="the objectives file of the runs: [environment] names the account's "
                         "resources, [allow] accounts and regions where rollback may act")
    rb.set_defaults(func=cmd_rollback)

    steps = sub.add_parser("steps", help="list every step of the step library with its "
                           "docstring")
    steps.add_argument("--project", default=".", help="folder holding steps/")
    steps.set_defaults(func=cmd_steps)

    from drills.evidence.cli import register

    register(sub, common)
    from drills import ci

    ci.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after `--` goes to pytest untouched (`drills run monthly -- -k crash`).
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: len(argv) - len(extra) - (1 if extra or "--" in argv else 0)])
    args.pytest_args = extra
    try:
        return int(args.func(args))
    except DrillError as exc:
        _say(f"drills: error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        _say("drills: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader left (`drills steps | head`): nothing more to say, and Python's own
        # flush at exit must not fail on the closed pipe either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        if not is_aws_error(exc):
            raise
        error = translate(exc)
        _say(f"drills: error: {error}")
        return error.exit_code if isinstance(error, DrillError) else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
