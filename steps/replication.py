"""Steps for runbook 7.1 items 1-3: the DR region's copies of the vault data, the metadata
tables and the sealing key, checked with test data of our own (`drills.procedures.replication`,
`drills.procedures.global_tables`).

Nothing of the service is broken, so lags are measured from each test write's own
acknowledgement, not from a fault; the figures are recorded per quantile (p50, p99, max)
against the component's objective (`[components."S3 Replication"]`, `"DynamoDB Global
Tables"`). The `When` steps that write test data remove it in their teardown, also when a
later step fails.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from pytest_bdd import given, parsers, then, when

from drills.config import GLOBAL_TABLES
from drills.drill import Drill
from drills.errors import ConfigError, ObjectiveBreached, ProbeError
from drills.evidence.fmt import secs
from drills.faults import ActiveFault
from drills.faults.kms_region import KeyRegionUnreachable
from drills.measure import figures
from drills.measure.replication import Arrival, LagSummary, lag_measurements
from drills.procedures import global_tables as gt
from drills.procedures.replication import (
    Decrypted,
    KeyReplica,
    ReplicationRule,
    Unanswered,
    Watcher,
    decrypt_in,
    put_markers,
    remove_markers,
    replication_rule,
    replication_statuses,
    sealing_key_replica,
    versions_present,
)

#: How often the other region is polled for copies, in seconds.
POLL = 0.05
#: How long a status that follows the copy (COMPLETED on the source) may take to show.
STATUS_TIMEOUT = 60.0
#: Without an answer within this, the primary region counts as not answering.
UNANSWERED_AFTER = 2.0


def _token() -> str:
    """Names this drill's test data: when it was written, and a random part."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def _note(drill: Drill, message: str) -> None:
    drill.observer.waiting(drill.record, message)


def _assert_lags(drill: Drill, summary: LagSummary, what: str) -> None:
    """ObjectiveBreached naming the late and missing copies, unless the max is within."""
    if summary.met:
        return
    late = [str(x.key) for x in summary.by_arrival(Arrival.LATE)][:5]
    missing = [str(x.key) for x in summary.by_arrival(Arrival.MISSING)][:5]
    raise ObjectiveBreached(f"{what}: {summary.describe()} against an objective of "
                            f"{secs(summary.objective)}"
                            + (f"; late: {late}" if late else "")
                            + (f"; never seen: {missing}" if missing else ""))


def _record_lags(drill: Drill, name: str, component: str, watcher: Watcher, since: float,
                 method: str) -> LagSummary:
    """Wait (up to the objective's window from `since`) for every copy, then record p50,
    p99 and max as figures against the objective and say them."""
    objective = drill.settings.objectives.for_component(component)
    watcher.wait_all(since + objective.window, lambda m: drill.progress(
        f"{name}: {m} ({secs(time.monotonic() - since)} since the first write, objective "
        f"{secs(objective.rto)})"))
    summary = LagSummary.of(watcher.lags(), objective.rto)
    for measurement in lag_measurements(name, objective, summary, method):
        drill.record_measurement(measurement)
    _note(drill, f"{name}: {summary.describe()}")
    return summary


# ------------------------------------------------------------------ 7.1.1 S3


@dataclass(frozen=True, slots=True)
class Markers:
    """This drill's marker objects and the watcher of the replica bucket."""

    token: str
    rule: ReplicationRule
    written: list[tuple[str, str]]
    watcher: Watcher
    first_ack: float


@given("the vault data bucket replicates to its replica bucket in the DR region",
       target_fixture="bucket_rule")
def bucket_replicates(drill: Drill) -> ReplicationRule:
    """get-bucket-replication: an enabled rule from vettid-vault-data-<account> to
    vettid-vault-data-dr-<account>, which is in the DR region; both buckets versioned."""
    rule = replication_rule(drill.target.clients, drill.target.names)
    _note(drill, f"replication: {rule.describe()}")
    return rule


@when(parsers.parse("{count:d} marker objects are written to the vault data bucket"),
      target_fixture="markers")
