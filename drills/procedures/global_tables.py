"""Runbook 7.1 item 2, "Test DynamoDB global table consistency", with test items of our own.

    describe-table in each region: version 2019.11.21, a replica in the other region, ACTIVE.
    put-item of test items in each region (partition key `drills-probe/<token>/...`), each
    watched in the other region with batch-get-item (ConsistentRead) until it is there.
    A conflict: the same item put in the primary region, then in the DR region with
    ReturnValues ALL_OLD; an empty ALL_OLD proves the first write had not reached the DR
    region when the second was applied there, so both regions wrote it without seeing the
    other's write. Last writer wins: both must end with the second (later) write, including
    the DR region, where the first write's copy arrives after the second.

A strongly consistent read answers from the region's own replica, which is what is checked;
AWS documents no way to see a dropped (older) replicated write, so the drill reads both
regions until they agree on the later write and then keeps reading them for a hold window
longer than any lag it measured. Every test item is deleted in both regions afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from drills.clients import Clients
from drills.errors import ObjectiveBreached, ProbeError
from drills.procedures.replication import PROBE_PREFIX

GLOBAL_TABLE_VERSION = "2019.11.21"
#: The value a test item's range key takes, by attribute type.
_RANGE_VALUE = {"S": {"S": "drills-probe"}, "N": {"N": "0"}, "B": {"B": b"drills-probe"}}
#: A conflict needs the second write to land before the first one's copy: tries, at most.
CONFLICT_ATTEMPTS = 30
#: Test items carry this attribute, with the run's token.
MARK = "drills_probe"


@dataclass(frozen=True, slots=True)
class Schema:
    """A table's key: the partition key's name, and the range key's (name, type) if any."""

    table: str
    hash_key: str
    range_key: tuple[str, str] | None

    def key(self, value: str) -> dict[str, Any]:
        """The wire key of the test item whose partition key is `value`."""
        out: dict[str, Any] = {self.hash_key: {"S": value}}
        if self.range_key is not None:
            out[self.range_key[0]] = _RANGE_VALUE[self.range_key[1]]
        return out


def global_tables(clients: Clients, tables: Sequence[str], regions: Sequence[str]
                  ) -> list[Schema]:
    """describe-table of each table in each region: a global table (2019.11.21) with an
    ACTIVE replica in every other region, a string partition key; ObjectiveBreached if not."""
    schemas = []
    for table in tables:
        for region in regions:
            desc = clients("dynamodb", region).describe_table(TableName=table)["Table"]
            others = {r["RegionName"]: r.get("ReplicaStatus") for r in desc.get("Replicas", [])}
            missing = [r for r in regions if r != region and others.get(r) != "ACTIVE"]
            if desc.get("GlobalTableVersion") != GLOBAL_TABLE_VERSION or missing:
                raise ObjectiveBreached(
                    f"table {table} in {region} is not a global table ({GLOBAL_TABLE_VERSION}) "
                    f"with ACTIVE replicas in {', '.join(missing) or 'the other regions'} "
                    f"(replicas: {others or 'none'}); aws dynamodb update-table --table-name "
                    f"{table} --replica-updates 'Create={{RegionName=<region>}}' (runbook 5.2)")
        types = {a["AttributeName"]: a["AttributeType"] for a in desc["AttributeDefinitions"]}
        keys = {k["KeyType"]: k["AttributeName"] for k in desc["KeySchema"]}
        if types[keys["HASH"]] != "S":
            raise ProbeError(f"table {table}'s partition key {keys['HASH']} is not a string; "
                             "the drill's test items need one")
        schemas.append(Schema(table, keys["HASH"],
                              (keys["RANGE"], types[keys["RANGE"]]) if "RANGE" in keys else None))
    return schemas


@dataclass(frozen=True, slots=True)
class ProbeItem:
    """One test item: its table, partition key value, and the region it was written in."""

    table: str
    value: str
    region: str


def put_items(ddb: Any, schemas: Sequence[Schema], region: str, token: str, count: int,
              on_acked: Callable[[Hashable, float], None]) -> list[ProbeItem]:
    """put-item of `count` test items into each table in `region`; each item's acknowledgement
    (monotonic) goes to `on_acked`."""
    out = []
    for n in range(count):
        for schema in schemas:
            item = ProbeItem(schema.table, f"{PROBE_PREFIX}{token}/{region}/{n:03d}", region)
            ddb.put_item(TableName=schema.table, Item={
                **schema.key(item.value), MARK: {"S": token}, "written_in": {"S": region}})
            on_acked(item, time.monotonic())
            out.append(item)
    return out


def items_present(ddb: Any, schemas: Sequence[Schema], items: Iterable[Hashable]
                  ) -> set[Hashable]:
    """batch-get-item (ConsistentRead) of `items` in one region: the ones it holds. Keys
    DynamoDB leaves unprocessed are asked again within the same poll."""
    by_table = {s.table: s for s in schemas}
    wanted: list[ProbeItem] = [i for i in items if isinstance(i, ProbeItem)]
    found: set[Hashable] = set()
    for start in range(0, len(wanted), 100):
        chunk = wanted[start:start + 100]
        lookup = {(i.table, i.value): i for i in chunk}
        request: dict[str, Any] = {}
        for item in chunk:
            schema = by_table[item.table]
            request.setdefault(item.table, {"Keys": [], "ConsistentRead": True,
                                            "ProjectionExpression": "#k",
                                            "ExpressionAttributeNames": {"#k": schema.hash_key}})
            request[item.table]["Keys"].append(schema.key(item.value))
        while request:
            reply = ddb.batch_get_item(RequestItems=request)
            for table, rows in reply.get("Responses", {}).items():
                key = by_table[table].hash_key
                found |= {lookup[(table, row[key]["S"])] for row in rows
                          if (table, row[key]["S"]) in lookup}
            request = reply.get("UnprocessedKeys") or {}
    return found


