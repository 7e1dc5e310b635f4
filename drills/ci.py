"""`drills ci init github|gitlab`: CI files that drill the account on a schedule and rehearse
every change on the local twin.

Both platforms get the same plan; only the YAML around it differs:

- the monthly schedule runs `monthly` and the quarterly one `quarterly` against the account,
  and a manual run takes any tag expression (a workflow_dispatch input; a GitLab variable);
- every change to features/ or steps/ rehearses on the twin, installed with the README's
  own command;
- the account is reached by OIDC role assumption, never stored keys, and one run at a time
  holds an account (GitHub `concurrency:`, GitLab `resource_group:`);
- reports/ is kept even when the run fails; summary.md goes to the job summary (GitLab has
  none: to the job log, and a `drills-summary.md` artifact exposed in merge requests);
- the job fails with `drills run`'s exit code: 1 a breach or failed drill, 2 bad input or
  refused by the allow-lists, 3 the account unreachable or not steady, 4 stopped by a
  [stop] alarm (drills/errors.py).

The shell the jobs run is written once (`_drill_script`, `_summary_script`, `Job`).
"""

from __future__ import annotations

import argparse
import shlex
import textwrap
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from drills import __version__
from drills.errors import ConfigError
from drills.tags import check_expression


class Platform(Enum):
    """A CI service `drills ci init` writes for."""

    GITHUB = "github"
    GITLAB = "gitlab"

    @property
    def default_output(self) -> Path:
        """Where the platform looks for its files, from the repository root."""
        return Path(".github/workflows") if self is Platform.GITHUB else Path(".")


@dataclass(frozen=True)
class Setting:
    """A CI variable the user sets once, and what it holds."""

    name: str
    holds: str


#: Variables the account jobs read to authenticate (repository variables on GitHub, CI/CD
#: variables on GitLab). None is a secret: OIDC needs no stored key.
AUTH_SETTINGS = (
    Setting("DRILLS_AWS_ROLE_ARN", "IAM role the job assumes with its OIDC token"),
    Setting("DRILLS_AWS_REGION", "primary region (STS, the drills, `drills rollback`)"),
    Setting("DRILLS_AWS_ACCOUNT_ID", "the account: one run at a time; others are refused"),
)
#: What `drills run --target aws` reads from its environment (drills/target.py).
TARGET_SETTINGS = (
    Setting("DRILLS_API_URL", "vault API the probes and the canary call"),
    Setting("DRILLS_NATS_URL", "vault service's NATS URLs, comma-separated"),
    Setting("DRILLS_PROBE_VAULTS", "optional vault_id:sha256 pairs the probes read (unset: the "
            "run enrols drills-probe-* vaults and deletes them)"),
)

INSTALL = "python3 -m pip install -e '.[load]'"  # the README's install command
TRIGGER_DIRS = ("features", "steps")
GRACE_MINUTES = 5  # after SIGTERM, drills reverts its faults; SIGKILL only after this
SUMMARY_COPY = "drills-summary.md"  # GitLab exposes only fixed paths in merge requests


def _check_cron(cron: str) -> None:
    fields = cron.split()
    if len(fields) != 5 or not all(set(f) <= set("0123456789*,/-") for f in fields):
        raise ConfigError(f"cron {cron!r} is not five numeric fields (minute hour day month "
                          "weekday), e.g. '0 6 1 * *' for 06:00 UTC on the 1st")


