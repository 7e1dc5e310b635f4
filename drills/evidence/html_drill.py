"""One drill's section of report.html: figures against objectives, timeline, faults, steps."""

from __future__ import annotations

from drills.evidence.fmt import VERDICT, VERDICT_CSS, measure_label, parse_utc, secs
from drills.evidence.model import DrillRecord, Measurement, RpoMeasurement, Status
from drills.evidence.page import badge, esc, table
from drills.evidence.svg import frame, gauge, load_chart, timeline

LEGEND_ITEMS = (
    ("", '<span><i style="background:#fdb47a;border:1px solid #bc4c00"></i>fault active</span>'),
    ("", '<span><i style="background:#2da44e"></i>probe succeeded</span>'),
    ("", '<span><i style="background:#cf222e"></i>probe failed</span>'),
    ("", '<span><i style="background:rgba(207,34,46,.18)"></i>outage</span>'),
    ("", '<span><i style="background:#54aeff"></i>step</span>'),
    ("m-fault", '<span style="color:#cf222e">┆ fault injected</span>'),
    ("m-detect", '<span style="color:#9a6700">┆ first failure seen</span>'),
    ("m-other", '<span style="color:#8250df">┆ other figure reached</span>'),
    ("m-recover", '<span style="color:#1a7f37">┆ service recovered</span>'),
    ("m-capacity", '<span style="color:#0969da">┆ capacity restored</span>'),
    ("m-objective", '<span>┆ objective (deadline)</span>'),
)


def legend(drill: DrillRecord) -> str:
    """The timeline's legend, listing only the marks this drill has."""
    view = frame(drill)
    used = {m.css for m in view.marks} if view else set()
    return '<div class="legend">' + "".join(
        html for css, html in LEGEND_ITEMS if not css or css in used) + "</div>"


def measurement_card(m: Measurement) -> str:
    """RTO against its objective, with how it was observed."""
    title = f"{measure_label(m.name)} · {m.component}"
    facts = []
    if m.verdict == "no-outage":
        value = "no outage observed"
        facts.append(f"{m.probes} probes, none failed; an outage shorter than "
                     f"{secs(m.uncertainty)} could pass unseen")
    elif m.rto is None:
        value = {"not-recovered": "not recovered while measured",
                 "not-reached": "did not happen while measured"}.get(
                     str(m.verdict), f"not measured ({m.verdict})")
    else:
        value = secs(m.rto)
        if m.uncertainty and m.uncertainty >= 0.005:
            verb = "reached" if m.verdict == "reached" else "recovered"
            facts.append(f"{verb} between {secs(m.rto_lower)} and {secs(m.rto)}")
        if m.verdict == "flapping":
            facts.append(f"FLAPPING: {len(m.outages)} outages; the RTO runs to the start of "
                         "the last stable run")
    if m.rto is not None and m.objective_rto:
        facts.append(f"{100 * m.rto / m.objective_rto:.1f}% of the {secs(m.objective_rto)} "
                     "objective")
    else:
        facts.append(f"objective {secs(m.objective_rto)}")
    if m.time_to_detect is not None:
        facts.append(f"first failure seen {secs(m.time_to_detect)} after the fault")
    if m.probes and m.verdict != "no-outage":
        facts.append(f"{m.failures} of {m.probes} probes failed")
    if m.path:
        facts.append(f"measured on the {m.path} path")
    verdict = badge("MET", "met") if m.met else badge("BREACHED", "breach")
    return (f'<div class="card{"" if m.met else " bad"}"><div class="t">{esc(title)} '
            f'{verdict}</div><div class="v">{esc(value)}</div>'
            f'{gauge(m.rto, m.objective_rto, m.met, m.rto_lower)}'
            f'<div class="small muted">{esc(" · ".join(facts))}</div>'
            f'<div class="small muted">Method: {esc(m.method)}</div></div>')


