"""The writer pipeline: every file written and sealed in order, even when a writer fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from drills.config import load_settings
from drills.evidence import default_writers
from drills.evidence import index as index_mod
from drills.evidence.json_report import ReportError, load_report
from drills.evidence.manifest import MANIFEST_NAME, verify
from drills.evidence.model import (
    DrillRecord,
    FaultRecord,
    Measurement,
    ProbePoint,
    RunRecord,
    Status,
    StepRecord,
)

T0 = "2026-03-01T10:00:00.000Z"


def _objectives() -> dict[str, object]:
    settings = load_settings(None)
    o = settings.objectives
    return {"source": settings.source, "rto": o.rto, "rpo_writes": o.rpo_writes,
            "mttr": o.mttr,
            "components": {n: {"rto": c.rto, "rpo_writes": c.rpo_writes,
                               "priority": c.priority} for n, c in o.components.items()},
            "probes": {"interval": settings.probes.interval,
                       "timeout": settings.probes.timeout,
                       "consecutive": settings.probes.consecutive}}


def _run(run_id: str = "20260301T100000Z-monthly-0001") -> RunRecord:
    drill = DrillRecord("steps/test_drills.py::test_x", "One enclave instance is terminated",
                        "Single enclave instance failure",
                        "monthly/single_instance_failure.feature", ["enclave", "monthly"], T0,
                        ended_utc="2026-03-01T10:00:05.000Z", duration=5.0)
    drill.steps.append(StepRecord("When", "1 enclave instance is terminated", T0, 0.2))
    drill.faults.append(FaultRecord("f-1", "enclave.terminate-instances", "asg",
                                    "terminate 1 instance", T0, "2026-03-01T10:00:04.000Z"))
    drill.measurements.append(Measurement("service", "Nitro Enclave ASG", 300.0, "no-outage",
                                          0.0, 0.0, 0.05, None, True, "f-1", "probes"))
    drill.probes = [ProbePoint(0.05 * i, 0.01, True, "ok", T0) for i in range(10)]
    return RunRecord(run_id, "monthly", [], {"kind": "twin", "region": "us-east-1"}, "0.1.0",
                     None, T0, _objectives(), ended_utc="2026-03-01T10:00:06.000Z",
                     status=Status.PASSED, drills=[drill])


def _finish(run: RunRecord, root: Path) -> Path:
    report_dir = root / run.run_id
    report_dir.mkdir(parents=True)
    for writer in default_writers():
        writer.run_finished(run, report_dir)
    return report_dir


def test_writers_leave_a_sealed_indexed_report(tmp_path: Path) -> None:
    """report.json, report.html, summary.md, the probe CSV and the manifest are written;
    the index line records the manifest's digest; trend.html is drawn."""
    report_dir = _finish(_run(), tmp_path)
    names = {str(p.relative_to(report_dir)) for p in report_dir.rglob("*") if p.is_file()}
    assert {"report.json", "report.html", "summary.md", MANIFEST_NAME} <= names
    assert any(n.startswith("probes/") for n in names)
    (entry,) = index_mod.read(tmp_path)
    assert entry.manifest_sha256 is not None
    assert verify(report_dir, entry.manifest_sha256).ok
    assert (tmp_path / "trend.html").exists()
    assert load_report(report_dir).drills[0].runbook_items == ["7.1.5", "3.1"]


def test_a_failing_analysis_still_leaves_the_evidence(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """If deriving findings breaks, the raw evidence is still written and sealed, the report
    says so, and the run fails at the end with the cause."""
    def broken(*_: object, **__: object) -> list[object]:
        raise RuntimeError("programme table is broken")

    monkeypatch.setattr("drills.evidence.analysis.compliance", broken)
    run = _run()
    with pytest.raises(ReportError, match="programme table is broken"):
        _finish(run, tmp_path)
    report_dir = tmp_path / run.run_id
    assert verify(report_dir).ok
    assert "evidence analysis failed" in load_report(report_dir).notes[0]


def test_an_unreadable_index_is_noted_not_fatal_to_the_evidence(tmp_path: Path) -> None:
    """A corrupt index line: the report is written, sealed and notes it; the run then fails
    naming the line to fix."""
    (tmp_path / index_mod.INDEX_NAME).write_text("{not json\n")
    run = _run()
    with pytest.raises(ReportError, match=r"index\.jsonl:1"):
        _finish(run, tmp_path)
    report_dir = tmp_path / run.run_id
    assert verify(report_dir).ok
    assert any("run index not read" in n for n in load_report(report_dir).notes)