@dataclass(frozen=True)
class CiOptions:
    """What `drills ci init` lets a user vary; tag expressions and crons are checked here."""

    monthly_cron: str = "0 6 1 * *"
    quarterly_cron: str = "0 6 8 1,4,7,10 *"  # not the 1st: the monthly run holds the account
    manual_tags: str = "monthly"
    rehearsal_tags: str = "monthly or quarterly"  # what the schedules will drill
    objectives: str | None = None
    python: str = "3.11"
    max_minutes: int = 110
    retention_days: int = 90

    def __post_init__(self) -> None:
        check_expression(self.manual_tags)
        check_expression(self.rehearsal_tags)
        for _, cron in self.schedules:
            _check_cron(cron)
        if self.monthly_cron == self.quarterly_cron:
            raise ConfigError("the monthly and quarterly crons are the same; a scheduled run "
                              "is told which it is by its cron, so give them different days")
        if self.max_minutes < 1 or self.retention_days < 1:
            raise ConfigError("--max-minutes and --retention-days must be at least 1")

    @property
    def schedules(self) -> tuple[tuple[str, str], ...]:
        """(cadence tag, cron) of each scheduled run against the account."""
        return (("monthly", self.monthly_cron), ("quarterly", self.quarterly_cron))

    @property
    def session_seconds(self) -> int:
        """Credentials outlive the drills' time limit, their reverts and the rollback."""
        return (self.max_minutes + 3 * GRACE_MINUTES) * 60

    @property
    def job_minutes(self) -> int:
        """The job's limit: install, the drills and their clean-up fit in it."""
        return self.max_minutes + 4 * GRACE_MINUTES


@dataclass(frozen=True)
class Job:
    """One job of the plan: where it drills and which drills."""

    key: str  # "twin" | "aws": `drills run --target` and part of the run id
    tags: str  # a shell word: a quoted expression, or "$DRILLS_TAGS" chosen by the trigger

    def drill_script(self, options: CiOptions) -> str:
        """`drills run`, bounded in time (on SIGTERM drills reverts its faults), then, on an
        account, `drills rollback` for anything a killed run left; drills' exit code last."""
        run = ["drills", "run", "--target", self.key, "--run-id", '"$DRILLS_RUN_ID"']
        rollback = ["drills", "rollback", "--target", "aws", "--region", '"$AWS_REGION"']
        if self.key == "aws":  # the account's region, as the credentials step set it
            run += ["--region", '"$AWS_REGION"']
        if options.objectives:  # rollback reads its [environment] and [allow] too
            objectives = ["--objectives", shlex.quote(options.objectives)]
            run, rollback = run + objectives, rollback + objectives
        command = " ".join([*run, self.tags])
        if self.key == "twin":
            return command + "\n"  # `drills run` stops the twin it started
        return ("code=0\n"
                f"timeout --signal=TERM --kill-after={GRACE_MINUTES}m {options.max_minutes}m "
                f"{command} || code=$?\n"
                f"{' '.join(rollback)} || code=1\n"
                'exit "$code"\n')


def _rehearsal(options: CiOptions) -> Job:
    return Job("twin", shlex.quote(options.rehearsal_tags))


ACCOUNT = Job("aws", '"$DRILLS_TAGS"')  # the trigger sets DRILLS_TAGS


def _summary_script(sink: str) -> str:
    """summary.md of this run into `sink` (a shell redirection), or why there is none."""
    return ('summary="reports/$DRILLS_RUN_ID/summary.md"\n'
            'if [ -f "$summary" ]; then cat "$summary"; else echo "No $summary: drills stopped '
            f'before writing its report; its log says why."; fi {sink}\n')


def _header(platform: Platform, what: str, notes: list[str]) -> str:
    """A comment block: prose wrapped, indented lines (the variables table) as they are."""
    lines = [f"{what}, written by `drills ci init {platform.value}` (drills {__version__}).",
             *notes]
    wrapped = [line if line.startswith(" ") else textwrap.fill(line, 96) for line in lines]
    return "".join(f"# {line}\n" for text in wrapped for line in text.splitlines())


def _settings_notes(where: str, settings: tuple[Setting, ...]) -> list[str]:
    width = max(len(s.name) for s in settings)
    return [f"Set these {where}:", *(f"  {s.name:<{width}}  {s.holds}" for s in settings)]


def _run_id(platform: Platform, job: Job) -> str:
    if platform is Platform.GITHUB:
        return f"github-${{{{ github.run_id }}}}-${{{{ github.run_attempt }}}}-{job.key}"
    return f"gitlab-$CI_PIPELINE_ID-$CI_JOB_ID-{job.key}"


