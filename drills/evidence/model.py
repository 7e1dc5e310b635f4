"""The evidence of a run, as types: what happened, when, measured against what.

These are filled while drills run and serialised once, at the edge, into `report.json`
(schema `drills/schemas/report.schema.json`). Times: UTC ISO-8601 strings for people,
seconds (float) for durations, relative times measured from a drill's fault injection.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

SCHEMA_VERSION = "1.0"


class Status(str, Enum):
    """Outcome of a drill or step."""

    PASSED = "passed"
    FAILED = "failed"  # an objective was breached or an assertion failed
    ERROR = "error"  # the drill could not be carried out
    SKIPPED = "skipped"


@dataclass(slots=True)
class StepRecord:
    """One Gherkin step as it ran."""

    keyword: str
    text: str
    started_utc: str
    duration: float = 0.0
    status: Status = Status.PASSED
    error: str | None = None


@dataclass(slots=True)
class FaultRecord:
    """One fault injected by a drill."""

    fault_id: str
    kind: str
    target: str
    description: str
    injected_utc: str
    reverted_utc: str | None = None
    revert_error: str | None = None


@dataclass(slots=True)
class OutageRecord:
    """A run of failed probes, in seconds after the fault."""

    start: float
    end: float
    failures: int
    first_error: str


@dataclass(slots=True)
class Measurement:
    """One measured recovery figure against its objective."""

    name: str  # "service" (probes) or "capacity" (ASG back at desired)
    component: str
    objective_rto: float
    verdict: str
    rto: float | None
    rto_lower: float | None
    uncertainty: float | None
    time_to_detect: float | None
    met: bool
    fault_id: str | None
    method: str  # how it was observed, one sentence
    probes: int = 0
    failures: int = 0
    outages: list[OutageRecord] = field(default_factory=list)


@dataclass(slots=True)
class RpoMeasurement:
    """Data loss measured by the canary writer against the RPO objective."""

    component: str
    objective_writes: int  # acknowledged writes that may be lost (runbook: 0)
    acknowledged: int
    unacknowledged: int  # never promised: reported, not counted as loss
    lost: int
    loss_window: float  # seconds between the oldest and newest lost write; 0 when none
    unverified: int
    met: bool
    lost_writes: list[dict[str, Any]] = field(default_factory=list)  # seq, vault, reason
    method: str = ""


@dataclass(slots=True)
class ProbePoint:
    """One probe on a drill's timeline (t: seconds after the drill's first fault)."""

    t: float
    latency: float
    ok: bool
    outcome: str
    sent_utc: str
    detail: str = ""


@dataclass(slots=True)
class DrillRecord:
    """One drill (a Gherkin scenario) and its evidence."""

    drill_id: str
    name: str
    feature: str
    feature_path: str
    tags: list[str]
    started_utc: str
    ended_utc: str = ""
    duration: float = 0.0
    status: Status = Status.PASSED
    error: str | None = None
    steps: list[StepRecord] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    rpo: list[RpoMeasurement] = field(default_factory=list)
    probe_interval: float = 0.0
    probes: list[ProbePoint] = field(default_factory=list)
    deviations: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RunRecord:
    """One `drills run`: the whole evidence package's single source."""

    run_id: str
    exercise: str  # monthly | quarterly | annual | ad-hoc
    selection: list[str]
    target: dict[str, Any]
    tool_version: str
    git_revision: str | None
    started_utc: str
    objectives: dict[str, Any]
    participants: list[dict[str, str]] = field(default_factory=list)
    ended_utc: str = ""
    status: Status = Status.PASSED
    drills: list[DrillRecord] = field(default_factory=list)
    schema_version: str = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, enums as their values."""
        return _plain(asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
