"""`drills report ...` over the real runs: trend, compliance, findings, show, render, index."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from drills.cli import main
from drills.config import load_settings
from drills.evidence import index as index_mod
from drills.evidence.json_report import load_report
from tests.conftest import Runs

pytestmark = pytest.mark.twin


def test_trend_prints_every_run_and_writes_the_chart(runs: Runs, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The trend table has a row per run and figure, with the objective; trend.html written."""
    html = tmp_path / "trend.html"
    assert main(["report", "trend", "--reports", str(runs.root), "--html", str(html)]) == 0
    out = capsys.readouterr().out
    single = "monthly/single_instance_failure.feature::One enclave instance is terminated"
    assert single in out
    assert "Capacity RTO (Nitro Enclave ASG) (twin rehearsal): n=2" in out
    rows = [line.split() for line in out.splitlines() if runs.dirs["breach"].name in line]
    breached = [r[4:] for r in rows if r[-1] == "BREACHED"]
    assert len(breached) == 2  # each with the RTO measured past its 0.2 s objective
    for figure, unit, *rest in breached:
        assert float(figure) > 0.2
        assert [unit, *rest] == ["s", "objective", "0.20", "s", "BREACHED"]
    for run_dir in runs.dirs.values():
        assert run_dir.name in out
    assert "BREACHED" in out
    assert html.read_text().startswith("<!doctype html>")


def test_compliance_lists_items_and_fails_on_overdue_when_asked(
        runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    """Twin runs are rehearsals: 7.1.5 is listed as rehearsed (with the failed attempt of the
    breach run), never as on schedule, so --fail-on-overdue exits 1, today and a year on."""
    assert main(["report", "compliance", "--reports", str(runs.root)]) == 0
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if x.split()[2:3] == ["7.1.5"]]
    assert line.split()[:2] == ["REHEARSED", "ONLY"]
    assert "never on an account; last rehearsal" in line
    assert "last attempt failed on" in line
    assert not [x for x in out.splitlines() if x.split()[:1] == ["OK"]]
    assert main(["report", "compliance", "--reports", str(runs.root),
                 "--fail-on-overdue"]) == 1
    later = "2099-01-01T00:00:00Z"
    assert main(["report", "compliance", "--reports", str(runs.root), "--as-of", later,
                 "--fail-on-overdue"]) == 1


def test_findings_and_show(runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    """After the monthly run the breach findings are no longer open; --all lists them as
    closed; show prints summary.md."""
    breach = [f["finding_id"] for f in runs.report("breach")["findings"]]
    assert main(["report", "findings", "--reports", str(runs.root)]) == 0
    out = capsys.readouterr().out
    assert not [fid for fid in breach if fid in out]
    assert main(["report", "findings", "--reports", str(runs.root), "--all"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for fid in breach:
        (line,) = [x for x in lines if fid in x]
        assert line.split()[2] == "closed"
    assert main(["report", "show", str(runs.dirs["breach"])]) == 0
    assert capsys.readouterr().out.startswith("## ❌ FAIL")


def test_render_applies_remediation_records_it_and_reseals(
        runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """After the team fills in remediation.toml, `render` puts owner and due date into the
    report, records the amendment, and the directory verifies again."""
    root = tmp_path / "reports"
    shutil.copytree(runs.root, root)
    report_dir = root / runs.dirs["breach"].name
    fid = load_report(report_dir).findings[0].finding_id
    (root / "remediation.toml").write_text(
        f'[findings.{fid}]\nowner = "Platform team"\ndue = 2027-01-31\n')
    assert main(["report", "render", str(report_dir)]) == 0
    run = load_report(report_dir)
    finding = next(f for f in run.findings if f.finding_id == fid)
    assert finding.remediation is not None
    assert finding.remediation.owner == "Platform team"
    assert "remediation.toml" in run.amendments[-1].what
    assert "Platform team" in (report_dir / "report.html").read_text()
    capsys.readouterr()
    assert main(["report", "verify", str(report_dir)]) == 0


def test_render_refuses_a_changed_report(runs: Runs, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A report changed by hand is not re-sealed (exit 2, says why)."""
    report_dir = tmp_path / "reports" / runs.dirs["breach"].name
    shutil.copytree(runs.dirs["breach"], report_dir)
    (report_dir / "summary.md").write_text("all good")
    assert main(["report", "render", str(report_dir)]) == 2
    assert "refusing to re-seal" in capsys.readouterr().err


def test_index_rebuild_matches_the_appended_index(runs: Runs, tmp_path: Path) -> None:
    """Rebuilding from the report directories gives the same runs, figures and digests."""
    root = tmp_path / "reports"
    shutil.copytree(runs.root, root)
    appended = index_mod.read(root)
    (root / index_mod.INDEX_NAME).unlink()
    assert main(["report", "index", "--reports", str(root), "--rebuild"]) == 0
    assert index_mod.read(root) == appended


def test_objectives_review_proposes_from_the_real_runs_as_rehearsal_only(
        runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The three runs are twin rehearsals: without --include-twin nothing is proposed; with
    it, the Nitro Enclave ASG's RTO is proposed from their figures (the runs named), labelled
    REHEARSAL ONLY, and the proposed file loads as an objectives file."""
    assert main(["report", "objectives-review", "--reports", str(runs.root)]) == 0
    out = capsys.readouterr().out
    assert "0 account run(s), 3 twin rehearsal(s)" in out
    assert "no figure to propose from" in out
    assert "no change proposed" in out
    proposed = tmp_path / "proposed.toml"
    assert main(["report", "objectives-review", "--reports", str(runs.root), "--include-twin",
                 "--proposed", str(proposed)]) == 0
    out = capsys.readouterr().out
    assert "REHEARSAL ONLY" in out
    (line,) = [x for x in out.splitlines()
               if x.startswith("  twin rehearsals") and "Nitro Enclave ASG" in x
               and " rto " in x]
    assert "current 5 min 00 s" in line
    runs_line = out.splitlines()[out.splitlines().index(line) + 1]
    for name in ("breach", "monthly"):
        assert runs.dirs[name].name in runs_line
    settings = load_settings(proposed)
    assert settings.objectives.for_component("Nitro Enclave ASG").rto < 300
    assert "# REHEARSAL ONLY (twin runs, not evidence)" in proposed.read_text()
