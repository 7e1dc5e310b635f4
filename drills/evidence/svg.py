"""Inline SVG charts for the HTML pages: drill timeline, RTO gauge, trend line. No scripts.

Every chart is a string of SVG with `role="img"`, an accessible label, and `<title>` tooltips;
colours come from CSS classes in `style.py`, so print styles apply to them too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from html import escape

from drills.evidence.fmt import measure_label, parse_utc, secs
from drills.evidence.model import DrillRecord, LoadRecord, Status

W, LEFT, RIGHT = 980, 128, 24


def nice_step(span: float, target: int = 8) -> float:
    """A 1-2-5 step that cuts `span` into about `target` intervals."""
    if span <= 0:
        return 1.0
    raw = span / target
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:.0f}"


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: max(chars - 1, 1)] + "…"


@dataclass(frozen=True, slots=True)
class Mark:
    """A labelled instant on the timeline."""

    t: float
    label: str
    css: str


def time_origin(drill: DrillRecord) -> datetime | None:
    """The instant probe `t` is measured from: the first fault, else the first probe."""
    if drill.faults:
        return parse_utc(drill.faults[0].injected_utc)
    if drill.probes:
        p = drill.probes[0]
        return parse_utc(p.sent_utc)
    return parse_utc(drill.steps[0].started_utc) if drill.steps else None


def _rel(origin: datetime, utc: str) -> float:
    return (parse_utc(utc) - origin).total_seconds()


def _figure_marks(drill: DrillRecord, origin: datetime) -> list[Mark]:
    """Fault injected, first failure (detected), recovered and capacity restored instants."""
    offsets = {f.fault_id: _rel(origin, f.injected_utc) for f in drill.faults}
    out = [Mark(t, "fault injected", "m-fault") for t in offsets.values()]
    for m in drill.measurements:
        base = offsets.get(m.fault_id or "", 0.0)
        if m.time_to_detect is not None:
            out.append(Mark(base + m.time_to_detect, "first failure seen", "m-detect"))
        if m.rto is None or m.verdict == "no-outage":
            continue
        if m.name == "service":
            out.append(Mark(base + m.rto, "service recovered", "m-recover"))
        elif m.name == "capacity":
            out.append(Mark(base + m.rto, "capacity restored", "m-capacity"))
        else:  # other figures (time to alarm, time to page): their own name
            out.append(Mark(base + m.rto, measure_label(m.name).lower(), "m-other"))
    return out


@dataclass(frozen=True, slots=True)
class Frame:
    """What a drill's timeline shows: its time origin, range (seconds) and marks."""

    origin: datetime
    lo: float
    hi: float
    marks: list[Mark]


def frame(drill: DrillRecord) -> Frame | None:
    """The timeline's frame, or None when the drill recorded nothing to draw."""
    origin = time_origin(drill)
    if origin is None:
        return None
    found = _figure_marks(drill, origin)
    starts = [_rel(origin, s.started_utc) for s in drill.steps]
    ends = [a + s.duration for a, s in zip(starts, drill.steps, strict=True)]
    ends += [_rel(origin, f.reverted_utc) for f in drill.faults if f.reverted_utc]
    points = [p.t for p in drill.probes]
    lo = min([*starts, *points[:1], 0.0])
    hi = max([*ends, *points[-1:], *(m.t for m in found), lo + 1.0])
    pad = (hi - lo) * 0.02
    lo, hi = lo - pad, hi + pad
    # an objective short enough to fall inside the picture is worth seeing as a deadline
    offsets = {f.fault_id: _rel(origin, f.injected_utc) for f in drill.faults}
    for m in drill.measurements:
        deadline = offsets.get(m.fault_id or "", 0.0) + m.objective_rto
        if lo <= deadline <= hi and all(k.t != deadline for k in found):
            found.append(Mark(deadline, f"objective {secs(m.objective_rto)}", "m-objective"))
    return Frame(origin, lo, hi, found)


