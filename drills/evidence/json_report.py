"""`report.json`: the single source of a run's evidence, validated against its JSON Schema."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from drills.evidence.model import RunRecord
from drills.evidence.observer import RunObserver

REPORT_NAME = "report.json"


def schema() -> dict[str, Any]:
    """The JSON Schema of report.json shipped with the package."""
    text = resources.files("drills").joinpath("schemas/report.schema.json").read_text("utf-8")
    return json.loads(text)


def validate(report: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when `report` does not follow the schema."""
    import jsonschema

    jsonschema.validate(report, schema())


class JsonReportWriter(RunObserver):
    """Writes report.json when the run ends."""

    def run_finished(self, run: RunRecord, report_dir: Path) -> None:
        data = run.to_dict()
        validate(data)
        (report_dir / REPORT_NAME).write_text(json.dumps(data, indent=2) + "\n",
                                              encoding="utf-8")
