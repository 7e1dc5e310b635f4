"""The file the team fills in: remediation of findings, sign-off, attestations, participants.

Default location `<reports root>/remediation.toml` (or `$DRILLS_REMEDIATION`; YAML works too
when PyYAML is installed). Every report written afterwards, and `drills report render`,
picks it up. Example::

    [[participants]]
    name = "A. Operator"
    role = "on-call engineer"

    [findings.F-1A2B3C4D]
    owner = "Platform team (J. Doe)"
    due = 2027-01-31
    action = "Pre-warm a standby instance"
    status = "in progress"
    signed_off_by = "CISO"
    signed_off_date = 2027-02-03

    [sign_off."20270110T090000Z-annual-ab12"]
    name = "J. Smith"
    role = "Head of Operations"
    date = 2027-01-12
    statement = "Exercise results and remediation plan accepted."

    [attestations."7.2.2"]
    date = 2026-11-20
    by = "Support lead"
    note = "Maintenance notice sent to users"
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from drills.errors import ConfigError
from drills.evidence.model import Remediation, SignOff
from drills.evidence.programme import BY_ID

FILE_NAME = "remediation.toml"
ENV = "DRILLS_REMEDIATION"


@dataclass(frozen=True, slots=True)
class Attestation:
    """A programme item the team did by hand and records as done."""

    item_id: str
    date: str
    by: str
    note: str = ""


@dataclass(slots=True)
class TeamFile:
    """Everything the remediation file holds, typed."""

    path: Path | None = None
    participants: list[dict[str, str]] = field(default_factory=list)
    findings: dict[str, Remediation] = field(default_factory=dict)
    sign_offs: dict[str, SignOff] = field(default_factory=dict)  # by run id
    attestations: list[Attestation] = field(default_factory=list)


def default_path(reports_root: Path) -> Path:
    """Where the team file is looked for: $DRILLS_REMEDIATION, else the reports root."""
    return Path(os.environ[ENV]) if os.environ.get(ENV) else reports_root / FILE_NAME


def _text(value: Any, where: str) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{where}: expected text or a date, got {value!r}")


def _table(value: Any, where: str, allowed: set[str]) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: "
                          f"{', '.join(sorted(allowed))}")
    return {k: _text(v, f"{where}.{k}") for k, v in value.items()}


def _read(path: Path) -> Mapping[str, Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"{path}: reading YAML needs PyYAML (pip install pyyaml); or "
                              "write the file as TOML") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected tables at the top level")
    return data


def load(path: Path | None) -> TeamFile:
    """Read the team file; a missing file is an empty one, a malformed one a ConfigError."""
    if path is None or not path.exists():
        return TeamFile(path=None)
    data = _read(path)
    where = str(path)
    unknown = sorted(set(data) - {"participants", "findings", "sign_off", "attestations"})
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(unknown)}; allowed: "
                          "participants, findings, sign_off, attestations")
    team = TeamFile(path=path)
    for i, person in enumerate(data.get("participants", [])):
        entry = _table(person, f"{where} participants[{i}]", {"name", "role"})
        if not entry.get("name"):
            raise ConfigError(f"{where} participants[{i}]: a participant needs a name")
        team.participants.append({"name": entry["name"],
                                  "role": entry.get("role") or "participant"})
    for fid, spec in _mapping(data, "findings", where).items():
        entry = _table(spec, f"{where} [findings.{fid}]",
                       {"owner", "due", "action", "status", "signed_off_by", "signed_off_date"})
        team.findings[fid] = Remediation(**entry)
    for run_id, spec in _mapping(data, "sign_off", where).items():
        entry = _table(spec, f'{where} [sign_off."{run_id}"]',
                       {"name", "role", "date", "statement"})
        if not entry.get("name"):
            raise ConfigError(f'{where} [sign_off."{run_id}"]: a sign-off needs a name')
        team.sign_offs[run_id] = SignOff(**entry)
    for item_id, spec in _mapping(data, "attestations", where).items():
        at = f'{where} [attestations."{item_id}"]'
        if item_id not in BY_ID:
            raise ConfigError(f"{at}: no programme item {item_id}; items are "
                              f"{', '.join(BY_ID)}")
        entry = _table(spec, at, {"date", "by", "note"})
        if not entry.get("date") or not entry.get("by"):
            raise ConfigError(f"{at}: an attestation needs a date and who did it (by)")
        team.attestations.append(Attestation(item_id, entry["date"], entry["by"],
                                             entry.get("note", "")))
    return team


def _mapping(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: [{key}] must be a table of tables")
    return value
