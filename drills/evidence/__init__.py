"""Evidence of a run: the typed model, observers, and the writers that turn it into files."""

from __future__ import annotations

from drills.evidence.analysis import RunAnalyser
from drills.evidence.csv_probes import ProbesCsvWriter
from drills.evidence.html_report import HtmlReportWriter
from drills.evidence.json_report import JsonReportWriter, SchemaCheck
from drills.evidence.manifest import ManifestWriter
from drills.evidence.markdown import MarkdownSummaryWriter
from drills.evidence.observer import Observers, RunObserver
from drills.evidence.trend import IndexWriter


def default_writers() -> list[RunObserver]:
    """The writers every run uses, in the order they must run.

    The analyser derives findings, programme and review first; the CSV writer names each
    drill's probe file before report.json is written; everything rendered comes from the
    same record; the manifest seals the directory (junit.xml and cucumber.json included,
    which pytest wrote earlier in its sessionfinish); the index line records the manifest's
    digest; the schema check raises last (with any error the analyser or the index writer
    deferred), so a broken report still leaves its evidence.
    """
    analyser, indexer = RunAnalyser(), IndexWriter()
    return [analyser, ProbesCsvWriter(), JsonReportWriter(), HtmlReportWriter(),
            MarkdownSummaryWriter(), ManifestWriter(), indexer,
            SchemaCheck([analyser, indexer])]


__all__ = ["JsonReportWriter", "Observers", "RunObserver", "default_writers"]
