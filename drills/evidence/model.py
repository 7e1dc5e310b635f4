"""The evidence of a run, as types: what happened, when, measured against what.

These are filled while drills run and serialised once, at the edge, into `report.json`
(schema `drills/schemas/report.schema.json`). Times: UTC ISO-8601 strings for people,
seconds (float) for durations, relative times measured from a drill's fault injection.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import asdict, dataclass, field
from enum import Enum, StrEnum
from typing import Any, TypeVar

from drills.measure.timeline import Verdict

#: Version of report.json's schema (`drills/schemas/report.schema.json`); bump the minor
#: version for added optional fields, the major version for anything a reader must change for.
SCHEMA_VERSION = "2.1"

T = TypeVar("T")


class Status(StrEnum):
    """Outcome of a drill or step."""

    PASSED = "passed"
    FAILED = "failed"  # an objective was breached or an assertion failed
    ERROR = "error"  # the drill could not be carried out
    SKIPPED = "skipped"
    #: The service was not in its steady state before any fault: nothing was drilled.
    NOT_STEADY = "not-steady"
    #: A drill of a runbook procedure's known flaw (@expected_breach) showed the breach it
    #: exists to show; reported as a finding against the procedure, not a failed drill.
    EXPECTED_BREACH = "expected-breach"
    #: A signal (SIGINT or SIGTERM) stopped the run during the drill; its faults were
    #: reverted on the way out.
    INTERRUPTED = "interrupted"
    #: A stop condition (`[stop]` alarm) ended the run during this drill: every fault was
    #: reverted at once.
    STOPPED = "stopped"

    @property
    def ok(self) -> bool:
        """True for the outcomes that do not fail a run."""
        return self in (Status.PASSED, Status.SKIPPED, Status.EXPECTED_BREACH)

    @property
    def passed(self) -> bool:
        """True when the drill did what it exists to do (an expected breach included)."""
        return self in (Status.PASSED, Status.EXPECTED_BREACH)


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
    injected_utc: str  # just before its first mutating call: the origin of its figures
    reverted_utc: str | None = None
    revert_error: str | None = None
    inject_seconds: float = 0.0  # how long the inject call took from then (the outage
    # began somewhere inside it: every bracket widens by it)


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
    verdict: Verdict
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
    path: str = ""  # the path the figure was measured on, e.g. "nats" or "api"


@dataclass(slots=True)
class LostWriteRecord:
    """One acknowledged write whose effect is gone."""

    seq: int
    item: str  # the vault, message, item or parameter it went to
    reason: str  # missing | corrupted | stale | not-restored | key-deleted | ...
    acked_utc: str = ""
    detail: str = ""


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
    lost_writes: list[LostWriteRecord] = field(default_factory=list)
    method: str = ""
    #: The drill demonstrates loss on purpose (runbook 4.3 step 3, a deleted key): reported
    #: with its figures, but neither a breach of the drill nor a finding to remediate.
    expected_loss: bool = False
    #: Lost-or-not writes the ground truth the figure was checked against cannot settle.
    uncertain: int = 0


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
class EscalationRecord:
    """A level of the runbook appendix's escalation path that a drill's outage engages."""

    level: str  # L1 | L2 | L3 | L4
    contact: str  # On-call engineer | Team lead | Platform architect | Executive
    reason: str
    after: float | None  # seconds after the fault at which the level is engaged


@dataclass(slots=True)
class CohortRecord:
    """How one cohort of the app population fared in one window of a drill."""

    cohort: str
    share: float  # of the population, 0-1
    window: str  # e.g. "before the rollout", "during the rollout", "after the rollout"
    start: float  # seconds after the drill's first fault
    end: float
    requests: int
    failures: int
    attestation_failures: int
    reasons: list[str] = field(default_factory=list)  # the distinct failure reasons seen

    @property
    def failure_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(slots=True)
class RolloutRecord:
    """An instance refresh a drill ran (runbook 6.2 step 4, 6.3 step 1), as observed."""

    refresh_id: str
    to_image: str  # the AMI the refresh rolled out
    min_healthy_percentage: int
    status: str  # the refresh's last status (Successful, Failed, ...)
    duration: float | None  # start-instance-refresh -> Successful (None: did not succeed)
    desired: int
    lowest_serving: int  # fewest instances serving while it ran
    samples: int  # capacity polls behind `lowest_serving`

    @property
    def lowest_serving_percentage(self) -> float:
        return 100.0 * self.lowest_serving / self.desired if self.desired else 0.0


@dataclass(slots=True)
class PhaseRecord:
    """One moment of an exercise's timeline (runbook 7.2: detect, decide, DR capacity ready,
    DNS INSYNC, first enrolment in DR, failback complete), as ARC Region switch reports its
    steps: when it was reached, seconds after the exercise's origin (its first fault)."""

    name: str
    at: float | None  # None: not reached
    utc: str
    detail: str = ""


