"""The runbook appendix's communication templates, as the drills send and record them.

The appendix ("Communication Templates") prints two user notifications; they are kept here
verbatim, so the evidence shows exactly what users would have read. A notice records when it
was issued and for what (the maintenance window of an exercise, an outage).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

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