def markers_written(drill: Drill, bucket_rule: ReplicationRule,
                    count: int) -> Iterator[Markers]:
    """Put `count` markers under the rule's prefix + drills-probe/<token>/, one after the
    other, while the replica bucket is polled for them; teardown deletes every version of
    them in both buckets (and markers an interrupted run left)."""
    if count < 1:
        raise ConfigError(f"the drill needs at least one marker, not {count}")
    rule, token, clients = bucket_rule, _token(), drill.target.clients
    dr_s3 = clients("s3", rule.destination_region)
    watcher = Watcher(rule.destination, lambda _: versions_present(
        dr_s3, rule.destination, rule.marker_prefix(token)), POLL).start()
    try:
        started = time.monotonic()
        written = put_markers(clients("s3", drill.target.names.primary_region), rule, token,
                              count, watcher.expect)
        _note(drill, f"{len(written)} markers written under {rule.marker_prefix(token)} in "
                     f"{secs(time.monotonic() - started)}")
        yield Markers(token, rule, written, watcher, watcher.lags()[0].acked)
    finally:
        watcher.stop()
        source, replica = remove_markers(clients, rule, token, drill.target.names.primary_region)
        _note(drill, f"markers removed: {source} versions from {rule.source}, {replica} from "
                     f"{rule.destination}")


@then(parsers.parse('every marker is seen in the replica bucket within the "{component}" '
                    "objective"))
def markers_replicated(drill: Drill, markers: Markers, component: str) -> None:
    """Each marker's lag: its put's acknowledgement to the first list-object-versions of the
    replica bucket that held its key and version ID; p50, p99 and max against the objective."""
    rule = markers.rule
    summary = _record_lags(drill, "replication lag", component, markers.watcher,
                           markers.first_ack, method=(
        f"{len(markers.written)} marker objects put one after another in {rule.source} "
        f"({rule.describe()}); each marker's lag runs from its put's acknowledgement to the "
        f"first list-object-versions of {rule.destination} in {rule.destination_region} "
        f"(polled every {POLL * 1000:g} ms) holding its key and version ID, bracketed by the "
        "last poll that did not; nearest-rank percentiles (under 100 markers, p99 is the max)"))
    _assert_lags(drill, summary, f"S3 replication of {rule.source} to {rule.destination}")


@then("the source reports every marker COMPLETED and the replica bucket every copy REPLICA")
def markers_statuses(drill: Drill, markers: Markers) -> None:
    """head-object of each marker version: ReplicationStatus COMPLETED on the source (it may
    follow the copy by a moment) and REPLICA on the copy; FAILED or missing is a breach."""
    rule, clients = markers.rule, drill.target.clients
    source = clients("s3", drill.target.names.primary_region)
    deadline = time.monotonic() + STATUS_TIMEOUT
    while (statuses := replication_statuses(source, rule.source, markers.written)) and any(
            s == "PENDING" for s in statuses.values()) and time.monotonic() < deadline:
        drill.progress(f"{sum(s == 'PENDING' for s in statuses.values())} markers still "
                       "PENDING on the source")
        time.sleep(POLL * 4)
    replicas = replication_statuses(clients("s3", rule.destination_region), rule.destination,
                                    markers.written)
    wrong = {k: s for k, s in statuses.items() if s != "COMPLETED"}
    wrong |= {k: f"copy {s or 'without a status'}" for k, s in replicas.items()
              if s != "REPLICA"}
    if wrong:
        raise ObjectiveBreached(f"{len(wrong)} marker version(s) are not COMPLETED on "
                                f"{rule.source} with a REPLICA copy: "
                                f"{dict(list(wrong.items())[:5])}")
    _note(drill, f"all {len(statuses)} markers COMPLETED on {rule.source}, REPLICA on "
                 f"{rule.destination}")


# ------------------------------------------------------------------ 7.1.2 DynamoDB


@dataclass(frozen=True, slots=True)
class TableItems:
    """This drill's test items and the watchers of each region."""

    token: str
    schemas: list[gt.Schema]
    regions: tuple[str, str]
    watchers: dict[str, Watcher]  # by the region the items were written in
    first_ack: float


