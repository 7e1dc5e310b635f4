"""`drills` end to end, as a user runs it: real subprocesses against the session's twin."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from drills.errors import EXIT_INTERRUPTED
from drills.journal import FaultState, Journal
from drills.twin.manager import Twin
from tests.conftest import ROOT, Runs, drills_cli, wait_for

pytestmark = pytest.mark.twin


def drills(*args: str, tmp_path: Path, twin: Twin | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the `drills` command with its own journal (and the session twin, if given)."""
    env = dict(os.environ, DRILLS_JOURNAL=str(tmp_path / "journal.jsonl"))
    if twin is not None:
        env["DRILLS_STATE_DIR"] = twin.state.state_dir
    return drills_cli(*args, env=env, timeout=timeout)


def test_run_monthly_prints_the_report_path(runs: Runs) -> None:
    """`drills run monthly` passes and ends with the path of a report of real measurements."""
    assert runs.codes["monthly"] == 0, runs.output["monthly"]
    report_path = Path(runs.stdout["monthly"].strip().splitlines()[-1])
    assert report_path.name == "report.json"
    assert report_path == runs.dirs["monthly"] / "report.json"
    report = json.loads(report_path.read_text())
    assert report["exercise"] == "monthly"
    assert report["status"] == "passed"
    assert report["drills"]
    assert all("monthly" in d["tags"] for d in report["drills"])
    for drill in report["drills"]:
        assert all((m["met"] and m["rto"] is not None) or m["verdict"] == "no-outage"
                   for m in drill["measurements"])
        assert all(f["reverted_utc"] for f in drill["faults"])
    # The drills on the service (all but 7.1's replication checks, which measure lag)
    # measure its recovery and its data loss, on a probe timeline in the report.
    served = [d for d in report["drills"] if "replication" not in d["feature_path"]]
    assert len(served) == 6
    for drill in served:
        assert drill["measurements"], "every drill measures its recovery"
        assert drill["rpo"], "every drill on the service measures data loss"
        assert drill["probes"], "the probe timeline is in the report"
    assert (report_path.parent / "junit.xml").exists()
    assert "drill: Single enclave instance failure" in runs.output["monthly"]
    single = [d for d in report["drills"] if d["feature"] == "Single enclave instance failure"]
    assert len(single) == 2
    assert all({"service", "capacity"} <= {m["name"] for m in d["measurements"]}
               for d in single)


def test_outage_run_passes(runs: Runs) -> None:
    """The complete-enclave-failure drills (run here through the CLI, not the binder) pass."""
    assert runs.codes["outage"] == 0, runs.output["outage"]
    report = runs.report("outage")
    assert [d["status"] for d in report["drills"]] == ["passed", "passed"]


def test_breached_objective_fails_the_run(runs: Runs) -> None:
    """An objective shorter than the real recovery (0.2 s for the ASG to be back at capacity)
    makes the run exit 1 with the figures."""
    assert runs.codes["breach"] == 1, runs.output["breach"]
    report_path = Path(runs.stdout["breach"].strip().splitlines()[-1])
    report = json.loads(report_path.read_text())
    assert report["status"] == "failed"
    assert report["drills"]
    for drill in report["drills"]:
        assert drill["status"] == "failed"
        assert "objective breached" in drill["error"]
        capacity = next(m for m in drill["measurements"] if m["name"] == "capacity")
        assert not capacity["met"]
        assert capacity["rto"] > 0.2
        assert all(f["reverted_utc"] for f in drill["faults"])
    # Every fault of every run was reverted before its run ended.
    assert Journal(runs.journal).pending() == []


@pytest.mark.parametrize(("args", "message"), [
    (["run"], "say what to run"),
    (["run", "features/nope.feature"], "does not exist"),
    (["run", "nosuchtag"], "unknown tag 'nosuchtag'"),
    (["run", "monthly and"], "ends without a tag"),
    (["run", "monthly and expected_breach"], "no drill matches"),
    (["run", "monthly", "--objectives", "/nonexistent.toml"], "does not exist"),
    (["run", "annual", "--operator", "Dana"], "write NAME:ROLE"),
    (["run", "annual", "--operator", "Dana:captain"], "unknown role 'captain'; roles:"),
    (["run", "annual", "--soak", "four hours"], "--soak: cannot read duration"),
    (["run", "annual", "--soak", "0"], "--soak: duration must be positive"),
])
def test_bad_input_exits_2_and_injects_nothing(args: list[str], message: str,
                                               tmp_path: Path) -> None:
    """Bad input gets a clear error, exit code 2, no fault in the journal, and no report
    folder left behind."""
    reports = tmp_path / "reports"
    result = drills(*args, "--reports", str(reports), tmp_path=tmp_path, timeout=120) \
        if len(args) > 1 else drills(*args, tmp_path=tmp_path, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "journal.jsonl").exists()
    assert not reports.exists() or not any(reports.iterdir())