def rpo_card(r: RpoMeasurement, title: str = "RPO") -> str:
    """Acknowledged writes lost against the RPO objective."""
    verdict = (badge("MET", "met") if r.met else badge("EXPECTED LOSS", "warn")
               if r.expected_loss else badge("BREACHED", "breach"))
    lost = "".join(f"<li>write #{esc(w.seq)} to {esc(w.item)}: {esc(w.reason)}"
                   + (f" ({esc(w.detail)})" if w.detail else "") + "</li>"
                   for w in r.lost_writes[:20])
    more = f"<li>… and {len(r.lost_writes) - 20} more</li>" if len(r.lost_writes) > 20 else ""
    return (f'<div class="card{"" if r.met else " bad"}"><div class="t">{esc(title)} · '
            f'{esc(r.component)} '
            f'{verdict}</div><div class="v">{r.lost} of {r.acknowledged} acknowledged writes '
            f'lost</div><div class="small muted">objective: at most {r.objective_writes} lost · '
            f'loss window {esc(secs(r.loss_window))} · {r.unacknowledged} never acknowledged '
            f'(not counted) · {r.unverified} unverifiable</div>'
            f'{f"<ul class=small>{lost}{more}</ul>" if lost else ""}'
            f'<div class="small muted">Method: {esc(r.method)}</div></div>')


def _hms(utc: str | None) -> str:
    return utc[11:23] if utc else "—"


