"""`drills run`: a selection of drills and its options turned into one pytest session of
the feature suite (or a listing of it), and that session's outcome into the exit code."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from drills.cli import say
from drills.config import OBJECTIVES_ENV
from drills.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STOPPED,
    ConfigError,
)
from drills.tags import CADENCES, check_expression
from drills.twin.cli import add_start_options

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




def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """Add the `run` command to the `drills` parser."""
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
    run.add_argument("--objectives", default=os.environ.get(OBJECTIVES_ENV),
                     help="TOML file overriding the runbook objectives, with [environment] "
                     "names, [allow] accounts/regions/targets, [stop] alarms and [blast] "
                     f"max_share (see README; default ${OBJECTIVES_ENV})")
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
    add_start_options(run, when=" if a twin is started")
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


def pytest_args(args: argparse.Namespace, run_id: str, exercise: str) -> list[str]:
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
    session_args = pytest_args(args, run_id, exercise)  # checks the selection first
    if args.list:
        return _list(args, session_args)
    report_dir = Path(args.reports) / run_id
    report_dir.mkdir(parents=True, exist_ok=True)  # junit/cucumber need it
    watch = _RunWatch()
    evidence = [] if args.dry_run else [f"--junitxml={report_dir / 'junit.xml'}",
                                        f"--cucumberjson={report_dir / 'cucumber.json'}"]
    code = int(pytest.main([*session_args, *evidence], plugins=[watch]))
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
        say("\n".join(lister.errors))
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
