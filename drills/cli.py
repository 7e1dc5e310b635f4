"""The `drills` command: its parser, its error handling, and the small commands (rollback,
steps). Each command group registers itself: `drills run` in `drills.launch`, `drills twin`
in `drills.twin.cli`, the report commands in `drills.evidence.cli`, `drills ci` in
`drills.ci`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from drills.boundary import is_aws_error, translate
from drills.config import OBJECTIVES_ENV
from drills.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ConfigError,
    DrillError,
)

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


def say(message: str) -> None:
    """Tell the person at the terminal (stderr, so stdout stays for what commands print)."""
    print(message, file=sys.stderr, flush=True)


def state_dir(args: argparse.Namespace) -> Path | None:
    """The twin state directory given with --state-dir, if any."""
    return Path(args.state_dir) if args.state_dir else None


STATE_DIR_HELP = "twin state directory (default: $DRILLS_STATE_DIR or .drills/twin)"


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
        say(f"nothing to roll back: no pending fault in {journal.path}")
        if args.target != "aws":  # an account may still hold the vaults of a killed run
            return 0
    target = target_for_rollback(args.target, args.region, args.state_dir, settings.names)
    if target is not None:
        # The same allow-lists as a run; production needs no flag: reverting is the way out.
        clear(target.identity(), settings.clearance, named=target.named,
              capabilities=target.capabilities, allow_production=True)
    else:
        say("no twin is running: faults on twins that are gone will be marked abandoned")
    ctx, env = (target.fault_context(), target.env_id) if target else (None, "")
    failed = 0
    for result in rollback(journal, ctx, env) if pending else ():
        entry = result.entry
        if result.reverted:
            say(f"reverted {entry.fault_id}: {entry.kind} on {entry.target} (run {entry.run_id})")
        elif result.abandoned:
            say(f"abandoned {entry.fault_id}: {result.error}")
        else:
            failed += 1
            say(
                f"FAILED to revert {entry.fault_id}: {entry.kind} on {entry.target}: {result.error}"
            )
    if target is not None:
        try:
            swept = target.sweep_drill_vaults()
        except Exception as exc:
            failed += 1
            say(f"FAILED: {translate(exc, 'deleting the drills own vaults')}")
        else:
            if swept is not None:
                say(f"deleted {swept} (probe hygiene)")
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
    """The whole `drills` parser, every command group registered."""
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
    # Imported here: each of these modules takes `say` and the like from this one.
    from drills import ci, launch
    from drills.evidence import cli as evidence_cli
    from drills.twin import cli as twin_cli

    twin_cli.register(sub, common)
    launch.register(sub, common)

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
    rb.add_argument("--objectives", default=os.environ.get(OBJECTIVES_ENV),
                    help="the objectives file of the runs: [environment] names the account's "
                         "resources, [allow] accounts and regions where rollback may act "
                         f"(default ${OBJECTIVES_ENV})")
    rb.set_defaults(func=cmd_rollback)

    steps = sub.add_parser("steps", help="list every step of the step library with its "
                           "docstring")
    steps.add_argument("--project", default=".", help="folder holding steps/")
    steps.set_defaults(func=cmd_steps)

    evidence_cli.register(sub, common)
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
        say(f"drills: error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        say("drills: interrupted")
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
        say(f"drills: error: {error}")
        return error.exit_code if isinstance(error, DrillError) else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
