"""The exercise programme: runbook items, which drills exercise them, and which are overdue.

Section 7 of the runbook sets a cadence (7.1 monthly, 7.2 quarterly, 7.3 annual); sections 2-6
name the failure scenarios and procedures a drill can exercise. A drill maps to an item by its
tags and its text (feature, scenario, path, description): the table below is the one place
that mapping lives. 7.3.4 (communication procedures) is also met by a drill whose
notifications were sent and seen to arrive. Items no drill can exercise (7.3.5, updating the
objectives) are attested by the team in the remediation file, which may attest any item; an
annual run's objectives review (a proposal from the actual times) rehearses 7.3.5. 7.3.3 is
met by an annual run with an on-call participant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from drills.evidence.fmt import parse_utc, utc_text
from drills.evidence.model import DrillRecord, ProgrammeItem

#: Longest allowed gap between two exercises of a cadence item, in days.
MAX_AGE_DAYS = {"monthly": 31, "quarterly": 92, "annual": 366}

DRILL, PARTICIPATION, ATTESTATION = "drill", "participation", "attestation"


def ref(section: str) -> str:
    """A regex matching a runbook section number as written in text ('3.1', not '7.3.1')."""
    return r"(?<![\d.])" + re.escape(section) + r"(?!\.?\d)"


@dataclass(frozen=True, slots=True)
class Item:
    """A runbook item and the rule that says which drills exercise it."""

    item_id: str
    section: str
    title: str
    cadence: str | None = None
    evidence: str = DRILL
    #: Every group (a regex) must match the drill's lower-cased text.
    patterns: tuple[str, ...] = ()
    tags: frozenset[str] = frozenset()  # all required
    exclude_tags: frozenset[str] = frozenset({"preflight"})

    def matches(self, tags: Iterable[str], text: str) -> bool:
        """True when a drill with these tags and this text exercises the item."""
        if self.evidence != DRILL or not (self.patterns or self.tags):
            return False
        tagset = set(tags)
        if not self.tags <= tagset or self.exclude_tags & tagset:
            return False
        return all(re.search(p, text) for p in self.patterns)


def _m(item_id: str, title: str, *patterns: str, evidence: str = DRILL) -> Item:
    return Item(item_id, "7.1", title, "monthly", evidence, patterns)


def _q(item_id: str, title: str, *patterns: str, evidence: str = DRILL) -> Item:
    return Item(item_id, "7.2", title, "quarterly", evidence, patterns)


def _a(item_id: str, title: str, *patterns: str, evidence: str = DRILL) -> Item:
    return Item(item_id, "7.3", title, "annual", evidence, patterns)


def _s(item_id: str, title: str, *patterns: str, section: str = "3",
       tags: frozenset[str] = frozenset()) -> Item:
    return Item(item_id, section, title, None, DRILL, patterns, tags)


NATS, KMS, S3 = frozenset({"nats"}), frozenset({"kms"}), frozenset({"s3"})


#: Runbook section 7 checklists, then the section 2-6 scenarios and procedures.
ITEMS: tuple[Item, ...] = (
    _m("7.1.1", "Verify S3 cross-region replication lag < 15 minutes",
       r"replicat", r"\blag\b"),
    _m("7.1.2", "Test DynamoDB global table consistency", r"global table"),
    _m("7.1.3", "Verify KMS key accessible in DR region",
       r"kms|sealing key", r"dr region|us-west-2|multi-region|replica key"),
    Item("7.1.4", "7.1", "Test SSM parameter backup restoration", "monthly", DRILL,
         (r"backup|restor",), frozenset({"ssm"})),
    _m("7.1.5", "Simulate single instance failure and recovery",
       r"single (enclave )?instance|one enclave instance|simulate single"),
    _m("7.1.6", "Test alarm escalation path", r"alarm|escalat|pager"),
    # The quarterly drill records the window and renders the notice (appendix template);
    # an attestation in the remediation file counts as well, as for every item.
    _q("7.2.1", "Schedule maintenance window", r"maintenance window"),
    _q("7.2.2", "Notify users of potential brief disruption",
       r"user notification|users are notified|notify users"),
    _q("7.2.3", "Execute failover to DR region", r"fail ?over"),
    _q("7.2.4", "Run smoke tests in DR region", r"smoke"),
    _q("7.2.5", "Execute failback to primary", r"fail ?back"),
    _q("7.2.6", "Document any issues and update runbooks",
       r"issues (are recorded )?as findings|runbook findings"),
    _a("7.3.1", "Complete regional failover",
       r"complete regional|region-wide|regional (outage|failover)|full dr"),
    _a("7.3.2", "4-hour operation in DR region", r"4-hour|four-hour|4 hours"),
    _a("7.3.3", "Include on-call team participation", evidence=PARTICIPATION),
    _a("7.3.4", "Test communication procedures",
       r"communication (procedure|template)"),
    _a("7.3.5", "Update RTO/RPO based on actual times", evidence=ATTESTATION),
    Item("2", "2", "Backup verification (S3 versioning, PITR, SSM, KMS key state)", None,
         DRILL, (), frozenset({"preflight"}), exclude_tags=frozenset()),
    _s("2.2", "DynamoDB restore (on-demand backup, point-in-time recovery)",
       r"restor|point-in-time|pitr|" + ref("2.2"), section="2", tags=frozenset({"dynamodb"})),
    _s("2.3", "SSM parameter backup and restore", r"backup|restor|" + ref("2.3"),
       section="2", tags=frozenset({"ssm"})),
    _s("3.1", "Single instance failure",
       r"single (enclave )?instance|one enclave instance|" + ref("3.1")),
    _s("3.2", "All enclave instances down",
       r"all enclave|every (enclave )?instance|capacity (forced|set) to (zero|0)|" + ref("3.2")),
    # Components are named by tag: feature text mentions NATS or KMS in passing (symptoms).
    _s("3.3", "NATS cluster failure", tags=NATS),
    _s("3.4", "KMS key unavailable", r"disabl|delet|unavailable|pending|" + ref("3.4"), tags=KMS),
    _s("3.5", "S3 data corruption/deletion", r"delet|corrupt|overwrit|" + ref("3.5"), tags=S3),
    _s("3.6", "Region-wide outage", r"region-wide|regional outage|region outage|" + ref("3.6")),
    _s("4.1", "Complete enclave failure recovery",
       r"all enclave|every (enclave )?instance|\bami\b|instance refresh|force new|" + ref("4.1"),
       section="4"),
    _s("4.2", "NATS cluster recovery",
       r"restart|recover|quorum|partition|kill|frozen|down|" + ref("4.2"), section="4", tags=NATS),
    _s("4.3", "KMS key recovery", r"enable|cancel|recover|" + ref("4.3"), section="4", tags=KMS),
    _s("4.4", "S3 data recovery", r"restor|recover|delete marker|previous version|" + ref("4.4"),
       section="4", tags=S3),
    _s("5.2", "Cross-region failover", r"fail ?over|" + ref("5.2"), section="5"),
    _s("5.3", "Cross-region failback", r"fail ?back|" + ref("5.3"), section="5"),
    _s("6.3", "Emergency PCR rollback", r"pcr|" + ref("6.3"), section="6"),
)
BY_ID = {item.item_id: item for item in ITEMS}
ORDER = {item.item_id: n for n, item in enumerate(ITEMS)}


def drill_text(drill: DrillRecord) -> str:
    """What the mapping reads of a drill: its names, path and description, lower-cased."""
    return " ".join([drill.feature, drill.name, drill.feature_path, drill.description]).lower()


def items_for(drill: DrillRecord, rehearsal: bool = False) -> list[str]:
    """Ids of the programme items this drill exercises, in runbook order (`rehearsal`: the
    run was on the twin, where every item is only ever rehearsed)."""
    text = drill_text(drill)
    found = [item.item_id for item in ITEMS if item.matches(drill.tags, text)]
    # 7.3.2 is four hours of operation in DR: a feature that speaks of it is not a soak
    # that lasted them (`drills run annual --soak 4h`). A shorter soak rehearses the item
    # on the twin; on an account it does not exercise it.
    if drill.soak is None or (drill.soak.rehearsal and not rehearsal):
        found = [item for item in found if item != "7.3.2"]
    # 7.3.4 is testing the communication procedures: notifications sent and seen to arrive.
    comms = drill.comms
    if comms and any(n.received_text is not None for n in comms.notifications):
        found = sorted({*found, "7.3.4"}, key=ORDER.__getitem__)
    return found


@dataclass(frozen=True, slots=True)
class Exercise:
    """Evidence that an item was exercised: by a drill in a run, a participant, or attested."""

    item_id: str
    utc: str
    run_id: str | None
    result: str  # passed | failed | attested
    target_kind: str  # twin | aws | attested


def compliance(exercises: Sequence[Exercise], now: datetime,
               this_run: str | None = None) -> list[ProgrammeItem]:
    """Every programme item with its last exercise and, for cadence items, overdue or not.

    Only a *passing* run against an *account* (or the team's attestation) exercises an item:
    a twin run is a rehearsal, listed beside it ("last rehearsal"), and never puts an item on
    schedule; a failed attempt does not count either, and is shown as such. An item only the
    team can do (`evidence` attestation) is exercised by their attestation alone: a run that
    prepares it, on any target, rehearses it.
    """
    out = []
    for item in ITEMS:
        mine = sorted((e for e in exercises if e.item_id == item.item_id), key=lambda e: e.utc)
        attested_only = item.evidence == ATTESTATION
        done = [e for e in mine if e.result in ("passed", "attested")
                and e.target_kind in (("attested",) if attested_only else ("account", "attested"))]
        rehearsals = [e for e in mine if e.target_kind == "twin"
                      or (attested_only and e.target_kind != "attested")]
        failed = [e for e in mine if e.result == "failed"]
        row = ProgrammeItem(
            item_id=item.item_id, section=item.section, title=item.title, cadence=item.cadence,
            evidence=item.evidence, status="never" if item.cadence else "not-exercised",
            in_this_run=any(e.run_id == this_run for e in mine) if this_run else False)
        if rehearsals:
            last = rehearsals[-1]
            row.last_rehearsal_utc, row.last_rehearsal_result = last.utc, last.result
            if last.result == "passed" and not done:
                row.status = "rehearsed"
        if failed and (not done or failed[-1].utc > done[-1].utc):
            row.last_failed_utc = failed[-1].utc
        if done:
            last = done[-1]
            when = parse_utc(last.utc)
            row.last_exercised_utc, row.last_run_id = last.utc, last.run_id
            row.last_result, row.target_kind = last.result, last.target_kind
            row.last_passed_utc = last.utc
            row.days_since = round((now - when).total_seconds() / 86400, 1)
            row.status = "exercised"
            if item.cadence:
                due = when + timedelta(days=MAX_AGE_DAYS[item.cadence])
                row.due_utc = utc_text(due)
                row.status = "ok" if now <= due else "overdue"
        out.append(row)
    return out


#: Cadence items not on schedule: never exercised, overdue, or only rehearsed on the twin.
NOT_ON_SCHEDULE = ("overdue", "never", "rehearsed")


def status_label(status: str) -> str:
    """The status as the reports print it."""
    return {"ok": "ON SCHEDULE", "overdue": "OVERDUE", "never": "NEVER",
            "rehearsed": "REHEARSED ONLY", "exercised": "EXERCISED",
            "not-exercised": "NOT EXERCISED"}[status]


def history_text(p: ProgrammeItem) -> str:
    """'passed on account 2026-11-02; last rehearsal 2026-11-30 (passed); last attempt failed
    on 2026-11-29' — what the status is based on, in one line."""
    parts = [f"{p.last_result} on {p.target_kind} {p.last_exercised_utc[:10]}"
             if p.last_exercised_utc else "never on an account"]
    if p.last_rehearsal_utc:
        parts.append(f"last rehearsal {p.last_rehearsal_utc[:10]} ({p.last_rehearsal_result})")
    if p.last_failed_utc:
        parts.append(f"last attempt failed on {p.last_failed_utc[:10]}")
    return "; ".join(parts)


def is_on_call(role: str) -> bool:
    """Whether a participant's role is on-call (runbook 7.3: 'on-call team participation')."""
    return bool(re.search(r"on[- ]?call", role, re.I))