def timeline(drill: DrillRecord) -> str:
    """The drill's timeline: faults, probe outcomes, steps, and the marks, on one time axis."""
    view = frame(drill)
    if view is None:
        return '<p class="muted">No timeline: the drill recorded no steps, faults or probes.</p>'
    origin, lo, hi, all_marks = view.origin, view.lo, view.hi, view.marks

    def rel(utc: str) -> float:
        return _rel(origin, utc)

    steps = [(rel(s.started_utc), s.duration, s) for s in drill.steps]
    faults = [(rel(f.injected_utc), rel(f.reverted_utc) if f.reverted_utc else None, f)
              for f in drill.faults]
    plot = W - LEFT - RIGHT

    def x(t: float) -> float:
        return LEFT + (t - lo) / (hi - lo) * plot

    order = ["m-fault", "m-detect", "m-other", "m-recover", "m-capacity", "m-objective"]
    kinds = sorted({(m.css, m.label) for m in all_marks},
                   key=lambda k: (order.index(k[0]), k[1]))
    label_h = 16 * len(kinds) + 6
    y = label_h
    parts: list[str] = []
    lanes: list[tuple[str, float, float]] = []
    # faults lane
    fault_h = 22 * max(len(faults), 1)
    lanes.append(("Faults", y, fault_h))
    for i, (start, end, f) in enumerate(faults):
        x0 = x(start)
        x1 = x(end) if end is not None else x(hi)
        cls = "fault" if end is not None else "fault open"
        row = y + 4 + 22 * i
        tip = (f"{f.description} — injected {f.injected_utc}, "
               + (f"reverted {f.reverted_utc}" if end is not None else "NOT reverted"))
        parts.append(f'<rect class="{cls}" x="{x0:.1f}" y="{row:.1f}" width="{max(x1 - x0, 2):.1f}"'
                     f' height="14" rx="3"><title>{escape(tip)}</title></rect>')
        parts.append(f'<text class="lbl" x="{x0 + 4:.1f}" y="{row + 11:.1f}">'
                     f'{escape(_clip(f.kind, int(max(x1 - x0, 60) / 6.2)))}</text>')
    y += fault_h
    # probes lane
    probe_h = 54
    lanes.append((f"Probes ({len(drill.probes)})", y, probe_h))
    for m in drill.measurements:
        base = next((rel(f.injected_utc) for f in drill.faults if f.fault_id == m.fault_id), 0.0)
        for o in m.outages:
            parts.append(f'<rect class="outage" x="{x(base + o.start):.1f}" y="{y:.1f}" '
                         f'width="{max(x(base + o.end) - x(base + o.start), 2):.1f}" '
                         f'height="{probe_h}"><title>outage: {o.failures} failed probes, '
                         f'{escape(o.first_error)}</title></rect>')
    for p in drill.probes:
        px = x(p.t)
        if p.ok:
            parts.append(f'<line class="ok" x1="{px:.1f}" x2="{px:.1f}" y1="{y + probe_h - 4}" '
                         f'y2="{y + probe_h - 22}"/>')
        else:
            parts.append(f'<line class="bad" x1="{px:.1f}" x2="{px:.1f}" y1="{y + probe_h - 4}"'
                         f' y2="{y + 6}"><title>{escape(p.detail or p.outcome)}</title></line>')
    y += probe_h
    # steps lane
    step_h = 18 * max(len(steps), 1)
    lanes.append(("Steps", y, step_h))
    for i, (start, duration, s) in enumerate(steps):
        row = y + 3 + 18 * i
        x0, width = x(start), max(x(start + duration) - x(start), 2.5)
        status = s.status.value if isinstance(s.status, Status) else str(s.status)
        text = f"{s.keyword} {s.text}"
        parts.append(f'<rect class="step {status}" x="{x0:.1f}" y="{row:.1f}" '
                     f'width="{width:.1f}" height="12" rx="2"><title>{escape(text)} '
                     f'({secs(duration)}, {status})</title></rect>')
        # the label goes where it fits: inside a long bar, else the roomier side
        room_left, room_right = x0 - LEFT - 4, W - RIGHT - (x0 + width) - 4
        if width >= min(len(text) * 6.2 + 8, 160):
            parts.append(f'<text class="lbl inbar" x="{x0 + 4:.1f}" y="{row + 10:.1f}">'
                         f'{escape(_clip(text, int((width - 8) / 6.2)))}</text>')
        elif room_right >= min(len(text) * 6.2, room_left):
            parts.append(f'<text class="lbl" x="{x0 + width + 4:.1f}" y="{row + 10:.1f}">'
                         f'{escape(_clip(text, int(room_right / 6.2)))}</text>')
        else:
            parts.append(f'<text class="lbl" x="{x0 - 4:.1f}" y="{row + 10:.1f}" '
                         f'text-anchor="end">{escape(_clip(text, int(room_left / 6.2)))}</text>')
    y += step_h
    bottom = y
    # lane labels and separators
    for name, top, height in lanes:
        parts.append(f'<line class="sep" x1="{LEFT}" x2="{W - RIGHT}" y1="{top:.1f}" '
                     f'y2="{top:.1f}"/>')
        parts.append(f'<text class="lane" x="{LEFT - 8}" y="{top + height / 2 + 4:.1f}" '
                     f'text-anchor="end">{escape(name)}</text>')
    # axis
    step = nice_step(hi - lo)
    tick = math.ceil(lo / step) * step
    grid: list[str] = []  # drawn first, under the bars and their labels
    while tick <= hi:
        tx = x(tick)
        grid.append(f'<line class="grid" x1="{tx:.1f}" x2="{tx:.1f}" y1="{label_h}" '
                    f'y2="{bottom + 4}"/>')
        parts.append(f'<text class="tick" x="{tx:.1f}" y="{bottom + 17}" '
                     f'text-anchor="middle">{_num(tick)}</text>')
        tick += step
    parts.append(f'<text class="axis" x="{LEFT + plot / 2:.1f}" y="{bottom + 34}" '
                 'text-anchor="middle">seconds after the fault was injected (t = 0)</text>')
    # marks over everything
    labelled: dict[int, list[tuple[float, float]]] = {}  # row -> label extents drawn
    for mark in sorted(all_marks, key=lambda m: m.t):
        row = kinds.index((mark.css, mark.label))
        mx = x(mark.t)
        parts.append(f'<line class="mark {mark.css}" x1="{mx:.1f}" x2="{mx:.1f}" '
                     f'y1="{12 + 16 * row}" y2="{bottom}"><title>{escape(mark.label)} at '
                     f't = {mark.t:.2f} s</title></line>')
        text = mark.label if mark.css == "m-objective" else f"{mark.label} {mark.t:.2f} s"
        width = len(text) * 6.8
        anchor = "end" if mx + width > W - RIGHT else "start"
        start = mx - width - 4 if anchor == "end" else mx + 4
        extents = labelled.setdefault(row, [])
        if any(start < b + 6 and a < start + width + 6 for a, b in extents):
            continue  # marks this close share one label; each line keeps its tooltip
        extents.append((start, start + width))
        tx = mx - 4 if anchor == "end" else mx + 4
        parts.append(f'<text class="marklbl {mark.css}" x="{tx:.1f}" y="{12 + 16 * row}" '
                     f'text-anchor="{anchor}">{escape(text)}</text>')
    height = bottom + 42
    label = (f"Timeline of drill '{drill.name}': {len(drill.faults)} fault(s), "
             f"{len(drill.probes)} probes, {len(drill.steps)} steps")
    return (f'<svg class="chart timeline" viewBox="0 0 {W} {height:.0f}" role="img" '
            f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
            f'<title>{escape(label)}</title>{"".join(grid + parts)}</svg>')