@given("the metadata tables are global tables with a replica in each region",
       target_fixture="schemas")
def tables_are_global(drill: Drill) -> list[gt.Schema]:
    """describe-table of the three tables in both regions: version 2019.11.21, each with an
    ACTIVE replica in the other region."""
    names = drill.target.names
    schemas = gt.global_tables(drill.target.clients, names.tables,
                               (names.primary_region, names.dr_region))
    _note(drill, f"global tables ({gt.GLOBAL_TABLE_VERSION}) in {names.primary_region} and "
                 f"{names.dr_region}: {', '.join(s.table for s in schemas)}")
    return schemas


@when(parsers.parse("{count:d} test items are written to each table in each region"),
      target_fixture="table_items")
def items_written(drill: Drill, schemas: list[gt.Schema], count: int) -> Iterator[TableItems]:
    """put-item of `count` items per table, in the primary region then in the DR region,
    each polled for in the other region; teardown deletes them in both regions."""
    names, clients, token = drill.target.names, drill.target.clients, _token()
    regions = (names.primary_region, names.dr_region)
    watchers = {}
    for region, other in (regions, regions[::-1]):
        ddb = clients("dynamodb", other)

        def look(keys: list[Hashable], ddb: object = ddb) -> set[Hashable]:
            return gt.items_present(ddb, schemas, keys)

        watchers[region] = Watcher(f"{other} (written in {region})", look, POLL).start()
    written: list[gt.ProbeItem] = []
    try:
        for region in regions:
            written += gt.put_items(clients("dynamodb", region), schemas, region, token, count,
                                    watchers[region].expect)
        _note(drill, f"{len(written)} test items written under {gt.PROBE_PREFIX}{token}/")
        yield TableItems(token, schemas, regions, watchers,
                         min(w.lags()[0].acked for w in watchers.values()))
    finally:
        for watcher in watchers.values():
            watcher.stop()
        sent = gt.delete_items(clients, schemas, {i.value for i in written}, regions)
        _note(drill, f"test items removed: {sent} delete-item calls in {' and '.join(regions)}")


@then(parsers.parse('every test item is seen in the other region within the "{component}" '
                    "objective"))
def items_replicated(drill: Drill, table_items: TableItems, component: str) -> None:
    """Per direction, each item's lag: its put's acknowledgement to the first batch-get-item
    (ConsistentRead) in the other region that returned it; p50, p99 and max."""
    summaries, names = [], drill.target.names
    for region, other in (table_items.regions, table_items.regions[::-1]):
        watcher = table_items.watchers[region]
        # Figure names read well in tables (region names lose their hyphens there).
        direction = "DR to primary" if names.is_dr(region) else "primary to DR"
        summaries.append((f"{region} to {other}", _record_lags(
            drill, f"global table lag {direction}", component, watcher,
            table_items.first_ack, method=(
                f"test items put in {len(table_items.schemas)} tables in {region}; each item's "
                f"lag runs from its put's acknowledgement to the first batch-get-item "
                f"(ConsistentRead) in {other} (polled every {POLL * 1000:g} ms) that returned "
                "it, bracketed by the last that did not; nearest-rank percentiles"))))
    for direction, summary in summaries:
        _assert_lags(drill, summary, f"global table replication {direction}")


@when("the same test item is written in the primary region, then in the DR region before "
      "the first write reaches it", target_fixture="conflict")
def conflicting_writes(drill: Drill, schemas: list[gt.Schema]) -> Iterator[gt.Conflict]:
    """put-item in the primary region, then at once in the DR region with ReturnValues
    ALL_OLD, until ALL_OLD is empty (the first write had not arrived); teardown deletes it."""
    names, clients = drill.target.names, drill.target.clients
    conflict: gt.Conflict | None = None
    try:
        conflict = gt.make_conflict(clients, schemas[0], _token(), names.primary_region,
                                    names.dr_region)
        _note(drill, f"conflict on {schemas[0].table} item {conflict.item}: written in "
                     f"{conflict.first.region}, then {conflict.second.region} "
                     f"{secs(conflict.second.sent - conflict.first.acked)} after the first "
                     f"was acknowledged, before it arrived there (try {conflict.attempts})")
        yield conflict
    finally:
        if conflict is not None:
            gt.delete_items(clients, [conflict.schema], conflict.tried,
                            (names.primary_region, names.dr_region))


