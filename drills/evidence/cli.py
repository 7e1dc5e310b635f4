"""`drills report ...`: verify, show, trend, compliance, findings, render, index,
objectives-review.

Exit codes: 0 all well; 1 the report changed (verify) or a cadence item is overdue
(`compliance --fail-on-overdue`); 2 bad input (raised as DrillError, printed by `drills`).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from drills.config import OBJECTIVES_ENV
from drills.errors import ConfigError

if TYPE_CHECKING:
    from drills.evidence.remediation import TeamFile

ROOT_HELP = "reports root holding <run-id>/ folders and index.jsonl (default reports/)"
REMEDIATION_HELP = ("the file the team fills in (remediation, sign-off, attestations, "
                    "participants); default <reports>/remediation.toml or $DRILLS_REMEDIATION")


def _dir(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise ConfigError(f"{path} is not a directory; give a report directory such as "
                          "reports/<run-id>")
    return path


def cmd_verify(args: argparse.Namespace) -> int:
    """Check a report directory against its manifest (and the index's sealed digest)."""
    from drills.evidence.index import sealed_digest
    from drills.evidence.manifest import verify

    report_dir = _dir(args.dir)
    result = verify(report_dir, sealed_digest(report_dir))
    for line in result.lines():
        print(line)
    if not result.ok:
        print(f"{report_dir}: FAILED verification: the report was changed after the run",
              file=sys.stderr)
    return 0 if result.ok else 1


def cmd_show(args: argparse.Namespace) -> int:
    """Print a report's summary.md."""
    from drills.evidence.markdown import SUMMARY_NAME

    path = _dir(args.dir) / SUMMARY_NAME
    if not path.exists():
        raise ConfigError(f"{path} does not exist; `drills report render {args.dir}` writes it")
    print(path.read_text(encoding="utf-8"), end="")
    return 0


def cmd_trend(args: argparse.Namespace) -> int:
    """Print the trend table and write trend.html."""
    from drills.evidence import index as index_mod
    from drills.evidence.trend import collect, render_html, text_table
    from drills.journal import utc_now

    root = Path(args.reports)
    entries = index_mod.read(root)
    series = collect(entries, args.drill, args.target)
    print(text_table(series), end="")
    out = Path(args.html) if args.html else root / "trend.html"
    if root.is_dir() or args.html:
        out.write_text(render_html(entries, utc_now(), series), encoding="utf-8")
        print(f"chart: {out.resolve()}", file=sys.stderr)
    return 0


def _team(args: argparse.Namespace, root: Path) -> TeamFile:
    from drills.evidence import remediation

    return remediation.load(Path(args.remediation) if args.remediation
                            else remediation.default_path(root))


def cmd_compliance(args: argparse.Namespace) -> int:
    """Print every programme item with its last exercise and whether it is overdue."""
    from drills.evidence import index as index_mod
    from drills.evidence.analysis import exercises
    from drills.evidence.fmt import parse_utc
    from drills.evidence.programme import NOT_ON_SCHEDULE, compliance, history_text, status_label

    root = Path(args.reports)
    now = parse_utc(args.as_of) if args.as_of else datetime.now(UTC)
    rows = compliance(exercises(index_mod.read(root), _team(args, root)), now)
    print(f"exercise programme as of {now:%Y-%m-%d %H:%M} UTC ({root})")
    print("(only a passing run against an account, or an attestation, exercises an item; twin "
          "runs are rehearsals)")
    for p in rows:
        due = f"; due {p.due_utc[:10]}" if p.due_utc else ""
        print(f"  {status_label(p.status):<14} {p.item_id:<6} {p.cadence or 'scenario':<9} "
              f"{p.title[:52]:<52} {history_text(p)}{due}".rstrip())
    late = [p for p in rows if p.cadence and p.status in NOT_ON_SCHEDULE]
    print(f"{len(late)} cadence item(s) not on schedule (overdue, never, or rehearsed only)")
    return 1 if late and args.fail_on_overdue else 0


def cmd_findings(args: argparse.Namespace) -> int:
    """Print the findings open as of the latest run (with their remediation)."""
    from drills.evidence import index as index_mod
    from drills.evidence.findings import apply_remediation, still_open

    root = Path(args.reports)
    entries = [e for e in index_mod.read(root) if not args.target or
               e.target_kind == args.target]
    if not entries:
        print("no runs in the index yet")
        return 0
    latest = entries[-1]
    found = latest.findings if args.all else still_open(latest.findings)
    apply_remediation(found, _team(args, root).findings)
    print(f"{len(found)} finding(s) as of run {latest.run_id} ({latest.target_kind})")
    for f in found:
        r = f.remediation
        owner = f"owner {r.owner}, due {r.due}" if r and r.owner else "no owner yet"
        print(f"  {f.finding_id}  {f.severity:<8} {f.status:<6} {f.title}: {f.detail}")
        print(f"      {f.drill_key}; first seen {f.first_seen_utc[:10]} ({f.occurrences}x); "
              f"{owner}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    """Re-render and re-seal a report with the current remediation file."""
    from drills.evidence.amend import amend

    path = amend(_dir(args.dir), Path(args.remediation) if args.remediation else None)
    print(path.parent.resolve() / "report.html")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    """List the run index, or rebuild it from the report directories."""
    from drills.evidence import index as index_mod

    root = _dir(args.reports)
    skipped: list[str] = []
    entries = index_mod.rebuild(root, skipped) if args.rebuild else index_mod.read(root)
    for reason in skipped:
        print(f"skipped: {reason}", file=sys.stderr)
    for e in entries:
        print(f"{e.ended_utc[:16]}  {e.run_id:<36} {e.exercise:<9} {e.target_kind:<5} "
              f"{e.status}")
    return 0


def cmd_objectives_review(args: argparse.Namespace) -> int:
    """Propose objectives from the indexed runs' figures; print the review and the TOML diff
    against the current objectives (and write them where asked)."""
    from drills.config import load_settings
    from drills.evidence import index as index_mod
    from drills.evidence import objectives_review as review_mod
    from drills.evidence import objectives_toml
    from drills.evidence.fmt import parse_utc

    margin = review_mod.parse_margin(args.margin)
    as_of = parse_utc(args.as_of) if args.as_of else datetime.now(UTC)
    objectives_path = Path(args.objectives) if args.objectives else None
    settings = load_settings(objectives_path)
    root = Path(args.reports)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a directory; give the reports root that holds "
                          "index.jsonl (--reports)")
    review = review_mod.build(index_mod.read(root), settings.objectives, as_of=as_of,
                              margin=margin, include_twin=args.include_twin)
    print(review_mod.text_table(review), end="")
    if objectives_path is not None:
        current, name = objectives_path.read_text(encoding="utf-8"), str(objectives_path)
    else:
        current = objectives_toml.render_defaults(settings.objectives)
        name = "runbook-defaults.toml"
    proposed = objectives_toml.propose(current, review)
    diff = objectives_toml.unified(current, proposed, name)
    print(diff or "no change proposed: the current objectives stand\n", end="")
    if args.diff:
        Path(args.diff).write_text(diff, encoding="utf-8")
        print(f"diff: {Path(args.diff).resolve()}", file=sys.stderr)
    if args.proposed:
        Path(args.proposed).write_text(proposed, encoding="utf-8")
        print(f"proposed objectives: {Path(args.proposed).resolve()}", file=sys.stderr)
    if args.html:
        Path(args.html).write_text(review_mod.review_section(review, diff), encoding="utf-8")
        print(f"HTML section: {Path(args.html).resolve()}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """Add the `report` command group to the `drills` parser."""
    report = sub.add_parser("report", parents=[common], help="work with run reports")
    rsub = report.add_subparsers(dest="report_command", required=True)

    p = rsub.add_parser("verify", help="check a report directory against its MANIFEST.sha256 "
                        "(exit 1 and name the file on any change)")
    p.add_argument("dir", help="reports/<run-id>")
    p.set_defaults(func=cmd_verify)

    p = rsub.add_parser("show", help="print a report's summary.md")
    p.add_argument("dir", help="reports/<run-id>")
    p.set_defaults(func=cmd_show)

    p = rsub.add_parser("trend", help="measured RTO/RPO per drill over time: a table, and "
                        "trend.html with charts")
    p.add_argument("--reports", default="reports", help=ROOT_HELP)
    p.add_argument("--drill", help="only drills whose feature path or name contains this")
    p.add_argument("--target", choices=["twin", "account"], help="only runs on this target kind")
    p.add_argument("--html", help="where to write the chart page (default <reports>/trend.html)")
    p.set_defaults(func=cmd_trend)

    p = rsub.add_parser("compliance", help="runbook section 7 items and scenarios: when each "
                        "was exercised, which are overdue")
    p.add_argument("--reports", default="reports", help=ROOT_HELP)
    p.add_argument("--remediation", help=REMEDIATION_HELP)
    p.add_argument("--as-of", help="evaluate at this UTC date/time instead of now")
    p.add_argument("--fail-on-overdue", action="store_true",
                   help="exit 1 when a cadence item is overdue or was never exercised")
    p.set_defaults(func=cmd_compliance)

    p = rsub.add_parser("findings", help="findings still open as of the latest run")
    p.add_argument("--reports", default="reports", help=ROOT_HELP)
    p.add_argument("--remediation", help=REMEDIATION_HELP)
    p.add_argument("--target", choices=["twin", "account"],
                   help="latest run on this target kind")
    p.add_argument("--all", action="store_true", help="include findings that run closed")
    p.set_defaults(func=cmd_findings)

    p = rsub.add_parser("render", help="re-render and re-seal a report with the current "
                        "remediation file (sign-off, owners); the change is recorded")
    p.add_argument("dir", help="reports/<run-id>")
    p.add_argument("--remediation", help=REMEDIATION_HELP)
    p.set_defaults(func=cmd_render)

    p = rsub.add_parser(
        "objectives-review", help="runbook 7.3: propose objectives from the measured figures "
        "(RTO: p95 plus a margin; RPO: the worst loss) as a TOML diff against the current ones",
        description="Reads the run index (account runs; twin rehearsals only with "
        "--include-twin, kept apart and labelled) and proposes, per component, an RTO of the "
        "p95 of its measured figures plus a margin and an RPO of the worst loss measured, with "
        "the runs each figure came from; an objective no figure ever met is a finding. Prints "
        "the review, then a unified diff of the current objectives file against the proposal. "
        "Exit 0, or 2 on bad input (margin, objectives file, unreadable index).")
    p.add_argument("--reports", default="reports", help=ROOT_HELP)
    p.add_argument("--objectives", default=os.environ.get(OBJECTIVES_ENV),
                   help=f"the current objectives file (default ${OBJECTIVES_ENV}, else the "
                   "runbook's objectives); the proposal edits a copy of it")
    p.add_argument("--margin", default="25%", help="added to the p95 of the RTO figures, as a "
                   "percentage or a fraction (default 25%%)")
    p.add_argument("--include-twin", action="store_true", help="also review twin rehearsals "
                   "(kept apart; a proposal from rehearsals alone is labelled REHEARSAL ONLY)")
    p.add_argument("--as-of", help="review the year up to this UTC date/time instead of now")
    p.add_argument("--diff", metavar="FILE", help="also write the TOML diff to FILE")
    p.add_argument("--proposed", metavar="FILE",
                   help="also write the whole proposed objectives file to FILE")
    p.add_argument("--html", metavar="FILE", help="also write the review as an HTML section "
                   "(what the annual report includes)")
    p.set_defaults(func=cmd_objectives_review)

    p = rsub.add_parser("index", help="list the run index; --rebuild recreates it from the "
                        "report directories")
    p.add_argument("--reports", default="reports", help=ROOT_HELP)
    p.add_argument("--rebuild", action="store_true")
    p.set_defaults(func=cmd_index)
