"""Findings: what went wrong in a drill, with a stable id, carried until a run passes the drill.

An id is a hash of what failed (drill, kind, component or step), not of the error text, so
the same breach in the next month's run is the same finding, seen again. A finding from an
earlier run stays open in every later report until a run in which its drill passes closes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from drills.evidence.fmt import measure_label, secs
from drills.evidence.model import (
    DrillRecord,
    Finding,
    Remediation,
    RunRecord,
    Status,
)

#: Severity by the component's priority in the runbook's table (section 1).
SEVERITY_BY_PRIORITY = {"P1": "high", "SLO": "high", "P2": "medium", "P3": "low"}
SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def finding_id(drill_key: str, kind: str, subject: str) -> str:
    """A stable id for one kind of failure of one drill: 'F-' and 8 hex digits."""
    digest = hashlib.sha256(f"{drill_key}\x1f{kind}\x1f{subject}".encode()).hexdigest()
    return f"F-{digest[:8].upper()}"


def _severity(run: RunRecord, component: str | None) -> str:
    components = run.objectives.get("components", {}) if run.objectives else {}
    priority = components.get(component, {}).get("priority", "") if component else ""
    return SEVERITY_BY_PRIORITY.get(priority, "medium")


def observed(run: RunRecord, drill: DrillRecord) -> list[Finding]:
    """The findings a drill of this run raises (none when it passed and reverted cleanly)."""
    out: list[Finding] = []

    def add(kind: str, subject: str, severity: str, title: str, detail: str,
            component: str | None = None, measured: float | None = None,
            objective: float | None = None) -> None:
        out.append(Finding(
            finding_id=finding_id(drill.key, kind, subject), drill_key=drill.key,
            drill=drill.name, feature=drill.feature, kind=kind, severity=severity, title=title,
            detail=detail, component=component, measured=measured, objective=objective,
            first_seen_run=run.run_id, first_seen_utc=drill.started_utc,
            last_seen_run=run.run_id, last_seen_utc=drill.started_utc))

    for found in drill.runbook_findings:  # raised by passing drills too: the runbook's own
        add("runbook", found.section, found.severity,
            f"Runbook {found.section}: {found.title}", found.detail)
    if drill.status is Status.EXPECTED_BREACH:
        # The breach is the drill's point: one finding against the runbook's procedure, with
        # the fix its scenario states, open for as long as the drill keeps showing it.
        fix = " ".join(drill.description.split("Fix:", 1)[1].split()) \
            if "Fix:" in drill.description else "see the drill's description"
        add("procedure", drill.name, "high",
            f"Runbook procedure breaches its objective: {drill.name}",
            f"{drill.error or 'breach shown'}. Fix: {fix}")
        return out
    soak = drill.soak
    if soak is not None and soak.outages:  # runbook 7.3: operation in DR must not break
        add("soak", soak.region, "high", f"Outage during the soak in {soak.region}",
            f"{len(soak.outages)} outage(s) in {secs(soak.ran)} of operation in "
            f"{soak.region}: " + "; ".join(
                f"{secs(o.start)} to {secs(o.end)} after the incident, {o.failures} failed "
                f"probes ({o.first_error[:80]})" for o in soak.outages[:5]))
    for m in drill.measurements:
        if not m.met:
            detail = (f"not recovered within the {secs(m.objective_rto)} objective "
                      f"({m.verdict})" if m.rto is None else
                      f"measured {secs(m.rto)} against an objective of {secs(m.objective_rto)}")
            add("rto", f"{m.name}/{m.component}", _severity(run, m.component),
                f"{m.component}: {measure_label(m.name)} objective breached", detail,
                m.component, m.rto, m.objective_rto)
    for r in drill.rpo:
        if not r.met and not r.expected_loss:
            add("rpo", r.component, "critical", f"{r.component} RPO objective breached",
                f"{r.lost} of {r.acknowledged} acknowledged writes lost (window "
                f"{secs(r.loss_window)}), {r.unverified} unverifiable; objective "
                f"{r.objective_writes} lost", r.component, float(r.lost),
                float(r.objective_writes))
    for fault in drill.faults:
        if fault.revert_error:
            add("revert", fault.kind, "critical", f"fault {fault.fault_id} was not reverted",
                f"{fault.description}: {fault.revert_error}")
    if not out and drill.status in (Status.FAILED, Status.ERROR, Status.NOT_STEADY):
        step = next((s for s in drill.steps if s.status in (Status.FAILED, Status.ERROR,
                                                           Status.NOT_STEADY)), None)
        if step is not None:
            add("step", step.text, "medium", f"step failed: {step.keyword} {step.text}",
                step.error or drill.error or "failed")
        else:
            add("error", drill.status.value, "medium", "the drill could not be carried out",
                drill.error or "error outside the steps (setup or teardown)")
    return out


def carry(previous_open: Iterable[Finding], current: list[Finding],
          run: RunRecord) -> list[Finding]:
    """Merge the findings still open before this run with those it observed.

    Seen again: one more occurrence, first-seen kept. Not seen: closed when this run passed
    the finding's drill, otherwise carried over still open.
    """
    ran = {d.key: d.status for d in run.drills}
    previous = {f.finding_id: f for f in previous_open}
    out = []
    for finding in current:
        earlier = previous.pop(finding.finding_id, None)
        if earlier is not None:
            finding.first_seen_run, finding.first_seen_utc = (earlier.first_seen_run,
                                                              earlier.first_seen_utc)
            finding.occurrences = earlier.occurrences + 1
            finding.remediation = earlier.remediation
        out.append(finding)
    for finding in previous.values():
        if ran.get(finding.drill_key) is Status.PASSED:
            finding.status, finding.closed_by_run = "closed", run.run_id
            finding.closed_utc = run.ended_utc or run.started_utc
            finding.carried_over = False
        else:
            finding.carried_over = True
        out.append(finding)
    return sorted(out, key=lambda f: (f.status != "open", SEVERITY_ORDER.get(f.severity, 9),
                                      f.first_seen_utc, f.finding_id))


def apply_remediation(findings: Iterable[Finding], plans: Mapping[str, Remediation]) -> None:
    """Attach what the team wrote in the remediation file to each finding it names."""
    for finding in findings:
        if finding.finding_id in plans:
            finding.remediation = plans[finding.finding_id]


def still_open(findings: Iterable[Finding]) -> list[Finding]:
    """The findings a later run must carry (closed ones end here)."""
    return [f for f in findings if f.status == "open"]