@then(parsers.parse('both regions converge on the later write within the "{component}" '
                    "objective"))
def conflict_converges(drill: Drill, conflict: gt.Conflict, component: str) -> None:
    """Read the item in both regions until both hold the later write, and keep reading for a
    hold window five times the slowest lag measured in this drill (at least 2 s): last
    writer wins, in the DR region too, where the earlier write's copy arrives last."""
    objective = drill.settings.objectives.for_component(component)
    slowest = max((m.rto for m in drill.record.measurements
                   if m.component == GLOBAL_TABLES and m.name.endswith(" max") and m.rto),
                  default=0.0)
    hold = max(2.0, 5 * slowest)
    origin = conflict.second.acked
    seen = gt.watch_convergence(drill.target.clients, conflict, origin + objective.window,
                                hold, POLL, lambda m: drill.progress(m))
    figure = None if seen.agreed_at is None else seen.agreed_at - origin
    lower = 0.0 if seen.last_disagreed is None else max(0.0, seen.last_disagreed - origin)
    drill.record_measurement(figures.from_event(
        "conflict convergence", objective, figure, 0.0 if figure is None else figure - lower,
        None, method=(
            f"the same item of {conflict.schema.table} put in {conflict.first.region}, then in "
            f"{conflict.second.region} before the first write arrived there (ALL_OLD empty); "
            f"from the second put's acknowledgement to the first reads (ConsistentRead, every "
            f"{POLL * 1000:g} ms) in which both regions held the second write, then read for "
            f"{secs(hold)} more")))
    history = {r: [v or "nothing" for v in values] for r, values in seen.seen.items()}
    _note(drill, f"conflict: each region held, in order: {history}")
    if figure is None:
        raise ObjectiveBreached(f"the regions did not agree on the later write "
                                f"({conflict.second.region}'s) within {secs(objective.window)}: "
                                f"they held {history}")
    if conflict.first.value in seen.seen[conflict.second.region]:
        raise ObjectiveBreached(f"{conflict.second.region} took the earlier write from "
                                f"{conflict.first.region} over its own later one (it held "
                                f"{history[conflict.second.region]}): not last-writer-wins")
    if seen.regressed or seen.held_until is None:
        raise ObjectiveBreached(f"the regions agreed on the later write, then did not hold it "
                                f"for {secs(hold)}: {seen.regressed or 'the window ran out'}")
    if figure > objective.rto:
        raise ObjectiveBreached(f"the conflict converged after {secs(figure)}, beyond the "
                                f"{component} objective of {secs(objective.rto)}")


# ------------------------------------------------------------------ 7.1.3 KMS


@dataclass(frozen=True, slots=True)
class Sealed:
    """A ciphertext made with the sealing key in the primary region, and its plaintext."""

    ciphertext: bytes
    plaintext: bytes


@given("the sealing key has a multi-Region replica in the DR region",
       target_fixture="key_replica")
def key_has_replica(drill: Drill) -> KeyReplica:
    """describe-key of the sealing key: a multi-Region primary with a replica in the DR
    region, whose own state is read there."""
    replica = sealing_key_replica(drill.target.clients, drill.target.names)
    _note(drill, f"sealing key {replica.primary_arn} has replica {replica.replica_arn} "
                 f"({replica.replica_state})")
    return replica


@given("the replica key is Enabled in the DR region")
def replica_enabled(key_replica: KeyReplica) -> None:
    """The replica's own key state (per region, as AWS keeps it) is Enabled."""
    if key_replica.replica_state != "Enabled":
        raise ObjectiveBreached(f"the sealing key's replica {key_replica.replica_arn} is "
                                f"{key_replica.replica_state}, not Enabled: nothing in "
                                f"{key_replica.replica_region} could decrypt the vaults; "
                                "aws kms enable-key in that region (runbook 4.3)")


