"""The annual exercise's own sections of `report.html` (runbook 7.3), after the drills:
participants and what each did, MTTR as people experienced it (a phase bar against the
objective), the human steps and the escalation path with their times, and the soak in the
DR region against the 4 hours required, then the objectives review proposed from the run
index (runbook 7.3 item 5). The notifications sent are in each drill's own section.
"""

from __future__ import annotations

from pathlib import Path

from drills.evidence.fmt import secs
from drills.evidence.model import DrillRecord, MttrRecord, RunRecord, SoakRecord
from drills.evidence.page import badge, esc, table

PHASE_COLOUR = {"detection": "#8250df", "response": "#bf3989", "diagnosis-and-decision": "#d4a72c",
                "recovery": "#1a7f37"}


def _hms(utc: str) -> str:
    return utc[11:23] if len(utc) >= 23 else utc or "—"


def _command(text: str) -> str:
    """The command line of what a person was asked to run (its `aws` line)."""
    lines = text.splitlines()
    return next((line for line in lines if line.startswith("aws ")), lines[0] if lines else "")


def exercised(run: RunRecord) -> list[DrillRecord]:
    """The drills with people, MTTR or a soak in them (an annual exercise's, even when run
    ad hoc by its feature path)."""
    return [d for d in run.drills if d.human_steps or d.mttr or d.soak]


def participants(run: RunRecord) -> str:
    """Who took part, in which role, and the human steps each acknowledged."""
    did: dict[str, list[str]] = {}
    for drill in run.drills:
        for h in drill.human_steps:
            did.setdefault(h.by, []).append(h.key)
    rows = [[esc(p["name"]), esc(p.get("role", "")),
             esc(", ".join(did.get(p["name"], [])) or "—")] for p in run.participants]
    automated = sorted({h.key for d in run.drills for h in d.human_steps
                        if h.mode == "automated"})
    body = table(["Name", "Role", "Human steps acknowledged"], rows) if rows else (
        "<p>No participant was named (<code>--participant NAME:ROLE</code>, "
        "<code>--operator NAME:ROLE</code>).</p>")
    if automated:
        body += (f"<p class='small'>{badge('AUTOMATED', 'warn')} {len(automated)} human "
                 f"step(s) were acknowledged by the harness, with no person at a terminal: "
                 f"{esc(', '.join(automated))}.</p>")
    return ('<section id="participants" class="pagebreak"><h2>Participants and roles '
            '(runbook 7.3, appendix)</h2>' + body + "</section>")


def mttr_bar(result: MttrRecord, width: int = 640) -> str:
    """The four phases as one bar, scaled to the larger of the total and the objective,
    with the objective marked."""
    scale = max(result.total or 0.0, result.objective, 1.0)
    x, parts = 0.0, []
    for phase in result.phases:
        if phase.duration is None or phase.duration <= 0:
            continue
        w = max(1.0, phase.duration / scale * width)
        parts.append(f'<rect x="{x:.1f}" y="8" width="{w:.1f}" height="22" '
                     f'fill="{PHASE_COLOUR[phase.name]}"><title>{esc(phase.name)}: '
                     f'{esc(secs(phase.duration))}</title></rect>')
        x += w
    mark = result.objective / scale * width
    parts.append(f'<line x1="{mark:.1f}" x2="{mark:.1f}" y1="2" y2="36" stroke="#cf222e" '
                 f'stroke-width="2"/><text x="{min(mark, width - 4):.1f}" y="50" font-size="11"'
                 f' text-anchor="end">MTTR objective {esc(secs(result.objective))}</text>')
    legend = "".join(f'<span><i style="background:{c}"></i>{esc(n)}</span>'
                     for n, c in PHASE_COLOUR.items())
    return (f'<figure><svg viewBox="0 0 {width} 56" width="100%" role="img" '
            f'aria-label="MTTR phases">{"".join(parts)}</svg><figcaption><div class="legend">'
            f'{legend}</div></figcaption></figure>')


def mttr_section(drill: DrillRecord) -> str:
    result = drill.mttr
    if result is None:
        return ""
    verdict = badge("MET", "met") if result.met else badge("BREACHED", "breach")
    rows = [[esc(p.name), esc(secs(p.start)) if p.start is not None else "—",
             esc(secs(p.end)) if p.end is not None else "—",
             esc(secs(p.duration)) if p.duration is not None else badge("NOT REACHED", "fail"),
             esc(p.marks)] for p in result.phases]
    total = secs(result.total) if result.total is not None else "not recovered"
    return (f"<h3>MTTR as people experienced it {verdict}</h3><p>Incident to recovery: "
            f"<b>{esc(total)}</b> against the runbook's MTTR objective of "
            f"{esc(secs(result.objective))} (section 1, \"including diagnosis\").</p>"
            + mttr_bar(result) + table(["Phase", "From (t)", "To (t)", "Took", "Marked by"],
                                       rows, {1, 2, 3}))