def delete_items(clients: Clients, schemas: Sequence[Schema], values: Collection[str],
                 regions: Sequence[str]) -> int:
    """delete-item of the test items (partition key values) of every table in every region;
    how many deletes were sent (deleting an absent item is a no-op)."""
    sent = 0
    for region in regions:
        ddb = clients("dynamodb", region)
        for schema in schemas:
            for value in values:
                ddb.delete_item(TableName=schema.table, Key=schema.key(value))
                sent += 1
    return sent


@dataclass(frozen=True, slots=True)
class Write:
    """One write of the conflict: where, what, and its send and acknowledgement (monotonic)."""

    region: str
    value: str  # what it wrote in `written_in`: its region's name
    sent: float
    acked: float


@dataclass(frozen=True, slots=True)
class Conflict:
    """The same item written in two regions, the second before the first's copy reached it."""

    schema: Schema
    item: str  # partition key value
    first: Write
    second: Write
    attempts: int  # tries until the second write landed before the first one's copy
    tried: tuple[str, ...]  # every item value used, for cleanup


def make_conflict(clients: Clients, schema: Schema, token: str, first_region: str,
                  second_region: str) -> Conflict:
    """Write an item in `first_region`, then as soon as that is acknowledged the same item
    with another value in `second_region`, until the second write's ALL_OLD shows the first
    had not arrived there (a real conflict); ProbeError after CONFLICT_ATTEMPTS tries."""
    first_ddb, second_ddb = clients("dynamodb", first_region), clients("dynamodb", second_region)
    tried = []
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        value = f"{PROBE_PREFIX}{token}/conflict/{attempt:02d}"
        tried.append(value)
        writes = []
        for ddb, region in ((first_ddb, first_region), (second_ddb, second_region)):
            sent = time.monotonic()
            reply = ddb.put_item(TableName=schema.table, ReturnValues="ALL_OLD", Item={
                **schema.key(value), MARK: {"S": token}, "written_in": {"S": region}})
            writes.append(Write(region, region, sent, time.monotonic()))
        if "Attributes" not in reply:  # the second region held nothing: the first's copy later
            return Conflict(schema, value, writes[0], writes[1], attempt, tuple(tried))
    raise ProbeError(f"in {CONFLICT_ATTEMPTS} tries, every write of a test item in "
                     f"{first_region} reached {second_region} before the same item was written "
                     "there (replication faster than a round trip): no conflict could be made; "
                     "run the drill again")


@dataclass(slots=True)
class Convergence:
    """What reading both regions saw after a conflict (monotonic times)."""

    agreed_at: float | None = None  # end of the first read that found both on the winner
    last_disagreed: float | None = None  # start of the last read that did not
    held_until: float | None = None  # the end of the hold window, if it held
    seen: dict[str, list[str]] = field(default_factory=dict)  # per region, values in order
    regressed: str = ""  # a region that left the winner after holding it


def read_value(ddb: Any, schema: Schema, item: str) -> str:
    """Which region's write a region holds for the item ("" when it holds none)."""
    row = ddb.get_item(TableName=schema.table, Key=schema.key(item),
                       ConsistentRead=True).get("Item")
    return "" if row is None else str(row["written_in"]["S"])


def watch_convergence(clients: Clients, conflict: Conflict, deadline: float, hold: float,
                      interval: float, progress: Callable[[str], None]) -> Convergence:
    """Read the item in both regions every `interval` until both hold the second write, then
    for `hold` seconds more, each read checked; stops at `deadline` (monotonic)."""
    regions = (conflict.first.region, conflict.second.region)
    ddbs = {r: clients("dynamodb", r) for r in regions}
    winner, seen = conflict.second.value, Convergence(seen={r: [] for r in regions})
    while time.monotonic() < deadline:
        started = time.monotonic()
        values = {r: read_value(ddbs[r], conflict.schema, conflict.item) for r in regions}
        ended = time.monotonic()
        for region, value in values.items():
            if not seen.seen[region] or seen.seen[region][-1] != value:
                seen.seen[region].append(value)
        agreed = all(v == winner for v in values.values())
        if seen.agreed_at is None:
            if agreed:
                seen.agreed_at = ended
            else:
                seen.last_disagreed = started
                progress(f"waiting for both regions to hold the later write: {values}")
        elif not agreed:
            seen.regressed = ", ".join(f"{r} went back to {v or 'nothing'}"
                                       for r, v in values.items() if v != winner)
            return seen
        elif ended - seen.agreed_at >= hold:
            seen.held_until = ended
            return seen
        time.sleep(max(0.0, started + interval - time.monotonic()))
    return seen