def _schedule_note(options: CiOptions) -> str:
    return "; ".join(f"{cron!r} runs {tag}" for tag, cron in options.schedules)


# --- GitHub Actions ---------------------------------------------------------------------------

def _github_steps(options: CiOptions, job: Job, authenticate: list[dict[str, Any]]
                  ) -> list[dict[str, Any]]:
    return [
        {"uses": "actions/checkout@v4"},
        {"uses": "actions/setup-python@v5", "with": {"python-version": options.python}},
        {"name": "Install drills", "run": INSTALL},
        *authenticate,
        {"name": "Drill", "run": job.drill_script(options)},
        {"name": "Job summary", "if": "always()",
         "run": _summary_script('>> "$GITHUB_STEP_SUMMARY"')},
        {"name": "Keep the reports", "if": "always()", "uses": "actions/upload-artifact@v4",
         "with": {"name": "drills-${{ env.DRILLS_RUN_ID }}", "path": "reports/",
                  "retention-days": options.retention_days}},
    ]


def github_rehearsal(options: CiOptions) -> dict[str, Any]:
    """The workflow that rehearses every change to features/ or steps/ on the twin."""
    job = _rehearsal(options)
    paths = [f"{d}/**" for d in TRIGGER_DIRS]
    return {
        "name": "drills rehearsal",
        "on": {"push": {"paths": paths}, "pull_request": {"paths": paths}},
        "permissions": {"contents": "read"},
        "jobs": {"rehearsal": {
            "name": "Drills on the local twin",
            "runs-on": "ubuntu-latest",
            "timeout-minutes": options.job_minutes,
            "concurrency": {"group": "drills-twin-${{ github.ref }}",
                            "cancel-in-progress": True},
            "env": {"DRILLS_RUN_ID": _run_id(Platform.GITHUB, job)},
            "steps": _github_steps(options, job, []),
        }},
    }


def github_account(options: CiOptions) -> dict[str, Any]:
    """The workflow that drills the account: on its schedules, or by hand with any tags."""
    scheduled = " || ".join(f"(github.event.schedule == '{cron}' && '{tag}')"
                            for tag, cron in options.schedules)
    authenticate = {
        "name": "Assume the drill role (OIDC, no stored keys)",
        "uses": "aws-actions/configure-aws-credentials@v5",
        "with": {"role-to-assume": "${{ vars.DRILLS_AWS_ROLE_ARN }}",
                 "aws-region": "${{ vars.DRILLS_AWS_REGION }}",
                 "allowed-account-ids": "${{ vars.DRILLS_AWS_ACCOUNT_ID }}",
                 "role-session-name": "drills-${{ github.run_id }}",
                 "role-duration-seconds": options.session_seconds},
    }
    return {
        "name": "drills",
        "on": {
            "schedule": [{"cron": cron} for _, cron in options.schedules],
            "workflow_dispatch": {"inputs": {"tags": {
                "description": "Tag expression to drill against the account, e.g. "
                               "'enclave and not monthly'",
                "required": True, "default": options.manual_tags, "type": "string"}}},
        },
        "permissions": {"contents": "read"},
        "jobs": {"drill": {
            "name": "Drills against the account",
            "runs-on": "ubuntu-latest",
            "timeout-minutes": options.job_minutes,
            "permissions": {"contents": "read", "id-token": "write"},
            "concurrency": {"group": "drills-aws-${{ vars.DRILLS_AWS_ACCOUNT_ID }}",
                            "cancel-in-progress": False},
            "env": {"DRILLS_RUN_ID": _run_id(Platform.GITHUB, ACCOUNT),
                    "DRILLS_TAGS": f"${{{{ inputs.tags || {scheduled} }}}}",
                    **{s.name: f"${{{{ vars.{s.name} }}}}" for s in TARGET_SETTINGS}},
            "steps": _github_steps(options, ACCOUNT, [authenticate]),
        }},
    }


