"""`drills ci init github|gitlab`: the files it writes, checked by the platforms' own linters
and schemas, read back as YAML for their structure, and their shell run against stand-in
`drills`, `aws` programs (nothing here reaches a CI service, an account or a twin)."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from drills.ci import INSTALL, CiOptions, Platform, render
from drills.cli import main

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = CiOptions()


def init(tmp_path: Path, platform: str, *args: str) -> Path:
    """`drills ci init PLATFORM --output tmp_path/out ARGS` must succeed; returns the folder."""
    out = tmp_path / "out"
    assert main(["ci", "init", platform, "--output", str(out), *args]) == 0
    return out


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


@pytest.fixture
def github(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """The two workflows of `drills ci init github`, parsed: 'account' and 'rehearsal'."""
    out = init(tmp_path, "github")
    return {"account": load(out / "drills.yml"), "rehearsal": load(out / "drills-rehearsal.yml")}


@pytest.fixture
def gitlab(tmp_path: Path) -> dict[str, Any]:
    """The .gitlab-ci.yml of `drills ci init gitlab`, parsed."""
    return load(init(tmp_path, "gitlab") / ".gitlab-ci.yml")


def job_of(workflow: dict[str, Any]) -> dict[str, Any]:
    (job,) = workflow["jobs"].values()
    assert isinstance(job, dict)
    return job


def step(job: dict[str, Any], uses: str = "", name: str = "") -> dict[str, Any]:
    """The one step that uses `uses` (an action, any version) or is called `name`."""
    found = [s for s in job["steps"] if (uses and s.get("uses", "").split("@")[0] == uses)
             or (name and s.get("name") == name)]
    assert len(found) == 1, (uses or name, job["steps"])
    return found[0]


def strings(value: Any) -> Iterator[str]:
    """Every key and string value in a parsed document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


# --- the platforms' own checks ----------------------------------------------------------------

VARIANTS = [[], ["--rehearse", "scenario and not twin_only", "--manual-tags", "enclave",
                 "--objectives", "ops/drills objectives.toml", "--monthly-cron", "30 2 1 * *",
                 "--quarterly-cron", "30 2 15 */3 *", "--max-minutes", "45"]]


