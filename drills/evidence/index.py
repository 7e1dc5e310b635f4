"""The run index: one JSON line per run under the reports root (`index.jsonl`).

Trends, programme compliance and findings carried across runs read it instead of every
report.json. Each line holds a run's figures, the programme items its drills exercised, its
findings and the SHA-256 of its MANIFEST (so `verify` notices a re-sealed report). Lines are
appended under an exclusive lock; the last line for a run id wins (re-rendered reports).
`rebuild` recreates the file from the report directories if it is lost.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from drills.errors import DrillError, ReportError
from drills.evidence.model import Finding, RunRecord, from_plain

INDEX_NAME = "index.jsonl"


@dataclass(slots=True)
class Figure:
    """One measured figure of one drill, as the trend plots it."""

    drill_key: str
    drill: str
    measure: str  # service | capacity (RTO, seconds) | rpo (acknowledged writes lost)
    component: str
    value: float | None
    uncertainty: float | None
    objective: float
    met: bool
    verdict: str
    expected_loss: bool = False  # an RPO figure of a drill that loses data on purpose


@dataclass(slots=True)
class IndexedDrill:
    """A drill of an indexed run: enough for compliance."""

    key: str
    name: str
    feature: str
    status: str
    runbook_items: list[str] = field(default_factory=list)


@dataclass(slots=True)
class IndexEntry:
    """One run, summarised."""

    run_id: str
    exercise: str
    started_utc: str
    ended_utc: str
    status: str
    target_kind: str
    region: str
    report_dir: str  # relative to the reports root
    manifest_sha256: str | None = None
    participants: list[dict[str, str]] = field(default_factory=list)
    drills: list[IndexedDrill] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def entry_for(run: RunRecord, report_dir: Path, manifest_sha256: str | None = None) -> IndexEntry:
    """The index line of a run."""
    figures = []
    for d in run.drills:
        for m in d.measurements:
            figures.append(Figure(d.key, d.name, m.name, m.component, m.rto, m.uncertainty,
                                  m.objective_rto, m.met, m.verdict))
        for r in d.rpo:
            figures.append(Figure(d.key, d.name, "rpo", r.component, float(r.lost), None,
                                  float(r.objective_writes), r.met,
                                  "lost" if r.lost else "no-loss", r.expected_loss))
    return IndexEntry(
        run_id=run.run_id, exercise=run.exercise, started_utc=run.started_utc,
        ended_utc=run.ended_utc or run.started_utc, status=run.status.value,
        target_kind=str(run.target.get("kind", "unknown")),
        region=str(run.target.get("region", "")), report_dir=report_dir.name,
        manifest_sha256=manifest_sha256, participants=list(run.participants),
        drills=[IndexedDrill(d.key, d.name, d.feature, d.status.value, list(d.runbook_items))
                for d in run.drills],
        figures=figures, findings=list(run.findings))


def append(root: Path, entry: IndexEntry) -> Path:
    """Append one line to `root/index.jsonl` (created if missing)."""
    path = root / INDEX_NAME
    line = json.dumps(asdict(entry), separators=(",", ":"), sort_keys=True) + "\n"
    with path.open("a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # concurrent runs sharing one reports root
        try:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    return path


def read(root: Path) -> list[IndexEntry]:
    """Every run in the index, the last line per run id, oldest first."""
    path = root / INDEX_NAME
    if not path.exists():
        return []
    entries: dict[str, IndexEntry] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = from_plain(IndexEntry, json.loads(line))
        except (ValueError, KeyError, TypeError) as exc:
            raise ReportError(f"{path}:{number} is not an index line ({exc}); fix or delete it, "
                             "or rebuild with `drills report index --rebuild`") from None
        if entry.target_kind == "aws":  # schema 1.0 named an account target "aws"
            entry.target_kind = "account"
        entries[entry.run_id] = entry
    return sorted(entries.values(), key=lambda e: (e.ended_utc, e.run_id))


def rebuild(root: Path, skipped: list[str] | None = None) -> list[IndexEntry]:
    """Recreate the index from every `<root>/*/report.json`; returns the entries written.
    Reports that do not follow the schema (older versions, damaged) are left out and named
    in `skipped`."""
    from drills.evidence.json_report import load_report
    from drills.evidence.manifest import MANIFEST_NAME, file_sha256

    entries = []
    for report in sorted(root.glob("*/report.json")):
        try:
            run = load_report(report.parent)
        except DrillError as exc:
            if skipped is not None:
                skipped.append(str(exc))
            continue
        manifest = report.parent / MANIFEST_NAME
        entries.append(entry_for(run, report.parent,
                                 file_sha256(manifest) if manifest.exists() else None))
    entries.sort(key=lambda e: (e.ended_utc, e.run_id))
    tmp = root / (INDEX_NAME + ".tmp")
    tmp.write_text("".join(json.dumps(asdict(e), separators=(",", ":"), sort_keys=True) + "\n"
                           for e in entries), encoding="utf-8")
    tmp.replace(root / INDEX_NAME)
    return entries


def sealed_digest(report_dir: Path) -> str | None:
    """The manifest digest the index recorded when `report_dir` was last sealed, if any."""
    try:
        entries = read(report_dir.parent)
    except (DrillError, OSError):
        return None
    match = [e for e in entries if e.report_dir == report_dir.name]
    return match[-1].manifest_sha256 if match else None