@when("a ciphertext is made with the sealing key in the primary region",
      target_fixture="sealed")
def ciphertext_made(drill: Drill, key_replica: KeyReplica) -> Sealed:
    """aws kms encrypt with the primary key, in the primary region, of 32 random bytes."""
    plaintext = os.urandom(32)
    kms = drill.target.clients("kms", drill.target.names.primary_region)
    blob = kms.encrypt(KeyId=key_replica.primary_arn, Plaintext=plaintext)["CiphertextBlob"]
    return Sealed(bytes(blob), plaintext)


@dataclass(frozen=True, slots=True)
class Dark:
    """The primary region's AWS endpoint cut off, and a request to it left unanswered."""

    active: ActiveFault
    witness: Unanswered


@when("the primary region stops answering AWS API requests", target_fixture="dark")
def primary_dark(drill: Drill, key_replica: KeyReplica) -> Iterator[Dark]:
    """Twin only: every request signed for the primary region is held; a describe-key sent
    there must get no answer within 2 s (the cut is real). Reverted at teardown."""
    primary = drill.target.names.primary_region
    active = drill.inject(KeyRegionUnreachable, key_arn=key_replica.primary_arn, region=primary)
    witness: Unanswered | None = None
    try:
        kms = drill.target.clients("kms", primary)
        witness = Unanswered(lambda: kms.describe_key(KeyId=key_replica.primary_arn))
        if not witness.held_for(UNANSWERED_AFTER):
            raise ProbeError(f"{primary} still answers ({witness.outcome()}) after "
                             f"'{active.fault.describe()}': the drill cannot show a decrypt "
                             "without it")
        yield Dark(active, witness)
    finally:
        drill.revert(active)
        if witness is not None:
            witness.close(timeout=60.0)


@then("the ciphertext decrypts in the DR region with the replica key")
def decrypts_in_dr(drill: Drill, key_replica: KeyReplica, sealed: Sealed) -> None:
    """aws kms decrypt in the DR region with the replica's ARN: the replica answers, and the
    plaintext is the one encrypted in the primary region."""
    _decrypt_in_dr(drill, key_replica, sealed)


@then("the ciphertext decrypts in the DR region with the replica key while the primary "
      "region does not answer")
def decrypts_without_primary(drill: Drill, key_replica: KeyReplica, sealed: Sealed,
                             dark: Dark) -> None:
    """The decrypt in the DR region succeeds, and the request sent to the primary region
    before it is still unanswered after it: the primary region was dark throughout."""
    done = _decrypt_in_dr(drill, key_replica, sealed)
    if not dark.witness.held:
        raise ProbeError(f"the request to {drill.target.names.primary_region} sent at "
                         f"{dark.witness.sent_utc} came back ({dark.witness.outcome()}) before "
                         "the decrypt ended: it does not show a decrypt without that region")
    _note(drill, f"decrypted in {done.region} in {secs(done.seconds)} while a describe-key "
                 f"sent to {drill.target.names.primary_region} at {dark.witness.sent_utc} was "
                 "still unanswered")


def _decrypt_in_dr(drill: Drill, key_replica: KeyReplica, sealed: Sealed) -> Decrypted:
    region = key_replica.replica_region
    done = decrypt_in(drill.target.clients("kms", region), region, key_replica.replica_arn,
                      sealed.ciphertext, sealed.plaintext)
    if done.key_arn != key_replica.replica_arn or not done.matches:
        raise ObjectiveBreached(f"decrypt in {region} answered with key {done.key_arn} and "
                                f"{'the' if done.matches else 'a different'} plaintext; "
                                f"expected the replica {key_replica.replica_arn} and the "
                                "plaintext encrypted in the primary region")
    _note(drill, f"a ciphertext of {key_replica.primary_arn} decrypted in {region} by "
                 f"{done.key_arn} ({secs(done.seconds)})")
    return done