def _github_files(options: CiOptions) -> dict[str, str]:
    account_notes = [
        f"Schedules (UTC): {_schedule_note(options)}. \"Run workflow\" takes any tag expression.",
        *_settings_notes("repository variables (Settings > Secrets and variables > Actions > "
                         "Variables)", AUTH_SETTINGS + TARGET_SETTINGS),
        "The role trusts token.actions.githubusercontent.com for this repository (audience "
        "sts.amazonaws.com), and its maximum session duration is at least "
        f"{options.session_seconds} s.",
        "The job fails with `drills run`'s exit code: 1 a breach or failed drill, 2 bad input "
        "or refused by the allow-lists, 3 the account unreachable or not steady, 4 stopped by "
        "a [stop] alarm.",
    ]
    rehearsal_notes = [f"Every change to {' or '.join(d + '/' for d in TRIGGER_DIRS)} runs "
                       f"{options.rehearsal_tags!r} on the local twin; no account, no secrets."]
    return {
        "drills.yml": _header(Platform.GITHUB, "Disaster-recovery drills against the AWS "
                              "account", account_notes) + _dump(github_account(options), "jobs"),
        "drills-rehearsal.yml": _header(Platform.GITHUB, "Disaster-recovery drills rehearsed "
                                        "on the local twin", rehearsal_notes)
        + _dump(github_rehearsal(options), "jobs"),
    }


# --- GitLab CI --------------------------------------------------------------------------------

_ASSUME_ROLE = """\
creds=$(aws sts assume-role-with-web-identity \\
  --role-arn "$DRILLS_AWS_ROLE_ARN" --role-session-name "drills-$CI_PIPELINE_ID" \\
  --web-identity-token "$DRILLS_ID_TOKEN" --duration-seconds {seconds} \\
  --query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' --output text)
export $(printf 'AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_SESSION_TOKEN=%s' $creds)
account=$(aws sts get-caller-identity --query Account --output text)
if [ "$account" != "$DRILLS_AWS_ACCOUNT_ID" ]; then
  echo "the role is in account $account, not DRILLS_AWS_ACCOUNT_ID: refusing to drill it"
  exit 3
fi
"""


def _gitlab_job(options: CiOptions, job: Job, rules: list[dict[str, Any]],
                authenticate: tuple[str, ...] = (), variables: dict[str, str] | None = None,
                **keywords: Any) -> dict[str, Any]:
    return {
        "image": f"python:{options.python}",  # per job: `include:` of this file changes no other
        "rules": rules,
        **keywords,
        "timeout": f"{options.job_minutes} minutes",
        "variables": {"DRILLS_RUN_ID": _run_id(Platform.GITLAB, job), **(variables or {})},
        "script": [INSTALL, *authenticate, job.drill_script(options)],
        "after_script": [_summary_script(f"| tee {SUMMARY_COPY}")],
        "artifacts": {
            "when": "always",
            "expose_as": "drill summary",
            "paths": [SUMMARY_COPY, "reports/"],
            "reports": {"junit": "reports/*/junit.xml"},
            "expire_in": f"{options.retention_days} days",
        },
    }