def gauge(measured: float | None, objective: float, met: bool, lower: float | None = None,
          width: int = 360, height: int = 18) -> str:
    """A bar of the measured figure against its objective (the track ends at the objective)."""
    top = max(objective, measured or 0.0) * (1.0 if (measured or 0) <= objective else 1.08)
    scale = (width - 2) / top if top > 0 else 0.0
    parts = [f'<rect class="track" x="1" y="3" width="{objective * scale:.1f}" '
             f'height="{height - 6}" rx="3"/>']
    if measured is None:
        parts.append(f'<rect class="bar breach" x="1" y="3" width="{width - 2}" '
                     f'height="{height - 6}" rx="3" opacity="0.35"/>')
        text = f"not recovered (objective {secs(objective)})"
    else:
        cls = "bar met" if met else "bar breach"
        parts.append(f'<rect class="{cls}" x="1" y="3" width="{max(measured * scale, 3):.1f}" '
                     f'height="{height - 6}" rx="3"/>')
        if lower is not None and measured - lower > 0:
            parts.append(f'<rect class="unc" x="{1 + lower * scale:.1f}" y="3" '
                         f'width="{max((measured - lower) * scale, 1):.1f}" '
                         f'height="{height - 6}"/>')
        text = f"{secs(measured)} of {secs(objective)} objective"
    parts.append(f'<line class="objective" x1="{1 + objective * scale:.1f}" '
                 f'x2="{1 + objective * scale:.1f}" y1="0" y2="{height}"/>')
    return (f'<svg class="chart gauge" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(text)}" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{escape(text)}</title>'
            f'{"".join(parts)}</svg>')


@dataclass(frozen=True, slots=True)
class Point:
    """One run's figure on a trend chart."""

    when: datetime
    value: float | None  # None: not recovered
    met: bool
    label: str
    zero: bool = False  # no outage observed: drawn hollow on the floor of a log axis


