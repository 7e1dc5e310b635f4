"""`report.html`: one self-contained page; the executive summary first, then every drill.

Order: verdict and key figures (read in ten seconds), objectives vs actuals, findings,
exercise programme, one section per drill (printed on its own page), for annual exercises
the participants, MTTR, human steps and soak (`html_annual`), the objective review (runbook
7.3) and remediation sign-off, then scope, method and files.
"""

from __future__ import annotations

from pathlib import Path

from drills.evidence.fmt import (
    VERDICT,
    VERDICT_CSS,
    is_rehearsal,
    measure_label,
    measured_text,
    minute,
    rehearsal_note,
    secs,
)
from drills.evidence.html_annual import exercise_sections, exercised
from drills.evidence.html_drill import drill_section
from drills.evidence.model import Finding, Measurement, ProgrammeItem, RunRecord, Status
from drills.evidence.observer import RunObserver
from drills.evidence.page import badge, esc, page, table
from drills.evidence.programme import NOT_ON_SCHEDULE, history_text, status_label
from drills.evidence.svg import gauge

HTML_NAME = "report.html"
EXERCISE = {"monthly": "Monthly DR test (runbook 7.1)",
            "quarterly": "Quarterly failover test (runbook 7.2)",
            "annual": "Annual full DR exercise (runbook 7.3)", "ad-hoc": "Ad hoc DR drill"}


def target_text(target: dict[str, object]) -> str:
    """The target in words, never credentials."""
    if is_rehearsal(target):
        return (f"local twin, region {target.get('region')} ({target.get('timing_profile')} "
                f"timing, NATS as {target.get('nats_backend')})")
    return f"AWS account {target.get('account_id', '?')}, region {target.get('region')}"


def headline(run: RunRecord) -> tuple[bool, str]:
    """(passed, one sentence) for the verdict banner; a twin run says it is a rehearsal."""
    total = len(run.drills)
    passed = sum(d.status.passed for d in run.drills)
    expected = sum(d.status is Status.EXPECTED_BREACH for d in run.drills)
    breaches = sum(not m.met for d in run.drills if d.status is not Status.EXPECTED_BREACH
                   for m in d.measurements)
    breaches += sum(not r.met and not r.expected_loss for d in run.drills
                    if d.status is not Status.EXPECTED_BREACH for r in d.rpo)
    prefix = (f"Rehearsal on the local twin ({run.target.get('timing_profile')} timing): "
              if is_rehearsal(run.target) else "")
    known = (f" ({expected} showed the runbook flaw{'s' if expected != 1 else ''} they "
             "exist to show)" if expected else "")
    if passed == total and not breaches:
        return True, (f"{prefix}all {total} drill{'s' if total != 1 else ''} passed{known}; "
                      "every other RTO and RPO objective was met." if expected else
                      f"{prefix}all {total} drill{'s' if total != 1 else ''} passed; every "
                      "RTO and RPO objective was met.")
    parts = [f"{prefix}{total - passed} of {total} drills did not pass"]
    if breaches:
        parts.append(f"{breaches} objective{'s' if breaches != 1 else ''} breached")
    return False, "; ".join(parts) + "."


def verdict_word(run: RunRecord, ok: bool) -> str:
    """PASS / FAIL, and REHEARSAL on the twin (a twin pass is not evidence of the RTO)."""
    word = "PASS" if ok else "FAIL"
    return f"{word} · REHEARSAL" if is_rehearsal(run.target) else word


