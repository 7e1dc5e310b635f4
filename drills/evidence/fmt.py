"""Formatting shared by every writer: durations, UTC times, verdict words."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from drills.evidence.model import DrillRecord, Measurement, Status


def secs(value: float | None) -> str:
    """A duration for people: '0.42 s', '3 min 05 s', '1 h 02 min'; 'n/a' when unknown."""
    if value is None:
        return "n/a"
    if value < 60:
        return f"{value:.2f} s"
    if value < 3600:
        return f"{int(value // 60)} min {int(value % 60):02d} s"
    return f"{int(value // 3600)} h {int(value % 3600 // 60):02d} min"


def parse_utc(text: str) -> datetime:
    """A timestamp written by `utc_now()` (or any ISO-8601 form) as an aware UTC datetime."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def utc_text(value: datetime) -> str:
    """The inverse of `parse_utc`, with milliseconds, as the journal writes them."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def day(text: str | None) -> str:
    """'2026-11-28' from a timestamp; '—' when there is none."""
    return text[:10] if text else "—"


def minute(text: str | None) -> str:
    """'2026-11-28 11:25 UTC' from a timestamp."""
    return f"{text[:10]} {text[11:16]} UTC" if text else "—"


def worst_rto(drill: DrillRecord) -> Measurement | None:
    """The measurement that used most of its objective (the one an executive should see)."""
    def used(m: Measurement) -> float:
        if m.rto is None:
            return float("inf")
        return m.rto / m.objective_rto if m.objective_rto else 0.0
    return max(drill.measurements, key=used, default=None)


VERDICT = {Status.PASSED: "PASS", Status.FAILED: "FAIL", Status.ERROR: "ERROR",
           Status.SKIPPED: "SKIPPED", Status.NOT_STEADY: "NOT STEADY",
           Status.EXPECTED_BREACH: "EXPECTED BREACH", Status.INTERRUPTED: "INTERRUPTED",
           Status.STOPPED: "STOPPED"}
#: CSS class of each status's badge.
VERDICT_CSS = {Status.PASSED: "pass", Status.FAILED: "fail", Status.ERROR: "error",
               Status.SKIPPED: "skipped", Status.NOT_STEADY: "warn",
               Status.EXPECTED_BREACH: "warn", Status.INTERRUPTED: "error",
               Status.STOPPED: "error"}


def is_rehearsal(target: dict[str, object]) -> bool:
    """A run on the local twin is a rehearsal; only an account run is evidence of the RTO."""
    return target.get("kind") == "twin"


def rehearsal_note(target: dict[str, object]) -> str:
    """What a twin run proves and what it does not; '' for an account run."""
    if not is_rehearsal(target):
        return ""
    return (f"REHEARSAL on the local twin (timing profile {target.get('timing_profile')}): it "
            "proves the procedures work end to end; its recovery times are set by the twin's "
            "timing profile, not measured on AWS, and do not count as exercising the runbook's "
            "programme.")


def measured_text(m: Measurement) -> str:
    """A figure in a table cell: '1.64 s', 'no outage', 'not recovered'."""
    if m.verdict == "no-outage":
        return "no outage"
    if m.rto is None:
        return "did not happen" if m.verdict == "not-reached" else "not recovered"
    return secs(m.rto) + (" (flapping)" if m.verdict == "flapping" else "")


def slug(text: str, limit: int = 60) -> str:
    """A file-name-safe form of `text`."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "drill"


def measure_label(name: str) -> str:
    """'Service RTO', 'Capacity RTO', or the figure's own name ('Time to alarm')."""
    if name in ("service", "capacity"):
        return f"{name.capitalize()} RTO"
    if name == "mttr":
        return "MTTR (incident to recovery)"
    label = " ".join(w.upper() if w in _ACRONYMS else w
                     for w in name.replace("-", " ").replace("_", " ").split())
    return label[:1].upper() + label[1:]


# Written in capitals inside a figure's name: 'DR capacity', 'DNS INSYNC'.
_ACRONYMS = frozenset({"api", "asg", "dns", "dr", "insync", "kms", "mttr", "nats", "pcr",
                       "rpo", "rto", "s3", "ssm"})
