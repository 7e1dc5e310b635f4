"""Across runs: measured RTO/RPO per drill over time against the objective, from the run index.

`drills report trend` prints the table; `trend.html` (written under the reports root after
every run, and by the command) draws one chart per drill and figure.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from drills.errors import DrillError
from drills.evidence import index as index_mod
from drills.evidence.fmt import VERDICT, VERDICT_CSS, measure_label, minute, parse_utc, secs
from drills.evidence.index import Figure, IndexEntry
from drills.evidence.model import RunRecord, Status
from drills.evidence.observer import RunObserver
from drills.evidence.page import badge, esc, page, table
from drills.evidence.svg import Line, Point, trend_chart

TREND_NAME = "trend.html"


def kind_text(target_kind: str) -> str:
    """'twin rehearsal' or 'account': a twin figure is set by its timing profile."""
    return "twin rehearsal" if target_kind == "twin" else target_kind


@dataclass(slots=True)
class Series:
    """One figure of one drill on one kind of target, run after run."""

    drill_key: str
    drill: str
    measure: str
    component: str
    target_kind: str
    points: list[tuple[IndexEntry, Figure]] = field(default_factory=list)

    @property
    def title(self) -> str:
        """'Capacity RTO (Nitro Enclave ASG)'."""
        what = "writes lost" if self.measure == "rpo" else measure_label(self.measure)
        return f"{what} ({self.component})"

    @property
    def seconds(self) -> bool:
        """True for durations (RTO-like figures), False for counts (writes lost)."""
        return self.measure != "rpo"

    def show(self, value: float | None) -> str:
        """A value of this series for people."""
        if value is None:
            return "not recovered"
        return secs(value) if self.seconds else f"{value:g}"


def collect(entries: Sequence[IndexEntry], drill: str | None = None,
            target: str | None = None) -> list[Series]:
    """Series per (drill, figure, component, target kind), oldest point first."""
    out: dict[tuple[str, str, str, str], Series] = {}
    for entry in entries:
        if target and entry.target_kind != target:
            continue
        for f in entry.figures:
            if drill and drill.lower() not in f.drill_key.lower():
                continue
            key = (f.drill_key, f.measure, f.component, entry.target_kind)
            series = out.setdefault(key, Series(f.drill_key, f.drill, f.measure, f.component,
                                                entry.target_kind))
            series.points.append((entry, f))
    order = {"capacity": 0, "service": 1, "rpo": 99}
    return sorted(out.values(), key=lambda s: (s.drill_key, s.target_kind,
                                               order.get(s.measure, 9), s.component))


def stats(series: Series) -> str:
    """'n=3, best 1.20 s, median 2.00 s, worst 3.10 s, 1 breach'."""
    values = [f.value for _, f in series.points if f.value is not None]
    breaches = sum(not f.met for _, f in series.points)
    text = f"n={len(series.points)}"
    if values:
        text += (f", best {series.show(min(values))}, median "
                 f"{series.show(statistics.median(values))}, worst {series.show(max(values))}")
    if len(values) < len(series.points):
        text += f", {len(series.points) - len(values)} not recovered"
    return text + (f", {breaches} breach{'es' if breaches != 1 else ''}" if breaches else "")


def text_table(series_list: Sequence[Series]) -> str:
    """The trend as plain text for a terminal."""
    if not series_list:
        return "no measured figures in the index yet: run `drills run monthly` first"
    lines: list[str] = []
    previous = None
    for s in series_list:
        if s.drill_key != previous:
            lines += ["", s.drill_key] if lines else [s.drill_key]
            previous = s.drill_key
        lines.append(f"  {s.title} ({kind_text(s.target_kind)}): {stats(s)}")
        for entry, f in s.points:
            verdict = "met" if f.met else "BREACHED"
            shown = "no outage" if f.verdict == "no-outage" else s.show(f.value)
            lines.append(f"    {minute(entry.ended_utc):<22} {entry.run_id:<36} "
                         f"{shown:>14}  objective {s.show(f.objective):<12} {verdict}")
    return "\n".join(lines).rstrip() + "\n"


def _groups(series_list: Sequence[Series]) -> list[list[Series]]:
    """Series of the same drill on the same kind of target, together."""
    groups: dict[tuple[str, str], list[Series]] = {}
    for series in series_list:
        groups.setdefault((series.drill_key, series.target_kind), []).append(series)
    return list(groups.values())


def _drill_section(n: int, group: list[Series]) -> str:
    """One drill: its RTO figures on one chart, RPO in words (or a chart if writes were
    lost), and a table of the recent runs."""
    first = group[0]
    rto = [s for s in group if s.seconds]
    rpo = [s for s in group if not s.seconds]
    lines = [Line(f"{measure_label(s.measure)} ({s.component})", f"s{i % 4}",
                  [Point(parse_utc(e.ended_utc), f.value, f.met, e.run_id,
                         zero=f.verdict == "no-outage") for e, f in s.points])
             for i, s in enumerate(rto)]
    objectives = sorted({f.objective for s in rto for _, f in s.points})
    legend = "".join(f'<span><i class="{line.css}"></i>{esc(line.name)}</span>'
                     for line in lines)
    legend += ('<span>- - objective</span><span style="color:#cf222e">● breached</span>'
               '<span>○ no outage observed</span>')
    body = (f'<section class="series" id="drill-{n}"><h3>{esc(first.drill)}</h3>'
            f'<p class="small muted"><code>{esc(first.drill_key)}</code> · '
            f'{esc(kind_text(first.target_kind))} · '
            + esc("; ".join(f"{measure_label(s.measure)}: {stats(s)}" for s in rto)) + "</p>")
    if lines:
        body += ("<figure>" + trend_chart(lines, objectives, title=f"{first.drill}: RTO")
                 + f'<figcaption class="legend">{legend}</figcaption></figure>')
    for s in rpo:
        lost = [f.value or 0 for _, f in s.points]
        if any(lost):
            points = [Point(parse_utc(e.ended_utc), f.value, f.met, e.run_id)
                      for e, f in s.points]
            body += ("<figure>" + trend_chart([Line("writes lost", "s0", points)],
                                              [s.points[-1][1].objective], unit="writes",
                                              title=f"{first.drill}: RPO") + "</figure>")
        else:
            body += (f'<p class="small">RPO ({esc(s.component)}): no acknowledged write lost '
                     f'in {len(lost)} run(s) (objective {s.show(s.points[-1][1].objective)}).'
                     "</p>")
    runs: dict[str, dict[str, str]] = {}
    verdicts: dict[str, bool] = {}
    ended: dict[str, str] = {}
    for s in group:
        for e, f in s.points:
            shown = "no outage" if f.verdict == "no-outage" else s.show(f.value)
            runs.setdefault(e.run_id, {})[s.title] = shown + ("" if f.met else " ✗")
            verdicts[e.run_id] = verdicts.get(e.run_id, True) and f.met
            ended[e.run_id] = e.ended_utc
    columns = [s.title for s in group]
    labels = [s.title.split(" (")[0] for s in group]
    unique = len(set(labels)) == len(labels)  # else the component tells them apart
    rows = [[esc(minute(ended[r])), f"<code>{esc(r)}</code>",
             *(esc(runs[r].get(c, "—")) for c in columns),
             badge("MET", "met") if verdicts[r] else badge("BREACHED", "breach")]
            for r in sorted(runs, key=lambda r: ended[r], reverse=True)[:12]]
    head = ["Run ended", "Run", *(esc(label if unique else s.title)
                                  for label, s in zip(labels, group, strict=True)), "Verdict"]
    return body + table(head, rows, set(range(2, 2 + len(columns))), css="runs") + "</section>"


def render_html(entries: Sequence[IndexEntry], generated: str,
                series_list: Sequence[Series] | None = None) -> str:
    """trend.html: per drill, its figures over time against their objectives; then the runs."""
    series_list = collect(entries) if series_list is None else series_list
    groups = _groups(series_list)
    overview = []
    for n, group in enumerate(groups, 1):
        points = [(e, f) for s in group for e, f in s.points]
        breaches = sum(not f.met for _, f in points)
        last = max(e.ended_utc for e, _ in points)
        overview.append([f'<a href="#drill-{n}">{esc(group[0].drill)}</a>',
                         esc(kind_text(group[0].target_kind)),
                         str(len({e.run_id for e, _ in points})),
                         esc(minute(last)), str(breaches),
                         badge("BREACHES", "breach") if breaches else badge("ALL MET", "met")])
    runs = [[esc(minute(e.ended_utc)), f"<code>{esc(e.run_id)}</code>", esc(e.exercise),
             esc(kind_text(e.target_kind)),
             esc(f"{sum(Status(d.status).passed for d in e.drills)}/"
                                     f"{len(e.drills)}"),
             badge(VERDICT[Status(e.status)], VERDICT_CSS[Status(e.status)])]
            for e in reversed(entries)]
    body = ('<header class="top"><div class="kicker">Disaster-recovery evidence · trend</div>'
            '<h1>Measured RTO and RPO over time</h1><div class="muted">'
            f'{len(entries)} run(s), {len(groups)} drill(s). Each figure is drawn against its '
            'objective; red points breached it.</div></header>')
    if any(e.target_kind == "twin" for e in entries):
        body += ('<div class="rehearsal">Figures marked "twin rehearsal" come from the local '
                 "twin: they prove the procedures work end to end, but their recovery times are "
                 "set by the twin's timing profile, not measured on AWS. Only account runs "
                 "are evidence of the production RTO and RPO.</div>")
    if not groups:
        body += "<p>No measured figures in the index yet.</p>"
    else:
        body += "<h2>Drills</h2>" + table(
            ["Drill", "Target", "Runs", "Last run", "Breaches", "Status"], overview, {2, 4})
    body += "".join(_drill_section(n, g) for n, g in enumerate(groups, 1))
    body += ('<section class="pagebreak"><h2>Runs</h2>' + table(
        ["Ended", "Run", "Exercise", "Target", "Drills passed", "Result"], runs) + "</section>")
    return page("DR drills: RTO/RPO trend", body, generated)


def write_trend(root: Path, generated: str, path: Path | None = None) -> Path:
    """Write trend.html for every run in the index of `root`."""
    out = path or root / TREND_NAME
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(render_html(index_mod.read(root), generated), encoding="utf-8")
    tmp.replace(out)  # runs sharing a reports root never see half a page
    return out


class IndexWriter(RunObserver):
    """Appends the run to the index (with its sealed manifest's digest), then redraws
    trend.html; runs after the manifest, outside the sealed report directory. A failure
    (an unwritable root, a corrupt index line) is kept for `SchemaCheck` to raise."""

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: Exception | None = None

    def run_finished(self, run: RunRecord, report_dir: Path) -> None:
        from drills.evidence.manifest import MANIFEST_NAME, file_sha256

        manifest = report_dir / MANIFEST_NAME
        digest = file_sha256(manifest) if manifest.exists() else None
        root = report_dir.parent
        try:
            index_mod.append(root, index_mod.entry_for(run, report_dir, digest))
            write_trend(root, run.ended_utc or run.started_utc)
        except (DrillError, OSError) as exc:
            self.error = exc
