"""The objectives review as a TOML diff: the current objectives file, edited in place where a
figure proposes a change (each changed key preceded by comments saying how it was reached and
from which runs), and the unified diff between the two.

Only the `rto`/`rpo_writes` lines of `[service]` and `[components."..."]` change; every other
line of the team's file (probes, allow-list, environment, comments) is kept. Without a file the
current objectives are the runbook's defaults, written out in the same form. The proposal is
read back with `load_settings` before it is shown, so it is always a valid objectives file.
"""

from __future__ import annotations

import difflib
import tempfile
import textwrap
import tomllib
from pathlib import Path

from drills.config import SERVICE_COMPONENT, Objectives, load_settings
from drills.errors import ConfigError, ReportError
from drills.evidence.fmt import secs
from drills.evidence.objectives_review import Direction, Proposal, Review

CHANGES = (Direction.TIGHTEN, Direction.LOOSEN, Direction.NEW)


def render_defaults(objectives: Objectives) -> str:
    """`objectives` written as an objectives file (what `--objectives` would read back)."""
    lines = ["# The runbook's objectives (section 1, 7.1), drills' defaults.", "[service]",
             f"rto = {objectives.rto:g}  # {secs(objectives.rto)}",
             f"rpo_writes = {objectives.rpo_writes}", f"mttr = {objectives.mttr:g}"]
    for name, o in objectives.components.items():
        if name == SERVICE_COMPONENT:
            continue  # [service] sets it
        lines += ["", f"[components.{_quoted(name)}]", f"rto = {o.rto:g}  # {secs(o.rto)}",
                  f"rpo_writes = {o.rpo_writes}"]
        if o.priority:
            lines.append(f"priority = {_quoted(o.priority)}")
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _table_of(component: str) -> tuple[str, ...]:
    return ("service",) if component == SERVICE_COMPONENT else ("components", component)


def _header(line: str) -> tuple[str, ...] | None:
    """The key path of a `[table]` header line, None for any other line."""
    text = line.strip()
    if not text.startswith("[") or text.startswith("[["):
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    path: list[str] = []
    while isinstance(data, dict) and len(data) == 1:
        (key, data), = data.items()
        path.append(key)
    return tuple(path)


def _value(p: Proposal) -> str:
    assert p.proposed is not None
    if p.key == "rpo_writes":
        return f"{int(p.proposed)}"
    return f"{p.proposed:g}  # {secs(p.proposed)}; was " + (
        f"{p.current:g} ({secs(p.current)})" if p.current is not None else "unset")


def _comments(p: Proposal, review: Review) -> list[str]:
    label = "REHEARSAL ONLY (twin runs, not evidence): " if review.rehearsal_only else ""
    text = (f"{label}objectives-review {review.as_of[:10]}: {p.how()}; from the "
            f"{p.target_kind} runs {', '.join(p.sources)}")
    return ["# " + line for line in textwrap.wrap(text, 94, break_on_hyphens=False)]


def _edit(lines: list[str], p: Proposal, review: Review) -> list[str]:
    """`lines` with `p`'s key set in its table (the table appended when missing)."""
    table = _table_of(p.component)
    new = [*_comments(p, review), f"{p.key} = {_value(p)}"]
    headers = [(i, _header(line)) for i, line in enumerate(lines)]
    starts = [i for i, path in headers if path is not None]
    found = [i for i, path in headers if path == table]
    if not found:
        header = "[service]" if table == ("service",) else f"[components.{_quoted(table[1])}]"
        return [*lines, "", header, *new]
    start = found[0]
    end = min([i for i in starts if i > start], default=len(lines))
    for i in range(start + 1, end):
        code = lines[i].split("#", 1)[0]
        if "=" in code and code.split("=", 1)[0].strip() == p.key:
            return lines[:i] + new + lines[i + 1:]
    return lines[:start + 1] + new + lines[start + 1:]


def propose(current: str, review: Review) -> str:
    """The current objectives file with the review's changes made, each with its provenance;
    ReportError when the result would not be a valid objectives file."""
    changes = [p for p in review.for_file() if p.direction in CHANGES]
    lines = current.splitlines()
    if changes:
        kind = "twin rehearsals only" if review.rehearsal_only else "account runs"
        lines = [f"# Proposed by `drills report objectives-review` on {review.as_of[:10]} from "
                 f"{kind}, margin {review.margin:.0%}.", *lines]
    for p in sorted(changes, key=lambda p: p.key != "rto"):  # a new component needs its rto
        lines = _edit(lines, p, review)
    text = "\n".join(lines) + "\n"
    _check(text, changes)
    return text


def _check(text: str, changes: list[Proposal]) -> None:
    """Read the proposal back as drills would, and compare every changed value."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "proposed.toml"
        path.write_text(text, encoding="utf-8")
        try:
            objectives = load_settings(path).objectives
        except ConfigError as exc:
            raise ReportError(f"the proposed objectives file would not load ({exc}); the "
                              "current file's layout is one this command cannot edit (inline "
                              "or dotted tables?): apply the table's proposals by hand") from None
    for p in changes:
        got = objectives.for_component(p.component)
        value = got.rto if p.key == "rto" else got.rpo_writes
        if value != p.proposed:
            raise ReportError(f"the proposed file reads {p.component} {p.key} as {value}, not "
                              f"{p.proposed}; apply the proposals by hand")


def unified(current: str, proposed: str, name: str) -> str:
    """The unified diff from the current objectives (`name`) to the proposal ('' if none)."""
    return "".join(difflib.unified_diff(
        current.splitlines(keepends=True), proposed.splitlines(keepends=True),
        fromfile=name, tofile=f"{name} (proposed)"))