def summary(run: RunRecord) -> str:
    """Verdict, key figures, and the objectives-vs-actuals table."""
    ok, line = headline(run)
    figures = [m for d in run.drills for m in d.measurements]
    rpos = [r for d in run.drills for r in d.rpo]
    met = sum(m.met for m in figures) + sum(r.met for r in rpos)
    lost = sum(r.lost for r in rpos)
    open_f = [f for f in run.findings if f.status == "open"]
    overdue = [p for p in run.programme if p.cadence and p.status in NOT_ON_SCHEDULE]
    passed = sum(d.status.passed for d in run.drills)

    def kpi(value: str, key: str, css: str) -> str:
        return (f'<div class="kpi {css}"><div class="v">{value}</div>'
                f'<div class="k">{key}</div></div>')

    kpis = "".join([
        kpi(f"{passed}/{len(run.drills)}", "drills passed", "good" if ok else "bad"),
        kpi(f"{met}/{len(figures) + len(rpos)}", "objectives met",
            "good" if met == len(figures) + len(rpos) else "bad"),
        kpi(str(lost), "acknowledged writes lost", "good" if lost == 0 else "bad"),
        kpi(str(len(open_f)), "open findings", "good" if not open_f else "bad"),
        kpi(str(len(overdue)), "programme items not on schedule",
            "good" if not overdue else "warn")])
    rows = []
    for n, d in enumerate(run.drills, 1):
        first = True
        span = max(len(d.measurements), 1)
        rpo = "; ".join(f"{r.lost}/{r.acknowledged} lost" for r in d.rpo) or "—"
        measured_rows: list[Measurement | None] = list(d.measurements) or [None]
        for m in measured_rows:
            cells = []
            if first:
                st = d.status
                cells.append(f'<td rowspan="{span}"><a href="#drill-{n}">{esc(d.name)}</a>'
                             f'<div class="small muted">{esc(d.feature)}</div></td>')
            if m is None:
                cells += ["<td>—</td>"] * 4
            else:
                measured = measured_text(m)
                cells += [f"<td>{esc(measure_label(m.name))}<div class='small muted'>"
                          f"{esc(m.component)}</div></td>",
                          f'<td class="num">{esc(measured)}</td>',
                          f'<td class="num">{esc(secs(m.objective_rto))}</td>',
                          f"<td>{gauge(m.rto, m.objective_rto, m.met, m.rto_lower, 180, 14)}</td>"]
            if first:
                lost = any(not r.met for r in d.rpo)
                style = ' style="color:#a40e26;font-weight:700"' if lost else ""
                cells.append(f'<td rowspan="{span}" class="num"{style}>{esc(rpo)}</td>')
                cells.append(f'<td rowspan="{span}">{badge(VERDICT[st], VERDICT_CSS[st])}</td>')
            rows.append("<tr>" + "".join(cells) + "</tr>")
            first = False
    head = "".join(f"<th{c}>{h}</th>" for h, c in [
        ("Drill", ""), ("Figure", ""), ("Measured", " class=num"), ("Objective", " class=num"),
        ("Measured vs objective", ""), ("RPO", " class=num"), ("Verdict", "")])
    failing = [d.name for d in run.drills if not d.status.passed]
    failing_line = (f'<div class="small" style="color:#a40e26">Did not pass: '
                    f'{esc("; ".join(failing))}</div>' if failing else "")
    note = rehearsal_note(run.target)
    banner = f'<div class="rehearsal">{esc(note)}</div>' if note else ""
    return (f'<section id="summary">{banner}<div class="verdict {"pass" if ok else "fail"}">'
            f'<div class="big">{esc(verdict_word(run, ok))}</div><div><div class="headline">'
            f'{esc(line)}</div><div class="muted">{esc(EXERCISE.get(run.exercise, run.exercise))}'
            f' on the {esc(target_text(run.target))}, {esc(minute(run.started_utc))}.</div>'
            f'{failing_line}</div></div><div class="kpis">{kpis}</div>'
            f'<h3>Objectives vs actuals</h3><table><thead><tr>{head}</tr></thead><tbody>'
            f'{"".join(rows)}</tbody></table></section>')


def facts(run: RunRecord) -> str:
    """Who, what, where, when, with which tool."""
    people = ", ".join(f"{p['name']} ({p.get('role', '')})" for p in run.participants) or (
        "none recorded (pass --participant NAME:ROLE or list them in remediation.toml)")
    rev = (run.git_revision or "unknown")[:12]
    items = [("Run id", f"<code>{esc(run.run_id)}</code>"),
             ("Exercise", esc(EXERCISE.get(run.exercise, run.exercise))),
             ("Target", esc(target_text(run.target))),
             ("Period", f"{esc(minute(run.started_utc))} → {esc(minute(run.ended_utc))}"),
             ("Participants", esc(people)),
             ("Scope", esc(f"{len(run.scope.features)} feature(s); components "
                           f"{', '.join(run.scope.components) or '—'}; regions "
                           f"{', '.join(run.scope.regions) or '—'}")),
             ("Objectives", esc(run.objectives.get("source", ""))),
             ("Tool", f"drills {esc(run.tool_version)}, git <code>{esc(rev)}</code>")]
    return '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _owner(f: Finding) -> tuple[str, str]:
    r = f.remediation
    return (esc(r.owner) if r and r.owner else '<span class="muted">unassigned</span>',
            esc(r.due) if r and r.due else '<span class="muted">—</span>')