@dataclass(frozen=True, slots=True)
class Line:
    """One series of a trend chart: a figure of a drill, run after run."""

    name: str
    css: str  # s0, s1, ... (colours in style.py)
    points: list[Point]


LOG_TICKS = (0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 14400)


def trend_chart(lines: list[Line], objectives: list[float], *, unit: str = "s",
                title: str = "", width: int = 900, height: int = 250) -> str:
    """Figures over time against their objectives (dashed). Seconds use a log scale, so a
    2 s recovery and a 5 min objective are both readable; breaches are red."""
    left, right, top, bottom = 70, 20, 14, 40
    pw, ph = width - left - right, height - top - bottom
    seconds = unit == "s"
    points = [p for line in lines for p in line.points]
    values = [p.value for p in points if p.value is not None and not p.zero]
    if seconds:
        lo = max(min([*(v for v in values if v > 0), *objectives]) / 3, 0.01)
        hi = max([*values, *objectives]) * 2.5

        def fy(v: float) -> float:
            v = max(v, lo)
            return top + ph - (math.log10(v / lo)) / math.log10(hi / lo) * ph
        ticks: list[float] = [t for t in LOG_TICKS if lo <= t <= hi]
        while len(ticks) > 7:
            ticks = ticks[::2]
    else:
        lo, hi = 0.0, max([*values, *objectives, 1.0]) * 1.25

        def fy(v: float) -> float:
            return top + ph - (v - lo) / (hi - lo) * ph
        step = max(1.0, nice_step(hi - lo, 4))
        ticks = [i * step for i in range(int(hi / step) + 1)]
    times = [p.when.timestamp() for p in points] or [0.0]
    t0, t1 = min(times), max(times)
    if t1 - t0 < 1:
        t0, t1 = t0 - 1, t1 + 1
    pad = (t1 - t0) * 0.04

    def fx(t: float) -> float:
        return left + (t - t0 + pad) / (t1 - t0 + 2 * pad) * pw

    def show(v: float) -> str:
        return secs(v) if seconds else _num(v)

    parts = []
    for tick in ticks:
        ty = fy(tick)
        parts.append(f'<line class="grid" x1="{left}" x2="{left + pw}" y1="{ty:.1f}" '
                     f'y2="{ty:.1f}"/><text class="tick" x="{left - 6}" y="{ty + 4:.1f}" '
                     f'text-anchor="end">{escape(show(tick))}</text>')
    for objective in sorted(set(objectives)):
        oy = fy(objective)
        parts.append(f'<line class="objective" x1="{left}" x2="{left + pw}" y1="{oy:.1f}" '
                     f'y2="{oy:.1f}"/><text class="marklbl" x="{left + pw}" '
                     f'y="{oy - 5:.1f}" text-anchor="end">objective {escape(show(objective))}'
                     '</text>')
    for n, line in enumerate(lines):
        # series of one run share an instant: spread them a little so none hides another
        shift = (n - (len(lines) - 1) / 2) * 7

        def sx(p: Point, shift: float = shift) -> float:
            return fx(p.when.timestamp()) + shift
        coords = [(sx(p), fy(p.value)) for p in line.points if p.value is not None]
        if len(coords) > 1:
            d = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}"
                         for i, (x, y) in enumerate(coords))
            parts.append(f'<path class="series {line.css}" d="{d}"/>')
        for p in line.points:
            px = sx(p)
            shown = ("not recovered" if p.value is None else
                     "no outage" if p.zero else show(p.value))
            tip = escape(f"{line.name}, {p.label}: {shown}")
            if p.value is None:
                parts.append(f'<text class="marklbl m-fault" x="{px:.1f}" y="{top + 10}" '
                             f'text-anchor="middle">✕<title>{tip}</title></text>')
                continue
            cls = f"pt {line.css}" + ("" if p.met else " breach") + (" zero" if p.zero else "")
            parts.append(f'<circle class="{cls}" cx="{px:.1f}" cy="{fy(p.value):.1f}" '
                         f'r="{5 if p.met else 6}"><title>{tip}</title></circle>')
    when = sorted(p.when for p in points)
    if when:
        parts.append(f'<text class="tick" x="{left}" y="{height - 22}">'
                     f'{when[0]:%Y-%m-%d %H:%M}</text>')
        parts.append(f'<text class="tick" x="{left + pw}" y="{height - 22}" '
                     f'text-anchor="end">{when[-1]:%Y-%m-%d %H:%M}</text>')
    axis = "seconds, log scale" if seconds else "acknowledged writes lost"
    runs = len({p.label for p in points})
    parts.append(f'<text class="axis" x="{left + pw / 2:.1f}" y="{height - 6}" '
                 f'text-anchor="middle">{runs} run(s) over time · {axis}</text>')
    label = title or f"{len(points)} measurements against their objectives"
    return (f'<svg class="chart trend" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
            f'<title>{escape(label)}</title>{"".join(parts)}</svg>')


