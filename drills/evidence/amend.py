"""Re-render a sealed report after the run (the team filled in remediation or sign-off).

Only an intact report is amended: `verify` must pass first, so a re-seal never launders a
change made by hand. The amendment is recorded in report.json, the directory is sealed
again, and a new index line carries the new manifest digest.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from drills.errors import ReportError
from drills.evidence.analysis import analyse
from drills.evidence.html_report import HtmlReportWriter
from drills.evidence.index import sealed_digest
from drills.evidence.json_report import JsonReportWriter, check_report, load_report
from drills.evidence.manifest import ManifestWriter, verify
from drills.evidence.markdown import MarkdownSummaryWriter
from drills.evidence.model import Amendment
from drills.evidence.remediation import default_path
from drills.evidence.trend import IndexWriter
from drills.journal import utc_now


def amend(report_dir: Path, team_path: Path | None = None) -> Path:
    """Re-derive findings, programme and sign-off with the current remediation file;
    rewrite report.json, report.html and summary.md; seal again. Returns report.json."""
    result = verify(report_dir, sealed_digest(report_dir))
    if not result.ok:
        raise ReportError(f"{report_dir} has changed since it was sealed "
                         f"({'; '.join(result.lines())}); refusing to re-seal it")
    run = load_report(report_dir)
    path = team_path or default_path(report_dir.parent)
    analyse(run, report_dir, path)
    digest = (hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists()
              else "no file")
    run.amendments.append(Amendment(utc_now(), f"re-rendered with remediation file {path.name} "
                                               f"(sha256 {digest})"))
    for writer in (JsonReportWriter(), HtmlReportWriter(), MarkdownSummaryWriter(),
                   ManifestWriter(), IndexWriter()):
        writer.run_finished(run, report_dir)
    check_report(report_dir / "report.json")
    return report_dir / "report.json"


__all__ = ["amend"]