def findings_section(run: RunRecord) -> str:
    """Open findings first, then those this run closed."""
    if not run.findings:
        return ('<section id="findings"><h2>Findings</h2><p>No findings: every drill passed, '
                'every objective was met and every fault was reverted.</p></section>')
    rows = []
    for f in run.findings:
        owner, due = _owner(f)
        state = badge("CLOSED", "closed") if f.status == "closed" else badge("OPEN", "open")
        if f.carried_over:
            state += " " + badge("carried", "carried")
        times = "once" if f.occurrences == 1 else f"{f.occurrences} times"
        seen = (f"{esc(f.first_seen_utc[:10])}<div class='small muted'>seen {times}, first in "
                f"<code>{esc(f.first_seen_run)}</code></div>")
        rows.append([f"<code>{esc(f.finding_id)}</code>", badge(f.severity.upper(), f.severity),
                     state, f"<b>{esc(f.title)}</b><div class='small'>{esc(f.detail)}</div>"
                     f"<div class='small muted'>{esc(f.drill)}</div>", seen, owner, due])
    return ('<section id="findings"><h2>Findings</h2><p class="small muted">A failed objective '
            'or step becomes a finding; it stays open in every later report until a run passes '
            'its drill. Owners and due dates come from <code>remediation.toml</code>.</p>'
            + table(["Id", "Severity", "Status", "Finding", "First seen", "Owner", "Due"], rows)
            + "</section>")


def programme_section(run: RunRecord) -> str:
    """Runbook section 7 cadence items, then the scenarios, with when each was exercised."""
    def row(p: ProgrammeItem) -> list[str]:
        where = f"<div class='small muted'>{esc(history_text(p))}</div>"
        last = p.last_exercised_utc
        return [esc(p.item_id),
                esc(p.title) + (" " + badge("this run", "ok") if p.in_this_run else ""),
                esc(p.cadence or "—"), (esc(last[:10]) if last else "—") + where,
                esc((p.due_utc or "")[:10] or "—"),
                badge(status_label(p.status), "warn" if p.status == "rehearsed" else p.status)]
    cadence = [row(p) for p in run.programme if p.cadence]
    scenarios = [row(p) for p in run.programme if not p.cadence]
    head = ["Item", "Runbook item", "Cadence", "Last exercised (account)", "Due by", "Status"]
    return ('<section id="programme" class="pagebreak"><h2>Exercise programme</h2>'
            '<p class="small muted">Runbook section 7: monthly items are overdue after 31 days, '
            'quarterly after 92, annual after 366. Only a passing run against an account '
            'exercises an item: twin runs are rehearsals, listed beside it, and a failed attempt '
            'does not count. Items no drill can perform are attested in '
            '<code>remediation.toml</code>; 7.3.3 needs an annual run with an on-call '
            'participant.</p>' + table(head, cadence)
            + "<h3>Failure scenarios and recovery procedures (sections 2-6)</h3>"
            + table(head, scenarios) + "</section>")


def annual_sections(run: RunRecord) -> str:
    """Runbook 7.3 'Update RTO/RPO based on actual times' and the remediation sign-off."""
    rows = [[esc(r.component), esc(secs(r.stated_rto)),
             esc(secs(r.measured_rto)) if r.measured_rto is not None else "—",
             esc(f"{secs(r.history_rto_worst)} (n={r.history_samples})")
             if r.history_rto_worst is not None else "—",
             esc(r.stated_rpo_writes), esc("—" if r.measured_rpo_lost is None
                                           else r.measured_rpo_lost), esc(r.assessment),
             '<span class="muted">keep / change to ______</span>']
            for r in run.objective_review]
    caveat = ""
    if is_rehearsal(run.target):
        caveat = (f'<p class="small muted">Measured on the local twin with the '
                  f'{esc(run.target.get("timing_profile"))} timing profile: these are not '
                  "production recovery times. Confirm on the account before restating an "
                  "objective.</p>")
    review = ('<section id="review" class="pagebreak"><h2>Update RTO/RPO based on actual times '
              '(runbook 7.3)</h2>' + caveat + table(
                  ["Component", "Stated RTO", "Measured (this run)", "Worst, 12 months",
                   "Stated RPO (writes)", "Lost", "Assessment", "Decision"], rows, {1, 2, 3, 4, 5})
              + "</section>")
    plan = []
    for f in [f for f in run.findings if f.status == "open"]:
        r = f.remediation
        blank = '<span class="muted">__________</span>'
        plan.append([f"<code>{esc(f.finding_id)}</code>", esc(f.title),
                     esc(r.action) if r and r.action else blank,
                     esc(r.owner) if r and r.owner else blank,
                     esc(r.due) if r and r.due else blank,
                     esc(r.status) if r and r.status else blank,
                     esc(f"{r.signed_off_by} {r.signed_off_date or ''}") if r and r.signed_off_by
                     else blank])
    body = table(["Finding", "What", "Action", "Owner", "Due", "Status", "Signed off"], plan) \
        if plan else "<p>No open finding needs remediation.</p>"
    s = run.sign_off
    signer = (f"<b>{esc(s.name)}</b>{esc(s.role)} · {esc(s.date)}<br>{esc(s.statement)}" if s
              else "<b>&nbsp;</b>Name, role, date")
    return (review + '<section id="remediation"><h2>Remediation plan and sign-off</h2>' + body
            + f'<div class="sign"><div><b>&nbsp;</b>Exercise lead</div><div><b>&nbsp;</b>'
            f'Service owner</div><div>{signer}</div></div></section>')