@dataclass(slots=True)
class HumanStepRecord:
    """A human step of an exercise as it was done (`drills.human`): asked and answered (UTC,
    and seconds after the exercise's first fault: None before it), by whom, and whether a
    person did it (`interactive`) or the harness acknowledged it without a terminal
    (`automated`)."""

    key: str  # e.g. "approve-failover", "ack-L1"
    action: str
    role: str  # the role the step asks for
    runbook: str  # section
    command: str  # what the person was asked to run ("" for a decision)
    mode: str  # interactive | automated
    by: str
    by_role: str
    asked_utc: str
    answered_utc: str
    asked_at: float | None
    answered_at: float | None
    took: float  # prompt to acknowledgement (or to the effect of the command)
    effect: str = ""  # a watched command: what showed it ran


@dataclass(slots=True)
class MttrPhaseRecord:
    """One phase of the time to recovery as people experience it (seconds after the
    incident began; None: a bound of the phase never came)."""

    name: str  # detection | response | diagnosis-and-decision | recovery
    start: float | None
    end: float | None
    duration: float | None
    marks: str  # what marks its start and end


@dataclass(slots=True)
class MttrRecord:
    """Runbook section 1 "MTTR < 30 minutes, including diagnosis": the incident's phases and
    their total against the objective."""

    objective: float
    total: float | None  # incident start to the service's recovery (None: not recovered)
    met: bool
    phases: list[MttrPhaseRecord] = field(default_factory=list)


@dataclass(slots=True)
class SoakRecord:
    """Runbook 7.3 "4-hour operation in DR region": the soak as run, against the 4 hours
    the runbook requires (shorter is a rehearsal); every outage in it is a finding."""

    region: str
    required: float  # seconds the runbook requires (4 h)
    planned: float  # --soak
    ran: float  # seconds actually soaked
    rehearsal: bool  # ran < required
    start_utc: str
    end_utc: str
    start_at: float | None  # seconds after the exercise's first fault
    probes: int
    probe_failures: int
    canary_acknowledged: int  # canary writes acknowledged during the soak
    canary_failed: int
    replication_samples: int  # backlog reads (0: not observable on this target)
    replication_backlog_max: int | None
    outages: list[OutageRecord] = field(default_factory=list)  # t: seconds after the fault
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RunbookFinding:
    """What a drill found wrong or missing in the runbook itself while the drill passed (a
    command that cannot work in that situation, a step in the wrong order): a finding for
    the runbook's authors, with the section it concerns."""

    section: str  # e.g. "5.2 step 2"
    title: str
    detail: str
    severity: str = "medium"  # critical | high | medium | low


@dataclass(slots=True)
class NotificationRecord:
    """One notification of the communication procedures, as sent and as it arrived."""

    kind: str  # initial | update | resolution
    sequence: int
    template: str  # the runbook appendix template whose text it carries
    subject: str
    text: str  # as sent
    sent_utc: str
    after_declaration: float  # seconds from the declaration to the hand-over returning
    message_id: str = ""
    delivered_utc: str = ""  # when it arrived ("" until it did)
    delivered_after: float | None = None  # seconds from the declaration to its arrival
    received_text: str | None = None  # as it arrived (None: not seen to arrive)
    receipt: str = ""  # how arrival was seen: the read-back queue, the webhook's answer