def gitlab_pipeline(options: CiOptions) -> dict[str, Any]:
    """.gitlab-ci.yml: a rehearsal job on changes, an account job for schedules and manual
    pipelines (GitLab keeps schedules outside the file: see the header)."""
    rehearsal = _rehearsal(options)
    changed = [{"if": '$CI_PIPELINE_SOURCE == "push" || '
                      '$CI_PIPELINE_SOURCE == "merge_request_event"',
                "changes": [f"{d}/**/*" for d in TRIGGER_DIRS]}]
    scheduled = [{"if": '$CI_PIPELINE_SOURCE == "schedule" || $CI_PIPELINE_SOURCE == "web"'}]
    return {
        "variables": {"DRILLS_TAGS": {
            "value": options.manual_tags,
            "description": "Tag expression a scheduled or manual pipeline drills against the "
                           "account, e.g. 'enclave and not monthly'"}},
        "drills-rehearsal": _gitlab_job(options, rehearsal, changed, interruptible=True),
        "drills-account": _gitlab_job(
            options, ACCOUNT, scheduled,
            interruptible=False,
            resource_group="drills-aws-$DRILLS_AWS_ACCOUNT_ID",
            id_tokens={"DRILLS_ID_TOKEN": {"aud": "$CI_SERVER_URL"}},
            variables={"AWS_REGION": "$DRILLS_AWS_REGION",
                       "AWS_DEFAULT_REGION": "$DRILLS_AWS_REGION"},
            authenticate=(_ASSUME_ROLE.format(seconds=options.session_seconds),)),
    }


def _gitlab_files(options: CiOptions) -> dict[str, str]:
    notes = [
        "Changes to " + " or ".join(d + "/" for d in TRIGGER_DIRS) + " rehearse "
        f"{options.rehearsal_tags!r} on the local twin (no account, no secrets).",
        "Create two pipeline schedules (Build > Pipeline schedules), each with the variable "
        "DRILLS_TAGS: " + "; ".join(f"{cron!r} with DRILLS_TAGS={tag}"
                                    for tag, cron in options.schedules)
        + ". \"Run pipeline\" takes any tag expression in DRILLS_TAGS.",
        *_settings_notes("CI/CD variables (Settings > CI/CD > Variables)",
                         AUTH_SETTINGS + TARGET_SETTINGS),
        "The role trusts this GitLab's OIDC issuer ($CI_SERVER_URL, also the audience), and "
        f"its maximum session duration is at least {options.session_seconds} s.",
        f"GitLab has no job summary: summary.md is printed in the job log and kept as the "
        f"{SUMMARY_COPY} artifact, linked from merge requests; junit.xml feeds the Tests tab.",
        "The job fails with `drills run`'s exit code: 1 a breach or failed drill, 2 bad input "
        "or refused by the allow-lists, 3 the account unreachable or not steady, 4 stopped by "
        "a [stop] alarm.",
    ]
    return {".gitlab-ci.yml": _header(Platform.GITLAB, "Disaster-recovery drills", notes)
            + _dump(gitlab_pipeline(options))}


# --- YAML and files ---------------------------------------------------------------------------

class _Dumper(yaml.SafeDumper):
    """Block style with indented lists; scripts as literal blocks; keys in the order given."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True  # a repeated list is written out again, not as &id001 / *id001


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value,
                                   style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def _dump(doc: dict[str, Any], spaced: str | None = None) -> str:
    """YAML with a blank line between top-level keys and between the jobs under `spaced`."""
    def one(key: str, value: Any) -> str:
        return yaml.dump({key: value}, Dumper=_Dumper, sort_keys=False, width=4096)

    parts = []
    for key, value in doc.items():
        if key == spaced:
            jobs = "\n".join(one(k, v) for k, v in value.items())
            parts.append(f"{key}:\n" + textwrap.indent(jobs, "  ", lambda line: bool(line.strip())))
        else:
            parts.append(one(key, value))
    return "\n" + "\n".join(parts)


def render(platform: Platform, options: CiOptions) -> dict[str, str]:
    """The files for `platform`: name -> text."""
    return _github_files(options) if platform is Platform.GITHUB else _gitlab_files(options)


def write(files: dict[str, str], output: Path, force: bool = False) -> list[Path]:
    """Write every file into `output`, or none if any exists and `force` is not given."""
    paths = [output / name for name in files]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise ConfigError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}"
                          "; nothing was written: pass --force to overwrite, or --output DIR")
    output.mkdir(parents=True, exist_ok=True)
    for path, text in zip(paths, files.values(), strict=True):
        path.write_text(text, encoding="utf-8")
    return paths


# --- `drills ci` --------------------------------------------------------------------------------

def cmd_init(args: argparse.Namespace) -> int:
    """Write the platform's files and say what was written and what to set up."""
    platform = Platform(args.platform)
    options = CiOptions(monthly_cron=args.monthly_cron, quarterly_cron=args.quarterly_cron,
                        manual_tags=args.manual_tags, rehearsal_tags=args.rehearse,
                        objectives=args.objectives, python=args.python,
                        max_minutes=args.max_minutes, retention_days=args.retention_days)
    output = Path(args.output) if args.output else platform.default_output
    for path in write(render(platform, options), output, args.force):
        print(f"wrote {path}")
    print("set up: the comment at the top of each file lists the variables (and schedules) "
          "it needs")
    return 0


