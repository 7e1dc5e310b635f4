"""Runbook 7.3 item 5, "Update RTO/RPO based on actual times": objectives proposed from the
figures the run index holds (`drills report objectives-review`).

Per component and target kind: the RTO proposed is the nearest-rank p95 of every recovery
figure measured against the component's objective, plus a stated margin, rounded up to a whole
second; the RPO proposed is the worst loss measured. Figures of `@expected_breach` drills (a
flawed procedure shown on purpose) and losses a drill causes on purpose are left out, and
said so. A component whose objective no figure ever met is a finding. Account runs make the
proposal; twin rehearsals are kept apart and, when asked for, labelled, because their times
are set by the twin's timing profile. `drills.evidence.objectives_toml` writes the proposal
as a TOML diff against the current objectives file.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from drills.config import SERVICE_COMPONENT, Objectives
from drills.errors import ConfigError
from drills.evidence.fmt import parse_utc, secs
from drills.evidence.index import Figure, IndexEntry
from drills.evidence.model import Status
from drills.evidence.page import badge, esc, table
from drills.measure.replication import nearest_rank

#: The quantile of the RTO figures a proposal starts from (issue 12 §4: "the p95").
QUANTILE = 0.95
DEFAULT_MARGIN = 0.25
#: How far back figures count: a year, as the annual exercise reviews a year.
WINDOW = timedelta(days=366)
ACCOUNT, TWIN = "account", "twin"
EXPECTED_BREACH = "figure(s) of @expected_breach drills (a flawed procedure shown on purpose)"
EXPECTED_LOSS = "loss figure(s) of drills that lose data on purpose (e.g. a deleted key)"


class Direction(StrEnum):
    """What a proposal does to the current objective."""

    TIGHTEN = "tighten"
    LOOSEN = "loosen"
    KEEP = "keep"
    NEW = "new"  # the component has no objective yet
    NONE = "no figure"


@dataclass(frozen=True, slots=True)
class Proposal:
    """One objective (a component's `rto` or `rpo_writes`) on one target kind: what it is,
    what the figures propose, and which runs they came from."""

    component: str
    key: str  # "rto" (seconds) | "rpo_writes" (acknowledged writes lost)
    target_kind: str  # account | twin
    current: float | None  # None: the component has no objective
    proposed: float | None  # None: no figure to propose from
    basis: float | None  # rto: the p95 of the figures; rpo_writes: the worst loss
    worst: float | None  # the worst figure (None: none, or one never recovered)
    n: int  # figures it rests on (not-recovered ones included)
    margin: float
    breaches: int  # figures worse than the current objective (not recovered included)
    not_recovered: int  # figures that never recovered (left out of the p95)
    sources: tuple[str, ...]  # run ids, oldest first

    @property
    def direction(self) -> Direction:
        if self.proposed is None:
            return Direction.NONE
        if self.current is None:
            return Direction.NEW
        if self.proposed < self.current:
            return Direction.TIGHTEN
        return Direction.LOOSEN if self.proposed > self.current else Direction.KEEP

    @property
    def never_met(self) -> bool:
        """Every figure missed the current objective."""
        return self.n > 0 and self.current is not None and self.breaches == self.n

    def show(self, value: float | None) -> str:
        """A value of this objective for people."""
        if value is None:
            return "—"
        return secs(value) if self.key == "rto" else f"{value:g} write(s)"

    def how(self) -> str:
        """How the proposal was reached, in one line."""
        if self.proposed is None:
            return (f"no figure to propose from ({self.not_recovered} not recovered)"
                    if self.not_recovered else "no figure")
        if self.key == "rpo_writes":
            return f"worst loss measured over {self.n} figure(s)"
        note = f" (n < {math.ceil(1 / (1 - QUANTILE))}: the p95 is the worst)" \
            if self.n - self.not_recovered < 1 / (1 - QUANTILE) else ""
        left = f"; {self.not_recovered} not recovered, left out" if self.not_recovered else ""
        return (f"p95 {secs(self.basis)} of {self.n - self.not_recovered} recovered "
                f"figure(s){note} + {self.margin:.0%} margin, rounded up{left}")


@dataclass(slots=True)
class Review:
    """The review of every objective from the runs of the window."""

    as_of: str
    since: str
    margin: float
    include_twin: bool
    proposals: list[Proposal] = field(default_factory=list)
    account_runs: list[str] = field(default_factory=list)
    twin_runs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was left out, and why

    @property
    def basis_kind(self) -> str | None:
        """The target kind the proposed file rests on: account figures when there are any,
        else (with --include-twin) the twin's; None when nothing was measured."""
        for kind in (ACCOUNT, TWIN) if self.include_twin else (ACCOUNT,):
            if any(p.target_kind == kind and p.proposed is not None for p in self.proposals):
                return kind
        return None

    @property
    def rehearsal_only(self) -> bool:
        """The proposal rests on twin rehearsals alone: not evidence of the real times."""
        return self.basis_kind == TWIN

    def for_file(self) -> list[Proposal]:
        """The proposals the proposed objectives file takes."""
        return [p for p in self.proposals if p.target_kind == self.basis_kind]

    @property
    def findings(self) -> list[str]:
        """Objectives no figure ever met (runbook 7.3: restate them or fix the recovery)."""
        return [f"{p.component} {p.key} ({_kind(p.target_kind)}): never met in {p.n} "
                f"figure(s) against {p.show(p.current)}; worst "
                f"{'not recovered' if p.not_recovered else p.show(p.worst)}. Fix the "
                "recovery or restate the objective."
                for p in self.proposals if p.never_met]


def _kind(kind: str) -> str:
    return "twin rehearsals" if kind == TWIN else "account runs"


def parse_margin(text: str) -> float:
    """'25%' or '0.25' as 0.25; ConfigError for anything else or outside 0-1000 %."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 10.0:
        raise ConfigError(f"--margin {text!r}: give a fraction or a percentage from 0 to 1000 "
                          "%, e.g. 25% or 0.25")
    return value


def build(entries: Sequence[IndexEntry], objectives: Objectives, *, as_of: datetime,
          margin: float = DEFAULT_MARGIN, include_twin: bool = False,
          window: timedelta = WINDOW) -> Review:
    """The review of the runs in `entries` that ended in `window` before `as_of`."""
    since = as_of - window
    recent = [e for e in entries if since <= parse_utc(e.ended_utc) <= as_of]
    review = Review(as_of.isoformat(timespec="seconds"), since.isoformat(timespec="seconds"),
                    margin, include_twin)
    review.account_runs = [e.run_id for e in recent if e.target_kind == ACCOUNT]
    review.twin_runs = [e.run_id for e in recent if e.target_kind == TWIN]
    kinds = (ACCOUNT, TWIN) if include_twin else (ACCOUNT,)
    figures: dict[tuple[str, str, str], list[tuple[str, Figure]]] = {}
    left_out: Counter[str] = Counter()
    for entry in (e for e in recent if e.target_kind in kinds):
        status = {d.key: d.status for d in entry.drills}
        for f in entry.figures:
            why = (EXPECTED_BREACH if status.get(f.drill_key) == Status.EXPECTED_BREACH.value
                   else EXPECTED_LOSS if f.expected_loss else None)
            if why is not None:
                left_out[why] += 1
                continue
            key = "rpo_writes" if f.measure == "rpo" else "rto"
            figures.setdefault((entry.target_kind, f.component, key), []).append(
                (entry.run_id, f))
    review.notes += [f"left out: {n} {what}" for what, n in left_out.items()]
    components = list(objectives.components) + sorted(
        {c for _, c, _ in figures} - set(objectives.components))
    for kind in kinds:
        for component in components:
            for key in ("rto", "rpo_writes"):
                review.proposals.append(_propose(
                    kind, component, key, objectives, figures.get((kind, component, key), []),
                    margin))
    return review


def _propose(kind: str, component: str, key: str, objectives: Objectives,
             found: list[tuple[str, Figure]], margin: float) -> Proposal:
    objective = objectives.components.get(component)
    current = None if objective is None else (
        objective.rto if key == "rto" else float(objective.rpo_writes))
    values = [f.value for _, f in found if f.value is not None]
    missing = len(found) - len(values)
    breaches = sum(v is None or (current is not None and v > current)
                   for v in (f.value for _, f in found))
    if key == "rto":
        basis = nearest_rank(values, QUANTILE) if values else None
        proposed = None if basis is None else float(max(1, math.ceil(basis * (1 + margin))))
    else:
        basis = max(values) if values else None
        proposed = basis
    sources = tuple(dict.fromkeys(run for run, _ in found))
    return Proposal(component, key, kind, current, proposed, basis,
                    max(values) if values else None, len(found), margin, breaches, missing,
                    sources)


def text_table(review: Review) -> str:
    """The review for a terminal: one line per objective with a figure, then the findings."""
    lines = [f"objectives review as of {review.as_of} (runs since {review.since}): "
             f"{len(review.account_runs)} account run(s), {len(review.twin_runs)} twin "
             f"rehearsal(s){'' if review.include_twin else ' (not counted: --include-twin)'}"]
    if review.basis_kind is None:
        lines.append("no figure to propose from: no account run measured anything in the "
                     "window" + ("" if review.include_twin else
                                 "; --include-twin proposes from rehearsals (labelled so)"))
    elif review.rehearsal_only:
        lines.append("REHEARSAL ONLY: this proposal rests on twin runs alone; their times are "
                     "set by the twin's timing profile, not measured on AWS")
    for p in review.proposals:
        if p.n == 0:
            continue
        label = SERVICE_COMPONENT + " ([service])" if p.component == SERVICE_COMPONENT \
            else p.component
        lines.append(f"  {_kind(p.target_kind):<15} {label[:34]:<34} {p.key:<10} "
                     f"current {p.show(p.current):<14} proposed {p.show(p.proposed):<14} "
                     f"{p.direction.value:<8} n={p.n} breaches={p.breaches}")
        lines.append(f"      {p.how()}; runs: {', '.join(p.sources)}")
    lines += [f"FINDING: {f}" for f in review.findings] + [f"note: {n}" for n in review.notes]
    return "\n".join(lines) + "\n"


def review_section(review: Review, diff: str = "") -> str:
    """The review as a section of the annual report's HTML (`diff`: the TOML diff, shown
    under the table when given)."""
    head = ("<h2>Objectives review (runbook 7.3: update RTO/RPO based on actual times)</h2>"
            f'<p class="small">Runs from {esc(review.since[:10])} to {esc(review.as_of[:10])}: '
            f"{len(review.account_runs)} on the account, {len(review.twin_runs)} twin "
            f"rehearsal(s). RTO proposed: the p95 of the measured figures plus a "
            f"{review.margin:.0%} margin; RPO: the worst loss measured.</p>")
    if review.rehearsal_only:
        head += ("<p>" + badge("REHEARSAL ONLY", "warn") + " No account run measured these "
                 "objectives: the proposal rests on twin rehearsals, whose times the twin's "
                 "timing profile sets. It is not evidence of the real recovery times.</p>")
    elif review.basis_kind is None:
        head += "<p class='muted'>No account run in the period measured an objective.</p>"
    rows = [[esc(_kind(p.target_kind)), esc(p.component), esc(p.key), esc(p.show(p.current)),
             esc(p.show(p.proposed)),
             badge(p.direction.value.upper(), "fail" if p.never_met else
                   "warn" if p.direction is Direction.LOOSEN else "pass"),
             f"{esc(p.how())}<div class='small muted'>n={p.n}, breaches {p.breaches}; runs "
             f"{esc(', '.join(p.sources))}</div>"]
            for p in review.proposals if p.n]
    body = table(["Evidence", "Component", "Objective", "Current", "Proposed", "Change", "How"],
                 rows, {3, 4}) if rows else ""
    if review.findings:
        body += "<h4>Objectives never met</h4><ul>" + "".join(
            f"<li>{esc(f)}</li>" for f in review.findings) + "</ul>"
    if review.notes:
        body += '<ul class="small muted">' + "".join(
            f"<li>{esc(n)}</li>" for n in review.notes) + "</ul>"
    if diff:
        body += f"<h4>Proposed objectives file (diff)</h4><pre class='small'>{esc(diff)}</pre>"
    return f'<section class="objectives-review">{head}{body}</section>'
