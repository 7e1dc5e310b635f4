"""`report.json`: the single source of a run's evidence, validated against its JSON Schema."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from drills.errors import ReportError
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

    jsonschema.validate(report, schema(), format_checker=jsonschema.FormatChecker())


def schema_errors(report: dict[str, Any]) -> list[str]:
    """Every way `report` departs from the schema, one line each ('' path = top level)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema(),
                                                format_checker=jsonschema.FormatChecker())
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
            for e in sorted(validator.iter_errors(report), key=lambda e: list(e.path))]


def write_report(run: RunRecord, report_dir: Path) -> Path:
    """Write report.json (even when it does not follow the schema: `SchemaCheck` says so)."""
    path = report_dir / REPORT_NAME
    path.write_text(json.dumps(run.to_dict(), indent=2, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    return path


def check_report(path: Path) -> None:
    """Raise ReportError when the report.json at `path` does not follow the schema."""
    errors = schema_errors(json.loads(path.read_text(encoding="utf-8")))
    if errors:
        raise ReportError(f"{path} does not follow report.schema.json "
                          f"({len(errors)} error(s), first: {errors[0]}); the model and the "
                          "schema disagree: update drills/schemas/report.schema.json")


def load_report(report_dir: Path) -> RunRecord:
    """The typed run record of a report directory (validated first)."""
    path = report_dir / REPORT_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path} does not exist; give a report directory written by "
                          "`drills run` (reports/<run-id>)") from None
    except ValueError as exc:
        raise ReportError(f"{path} is not JSON ({exc}); `drills report verify` shows whether "
                          "it was changed after the run") from None
    errors = schema_errors(data)
    if errors:
        raise ReportError(f"{path} does not follow report.schema.json: {errors[0]}")
    return RunRecord.from_dict(data)


class JsonReportWriter(RunObserver):
    """Writes report.json when the run ends."""

    def run_finished(self, run: RunRecord, report_dir: Path) -> None:
        write_report(run, report_dir)


class SchemaCheck(RunObserver):
    """Fails the run, after every file is written and sealed, if report.json is invalid.

    Raising later than the JSON writer keeps an invalid report's evidence (HTML, CSV,
    manifest) on disk for whoever has to fix the schema or the model.
    """

    __slots__ = ("upstream",)

    def __init__(self, upstream: list[RunObserver] | None = None) -> None:
        self.upstream = list(upstream or [])  # writers whose deferred error to raise here

    def run_finished(self, run: RunRecord, report_dir: Path) -> None:
        check_report(report_dir / REPORT_NAME)
        for observer in self.upstream:
            error = getattr(observer, "error", None)
            if error is not None:
                raise ReportError(f"{type(observer).__name__} failed while writing the report "
                                  f"in {report_dir}: {error}") from error