INIT_EPILOG = f"""what the files do:
  monthly / quarterly schedules   drills run monthly | quarterly --target aws
  manual run                      any tag expression (default: monthly) --target aws
  change to features/ or steps/   drills run <--rehearse> on the local twin
  the account is reached by OIDC role assumption (no stored keys), one run per account at a
  time; reports/ is kept as artefacts and summary.md shown; drills' exit code fails the job

variables to set (GitHub: repository variables; GitLab: CI/CD variables):
{chr(10).join(_settings_notes("", AUTH_SETTINGS + TARGET_SETTINGS)[1:])}

examples:
  drills ci init github                   .github/workflows/drills.yml, drills-rehearsal.yml
  drills ci init gitlab --output ci/      ci/.gitlab-ci.yml (include: it from yours)
  drills ci init github --force --rehearse 'monthly or scenario'
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `ci` command group to the `drills` parser."""
    ci = sub.add_parser("ci", help="write CI files that run the drills on a schedule")
    csub = ci.add_subparsers(dest="ci_command", required=True)
    init = csub.add_parser(
        "init", help="write GitHub Actions workflows or a .gitlab-ci.yml",
        description="Write CI files that drill the AWS account monthly and quarterly (and by\n"
        "hand with any tag expression), and rehearse every change to features/ or steps/\n"
        "on the local twin. Run from the repository root.",
        epilog=INIT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    init.add_argument("platform", choices=[p.value for p in Platform],
                      help="github: .github/workflows/drills.yml and drills-rehearsal.yml; "
                      "gitlab: .gitlab-ci.yml")
    init.add_argument("--output", metavar="DIR",
                      help="folder to write into (default .github/workflows for github, the "
                      "current folder for gitlab)")
    init.add_argument("--force", action="store_true", help="overwrite files that exist")
    defaults = CiOptions()
    init.add_argument("--rehearse", metavar="TAGS", default=defaults.rehearsal_tags,
                      help=f"tag expression rehearsed on the twin (default "
                      f"{defaults.rehearsal_tags!r})")
    init.add_argument("--manual-tags", metavar="TAGS", default=defaults.manual_tags,
                      help=f"default tag expression of a manual run (default "
                      f"{defaults.manual_tags!r})")
    init.add_argument("--monthly-cron", metavar="CRON", default=defaults.monthly_cron,
                      help=f"when the monthly drills run (default {defaults.monthly_cron!r})")
    init.add_argument("--quarterly-cron", metavar="CRON", default=defaults.quarterly_cron,
                      help=f"when the quarterly drills run (default "
                      f"{defaults.quarterly_cron!r})")
    init.add_argument("--objectives", metavar="FILE",
                      help="objectives file in the repository for every run (see README)")
    init.add_argument("--python", metavar="VERSION", default=defaults.python,
                      help=f"Python version of the jobs (default {defaults.python})")
    init.add_argument("--max-minutes", type=int, metavar="N", default=defaults.max_minutes,
                      help=f"time limit of a drill run; then SIGTERM and drills reverts its "
                      f"faults (default {defaults.max_minutes})")
    init.add_argument("--retention-days", type=int, metavar="N", default=defaults.retention_days,
                      help=f"days CI keeps the reports (default {defaults.retention_days})")
    init.set_defaults(func=cmd_init)