def test_an_unreachable_account_exits_3_and_says_why(tmp_path: Path) -> None:
    """An account target whose endpoint does not answer: exit 3 (target unreachable), the
    translated error in the output, nothing injected."""
    env = dict(os.environ, DRILLS_JOURNAL=str(tmp_path / "journal.jsonl"),
               AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_ACCESS_KEY_ID="x",
               AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1",
               AWS_MAX_ATTEMPTS="1")
    result = drills_cli("run", "--target", "aws", "--reports", str(tmp_path / "reports"),
                        "features/monthly/single_instance_failure.feature", env=env,
                        timeout=300)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "could not be reached" in result.stdout + result.stderr
    assert Journal(tmp_path / "journal.jsonl").pending() == []


def _run_until_injected(twin: Twin, tmp_path: Path) -> subprocess.Popen[str]:
    """Start the capacity-0 drill and return once its fault is journaled as injected."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env.update(DRILLS_JOURNAL=str(tmp_path / "journal.jsonl"),
               DRILLS_STATE_DIR=twin.state.state_dir)
    # Output to a file: a pipe nobody reads would block the run once its buffer fills.
    log = (tmp_path / "run.log").open("w")
    # SIGINT at its default, as from a terminal: a background pytest ignores it, and the run
    # would inherit that.
    proc = subprocess.Popen(
        [sys.executable, "-m", "drills.cli", "run",
         "features/scenarios/complete_enclave_failure.feature", "--reports",
         str(tmp_path / "reports"), "--", "-k", "forced"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log.close()
    journal = Journal(tmp_path / "journal.jsonl")

    def injected() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before injecting:\n{(tmp_path / 'run.log').read_text()}")
        return any(e.state is FaultState.INJECTED for e in journal.entries())

    wait_for(injected, 120, "the fault to be injected")
    return proc


def _desired(twin: Twin) -> int:
    return twin.in_service()[0]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_reverts_faults_on_the_way_out(healthy_twin: Twin, tmp_path: Path,
                                                signum: signal.Signals) -> None:
    """SIGTERM or SIGINT (Ctrl-C) mid-drill, alike: the injected fault is reverted before
    the process exits 130, and the report says `interrupted` (the run and the drill)."""
    proc = _run_until_injected(healthy_twin, tmp_path)
    proc.send_signal(signum)
    proc.wait(timeout=120)
    output = (tmp_path / "run.log").read_text()
    assert proc.returncode == EXIT_INTERRUPTED, output
    (entry,) = Journal(tmp_path / "journal.jsonl").entries()
    assert entry.state is FaultState.REVERTED
    assert _desired(healthy_twin) == 2
    (report_path,) = (tmp_path / "reports").glob("*/report.json")
    report = json.loads(report_path.read_text())
    assert report["status"] == "interrupted"
    (drill,) = report["drills"]
    assert drill["status"] == "interrupted"
    assert "interrupted" in drill["error"]
    assert drill["faults"][0]["reverted_utc"], "the report shows the revert"


def test_rollback_finishes_what_a_killed_run_left(healthy_twin: Twin, tmp_path: Path) -> None:
    """After SIGKILL mid-drill, `drills rollback` reverts the pending fault from the journal."""
    proc = _run_until_injected(healthy_twin, tmp_path)
    proc.kill()
    proc.wait(timeout=60)
    journal = Journal(tmp_path / "journal.jsonl")
    (entry,) = journal.pending()
    assert entry.kind == "enclave.set-desired-capacity"
    assert _desired(healthy_twin) == 0
    result = drills("rollback", tmp_path=tmp_path, twin=healthy_twin)
    assert result.returncode == 0, result.stderr
    assert f"reverted {entry.fault_id}" in result.stderr
    assert journal.pending() == []
    assert _desired(healthy_twin) == 2


def test_rollback_with_nothing_pending(tmp_path: Path) -> None:
    """`drills rollback` on a clean journal says so and exits 0."""
    result = drills("rollback", tmp_path=tmp_path, timeout=60)
    assert result.returncode == 0
    assert "nothing to roll back" in result.stderr


def test_steps_into_a_pipe_closed_early_is_no_error() -> None:
    """`drills steps | head -1`: the reader leaving early ends the listing quietly, exit 0.
    The pipe is shrunk to one page, so the listing (tens of kB) must meet the closed end."""
    import fcntl

    read, write = os.pipe()
    fcntl.fcntl(write, 1031, 4096)  # F_SETPIPE_SZ
    proc = subprocess.Popen([sys.executable, "-m", "drills.cli", "steps"], cwd=ROOT,
                            stdout=write, stderr=subprocess.PIPE, text=True)
    os.close(write)
    with os.fdopen(read) as reader:
        assert reader.readline().startswith("Given ")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "Traceback" not in err





def test_list_on_an_account_says_what_runs_and_what_is_skipped_and_touches_nothing(
        tmp_path: Path) -> None:
    """`drills run monthly scenario --target aws --list` lists every selected drill as
    `feature :: scenario`: @twin_only ones and those needing a capability an account lacks
    skipped with the reason, the others to run; exit 0 with no journal, twin state, report
    folder or AWS call (the endpoint given answers nothing)."""
    env = dict(os.environ, DRILLS_JOURNAL=str(tmp_path / "journal.jsonl"),
               DRILLS_STATE_DIR=str(tmp_path / "twin"), AWS_ENDPOINT_URL="http://127.0.0.1:9",
               AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_MAX_ATTEMPTS="1")
    result = drills_cli("run", "monthly", "scenario", "--target", "aws", "--list",
                        "--reports", str(tmp_path / "reports"), env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    listed = {line[6:].split(": needs ")[0]: line[:4].strip()
              for line in lines if line.startswith(("run ", "skip"))}
    assert listed["scenarios/pcr_rotation :: Planned PCR rotation in the runbook's order (6.2)"] \
        == "skip"
    assert listed["monthly/single_instance_failure :: One enclave instance is terminated and "
                  "replaced by the ASG"] == "run"
    assert listed["scenarios/nats_node_failure :: The NATS server freezes on one instance"] \
        == "skip"
    twin_only = [line for line in lines if line.startswith("skip  scenarios/region_outage")]
    assert twin_only
    assert all("needs" in line and "disposable (@twin_only)" in line and
                             "which the account target lacks" in line for line in twin_only)
    nats = [line for line in lines if line.startswith("skip  scenarios/nats_partition")]
    assert nats
    assert all(line.endswith(": needs processes, which the account target lacks; "
                                      "runs on the local twin (--target twin)") for line in nats)
    assert "  processes: signal the service's own processes" in result.stdout
    ran, skipped = listed.values(), [v for v in listed.values() if v == "skip"]
    assert lines[-1] == (f"{len(ran) - len(skipped)} to run, {len(skipped)} skipped on "
                         "--target aws; nothing was started, injected or written")
    assert list(tmp_path.iterdir()) == [], "no journal, twin state or report folder"
    on_the_twin = drills_cli("run", "monthly", "scenario", "--list", "--reports",
                             str(tmp_path / "reports"), env=env, timeout=120)
    assert on_the_twin.returncode == 0, on_the_twin.stdout + on_the_twin.stderr
    assert on_the_twin.stdout.splitlines()[-1] == (
        f"{len(ran)} to run, 0 skipped on --target twin; nothing was started, injected or "
        "written")
    assert list(tmp_path.iterdir()) == []
    assert "--list" in drills_cli("run", "--help", env=env).stdout


def test_run_needs_only_the_load_extra_not_pytest_xdist(tmp_path: Path) -> None:
    """The README's first command installs `.[load]`, without the dev extra's pytest-xdist:
    the project's conftest must not use xdist's `xdist_group` marker then (under
    `--strict-markers` it was an internal error before any drill ran). `-p no:xdist`
    stands for the plugin not being installed."""
    env = dict(os.environ, DRILLS_JOURNAL=str(tmp_path / "journal.jsonl"),
               DRILLS_STATE_DIR=str(tmp_path / "twin"), PYTEST_ADDOPTS="-p no:xdist")
    result = drills_cli("run", "monthly", "--list", "--reports", str(tmp_path / "reports"),
                        env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "INTERNALERROR" not in result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].endswith(
        "skipped on --target twin; nothing was started, injected or written")
