"""What a run's evidence needs beyond the raw records: scope, programme items, findings carried
from earlier runs, compliance, and the stated-vs-measured objective review (runbook 7.3).

`RunAnalyser` runs first among the writers, so report.json and everything rendered from it
hold the same derived facts. It reads the run index and the team's remediation file; if
either is unreadable the run's evidence is still written, with a note saying what was skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from drills.errors import DrillError
from drills.evidence import findings as findings_mod
from drills.evidence import index as index_mod
from drills.evidence import remediation
from drills.evidence.fmt import parse_utc, secs
from drills.evidence.model import ObjectiveReview, RunRecord, Scope, Status
from drills.evidence.observer import RunObserver
from drills.evidence.programme import Exercise, compliance, is_on_call, items_for
from drills.evidence.redact import scrub_run

#: Component of the runbook's table that a feature tag stands for.
TAG_COMPONENT = {
    "enclave": "Nitro Enclave ASG",
    "nats": "NATS Cluster",
    "kms": "KMS Sealing Key",
    "s3": "S3 Vault Data",
    "monitoring": "CloudWatch Monitoring",
    "dynamodb": "DynamoDB tables",
    "ssm": "SSM parameters",
}
REVIEW_WINDOW = timedelta(days=366)


class RunAnalyser(RunObserver):
    """Fills the derived parts of the run record; must run before every writer.

    A failure here must not cost the run its evidence: it is noted in the report, the
    writers still write the raw records, and `SchemaCheck` raises it once they are done.
    """

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: Exception | None = None

    def run_finished(self, run: RunRecord, report_dir: Path) -> None:
        try:
            analyse(run, report_dir)
        except Exception as exc:  # re-raised by SchemaCheck after the evidence is written
            self.error = exc
            run.notes.append(f"evidence analysis failed ({type(exc).__name__}: {exc}); "
                             "findings, programme and objective review are incomplete")


def analyse(run: RunRecord, report_dir: Path, team_path: Path | None = None) -> None:
    """Derive scope, items, findings, programme and objective review for `run`, in place."""
    root = report_dir.parent
    scrub_run(run)
    team = remediation.TeamFile()
    path = team_path or remediation.default_path(root)
    try:
        team = remediation.load(path)
    except (DrillError, OSError) as exc:
        run.notes.append(f"remediation file not used: {exc}")
    known = {p.get("name") for p in run.participants}
    run.participants += [p for p in team.participants if p["name"] not in known]
    for drill in run.drills:
        drill.runbook_items = items_for(drill, rehearsal=run.target.get("kind") == "twin")
    run.scope = scope_of(run)
    try:
        history = [e for e in index_mod.read(root) if e.run_id != run.run_id]
    except (DrillError, OSError) as exc:
        history = []
        run.notes.append(f"run index not read, so findings are not carried over and the "
                         f"programme shows this run only: {exc}")
    kind = str(run.target.get("kind", "unknown"))
    end = run.ended_utc or run.started_utc
    before = [e for e in history if e.ended_utc <= run.started_utc and e.target_kind == kind]
    previous_open = findings_mod.still_open(before[-1].findings) if before else []
    observed = [f for d in run.drills for f in findings_mod.observed(run, d)]
    run.findings = findings_mod.carry(previous_open, observed, run)
    findings_mod.apply_remediation(run.findings, team.findings)
    run.sign_off = team.sign_offs.get(run.run_id)
    upto = [e for e in history if e.ended_utc <= end] + [index_mod.entry_for(run, report_dir)]
    run.programme = compliance(exercises(upto, team), parse_utc(end), this_run=run.run_id)
    run.objective_review = review(run, [e for e in upto if e.target_kind == kind])


def scope_of(run: RunRecord) -> Scope:
    """Features, components, regions and tags the run covered."""
    components = {m.component for d in run.drills for m in d.measurements}
    components |= {r.component for d in run.drills for r in d.rpo}
    components |= {TAG_COMPONENT[t] for d in run.drills for t in d.tags if t in TAG_COMPONENT}
    regions = {str(run.target["region"])} if run.target.get("region") else set()
    extra = run.target.get("regions")
    if isinstance(extra, list):
        regions |= {str(r) for r in extra}
    return Scope(features=sorted({d.feature_path for d in run.drills}),
                 components=sorted(components), regions=sorted(regions),
                 tags=sorted({t for d in run.drills for t in d.tags}))


def exercises(entries: Sequence[index_mod.IndexEntry],
              team: remediation.TeamFile) -> list[Exercise]:
    """Every piece of evidence that a programme item was done, from runs and the team file."""
    out = []
    for entry in entries:
        for drill in entry.drills:
            if drill.status == Status.SKIPPED.value:
                continue
            result = "passed" if drill.status == Status.PASSED.value else "failed"
            out += [Exercise(item, entry.ended_utc, entry.run_id, result, entry.target_kind)
                    for item in drill.runbook_items]
        if entry.exercise == "annual" and any(is_on_call(p.get("role", ""))
                                              for p in entry.participants):
            out.append(Exercise("7.3.3", entry.ended_utc, entry.run_id, "passed",
                                entry.target_kind))
        if entry.exercise == "annual":  # its report proposes objectives from the actuals
            out.append(Exercise("7.3.5", entry.ended_utc, entry.run_id,
                                "passed" if entry.status == Status.PASSED.value else "failed",
                                entry.target_kind))
    out += [Exercise(a.item_id, a.date, None, "attested", "attested") for a in team.attestations]
    return out


def review(run: RunRecord, entries: Sequence[index_mod.IndexEntry]) -> list[ObjectiveReview]:
    """Stated objectives next to measured figures (this run, and the last 12 months)."""
    end = parse_utc(run.ended_utc or run.started_utc)
    recent = [e for e in entries if end - parse_utc(e.ended_utc) <= REVIEW_WINDOW]
    kind = str(run.target.get("kind", "unknown"))
    out = []
    for component, stated in run.objectives.get("components", {}).items():
        rto_now = [m for d in run.drills for m in d.measurements if m.component == component]
        rpo_now = [r for d in run.drills for r in d.rpo if r.component == component]
        hist = [f for e in recent for f in e.figures if f.component == component]
        hist_rto = [f for f in hist if f.measure != "rpo"]
        unrecovered = any(m.rto is None for m in rto_now) or any(
            f.value is None for f in hist_rto)
        now_worst = max((m.rto for m in rto_now if m.rto is not None), default=None)
        hist_worst = max((f.value for f in hist_rto if f.value is not None), default=None)
        lost = max((r.lost for r in rpo_now), default=None)
        stated_rto = float(stated.get("rto", 0))
        stated_rpo = int(stated.get("rpo_writes", 0))
        if not hist_rto and not rpo_now:
            text = "Not exercised in the last 12 months: no measured figure to compare."
        elif unrecovered or (hist_worst is not None and hist_worst > stated_rto):
            worst = [f"worst measured {secs(hist_worst)}"] if hist_worst is not None else []
            worst += ["a drill did not recover in time"] if unrecovered else []
            text = (f"Breached: {' and '.join(worst)} against {secs(stated_rto)}; fix the "
                    "recovery or restate the objective.")
        elif hist_worst is not None:
            text = (f"Holds: worst measured {secs(hist_worst)} over {len(hist_rto)} "
                    f"measurement(s) is {100 * hist_worst / stated_rto:.1f}% of "
                    f"{secs(stated_rto)}.")
        else:
            text = "No RTO measured."
        hist_lost = max((int(f.value or 0) for f in hist if f.measure == "rpo"), default=None)
        if hist_lost is not None:
            text += (f" RPO: up to {hist_lost} acknowledged write(s) lost against "
                     f"{stated_rpo} allowed." if hist_lost > stated_rpo else
                     f" RPO {stated_rpo} held: no acknowledged write lost.")
        out.append(ObjectiveReview(
            component=component, stated_rto=stated_rto, stated_rpo_writes=stated_rpo,
            measured_rto=now_worst, measured_rpo_lost=lost, history_rto_worst=hist_worst,
            history_samples=len(hist_rto), target_kind=kind,
            assessment=text))
    return out
