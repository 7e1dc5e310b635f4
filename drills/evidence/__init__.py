"""Evidence of a run: the typed model, observers, and the writers that turn it into files.

The writers are imported on first use (PEP 562): every `drills` command registers the
evidence subcommands (`drills.evidence.cli`), and `drills twin up` must not pay for the
analysis and report code it never runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from drills.lazy import exports as _exports

#: Each public name and the module that defines it.
_HOMES = {
    "JsonReportWriter": "drills.evidence.json_report",
    **dict.fromkeys(("Observers", "RunObserver"), "drills.evidence.observer"),
}

if TYPE_CHECKING:
    from drills.evidence.json_report import JsonReportWriter
    from drills.evidence.observer import Observers, RunObserver


def default_writers() -> list[RunObserver]:
    """The writers every run uses, in the order they must run.

    The analyser derives findings, programme and review first; the CSV writer names each
    drill's probe file before report.json is written; everything rendered comes from the
    same record; the manifest seals the directory (junit.xml and cucumber.json included,
    which pytest wrote earlier in its sessionfinish); the index line records the manifest's
    digest; the schema check raises last (with any error the analyser or the index writer
    deferred), so a broken report still leaves its evidence.
    """
    from drills.evidence.analysis import RunAnalyser
    from drills.evidence.csv_probes import ProbesCsvWriter
    from drills.evidence.html_report import HtmlReportWriter
    from drills.evidence.json_report import JsonReportWriter, SchemaCheck
    from drills.evidence.manifest import ManifestWriter
    from drills.evidence.markdown import MarkdownSummaryWriter
    from drills.evidence.trend import IndexWriter

    analyser, indexer = RunAnalyser(), IndexWriter()
    return [analyser, ProbesCsvWriter(), JsonReportWriter(), HtmlReportWriter(),
            MarkdownSummaryWriter(), ManifestWriter(), indexer,
            SchemaCheck([analyser, indexer])]


__getattr__, __dir__ = _exports(__name__, _HOMES)

__all__ = ["JsonReportWriter", "Observers", "RunObserver", "default_writers"]
