"""report.json: every report the suite produces follows the shipped, versioned JSON Schema."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import jsonschema
import pytest

from drills.evidence import model
from drills.evidence.json_report import (
    REPORT_NAME,
    ReportError,
    SchemaCheck,
    load_report,
    schema,
    validate,
)
from tests.conftest import Runs

#: Which $defs entry of the schema describes which record type.
DEFS = {
    model.RunRecord: None, model.DrillRecord: "drill", model.StepRecord: "step",
    model.FaultRecord: "fault", model.Measurement: "measurement", model.OutageRecord: "outage",
    model.RpoMeasurement: "rpo", model.ProbePoint: "probe", model.Scope: "scope",
    model.Finding: "finding", model.Remediation: "remediation",
    model.ProgrammeItem: "programme_item", model.ObjectiveReview: "objective_review",
    model.SignOff: "sign_off", model.Amendment: "amendment",
    model.CommsRecord: "comms", model.NotificationRecord: "notification",
}


@pytest.mark.twin
def test_every_report_in_the_root_follows_the_schema(runs: Runs) -> None:
    """Each report.json the three real runs wrote validates, and is schema version 1.0."""
    reports = sorted(runs.root.glob(f"*/{REPORT_NAME}"))
    assert len(reports) == 3
    for path in reports:
        data = json.loads(path.read_text(encoding="utf-8"))
        validate(data)
        assert data["schema_version"] == model.SCHEMA_VERSION == schema()["properties"][
            "schema_version"]["const"]


@pytest.mark.twin
def test_every_report_holds_what_the_issue_lists(runs: Runs) -> None:
    """Run facts, and per drill figures, faults, steps and the probe timeline, are present."""
    data = runs.report("outage")
    assert data["target"]["kind"] == "twin"
    assert data["git_revision"]
    assert data["scope"]["features"] == ["scenarios/complete_enclave_failure.feature"]
    assert data["scope"]["components"] == ["Nitro Enclave ASG"]
    for drill in data["drills"]:
        service = next(m for m in drill["measurements"] if m["name"] == "service")
        assert service["verdict"] == "recovered"
        assert 0 < service["time_to_detect"] < service["rto"] <= service["objective_rto"]
        assert service["uncertainty"] > 0
        assert drill["rpo"][0]["lost"] == 0
        assert drill["rpo"][0]["acknowledged"] > 0
        assert all(f["injected_utc"] < f["reverted_utc"] for f in drill["faults"])
        assert any(not p["ok"] for p in drill["probes"])
        assert {"3.2", "4.1"} <= set(drill["runbook_items"])


@pytest.mark.twin
def test_probes_csv_holds_every_probe(runs: Runs) -> None:
    """Each drill's CSV has a header and one row per probe of report.json."""
    data = runs.report("outage")
    for drill in data["drills"]:
        lines = (runs.dirs["outage"] / drill["probes_csv"]).read_text().splitlines()
        assert lines[0] == "t_seconds,sent_utc,latency_seconds,ok,outcome,detail"
        assert len(lines) - 1 == len(drill["probes"])
        assert sum(",false," in line for line in lines) == sum(
            not p["ok"] for p in drill["probes"])


def test_schema_names_every_model_field_and_nothing_else() -> None:
    """The schema and the dataclasses agree field for field, so neither drifts silently."""
    defs = schema()["$defs"]
    for cls, name in DEFS.items():
        spec = schema() if name is None else defs[name]
        fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        assert set(spec["properties"]) - {"acked_utc"} == fields, cls.__name__
        assert spec["additionalProperties"] is False


def test_schema_is_documented_field_by_field() -> None:
    """docs/report-schema.md mentions every property of every object of the schema."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "report-schema.md").read_text()
    names = set(schema()["properties"])
    for spec in schema()["$defs"].values():
        names |= set(spec.get("properties", {}))
    missing = sorted(n for n in names if f"`{n}`" not in doc)
    assert not missing, f"undocumented fields: {missing}"


@pytest.mark.twin
def test_report_round_trips_through_the_typed_model(runs: Runs) -> None:
    """load_report rebuilds typed records that serialise back to the very same JSON."""
    run = load_report(runs.dirs["monthly"])
    assert isinstance(run.drills[0].steps[0].status, model.Status)
    assert run.to_dict() == runs.report("monthly")


def test_an_invalid_report_is_written_then_refused(tmp_path: Path) -> None:
    """A report that breaks the schema is kept on disk, and SchemaCheck names the field."""
    run = model.RunRecord(run_id="r", exercise="monthly", selection=[], target={"kind": "twin",
                          "region": "us-east-1"}, tool_version="0", git_revision=None,
                          started_utc="2026-01-01T00:00:00.000Z", objectives={})
    (tmp_path / REPORT_NAME).write_text(json.dumps(run.to_dict()))
    with pytest.raises(ReportError, match="objectives"):
        SchemaCheck().run_finished(run, tmp_path)
    with pytest.raises(jsonschema.ValidationError):
        validate(run.to_dict())


def test_model_types_are_resolvable() -> None:
    """Every record's type hints resolve (from_dict depends on them)."""
    for cls in DEFS:
        assert typing.get_type_hints(cls)