def drill_section(number: int, drill: DrillRecord) -> str:
    """The whole section of one drill."""
    status = drill.status if isinstance(drill.status, Status) else Status(drill.status)
    verdict = VERDICT[status]
    origin = parse_utc(drill.faults[0].injected_utc) if drill.faults else None

    def rel(utc: str | None) -> str:
        if utc is None or origin is None:
            return "—"
        return f"{(parse_utc(utc) - origin).total_seconds():+.2f} s"

    head = (f'<div class="drillhead"><h3>{number}. {esc(drill.name)}</h3>'
            f'{badge(verdict, VERDICT_CSS[status])}</div>'
            f'<p class="muted small">Feature <b>{esc(drill.feature)}</b> · '
            f'<code>{esc(drill.feature_path)}</code> · tags {esc(", ".join(drill.tags))}'
            f' · runbook {esc(", ".join(drill.runbook_items) or "—")} · '
            f'{esc(secs(drill.duration))}</p>')
    if drill.description:
        head += f'<p class="small">{esc(drill.description)}</p>'
    if drill.error:
        head += f'<p class="small" style="color:#a40e26"><b>Error:</b> {esc(drill.error)}</p>'
    cards = [measurement_card(m) for m in drill.measurements] + [rpo_card(r) for r in drill.rpo]
    body = f'<div class="cards">{"".join(cards)}</div>' if cards else (
        '<p class="muted">No recovery figure was measured in this drill.</p>')
    body += f'<figure>{timeline(drill)}<figcaption>{legend(drill)}</figcaption></figure>'
    body += load_section(drill)
    if drill.faults:
        rows = [[f"<code>{esc(f.fault_id)}</code>", esc(f.kind), esc(f.description),
                 f"{esc(_hms(f.injected_utc))}<div class='small muted'>acting for "
                 f"{esc(secs(f.inject_seconds))}</div>",
                 esc(_hms(f.reverted_utc)) if f.reverted_utc else badge("NOT REVERTED", "fail"),
                 esc(f.revert_error or "")] for f in drill.faults]
        body += ("<h4>Faults injected and reverted (UTC)</h4><p class='small muted'>Injected: "
                 "just before the fault's first mutating call, the origin of every figure; the "
                 "outage may begin anywhere while it acts, so each bracket widens by that "
                 "time.</p>" + table(
                     ["Fault", "Kind", "What", "Injected", "Reverted", "Revert error"], rows))
    if drill.phases:
        rows = [[esc(p.name), esc(secs(p.at)) if p.at is not None else badge("NOT REACHED", "fail"),
                 esc(_hms(p.utc)), esc(p.detail)] for p in drill.phases]
        body += "<h4>Phase timeline</h4>" + table(
            ["Phase", "t vs fault", "UTC", "What was observed"], rows, {1})
    body += comms_section(drill)
    if drill.runbook_findings:
        body += "<h4>Findings against the runbook</h4><ul>" + "".join(
            f"<li><b>{esc(f.section)}</b> ({esc(f.severity)}): {esc(f.title)}. "
            f"<span class='small'>{esc(f.detail)}</span></li>"
            for f in drill.runbook_findings) + "</ul>"
    if drill.rollouts:
        rows = [[f"<code>{esc(r.refresh_id)}</code>", f"<code>{esc(r.to_image)}</code>",
                 esc(f"{r.min_healthy_percentage}%"), esc(r.status),
                 esc(secs(r.duration)) if r.duration is not None else "—",
                 esc(f"{r.lowest_serving} of {r.desired} ({r.lowest_serving_percentage:.0f}%)")]
                for r in drill.rollouts]
        body += "<h4>Rollouts (instance refreshes)</h4>" + table(
            ["Refresh", "Image", "MinHealthy", "Status", "Duration", "Lowest serving"], rows,
            {4})
    if drill.cohorts:
        rows = [[esc(c.window), esc(c.cohort), esc(f"{c.share:.0%}"), str(c.requests),
                 esc(f"{c.failures} ({c.failure_rate:.0%})"), str(c.attestation_failures),
                 esc("; ".join(c.reasons))] for c in drill.cohorts if c.requests]
        body += ("<h4>App population: outcomes per cohort</h4><p class='small muted'>Every "
                 "answer's attestation verified as the cohort's app version verifies it.</p>"
                 + table(["Window", "Cohort", "Share", "Requests", "Failed", "Refused "
                          "attestation", "Reasons"], rows, {3, 4, 5}))
    if drill.steps:
        rows = []
        for i, s in enumerate(drill.steps, 1):
            st = s.status if isinstance(s.status, Status) else Status(s.status)
            rows.append([str(i), f"<b>{esc(s.keyword)}</b> {esc(s.text)}"
                         + (f'<div class="small" style="color:#a40e26">{esc(s.error)}</div>'
                            if s.error else ""),
                         esc(_hms(s.started_utc)), esc(rel(s.started_utc)),
                         esc(secs(s.duration)),
                         badge(VERDICT[st], VERDICT_CSS[st])])
        body += "<h4>Steps (recovery procedure as executed)</h4>" + table(
            ["#", "Step", "Started (UTC)", "t vs fault", "Duration", "Result"], rows, {2, 3, 4})
    if drill.deviations:
        body += "<h4>Deviations</h4><ul>" + "".join(
            f"<li>{esc(d)}</li>" for d in drill.deviations) + "</ul>"
    if drill.probes:
        failed = sum(not p.ok for p in drill.probes)
        body += (f'<p class="small muted">Raw data: {len(drill.probes)} probes every '
                 f'{esc(secs(drill.probe_interval))} ({failed} failed) in '
                 f'<code>{esc(drill.probes_csv or "report.json")}</code>.</p>')
    return f'<section class="drill" id="drill-{number}">{head}{body}</section>'