@dataclass(slots=True)
class CommsRecord:
    """An incident's communications (runbook appendix, 7.3 item 4): the values notifications
    carried, each notification, and the figures: declaration to the first notification, and
    the intervals between notifications against the promised cadence."""

    channel: str
    incident_id: str
    declared_utc: str
    started_utc: str
    impact: str
    eta_utc: str
    notifications: list[NotificationRecord] = field(default_factory=list)
    first_notification: float | None = None  # seconds, declaration to the first arrival
    first_notification_limit: float | None = None  # what the drill asked of it
    update_every: float | None = None  # the cadence the drill sent updates at
    promised_cadence: float | None = None  # [comms] update_every (the appendix has none)
    intervals: list[float] = field(default_factory=list)  # between consecutive notifications
    longest_interval: float | None = None
    cadence_met: bool | None = None  # None: no cadence promised
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class LoadWindow:
    """The load users' requests in one window of a drill (times: seconds after its first
    fault; None when the window does not exist, e.g. no recovery was measured)."""

    name: str  # "before the fault" | "fault to recovery" | "after recovery"
    start: float | None
    end: float | None
    requests: int  # completed in the window
    failures: int
    throughput: float  # requests per second
    error_rate: float | None  # failures / requests (None: no request)
    p50: float | None  # latency of the answered requests, seconds (None: none answered)
    p95: float | None
    p99: float | None
    outcomes: dict[str, int] = field(default_factory=dict)  # failures by kind


@dataclass(slots=True)
class LoadPoint:
    """One second of load on a drill's timeline: requests completed, errors among them."""

    t: float  # start of the second, seconds after the drill's first fault
    requests: int
    errors: int


@dataclass(slots=True)
class LoadObjectiveResult:
    """A load objective ([load] in the objectives file) against what was measured."""

    name: str  # max_error_rate_during_fault | p95_latency_after_recovery
    objective: float
    measured: float | None
    met: bool
    note: str = ""


@dataclass(slots=True)
class LoadRecord:
    """The load during one drill: simulated apps on the vault API (locust), per window."""

    users: int
    spawn_rate: float
    workers: int  # locust worker processes (0: one process)
    method: str
    windows: list[LoadWindow] = field(default_factory=list)
    series: list[LoadPoint] = field(default_factory=list)
    objectives: list[LoadObjectiveResult] = field(default_factory=list)
    #: The load users' own acknowledged writes, read back after recovery (the canary's
    #: figure in `DrillRecord.rpo` stays the drill's RPO).
    rpo: RpoMeasurement | None = None
    requests_file: str | None = None  # raw records, relative to the report directory
    stopped_at: float | None = None  # seconds after the fault at which locust stopped
    recovered_at: float | None = None  # the end of the fault-to-recovery window
    notes: list[str] = field(default_factory=list)


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
    description: str = ""  # the feature's (and scenario's) free text, as written in Gherkin
    runbook_items: list[str] = field(default_factory=list)  # programme item ids it exercises
    probes_csv: str | None = None  # raw probe data, relative to the report directory
    escalation: list[EscalationRecord] = field(default_factory=list)  # runbook appendix
    cohorts: list[CohortRecord] = field(default_factory=list)  # runbook 6: per app cohort
    rollouts: list[RolloutRecord] = field(default_factory=list)  # runbook 6: instance refreshes
    load: LoadRecord | None = None  # simulated apps' requests during the drill (--load)
    phases: list[PhaseRecord] = field(default_factory=list)  # an exercise's timeline
    runbook_findings: list[RunbookFinding] = field(default_factory=list)
    comms: CommsRecord | None = None  # the communication procedures' notifications
    human_steps: list[HumanStepRecord] = field(default_factory=list)  # runbook 7.3: people
    mttr: MttrRecord | None = None  # runbook 1: MTTR phases of an exercise's incident
    soak: SoakRecord | None = None  # runbook 7.3: operation in the DR region

    @property
    def key(self) -> str:
        """Identifies the drill across runs (node ids change with file moves less than names)."""
        return f"{self.feature_path}::{self.name}"


@dataclass(slots=True)
class Scope:
    """What a run covered: features, components, regions and tags."""

    features: list[str] = field(default_factory=list)
    components: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Remediation:
    """What the team plans about a finding; read from the remediation file they fill in."""

    owner: str | None = None
    due: str | None = None  # ISO date
    action: str | None = None
    status: str | None = None  # free text: planned, in progress, done, accepted risk
    signed_off_by: str | None = None
    signed_off_date: str | None = None


