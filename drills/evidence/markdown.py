"""`summary.md`: the run in Markdown, for CI job summaries and pull-request comments."""

from __future__ import annotations

from pathlib import Path

from drills.evidence.fmt import (
    VERDICT,
    measure_label,
    measured_text,
    minute,
    rehearsal_note,
    secs,
)
from drills.evidence.html_report import EXERCISE, headline, target_text, verdict_word
from drills.evidence.model import RunRecord, Status
from drills.evidence.observer import RunObserver
from drills.evidence.programme import NOT_ON_SCHEDULE, history_text, status_label

SUMMARY_NAME = "summary.md"
ICON = {Status.PASSED: "✅", Status.FAILED: "❌", Status.ERROR: "⛔", Status.SKIPPED: "⏭️",
        Status.NOT_STEADY: "⚠️", Status.EXPECTED_BREACH: "🔶",
        Status.INTERRUPTED: "⏹️", Status.STOPPED: "🛑"}


def cell(value: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def render(run: RunRecord) -> str:
    """The Markdown summary of a run."""
    ok, line = headline(run)
    out = [f"## {'✅' if ok else '❌'} {verdict_word(run, ok)}: "
           f"{EXERCISE.get(run.exercise, run.exercise)}", ""]
    if note := rehearsal_note(run.target):
        out += [f"> **{note}**", ""]
    out += [line, "",
           f"Run `{run.run_id}` on the {target_text(run.target)}, "
           f"{minute(run.started_utc)} to {minute(run.ended_utc)}; drills {run.tool_version}"
           f" (git `{(run.git_revision or 'unknown')[:12]}`).", ""]
    if run.participants:
        out += ["Participants: " + ", ".join(f"{p['name']} ({p.get('role', '')})"
                                             for p in run.participants), ""]
    out += ["| Drill | Figure | Measured | Objective | RPO | Verdict |",
            "|---|---|--:|--:|--:|---|"]
    for d in run.drills:
        rpo = "; ".join(f"{r.lost}/{r.acknowledged} lost" for r in d.rpo) or "—"
        verdict = f"{ICON[d.status]} {VERDICT[d.status]}"
        for i, m in enumerate(d.measurements or [None]):
            name = cell(d.name) if i == 0 else ""
            if m is None:
                out.append(f"| {name} | — | — | — | {rpo} | {verdict} |")
                continue
            measured = measured_text(m)
            if not m.met:
                measured = f"**{measured}** ⚠️"
            out.append(f"| {name} | {measure_label(m.name)} ({cell(m.component)}) | {measured} | "
                       f"{secs(m.objective_rto)} | {rpo if i == 0 else ''} | "
                       f"{verdict if i == 0 else ''} |")
    out += ["", "### Findings", ""]
    if run.findings:
        out += ["| Id | Severity | Status | Finding | First seen | Owner | Due |",
                "|---|---|---|---|---|---|---|"]
        for f in run.findings:
            r = f.remediation
            status = f.status + (" (carried over)" if f.carried_over else "")
            out.append(f"| `{f.finding_id}` | {f.severity} | {status} | {cell(f.title)}: "
                       f"{cell(f.detail)} | {f.first_seen_utc[:10]} | "
                       f"{cell(r.owner) if r and r.owner else '—'} | "
                       f"{cell(r.due) if r and r.due else '—'} |")
    else:
        out.append("None: every drill passed and every fault was reverted.")
    due = [p for p in run.programme if p.cadence and p.status in NOT_ON_SCHEDULE]
    done = [p for p in run.programme if not p.cadence and p.status == "exercised"]
    scenarios = [p for p in run.programme if not p.cadence]
    out += ["", "### Exercise programme (runbook 7)", "",
            "Only a passing run against an account exercises an item; twin runs are "
            "rehearsals.", ""]
    if due:
        out.append(f"{len(due)} cadence item(s) not on schedule:")
        out += [f"- {p.item_id} {p.title} ({p.cadence}): {status_label(p.status).lower()}; "
                f"{history_text(p)}" for p in due]
    else:
        out.append("Every cadence item is on schedule.")
    out += ["", f"Failure scenarios and procedures exercised on an account so far: {len(done)} "
                f"of {len(scenarios)}.", ""]
    if run.notes:
        out += ["Notes: " + "; ".join(run.notes), ""]
    out += ["Full report: `report.html` (self-contained) · data: `report.json` · check: "
            "`drills report verify <dir>`", ""]
    return "\n".join(out)


class MarkdownSummaryWriter(RunObserver):
    """Writes summary.md."""

    def run_finished(self, run: RunRecord, report_dir: Path) -> None:
        (report_dir / SUMMARY_NAME).write_text(render(run), encoding="utf-8")
