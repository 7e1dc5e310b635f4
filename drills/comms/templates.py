"""The runbook appendix's communication templates, as the drills render, send and record them.

The appendix ("Communication Templates") prints two user notifications; they are kept here
verbatim, so the evidence shows exactly what users would have read. An incident's real values
(start, impact, ETA, actual RTO) go in a header of fields above the verbatim text, never into
it. The appendix has no update template and promises no update cadence: an update repeats the
"Service Degraded" text under a header that says so (and the drill records the gap as a
finding against the appendix) rather than inventing wording the runbook does not have.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from drills.errors import ConfigError
from drills.evidence.fmt import secs
from drills.evidence.redact import scrub
from drills.journal import utc_now


class Template(StrEnum):
    SERVICE_DEGRADED = "User Notification (Service Degraded)"
    SERVICE_RESTORED = "User Notification (Service Restored)"


#: The appendix's text, line breaks as printed.
TEXT = {
    Template.SERVICE_DEGRADED: (
        "VettID is currently experiencing intermittent issues with vault\n"
        "operations. Our team is actively working to resolve this.\n"
        "We apologize for any inconvenience."),
    Template.SERVICE_RESTORED: (
        "VettID services have been fully restored. All vault operations\n"
        "are functioning normally. Thank you for your patience."),
}

#: Where the templates come from, as findings and the evidence cite it.
APPENDIX = "Appendix: Communication Templates"


class Kind(StrEnum):
    """Which notification of an incident a message is."""

    INITIAL = "initial"
    UPDATE = "update"
    RESOLUTION = "resolution"


#: The appendix template each kind carries (an update has none of its own: see the module).
TEMPLATE_OF = {Kind.INITIAL: Template.SERVICE_DEGRADED, Kind.UPDATE: Template.SERVICE_DEGRADED,
               Kind.RESOLUTION: Template.SERVICE_RESTORED}


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification as issued: which template, its text, when, and why."""

    template: Template
    text: str
    issued_utc: str
    context: str

    def summary(self) -> str:
        return f"{self.template.value} issued {self.issued_utc} ({self.context}): " + \
            " ".join(self.text.split())


def notice(template: Template, context: str) -> Notice:
    """Issue `template` now, for `context` (e.g. the maintenance window it announces)."""
    return Notice(template, TEXT[template], utc_now(), context)


@dataclass(frozen=True, slots=True)
class Incident:
    """The real values the notifications of one incident carry."""

    incident_id: str
    started_utc: str  # when the service was first affected (the first fault), else declared
    declared_utc: str
    impact: str
    eta_utc: str  # the start plus the objective the ETA rests on
    eta_basis: str  # e.g. "Vault Service RTO objective 15 min 00 s"


@dataclass(frozen=True, slots=True)
class Message:
    """One rendered notification: a header of the incident's values above the appendix text."""

    kind: Kind
    sequence: int  # 1 for the initial notification, then one more per message
    subject: str
    fields: tuple[tuple[str, str], ...]
    template: Template

    @property
    def body(self) -> str:
        """The appendix's own words, verbatim."""
        return TEXT[self.template]

    @property
    def text(self) -> str:
        """What is sent: the header, a blank line, the appendix text."""
        return "\n".join(f"{name}: {value}" for name, value in self.fields) + "\n\n" + self.body


def _subject(incident: Incident, what: str) -> str:
    return f"[VettID] {what} ({incident.incident_id})"[:100]  # SNS: subjects < 100 chars


def initial(incident: Incident) -> Message:
    """The initial notification: the appendix's "Service Degraded", with start, impact, ETA."""
    return _checked(Message(Kind.INITIAL, 1, _subject(incident, "Service degraded"), (
        ("Incident", incident.incident_id), ("Status", "investigating"),
        ("Started (UTC)", incident.started_utc), ("Declared (UTC)", incident.declared_utc),
        ("Impact", incident.impact),
        ("ETA (UTC)", f"{incident.eta_utc} ({incident.eta_basis})")),
        Template.SERVICE_DEGRADED))


def update(incident: Incident, sequence: int, number: int, impact: str,
           next_by_utc: str | None) -> Message:
    """Update `number`: the appendix has no update template, so the header says so and the
    "Service Degraded" text is repeated."""
    fields = [("Incident", incident.incident_id), ("Status", f"update {number}, still degraded"),
              ("Started (UTC)", incident.started_utc), ("Impact now", impact),
              ("ETA (UTC)", f"{incident.eta_utc} ({incident.eta_basis})")]
    if next_by_utc:
        fields.append(("Next update by (UTC)", next_by_utc))
    fields.append(("Template", f"none in the runbook's {APPENDIX}; the Service Degraded "
                               "text is repeated"))
    return _checked(Message(Kind.UPDATE, sequence, _subject(incident, f"Update {number}"),
                            tuple(fields), Template.SERVICE_DEGRADED))


def resolution(incident: Incident, sequence: int, restored_utc: str, rto: float,
               rto_basis: str) -> Message:
    """The resolution: the appendix's "Service Restored", with the actual RTO."""
    return _checked(Message(Kind.RESOLUTION, sequence, _subject(incident, "Service restored"), (
        ("Incident", incident.incident_id), ("Status", "resolved"),
        ("Started (UTC)", incident.started_utc), ("Restored (UTC)", restored_utc),
        ("Actual RTO", f"{secs(rto)} ({rto_basis})")), Template.SERVICE_RESTORED))


def _checked(message: Message) -> Message:
    """The secret scan of the evidence (`drills.evidence.redact.scrub`), applied before a
    message can be sent: one that it would alter carries what looks like a credential."""
    text = message.subject + "\n" + message.text
    if scrub(text) != text:
        masked = [f"{name}: {scrub(value)}" for name, value in message.fields
                  if scrub(value) != value]
        raise ConfigError(
            f"the {message.kind.value} notification would carry what looks like a secret "
            f"({'; '.join(masked) or 'in its subject'}); nothing was sent: take it out of "
            "[comms] impact (or wherever the value came from) and run again")
    return message