@pytest.mark.parametrize("args", VARIANTS, ids=["defaults", "every-option"])
def test_github_workflows_pass_actionlint(tmp_path: Path, args: list[str]) -> None:
    """actionlint (and shellcheck on the run: scripts, when installed) finds nothing."""
    actionlint = shutil.which("actionlint")
    if actionlint is None:
        pytest.fail("actionlint is not installed: pip install -e '.[dev]'")
    out = init(tmp_path, "github", *args)
    files = sorted(str(p) for p in out.glob("*.yml"))
    assert len(files) == 2
    result = subprocess.run([actionlint, "-no-color", *files], capture_output=True, text=True,
                            check=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def _vendored_schema(name: str) -> dict[str, Any]:
    """A CI schema as the check-jsonschema package vendors it (GitLab's own for GitLab,
    SchemaStore's for GitHub workflows)."""
    folder = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    assert isinstance(schema, dict)
    return schema


def _schema_errors(schema: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(doc)]


@pytest.mark.parametrize("args", VARIANTS, ids=["defaults", "every-option"])
def test_gitlab_file_passes_gitlab_ci_schema(tmp_path: Path, args: list[str]) -> None:
    """.gitlab-ci.yml is valid against GitLab's CI JSON schema (app/assets/javascripts/editor/
    schema/ci.json, as vendored by check-jsonschema)."""
    doc = load(init(tmp_path, "gitlab", *args) / ".gitlab-ci.yml")
    assert _schema_errors(_vendored_schema("gitlab-ci"), doc) == []


def test_the_gitlab_schema_check_catches_mistakes(gitlab: dict[str, Any]) -> None:
    """The schema check is not vacuous: a misspelt keyword and a bad value are reported."""
    gitlab["drills-account"]["artifacts"]["when"] = "sometimes"
    gitlab["drills-rehearsal"]["rules"][0]["chnages"] = ["features/**/*"]
    errors = _schema_errors(_vendored_schema("gitlab-ci"), gitlab)
    assert any("sometimes" in e for e in errors)
    assert any(e.startswith("drills-rehearsal/rules/0") for e in errors)


def test_github_workflows_pass_the_workflow_schema(github: dict[str, dict[str, Any]]) -> None:
    """Both workflows are also valid against SchemaStore's GitHub workflow schema."""
    schema = _vendored_schema("github-workflows")
    for workflow in github.values():
        assert _schema_errors(schema, workflow) == []


# --- what the files do ------------------------------------------------------------------------

def test_github_schedules_and_manual_run_drill_the_account(github: dict[str, Any]) -> None:
    """The account workflow runs on two schedules and by hand with a tag-expression input;
    each schedule's cron picks its cadence tag."""
    account = github["account"]
    on = account["on"]
    assert set(on) == {"schedule", "workflow_dispatch"}
    assert [s["cron"] for s in on["schedule"]] == ["0 6 1 * *", "0 6 8 1,4,7,10 *"]
    tags = on["workflow_dispatch"]["inputs"]["tags"]
    assert (tags["type"], tags["default"], tags["required"]) == ("string", "monthly", True)
    chosen = job_of(account)["env"]["DRILLS_TAGS"]
    assert chosen.startswith("${{ inputs.tags || ")
    for tag, cron in OPTIONS.schedules:
        assert f"(github.event.schedule == '{cron}' && '{tag}')" in chosen


def test_github_account_job_uses_oidc_and_holds_the_account(github: dict[str, Any]) -> None:
    """The account job gets an OIDC token, assumes the role from repository variables, refuses
    other accounts, holds one concurrency group per account, and reads no secret."""
    job = job_of(github["account"])
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    auth = step(job, uses="aws-actions/configure-aws-credentials")["with"]
    assert auth["role-to-assume"] == "${{ vars.DRILLS_AWS_ROLE_ARN }}"
    assert auth["aws-region"] == "${{ vars.DRILLS_AWS_REGION }}"
    assert auth["allowed-account-ids"] == "${{ vars.DRILLS_AWS_ACCOUNT_ID }}"
    assert auth["role-duration-seconds"] >= OPTIONS.max_minutes * 60
    assert not {"aws-access-key-id", "aws-secret-access-key"} & set(auth)
    assert job["concurrency"] == {"group": "drills-aws-${{ vars.DRILLS_AWS_ACCOUNT_ID }}",
                                  "cancel-in-progress": False}
    assert not [s for s in strings(github["account"]) if "secrets." in s]
    steps = [s.get("uses", s.get("name")) for s in job["steps"]]
    assert steps.index("Drill") > steps.index("aws-actions/configure-aws-credentials@v5")


def test_github_rehearsal_runs_on_changes_to_features_or_steps(github: dict[str, Any]) -> None:
    """Pushes and pull requests touching features/ or steps/ rehearse on the twin, installed
    with the README's command; no OIDC token, newer pushes cancel older rehearsals."""
    rehearsal = github["rehearsal"]
    assert rehearsal["on"] == {"push": {"paths": ["features/**", "steps/**"]},
                               "pull_request": {"paths": ["features/**", "steps/**"]}}
    job = job_of(rehearsal)
    assert "id-token" not in json.dumps(rehearsal)
    assert job["concurrency"]["cancel-in-progress"] is True
    assert step(job, name="Install drills")["run"] == INSTALL
    assert INSTALL in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", ["account", "rehearsal"])
def test_github_keeps_reports_and_summary_even_on_failure(github: dict[str, Any],
                                                          kind: str) -> None:
    """Both jobs upload reports/ and write the job summary whatever the drill step did."""
    job = job_of(github[kind])
    upload = step(job, uses="actions/upload-artifact")
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == "reports/"
    assert upload["with"]["retention-days"] == OPTIONS.retention_days
    summary = step(job, name="Job summary")
    assert summary["if"] == "always()"
    assert "$GITHUB_STEP_SUMMARY" in summary["run"]


def test_gitlab_jobs_rules_oidc_and_resource_group(gitlab: dict[str, Any]) -> None:
    """GitLab: the rehearsal runs on changes to features/ or steps/; the account job on
    schedules and manual pipelines with DRILLS_TAGS, an ID token, one run per account."""
    rehearsal, account = gitlab["drills-rehearsal"], gitlab["drills-account"]
    (changed,) = rehearsal["rules"]
    assert changed["changes"] == ["features/**/*", "steps/**/*"]
    assert re.findall(r'"(\w+)"', changed["if"]) == ["push", "merge_request_event"]
    (scheduled,) = account["rules"]
    assert re.findall(r'"(\w+)"', scheduled["if"]) == ["schedule", "web"]
    assert gitlab["variables"]["DRILLS_TAGS"]["value"] == "monthly"
    assert account["id_tokens"] == {"DRILLS_ID_TOKEN": {"aud": "$CI_SERVER_URL"}}
    assert account["resource_group"] == "drills-aws-$DRILLS_AWS_ACCOUNT_ID"
    assert "resource_group" not in rehearsal
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(account["variables"])
    for job in (rehearsal, account):
        assert job["script"][0] == INSTALL
        assert job["artifacts"]["when"] == "always"
        assert job["artifacts"]["paths"] == ["drills-summary.md", "reports/"]
        assert job["artifacts"]["expose_as"]
        assert job["artifacts"]["reports"] == {"junit": "reports/*/junit.xml"}


# --- the shell the jobs run, against stand-ins ------------------------------------------------

FAKE_DRILLS = """#!/bin/sh
# stand-in drills: logs its arguments (one [..] each) and the session token it saw
for a in "$@"; do printf '[%s]' "$a"; done >> "$FAKE_LOG"
echo " token=$AWS_SESSION_TOKEN" >> "$FAKE_LOG"
case "$1" in run) exit "${FAKE_RUN:-0}";; rollback) exit "${FAKE_ROLLBACK:-0}";; esac
"""
FAKE_AWS = """#!/bin/sh
# stand-in aws: STS answers only
echo "aws $*" >> "$FAKE_LOG"
case "$2" in
  assume-role-with-web-identity) printf 'AKIDFAKE\\tSECRETFAKE\\tTOKENFAKE\\n';;
  get-caller-identity) echo "$FAKE_ACCOUNT";;
esac
"""


class Shell:
    """Runs a job's script in a scratch folder with stand-in `drills` and `aws` first on PATH."""

    def __init__(self, tmp_path: Path) -> None:
        self.cwd = tmp_path / "work"
        self.cwd.mkdir()
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        for name, text in (("drills", FAKE_DRILLS), ("aws", FAKE_AWS)):
            (bin_dir / name).write_text(text)
            (bin_dir / name).chmod(stat.S_IRWXU)
        self.log = tmp_path / "calls.log"
        self.env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                    "FAKE_LOG": str(self.log), "DRILLS_RUN_ID": "r1", "AWS_REGION": "eu-west-1",
                    "DRILLS_TAGS": "monthly", "DRILLS_AWS_ACCOUNT_ID": "111122223333",
                    "FAKE_ACCOUNT": "111122223333", "DRILLS_AWS_ROLE_ARN": "arn:role",
                    "DRILLS_ID_TOKEN": "jwt", "CI_PIPELINE_ID": "7"}

    def __call__(self, script: str, shell: str = "bash", **env: str) -> int:
        # GitHub runs `bash -e`; GitLab's images may only have a POSIX sh
        return subprocess.run([shell, "-e", "-c", script], cwd=self.cwd, env={**self.env, **env},
                              check=False, timeout=60).returncode

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def drill_scripts(tmp_path: Path, options: CiOptions = OPTIONS) -> dict[str, str]:
    """The account jobs' drill scripts on both platforms (they must be the same shell)."""
    gh = yaml.safe_load(render(Platform.GITHUB, options)["drills.yml"])
    gl = yaml.safe_load(render(Platform.GITLAB, options)[".gitlab-ci.yml"])
    return {"github": step(job_of(gh), name="Drill")["run"],
            "gitlab": gl["drills-account"]["script"][-1]}