def human_steps(drill: DrillRecord) -> str:
    if not drill.human_steps:
        return ""
    rows = [[f"<b>{esc(h.action)}</b><div class='small muted'>runbook {esc(h.runbook)}"
             + (f" · <code>{esc(_command(h.command))}</code>" if h.command else "") + "</div>",
             esc(h.role), f"{esc(h.by)}<div class='small muted'>{esc(h.by_role)}</div>",
             badge(h.mode.upper(), "ok" if h.mode == "interactive" else "warn"),
             esc(_hms(h.asked_utc)), esc(_hms(h.answered_utc)),
             esc(secs(h.answered_at)) if h.answered_at is not None else "—",
             esc(secs(h.took)) + (f"<div class='small muted'>{esc(h.effect)}</div>"
                                  if h.effect else "")] for h in drill.human_steps]
    out = ("<h3>Human steps</h3><p class='small muted'>Asked and answered (UTC); t: seconds "
           "after the incident began; took: prompt to acknowledgement, or to the effect of a "
           "command the person ran. AUTOMATED: no terminal, acknowledged by the harness.</p>"
           + table(["Step", "Asked of", "By", "Mode", "Asked", "Answered", "t", "Took"], rows,
                   {6, 7}))
    if drill.escalation:
        rows = [[esc(e.level), esc(e.contact), esc(e.reason),
                 esc(secs(e.after)) if e.after is not None else "—"] for e in drill.escalation]
        out += "<h4>Escalation path (appendix)</h4>" + table(
            ["Level", "Contact", "Engaged because", "Acknowledged (t)"], rows, {3})
    return out


def soak_section(soak: SoakRecord | None) -> str:
    if soak is None:
        return ("<h3>Operation in the DR region</h3><p>No soak was run (<code>--soak "
                "DURATION</code>): runbook 7.3's 4-hour operation is not shown by this run.</p>")
    label = badge("REHEARSAL", "warn") if soak.rehearsal else badge("4 HOURS", "met")
    outages = badge("NO OUTAGE", "met") if not soak.outages else badge(
        f"{len(soak.outages)} OUTAGE(S)", "breach")
    facts = [("Ran", f"{secs(soak.ran)} of the {secs(soak.required)} runbook 7.3 requires "
              f"(planned {secs(soak.planned)})"),
             ("When (UTC)", f"{soak.start_utc} → {soak.end_utc}"),
             ("Probes", f"{soak.probes} ({soak.probe_failures} failed)"),
             ("Canary writes", f"{soak.canary_acknowledged} acknowledged, {soak.canary_failed}"
              " not"),
             ("Replication backlog", f"max {soak.replication_backlog_max} over "
              f"{soak.replication_samples} reads" if soak.replication_samples else
              "not observable")]
    out = (f"<h3>Operation in {esc(soak.region)} {label} {outages}</h3><dl class='facts'>"
           + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts) + "</dl>")
    if soak.rehearsal:
        out += ("<p class='small'>Shorter than the 4 hours runbook 7.3 requires: a rehearsal "
                "of the soak, not the operation the runbook asks for.</p>")
    if soak.outages:
        out += table(["From (t)", "To (t)", "Failed probes", "First error"],
                     [[esc(secs(o.start)), esc(secs(o.end)), str(o.failures),
                       esc(o.first_error)] for o in soak.outages], {0, 1, 2})
    if soak.notes:
        out += "<ul class='small'>" + "".join(f"<li>{esc(n)}</li>" for n in soak.notes) + \
            "</ul>"
    return out


def objectives_review(run: RunRecord, report_dir: Path | None) -> str:
    """Runbook 7.3 item 5: `drills report objectives-review`'s proposal, from the run index
    beside `report_dir` with this run in it (on the twin, rehearsals count and the proposal
    says REHEARSAL ONLY); "" without a report directory."""
    if report_dir is None:
        return ""
    from drills.config import Objective, Objectives
    from drills.evidence import index as index_mod
    from drills.evidence import objectives_review as review_mod
    from drills.evidence.fmt import parse_utc

    stated, runbook = run.objectives, Objectives()
    objectives = Objectives(
        rto=float(stated.get("rto", runbook.rto)),
        rpo_writes=int(stated.get("rpo_writes", runbook.rpo_writes)),
        components={name: Objective(name, float(c["rto"]), int(c.get("rpo_writes", 0)),
                                    str(c.get("priority", "")))
                    for name, c in stated.get("components", {}).items()})
    entries = [e for e in index_mod.read(report_dir.parent) if e.run_id != run.run_id]
    review = review_mod.build([*entries, index_mod.entry_for(run, report_dir)], objectives,
                              as_of=parse_utc(run.ended_utc or run.started_utc),
                              include_twin=run.target.get("kind") == "twin")
    return '<div id="objectives-review">' + review_mod.review_section(review) + "</div>"


def exercise_sections(run: RunRecord, report_dir: Path | None = None) -> str:
    """Participants, then per exercised drill its MTTR, human steps and soak (its
    communications are in the drill's own section), then the objectives review."""
    body = "".join(f'<h3 class="small muted">{esc(d.name)}</h3>' + mttr_section(d)
                   + human_steps(d) + soak_section(d.soak) for d in exercised(run))
    return (participants(run) + '<section id="exercise"><h2>The exercise: people, MTTR and '
            'the soak</h2>' + (body or "<p>No drill of this run had human steps.</p>")
            + objectives_review(run, report_dir) + "</section>")
