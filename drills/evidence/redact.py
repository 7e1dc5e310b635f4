"""Keep secret values out of evidence: scrub credentials from free text before it is written.

Drill code never puts secrets into messages on purpose; this is the second line of defence
for text that comes from elsewhere (exception messages of libraries, service replies).
"""

from __future__ import annotations

import re

from drills.evidence.model import RunRecord

MASK = "***"

# user:password@ in URLs (nats://, https://)
_URL_CREDS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@", re.I)
# key = value / "key": "value" for words that name secrets
_KEYED = re.compile(
    r"(?P<key>\b(?:password|passwd|secret|token|credentials?|creds|plaintext|datakey|"
    r"data_key|secret_access_key|session_token|authorization)\b[\"']?\s*[:=]\s*)"
    r"(?P<quote>[\"']?)(?P<value>[^\s\"',;}&]+)", re.I)
# AWS access key ids and long base64 blobs (data keys, ciphertext) are never evidence
_AKID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
_BLOB = re.compile(r"\b[A-Za-z0-9+/]{64,}={0,2}")


def scrub(text: str) -> str:
    """`text` with credentials, keyed secrets, access key ids and key-sized blobs masked."""
    if not text:
        return text
    text = _URL_CREDS.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    text = _KEYED.sub(lambda m: f"{m['key']}{m['quote']}{MASK}", text)
    text = _AKID.sub(MASK, text)
    return _BLOB.sub(lambda m: MASK if _looks_random(m[0]) else m[0], text)


def _looks_random(blob: str) -> bool:
    """Key material mixes cases and digits; a long path or word does not."""
    return (sum(c.isdigit() for c in blob) >= 4 and any(c.islower() for c in blob)
            and any(c.isupper() for c in blob))


def _opt(text: str | None) -> str | None:
    return None if text is None else scrub(text)


def scrub_run(run: RunRecord) -> None:
    """Scrub, in place, every free-text field of a run that can carry foreign text."""
    run.notes = [scrub(n) for n in run.notes]
    for drill in run.drills:
        drill.error = _opt(drill.error)
        drill.deviations = [scrub(d) for d in drill.deviations]
        for step in drill.steps:
            step.error = _opt(step.error)
        for fault in drill.faults:
            fault.description = scrub(fault.description)
            fault.revert_error = _opt(fault.revert_error)
        for probe in drill.probes:
            probe.detail = scrub(probe.detail)
        for m in drill.measurements:
            for outage in m.outages:
                outage.first_error = scrub(outage.first_error)
        if drill.comms is not None:  # scanned before sending; what came back is foreign
            for n in drill.comms.notifications:
                n.received_text = _opt(n.received_text)
                n.receipt = scrub(n.receipt)
        for rpo in drill.rpo:
            for lost in rpo.lost_writes:
                lost.reason, lost.detail = scrub(lost.reason), scrub(lost.detail)