def load_section(drill: DrillRecord) -> str:
    """The load during the drill (`drills run --load`): windows, chart, objectives, the load
    users' RPO ("" without load)."""
    load = drill.load
    if load is None:
        return ""
    rows = [[esc(w.name),
             esc("—" if w.start is None else f"{w.start:+.2f} s to {w.end:+.2f} s"),
             str(w.requests), esc(f"{w.throughput:.1f}"),
             esc("—" if w.error_rate is None else f"{100 * w.error_rate:.1f}%"),
             *(esc("—" if v is None else f"{v * 1000:.0f} ms") for v in (w.p50, w.p95, w.p99)),
             esc(", ".join(f"{k} {n}" for k, n in w.outcomes.items()))]
            for w in load.windows]
    out = (f"<h4>Load: {load.users} simulated apps on the vault API</h4>"
           f'<p class="small muted">{esc(load.method)}.</p>'
           + table(["Window", "t vs fault", "Requests", "Per second", "Errors", "p50", "p95",
                    "p99", "Failures by kind"], rows, {2, 3, 4, 5, 6, 7}))
    legend = ('<div class="legend"><span><i class="s0"></i>requests per second</span>'
              '<span><i style="background:#cf222e"></i>errors per second</span></div>')
    out += f"<figure>{load_chart(load, bool(drill.faults))}<figcaption>{legend}</figcaption>" \
           "</figure>"
    cards = []
    for o in load.objectives:
        show = ((lambda v: f"{100 * v:.1f}%") if "error_rate" in o.name else secs)
        cards.append(
            f'<div class="card{"" if o.met else " bad"}"><div class="t">Load objective · '
            f'{esc(o.name.replace("_", " "))} '
            f'{badge("MET", "met") if o.met else badge("BREACHED", "breach")}</div>'
            f'<div class="v">{esc("—" if o.measured is None else show(o.measured))}</div>'
            f'<div class="small muted">objective {esc(show(o.objective))}'
            f'{" · " + esc(o.note) if o.note else ""}</div></div>')
    if load.rpo is not None:
        cards.append(rpo_card(load.rpo, "Load users' writes (second RPO)"))
    if cards:
        out += f'<div class="cards">{"".join(cards)}</div>'
    if load.notes:
        out += '<ul class="small">' + "".join(f"<li>{esc(n)}</li>" for n in load.notes) \
               + "</ul>"
    if load.requests_file:
        out += (f'<p class="small muted">Raw data: every request in <code>'
                f'{esc(load.requests_file)}</code>.</p>')
    return out


def comms_section(drill: DrillRecord) -> str:
    """The incident's communications: the figures, then each notification as sent and as it
    arrived ("" when the drill sent none)."""
    comms = drill.comms
    if comms is None:
        return ""
    limit = comms.first_notification_limit
    first = ("did not arrive" if comms.first_notification is None
             else secs(comms.first_notification))
    cadence = ("no cadence promised ([comms] update_every)" if comms.promised_cadence is None
               else f"promised {secs(comms.promised_cadence)}: "
                    + ("met" if comms.cadence_met else "NOT MET" if comms.cadence_met is False
                       else "fewer than two notifications"))
    out = (f"<h4>Communications: incident {esc(comms.incident_id)}</h4>"
           f'<p class="small">Channel: {esc(comms.channel)}. Started {esc(comms.started_utc)}, '
           f"declared {esc(comms.declared_utc)}, ETA {esc(comms.eta_utc)}. Impact at "
           f"declaration: {esc(comms.impact)}.</p>"
           f'<p class="small">Declaration to the first notification\'s arrival: '
           f"<b>{esc(first)}</b>{esc(f' (limit {secs(limit)})' if limit is not None else '')}; "
           f"updates sent every {esc(secs(comms.update_every))}; longest interval between "
           f"notifications {esc(secs(comms.longest_interval))} ({esc(cadence)}).</p>")
    rows = [[esc(f"{n.sequence}. {n.kind}"), esc(n.template),
             f"{esc(_hms(n.sent_utc))}<div class='small muted'>+{esc(secs(n.after_declaration))}"
             "</div>",
             (f"{esc(_hms(n.delivered_utc))}<div class='small muted'>"
              f"+{esc(secs(n.delivered_after))}</div>" if n.delivered_utc
              else badge("NOT SEEN", "fail")),
             f"<pre class='small'>{esc(n.text)}</pre>",
             _received(n.received_text, n.text) + f"<div class='small muted'>{esc(n.receipt)}"
             "</div>"]
            for n in comms.notifications]
    return out + table(["#", "Template (runbook appendix)", "Sent (UTC, vs declaration)",
                        "Arrived", "As sent", "As received"], rows)


def _received(received: str | None, sent: str) -> str:
    """The "as received" cell: a badge, and the text when it differs from what was sent
    (allowing for the entity escaping a Slack webhook asks for)."""
    if received is None:
        return badge("NOT SEEN", "fail")
    if received in (sent, sent.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")):
        return badge("AS SENT", "pass")
    return badge("DIFFERENT", "fail") + f"<pre class='small'>{esc(received)}</pre>"