def appendix(run: RunRecord) -> str:
    """Objectives used, notes, amendments."""
    obj = run.objectives
    rows = [[esc(name), esc(c.get("priority", "")), esc(secs(c.get("rto"))),
             esc(c.get("rpo_writes"))] for name, c in obj.get("components", {}).items()]
    probes = obj.get("probes", {})
    scope = run.scope
    out = ('<section id="appendix" class="pagebreak"><h2>Scope, method and objectives</h2>'
           f'<p class="small">Features: {esc(", ".join(scope.features) or "none")}. '
           f'Tags: {esc(", ".join(scope.tags) or "none")}.</p>'
           + "<h3>Objectives</h3>" + table(
               ["Component", "Priority", "RTO", "RPO (writes lost)"], rows, {2, 3})
           + f'<p class="small">Service: RTO {esc(secs(obj.get("rto")))}, RPO '
           f'{esc(obj.get("rpo_writes"))} writes, MTTR {esc(secs(obj.get("mttr")))}. Probes: one '
           f'synthetic vault read every {esc(secs(probes.get("interval")))} (timeout '
           f'{esc(secs(probes.get("timeout")))}); recovered = {esc(probes.get("consecutive"))} '
           'consecutive successes. RTO is the time from fault injection to the first success of '
           'that run; its uncertainty is the gap to the last failure before it.</p>')
    if run.notes:
        out += "<h3>Notes</h3><ul>" + "".join(f"<li>{esc(n)}</li>" for n in run.notes) + "</ul>"
    if run.amendments:
        out += "<h3>Amendments after the run</h3><ul>" + "".join(
            f"<li>{esc(a.utc)}: {esc(a.what)}</li>" for a in run.amendments) + "</ul>"
    return out + "</section>"


def render(run: RunRecord, report_dir: Path | None = None) -> str:
    """The complete report.html (`report_dir`: where it goes, beside the run index the
    annual exercise's objectives review reads)."""
    title = f"{EXERCISE.get(run.exercise, run.exercise)}: {run.run_id}"
    toc = ['<a href="#summary">Summary</a>', '<a href="#findings">Findings</a>',
           '<a href="#programme">Programme</a>'] + [
        f'<a href="#drill-{n}">Drill {n}</a>' for n in range(1, len(run.drills) + 1)]
    if run.exercise == "annual" or exercised(run):
        toc += ['<a href="#participants">Participants</a>', '<a href="#exercise">MTTR, '
                'soak</a>']
    if run.exercise == "annual":
        toc += ['<a href="#review">RTO/RPO review</a>', '<a href="#remediation">Sign-off</a>']
    toc.append('<a href="#appendix">Method</a>')
    kind = "Rehearsal on the local twin" if is_rehearsal(run.target) else \
        "Disaster-recovery evidence"
    body = (f'<header class="top"><div class="kicker">{kind} · VettID Nitro '
            f'Enclave DR procedures</div><h1>{esc(EXERCISE.get(run.exercise, run.exercise))}'
            f'{" (rehearsal)" if is_rehearsal(run.target) else ""}</h1>'
            f'<div class="muted">{esc(minute(run.started_utc))} · {esc(target_text(run.target))}'
            f' · run <code>{esc(run.run_id)}</code></div>'
            f'<nav class="toc">{"".join(toc)}</nav></header>'
            + summary(run) + facts(run) + findings_section(run) + programme_section(run)
            + '<h2 id="drills">Drills</h2>'
            + "".join(drill_section(n, d) for n, d in enumerate(run.drills, 1))
            + (exercise_sections(run, report_dir) if run.exercise == "annual"
               or exercised(run) else "")
            + (annual_sections(run) if run.exercise == "annual" else "") + appendix(run))
    return page(title, body, run.ended_utc or run.started_utc)


class HtmlReportWriter(RunObserver):
    """Writes report.html."""

    def run_finished(self, run: RunRecord, report_dir: Path) -> None:
        (report_dir / HTML_NAME).write_text(render(run, report_dir), encoding="utf-8")