@pytest.mark.parametrize(("run", "rollback", "job"), [
    ("0", "0", 0), ("1", "0", 1), ("3", "0", 3), ("2", "0", 2), ("0", "1", 1)])
def test_drills_exit_code_is_the_jobs(tmp_path: Path, run: str, rollback: str,
                                      job: int) -> None:
    """The account job drills the credentials' region and exits with `drills run`'s code (1
    for a breach), after `drills rollback` ran whatever happened; a failed rollback fails a
    passing job."""
    scripts = drill_scripts(tmp_path)
    assert scripts["github"] == scripts["gitlab"]
    shell = Shell(tmp_path)
    assert shell(scripts["gitlab"], "sh", FAKE_RUN=run, FAKE_ROLLBACK=rollback) == job
    assert [c.split(" token=")[0] for c in shell.calls()] == [
        "[run][--target][aws][--run-id][r1][--region][eu-west-1][monthly]",
        "[rollback][--target][aws][--region][eu-west-1]"]


def test_rollback_reads_the_runs_objectives_file(tmp_path: Path) -> None:
    """With --objectives, `drills rollback` gets it too: its [environment] names and [allow]
    lists are the run's."""
    scripts = drill_scripts(tmp_path, CiOptions(objectives="ops/drills objectives.toml"))
    shell = Shell(tmp_path)
    assert shell(scripts["github"]) == 0
    assert [c.split(" token=")[0] for c in shell.calls()] == [
        "[run][--target][aws][--run-id][r1][--region][eu-west-1][--objectives]"
        "[ops/drills objectives.toml][monthly]",
        "[rollback][--target][aws][--region][eu-west-1][--objectives]"
        "[ops/drills objectives.toml]"]


def test_rehearsal_passes_its_tag_expression_as_one_argument(tmp_path: Path) -> None:
    """The twin rehearsal runs `drills run --target twin` with the expression as one word."""
    gh = yaml.safe_load(render(Platform.GITHUB, OPTIONS)["drills-rehearsal.yml"])
    shell = Shell(tmp_path)
    assert shell(step(job_of(gh), name="Drill")["run"]) == 0
    assert shell.calls() == ["[run][--target][twin][--run-id][r1][monthly or quarterly] token="]