@dataclass(slots=True)
class Finding:
    """A failed objective, step or revert: tracked by id until a run passes its drill."""

    finding_id: str
    drill_key: str
    drill: str
    feature: str
    kind: str  # rto | rpo | step | error | revert
    severity: str  # critical | high | medium | low
    title: str
    detail: str
    component: str | None = None
    measured: float | None = None
    objective: float | None = None
    status: str = "open"  # open | closed
    first_seen_run: str = ""
    first_seen_utc: str = ""
    last_seen_run: str = ""
    last_seen_utc: str = ""
    occurrences: int = 1
    carried_over: bool = False  # open from an earlier run; its drill did not fail in this one
    closed_by_run: str | None = None
    closed_utc: str | None = None
    remediation: Remediation | None = None


@dataclass(slots=True)
class ProgrammeItem:
    """One runbook item (section 7 cadence item or failure scenario) and when it was exercised."""

    item_id: str  # "7.1.5", "3.2", ...
    section: str  # runbook section: "7.1", "3", "4", ...
    title: str
    cadence: str | None  # monthly | quarterly | annual; None for scenarios (no cadence)
    evidence: str  # drill | participation | attestation
    #: ok | overdue | never | rehearsed (cadence items); exercised | rehearsed | not-exercised
    #: (scenarios). Only a passing account run or an attestation exercises an item.
    status: str
    last_exercised_utc: str | None = None  # the last passing account run (or attestation)
    last_run_id: str | None = None
    last_result: str | None = None  # passed | attested
    last_passed_utc: str | None = None
    target_kind: str | None = None  # account | attested
    due_utc: str | None = None
    days_since: float | None = None
    in_this_run: bool = False
    last_rehearsal_utc: str | None = None  # the last twin run that exercised it
    last_rehearsal_result: str | None = None  # passed | failed
    last_failed_utc: str | None = None  # a failed attempt since the last time it counted


@dataclass(slots=True)
class ObjectiveReview:
    """Runbook 7.3 "Update RTO/RPO based on actual times": stated vs measured for a component."""

    component: str
    stated_rto: float
    stated_rpo_writes: int
    measured_rto: float | None  # worst in this run
    measured_rpo_lost: int | None  # worst in this run
    history_rto_worst: float | None  # worst over the last 12 months on the same target kind
    history_samples: int
    target_kind: str
    assessment: str


@dataclass(slots=True)
class SignOff:
    """Who accepted the exercise's report, from the remediation file."""

    name: str
    role: str = ""
    date: str = ""
    statement: str = ""


@dataclass(slots=True)
class Amendment:
    """A change to a sealed report after the run (e.g. remediation filled in), for the record."""

    utc: str
    what: str


@dataclass(slots=True)
class StopRecord:
    """The stop condition that ended a run: the alarm, CloudWatch's reason, when the watch
    saw it (UTC), the drill it stopped, and the faults it could not revert."""

    alarm: str
    reason: str
    seen_utc: str
    drill: str
    revert_errors: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, tripped: Any, drill: str, errors: list[str]) -> StopRecord:
        """From a `drills.stop.Tripped` during `drill`."""
        return cls(tripped.alarm, tripped.reason, tripped.seen_utc, drill, list(errors))


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
    scope: Scope = field(default_factory=Scope)
    findings: list[Finding] = field(default_factory=list)
    programme: list[ProgrammeItem] = field(default_factory=list)
    objective_review: list[ObjectiveReview] = field(default_factory=list)
    sign_off: SignOff | None = None
    notes: list[str] = field(default_factory=list)  # how the evidence itself was produced
    amendments: list[Amendment] = field(default_factory=list)
    stop: StopRecord | None = None  # a stop condition ended the run

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, enums as their values."""
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """Rebuild the typed record from its JSON form (as written by `to_dict`)."""
        return from_plain(cls, data)


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def from_plain(cls: type[T], data: Any) -> T:
    """Construct dataclass `cls` from plain JSON data, recursively, by its type hints."""
    hints = typing.get_type_hints(cls)
    kwargs = {f.name: _convert(hints[f.name], data[f.name])
              for f in dataclasses.fields(cls) if f.name in data}  # type: ignore[arg-type]
    return cls(**kwargs)


def _convert(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(inner[0], value)
    if origin is list:
        (item,) = typing.get_args(tp)
        return [_convert(item, v) for v in value]
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_plain(tp, value)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp(value)
    return value
