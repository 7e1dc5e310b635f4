"""Communication procedures (runbook appendix "Communication Templates", 7.3 item 4).

    templates   the appendix's text verbatim, rendered with an incident's real values
    channels    where notifications go: an SNS topic (read back through a queue of the
                drill's own) or a Slack incoming webhook
    incident    one incident's notifications: declaration, updates at a cadence, resolution,
                and the figures (declaration to first notification, intervals vs cadence)
"""

from drills.comms.templates import TEXT, Incident, Kind, Message, Notice, Template, notice

__all__ = ["TEXT", "Incident", "Kind", "Message", "Notice", "Template", "notice"]
