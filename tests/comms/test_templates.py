"""The appendix's templates rendered with an incident's values: verbatim text, real values in
the header, the missing update template said, and the secret scan before anything is sent."""

from __future__ import annotations

import pytest

from drills.comms import templates
from drills.comms.templates import TEXT, Incident, Kind, Template
from drills.errors import ConfigError

RUNBOOK = "/work/shared/runbook/nitro-enclave-dr-procedures.md"
INCIDENT = Incident("INC-20261202-ABC123", "2026-12-02T08:00:00.000Z",
                    "2026-12-02T08:01:30.000Z", "3 of 30 vault operations failed",
                    "2026-12-02T08:15:00.000Z", "the Vault Service RTO objective, 15 min 00 s")


def test_the_templates_are_the_appendix_verbatim() -> None:
    """Both templates are the runbook appendix's code blocks, line for line."""
    try:
        with open(RUNBOOK, encoding="utf-8") as fh:
            runbook = fh.read()
    except FileNotFoundError:
        pytest.skip(f"the runbook is not at {RUNBOOK}")
    for template in Template:
        assert f"**{template.value}:**\n```\n{TEXT[template]}\n```" in runbook


def test_initial_carries_start_impact_and_eta_above_the_verbatim_text() -> None:
    """The header holds the incident's values; the body is the appendix's, unchanged."""
    message = templates.initial(INCIDENT)
    assert message.kind is Kind.INITIAL
    assert message.sequence == 1
    head, body = message.text.split("\n\n", 1)
    assert body == TEXT[Template.SERVICE_DEGRADED]
    fields = dict(message.fields)
    assert fields["Started (UTC)"] == INCIDENT.started_utc
    assert fields["Impact"] == INCIDENT.impact
    assert fields["ETA (UTC)"].startswith(INCIDENT.eta_utc)
    assert INCIDENT.incident_id in message.subject
    assert len(message.subject) < 100
    assert head.splitlines()[0] == f"Incident: {INCIDENT.incident_id}"


def test_an_update_says_the_appendix_has_no_update_template() -> None:
    """An update repeats Service Degraded and says why; it names its number and next one."""
    message = templates.update(INCIDENT, 3, 2, "no failure in the last 10 s",
                               "2026-12-02T08:31:30.000Z")
    fields = dict(message.fields)
    assert (message.sequence, fields["Status"]) == (3, "update 2, still degraded")
    assert fields["Next update by (UTC)"] == "2026-12-02T08:31:30.000Z"
    assert "none in the runbook's Appendix: Communication Templates" in fields["Template"]
    assert message.text.endswith(TEXT[Template.SERVICE_DEGRADED])


def test_the_resolution_carries_the_actual_rto() -> None:
    """Service Restored, with the RTO given and how it was measured."""
    message = templates.resolution(INCIDENT, 4, "2026-12-02T08:09:00.000Z", 452.5,
                                   "measured: service of Vault Service")
    assert dict(message.fields)["Actual RTO"] == \
        "7 min 32 s (measured: service of Vault Service)"
    assert message.text.endswith(TEXT[Template.SERVICE_RESTORED])


@pytest.mark.parametrize("impact", [
    "see nats://vettid-parent:pa55-W0rd_x@10.0.0.1:4222",
    "password=hunter2-very-secret",
    "key AKIAIOSFODNN7EXAMPLE",
])
def test_a_message_that_would_carry_a_secret_is_refused(impact: str) -> None:
    """The evidence's secret scan runs before a message can exist: a credential in the
    impact text is a ConfigError naming the field (masked), so nothing can be sent."""
    leaky = Incident(*(INCIDENT.incident_id, INCIDENT.started_utc, INCIDENT.declared_utc,
                       impact, INCIDENT.eta_utc, INCIDENT.eta_basis))
    with pytest.raises(ConfigError, match=r"Impact: .*\*\*\*.*nothing was sent") as info:
        templates.initial(leaky)
    assert "hunter2" not in str(info.value)
    assert "pa55" not in str(info.value)