def test_gitlab_assumes_the_role_and_refuses_another_account(tmp_path: Path) -> None:
    """GitLab exchanges its ID token for role credentials, which `drills` then sees; a role in
    another account than DRILLS_AWS_ACCOUNT_ID stops the job (exit 3) before any drill."""
    job = yaml.safe_load(render(Platform.GITLAB, OPTIONS)[".gitlab-ci.yml"])["drills-account"]
    script = "\n".join(job["script"][1:])  # not the install
    shell = Shell(tmp_path)
    assert shell(script, "sh") == 0
    calls = shell.calls()
    assert calls[0].startswith("aws sts assume-role-with-web-identity --role-arn arn:role ")
    assert "--web-identity-token jwt" in calls[0]
    assert calls[2].endswith("token=TOKENFAKE")  # drills run, with the assumed role

    shell.log.unlink()
    assert shell(script, "sh", FAKE_ACCOUNT="999999999999") == 3
    assert not [c for c in shell.calls() if c.startswith("[")]


@pytest.mark.parametrize("present", [True, False])
def test_summary_md_reaches_the_job_summary(tmp_path: Path, present: bool) -> None:
    """summary.md goes to $GITHUB_STEP_SUMMARY (GitLab: drills-summary.md and the log); a run
    that wrote none says so there instead of failing the step."""
    shell = Shell(tmp_path)
    if present:
        (shell.cwd / "reports" / "r1").mkdir(parents=True)
        (shell.cwd / "reports" / "r1" / "summary.md").write_text("# 6 drills passed\n")
    gh = yaml.safe_load(render(Platform.GITHUB, OPTIONS)["drills.yml"])
    sink = tmp_path / "step-summary.md"
    assert shell(step(job_of(gh), name="Job summary")["run"], GITHUB_STEP_SUMMARY=str(sink)) == 0
    gl = yaml.safe_load(render(Platform.GITLAB, OPTIONS)[".gitlab-ci.yml"])
    assert shell(gl["drills-account"]["after_script"][0], "sh") == 0
    for text in (sink.read_text(), (shell.cwd / "drills-summary.md").read_text()):
        if present:
            assert text == "# 6 drills passed\n"
        else:
            assert "No reports/r1/summary.md: drills stopped before writing its report" in text


# --- the command ------------------------------------------------------------------------------

def test_writes_to_the_platforms_folder_and_says_so(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Without --output, GitHub files go to .github/workflows/ and GitLab's to the current
    folder (the repository root); each path written is printed."""
    monkeypatch.chdir(tmp_path)
    assert main(["ci", "init", "github"]) == 0
    assert main(["ci", "init", "gitlab"]) == 0
    out = capsys.readouterr().out
    for path in (".github/workflows/drills.yml", ".github/workflows/drills-rehearsal.yml",
                 ".gitlab-ci.yml"):
        assert (tmp_path / path).is_file()
        assert f"wrote {Path(path)}" in out


def test_refuses_to_overwrite_without_force(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """An existing file is named and kept, nothing else is written (exit 2); --force
    overwrites."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "drills.yml").write_text("mine\n")
    assert main(["ci", "init", "github", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'drills.yml'} already exists" in err
    assert "--force" in err
    assert (out / "drills.yml").read_text() == "mine\n"
    assert not (out / "drills-rehearsal.yml").exists()
    assert main(["ci", "init", "github", "--output", str(out), "--force"]) == 0
    assert "jobs" in load(out / "drills.yml")


def test_unknown_platform_exits_2_naming_the_choices(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    """`drills ci init jenkins` is bad input: exit 2, and the message lists the platforms."""
    with pytest.raises(SystemExit) as exited:
        main(["ci", "init", "jenkins", "--output", str(tmp_path)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    # Python 3.12 stopped quoting the choices
    assert re.search(r"invalid choice: 'jenkins' \(choose from '?github'?, '?gitlab'?\)", err)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("args", "says"), [
    (["--rehearse", "monthly and enclve"], "unknown tag 'enclve'"),
    (["--manual-tags", "monthly and"], "ends without a tag"),
    (["--monthly-cron", "monthly"], "is not five numeric fields"),
    (["--quarterly-cron", "0 6 1 * *"], "crons are the same"),
    (["--max-minutes", "0"], "at least 1"),
])
def test_bad_options_exit_2_before_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           args: list[str], says: str) -> None:
    """Tag expressions go through drills' own checker, crons and limits are checked: exit 2
    with the reason, and no file written."""
    out = tmp_path / "out"
    assert main(["ci", "init", "gitlab", "--output", str(out), *args]) == 2
    assert says in capsys.readouterr().err
    assert not out.exists()