def load_chart(load: LoadRecord, has_fault: bool, width: int = W, height: int = 210) -> str:
    """Requests/s and errors/s of a drill's load over time, with the fault, the recovery and
    (if it happened) locust's stop marked."""
    points = load.series
    if not points:
        return '<p class="muted">No load request was recorded during this drill.</p>'
    lo, hi = points[0].t, points[-1].t + 1.0
    marks = [Mark(0.0, "fault injected", "m-fault")] if has_fault else []
    if load.recovered_at is not None:
        marks.append(Mark(load.recovered_at, "recovered", "m-recover"))
    if load.stopped_at is not None:
        marks.append(Mark(load.stopped_at, "load stopped", "m-other"))
    marks = [m for m in marks if lo <= m.t <= hi]
    top, bottom = 10 + 13 * len(marks), 40
    ph = height - top - bottom
    peak = max(max(p.requests for p in points), 1)
    ystep = max(1.0, nice_step(peak, 4))
    ymax = math.ceil(peak / ystep) * ystep
    plot = width - LEFT - RIGHT

    def x(t: float) -> float:
        return LEFT + (t - lo) / (hi - lo) * plot

    def y(v: float) -> float:
        return top + ph - v / ymax * ph

    def path(values: list[tuple[float, int]]) -> str:
        # each second drawn flat over its width: a count per second, not a trend
        return " ".join(f"{'M' if i == 0 else 'L'}{x(t):.1f},{y(v):.1f} L{x(t + 1):.1f},{y(v):.1f}"
                        for i, (t, v) in enumerate(values))

    parts: list[str] = []
    tick = 0.0
    while tick <= ymax:
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot}" y1="{y(tick):.1f}" '
                     f'y2="{y(tick):.1f}"/><text class="tick" x="{LEFT - 6}" '
                     f'y="{y(tick) + 4:.1f}" text-anchor="end">{_num(tick)}</text>')
        tick += ystep
    step = nice_step(hi - lo)
    t = math.ceil(lo / step) * step
    while t <= hi:
        parts.append(f'<text class="tick" x="{x(t):.1f}" y="{top + ph + 16}" '
                     f'text-anchor="middle">{_num(t)}</text>')
        t += step
    errors = [(p.t, p.errors) for p in points]
    area = (path(errors) + f" L{x(hi):.1f},{y(0):.1f} L{x(lo):.1f},{y(0):.1f} Z")
    parts.append(f'<path class="outage" d="{area}"/>')
    parts.append(f'<path class="series s0" d="{path([(p.t, p.requests) for p in points])}">'
                 '<title>requests per second</title></path>')
    parts.append(f'<path class="series bad" d="{path(errors)}"><title>errors per second'
                 '</title></path>')
    for row, mark in enumerate(marks):
        mx = x(mark.t)
        text = f"{mark.label} {mark.t:.2f} s"
        anchor = "end" if mx + len(text) * 6.8 > width - RIGHT else "start"
        parts.append(f'<line class="mark {mark.css}" x1="{mx:.1f}" x2="{mx:.1f}" '
                     f'y1="{8 + 13 * row}" y2="{top + ph}"><title>{escape(text)}</title>'
                     f'</line><text class="marklbl {mark.css}" '
                     f'x="{mx - 4 if anchor == "end" else mx + 4:.1f}" y="{12 + 13 * row}" '
                     f'text-anchor="{anchor}">{escape(text)}</text>')
    parts.append(f'<text class="axis" transform="translate({LEFT - 46},{top + ph / 2:.1f}) '
                 'rotate(-90)" text-anchor="middle">per second</text>')
    axis = ("seconds after the fault was injected (t = 0)" if has_fault
            else "seconds since the drill began")
    parts.append(f'<text class="axis" x="{LEFT + plot / 2:.1f}" y="{height - 6}" '
                 f'text-anchor="middle">{axis}</text>')
    total, failed = sum(p.requests for p in points), sum(p.errors for p in points)
    label = (f"Load during the drill: {total} requests, {failed} errors, per second over "
             f"{hi - lo:.0f} s")
    return (f'<svg class="chart load" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
            f'<title>{escape(label)}</title>{"".join(parts)}</svg>')
