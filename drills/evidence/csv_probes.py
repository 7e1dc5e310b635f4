"""Raw probe data as CSV, one file per drill, for anyone who wants to re-derive the figures."""

from __future__ import annotations

import csv
from pathlib import Path

from drills.evidence.fmt import slug
from drills.evidence.model import RunRecord
from drills.evidence.observer import RunObserver

PROBES_DIR = "probes"
COLUMNS = ("t_seconds", "sent_utc", "latency_seconds", "ok", "outcome", "detail")


class ProbesCsvWriter(RunObserver):
    """Writes probes/<nn>-<scenario>.csv per drill with probes; runs before report.json so
    each drill's `probes_csv` names its file."""

    def run_finished(self, run: RunRecord, report_dir: Path) -> None:
        for number, drill in enumerate(run.drills, 1):
            if not drill.probes:
                continue
            name = f"{PROBES_DIR}/{number:02d}-{slug(drill.name)}.csv"
            path = report_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="", encoding="utf-8") as fh:
                out = csv.writer(fh)
                out.writerow(COLUMNS)
                for p in drill.probes:
                    out.writerow((f"{p.t:.4f}", p.sent_utc, f"{p.latency:.4f}",
                                  "true" if p.ok else "false", p.outcome, p.detail))
            drill.probes_csv = name
