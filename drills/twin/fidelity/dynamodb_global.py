"""DynamoDB global tables, version 2019.11.21, patched into the moto server process.

moto 5.2.1 silently ignores `UpdateTable(ReplicaUpdates=...)`: no replica table, no
`Replicas`, nothing replicated. What AWS documents (DynamoDB Developer Guide, "Global tables:
How it works", V2globaltables_HowItWorks.html, and "Global tables", GlobalTables.html; API
Reference: API_UpdateTable.html, API_ReplicationGroupUpdate.html, API_TableDescription.html;
"DynamoDB metrics and dimensions", metrics-dimensions.html; FIS User Guide,
fis-actions-reference.html `aws:dynamodb:global-table-pause-replication`), and this module
does:

- `UpdateTable(ReplicaUpdates=[{"Create": {"RegionName": R}}])` creates the replica in R:
  "Every replica has the same table name and the same primary key schema" (and its
  secondary indexes), and the table's items are copied to it. `{"Delete": {"RegionName": R}}`
  deletes that replica; DeleteTable of a replica leaves the global table too.
  DescribeTable answers `GlobalTableVersion: 2019.11.21` and `Replicas`: every other
  region's replica with its `ReplicaStatus` (the region asked is not listed, as AWS answers).
- "When an application writes data to a replica table in one Region, DynamoDB propagates the
  write to the other replica tables in the other AWS Regions automatically": every item
  write (PutItem, UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems, PartiQL) in
  any replica is replicated to every other one, asynchronously and per item ("a newly
  written item is usually propagated to all replica tables within a second"); a transaction
  is not replicated as a unit, and one that fails replicates nothing.
- Conflicts: "DynamoDB global tables use a last writer wins reconciliation between
  concurrent updates": each write carries its time; a replicated write older than what the
  receiving replica holds for the item is dropped there, so all replicas converge.
- `ReplicationLatency` ("the elapsed time between when an item is written to a replica
  table, and when that item appears in another replica in the global table", Milliseconds,
  dimensions TableName and ReceivingRegion) is published to CloudWatch (AWS/DynamoDB) in
  the region the write was made in.
- FIS `aws:dynamodb:global-table-pause-replication` "pauses Amazon DynamoDB global table
  replication to any replica table"; after the pause the backlog drains (route below).

Replicated writes are applied through moto's `Table.put_item`/`delete_item`, so point-in-time
recovery (`fidelity.dynamodb`) records them as writes of the receiving replica.

Twin choices:
- The replica is created and its items copied within the UpdateTable call; the answer shows
  it CREATING, as AWS's does, and it is ACTIVE from then on. Streams are neither required
  nor enabled. Replica settings (`Update`), tags and point-in-time recovery are not copied.
- Lag per item: log-normal, `realistic` median 0.4 s, sigma 0.5 (p99 about 1.3 s, cap 60 s),
  an estimate of "usually within a second" (AWS gives no distribution and no SLA); `fast`
  median 0.05 s, cap 1 s. The writes of one item reach a region in the order they were made.
- `ReplicationLatency` is one datapoint per (table, sending region, receiving region) per
  `metric_period` (fast 1 s, realistic 60 s): the mean latency of the items replicated in
  the period; when items have waited longer than a period (replication paused), the age of
  the oldest pending item instead, so the metric grows during a pause.
- All regions share the moto process's clock, so "last writer" is exact here.

Twin-only control endpoints (see `ROUTES`), all `POST /drills-twin/<route>` with a JSON body:

    dynamodb/global-table-settings  {"profile": "fast"|"realistic", "median": <s>,
                                     "sigma": <>=0>, "max": <s>, "metric_period": <s>,
                                     "seed": <int>}
        every field optional (profile first, then the others override it; sigma 0 gives
        every item exactly `median`). Answers {"profile", "median", "sigma", "max",
        "metric_period", "p50", "p99", "p99_99"}.
    dynamodb/pause-replication      {"source_region", "destination_region", "table"}
        all optional, {} pauses everything. Stops replication over every matching link
        (writes keep being accepted and queue up) until the same selector is resumed. The
        region-isolation fault uses {"source_region": R} ("replication out of R") and
        {"destination_region": R}; `aws:dynamodb:global-table-pause-replication` on table T
        is {"table": T}. Answers like dynamodb/replication-status.
    dynamodb/resume-replication     the same selector as the pause to lift, or {"all": true}
        queued writes then drain in write order. Answers like dynamodb/replication-status.
    dynamodb/replication-status     {}
        {"settings": {...}, "pauses": [selector, ...], "links": [{"source_region",
        "destination_region", "table", "paused", "pending", "oldest_pending_seconds",
        "completed", "failed", "last_failure", "max_latency_seconds"}, ...]}, where
        `pending` counts item writes made in `source_region` not yet applied in
        `destination_region` (a drill's RPO at the moment a region goes dark).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.dynamodb.exceptions import MockValidationException
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler

from drills.twin.fidelity.replication import (
    Lag,
    Link,
    LinkStats,
    Replicator,
    Selector,
    put_metrics,
)

__all__ = ["ROUTES", "VERSION", "install", "replicator"]

VERSION = "2019.11.21"
_MARK = "_drills_twin_fidelity_global_tables"
_ORIGINAL: dict[str, Callable[..., Any]] = {}
#: Every item write goes through this lock (around moto's own call, outside the PITR
#: module's lock), so "last writer wins" compares and applies without a write in between.
_LOCK = threading.RLock()

Key = tuple[DynamoType, DynamoType | None]
Stamp = tuple[float, str]  # (epoch seconds of the write, region it was made in)


@dataclass(slots=True)
class _Group:
    """The replicas of one global table: region -> ReplicaStatus, and region -> creation
    time of that replica's table (a table re-created with the name, or after a moto reset,
    is not a replica)."""

    regions: dict[str, str] = field(default_factory=dict)
    created: dict[str, datetime] = field(default_factory=dict)


#: (account, table name) -> its replicas, once it has more than one region.
_GROUPS: dict[tuple[str, str], _Group] = {}
#: (account, region, table name, item key) -> stamp of the write that replica holds.
_STAMPS: dict[tuple[str, str, str, Key], Stamp] = {}


class _Local(threading.local):
    applying = False  # a replicated write: not replicated again
    updating = 0  # inside UpdateItem: its inner put is reported by the update itself
    transaction: list[tuple[Table, Key, Item | None]] | None = None


_local = _Local()


@contextmanager
def _applying() -> Iterator[None]:
    _local.applying = True
    try:
        yield
    finally:
        _local.applying = False


def _key(table: Table, item: Item) -> Key:
    return (item.hash_key, item.range_key if table.range_key_attr else None)


def _image(item: Item) -> dict[str, Any]:
    return copy.deepcopy(item.to_json()["Attributes"])


def _group(table: Table) -> _Group | None:
    """The global table `table` is a replica of, if any."""
    group = _GROUPS.get((table.account_id, table.name))
    if group is None or group.created.get(table.region_name) != table.created_at:
        return None
    return group


def _written(table: Table, key: Key, item: Item | None) -> None:
    """A client's write of one item (None: deleted): stamp it and send it to the other
    replicas."""
    if _local.applying or (table.account_id, table.name) not in _GROUPS:
        return
    if _local.transaction is not None:
        _local.transaction.append((table, key, item))
        return
    group = _group(table)
    if group is None:
        return
    image = None if item is None else _image(item)
    stamp = (time.time(), table.region_name)
    _STAMPS[(table.account_id, table.region_name, table.name, key)] = stamp
    size = len(repr(image)) if image is not None else 0
    for region in group.regions:
        if region != table.region_name:
            link = Link(table.account_id, table.region_name, region, table.name, table.name)
            replicator.submit(link, key, (key, image, stamp), size, written_at=stamp[0])


def _deliver(link: Link, payload: tuple[Key, dict[str, Any] | None, Stamp]) -> str | None:
    key, image, stamp = payload
    table = dynamodb_backends[link.account][link.destination_region].tables.get(
        link.destination)
    if table is None:
        return "ReplicaTableNotFound"
    ident = (link.account, link.destination_region, link.destination, key)
    with _LOCK:
        held = _STAMPS.get(ident)
        if held is not None and held >= stamp:
            return None  # the replica holds a later write: last writer wins
        _STAMPS[ident] = stamp
        with _applying():
            if image is None:
                table.delete_item(*key)
            else:
                table.put_item(copy.deepcopy(image))
    return None


def _publish(link: Link, stats: LinkStats) -> None:
    if stats.mean_latency is not None:
        seconds = stats.mean_latency
    elif stats.oldest_pending_age is not None:
        seconds = stats.oldest_pending_age
    else:
        return
    put_metrics(link, link.source_region, "AWS/DynamoDB",
                [("ReplicationLatency", seconds * 1000.0, "Milliseconds")],
                {"TableName": link.source, "ReceivingRegion": link.destination_region})


PROFILES = {
    "fast": (Lag(median=0.05, sigma=0.5, max=1.0), 1.0),
    "realistic": (Lag(median=0.4, sigma=0.5, max=60.0), 60.0),
}
#: The global-table replication of this process (settings, pauses, backlog).
replicator = Replicator("dynamodb-global-tables", _deliver, _publish, PROFILES)


# ------------------------------------------------------------------ replicas


def create_replica(backend: DynamoDBBackend, table: Table, region: str,
                   create: dict[str, Any]) -> None:
    """Create the replica of `table` in `region` and copy its items (ReplicaUpdates Create)."""
    if region == table.region_name:
        raise MockValidationException(
            f"Cannot add replica: the table {table.name} is in {region} already")
    stale = _GROUPS.get((table.account_id, table.name))
    if stale is not None and _group(table) is None:  # left over from a table of the name
        _forget_all(table.account_id, table.name)
    group = _GROUPS.get((table.account_id, table.name))
    if group is not None and region in group.regions:
        raise MockValidationException(f"The table {table.name} has a replica in {region} already")
    target = dynamodb_backends[table.account_id][region]
    if table.name in target.tables:
        raise MockValidationException(
            f"Failed to create a the new replica of table with name: '{table.name}' because "
            "one or more replicas already existed as tables.")
    sse = dict(table.sse_specification) if table.sse_specification else None
    if sse is not None:
        sse.pop("KMSMasterKeyId", None)
        if create.get("KMSMasterKeyId"):
            sse["KMSMasterKeyId"] = create["KMSMasterKeyId"]
    throughput = {k: v for k, v in table.throughput.items() if k != "NumberOfDecreasesToday"}
    replica = target.create_table(
        table.name, schema=copy.deepcopy(table.schema), throughput=throughput,
        attr=copy.deepcopy(table.attr),
        global_indexes=[{"IndexName": i.name, "KeySchema": i.schema, "Projection": i.projection,
                         "ProvisionedThroughput": i.throughput} for i in table.global_indexes],
        indexes=[{"IndexName": i.name, "KeySchema": i.schema, "Projection": i.projection}
                 for i in table.indexes],
        streams=copy.deepcopy(table.stream_specification),
        billing_mode=table.billing_mode or "PROVISIONED",
        sse_specification=sse, tags=[], deletion_protection_enabled=False,
        warm_throughput=None)
    group = _GROUPS.setdefault((table.account_id, table.name), _Group())
    group.regions.setdefault(table.region_name, "ACTIVE")
    group.created.setdefault(table.region_name, table.created_at)
    group.regions[region] = "CREATING"  # the UpdateTable answer shows it so
    group.created[region] = replica.created_at
    with _applying():
        for item in list(table.all_items()):
            key = _key(table, item)
            replica.put_item(_image(item))
            stamp = _STAMPS.get((table.account_id, table.region_name, table.name, key),
                                (0.0, table.region_name))
            _STAMPS[(table.account_id, region, table.name, key)] = stamp


def _forget(account: str, name: str, region: str) -> None:
    """`region` leaves the global table `name` (its replica was deleted)."""
    group = _GROUPS.get((account, name))
    if group is None:
        return
    group.regions.pop(region, None)
    group.created.pop(region, None)
    for ident in [i for i in _STAMPS if i[0] == account and i[1] == region and i[2] == name]:
        del _STAMPS[ident]
    if len(group.regions) <= 1:
        _forget_all(account, name)


def _forget_all(account: str, name: str) -> None:
    _GROUPS.pop((account, name), None)
    for ident in [i for i in _STAMPS if i[0] == account and i[2] == name]:
        del _STAMPS[ident]


def _replica_updates(backend: DynamoDBBackend, name: str, updates: list[dict[str, Any]]) -> None:
    table = backend.get_table(name)
    for update in updates:
        if "Create" in update:
            create_replica(backend, table, update["Create"]["RegionName"], update["Create"])
        elif "Delete" in update:
            region = update["Delete"]["RegionName"]
            group = _group(table)
            if group is None or region not in group.regions or region == table.region_name:
                raise MockValidationException(f"The table {name} has no replica in {region}")
            dynamodb_backends[table.account_id][region].delete_table(name)


# ------------------------------------------------------------------ patched moto


def _table_put_item(self: Table, *args: Any, **kwargs: Any) -> Item:
    with _LOCK:
        item: Item = _ORIGINAL["table_put_item"](self, *args, **kwargs)
        if not _local.updating:
            _written(self, _key(self, item), item)
        return item


def _table_delete_item(self: Table, hash_key: DynamoType, range_key: DynamoType | None) -> Any:
    with _LOCK:
        item = _ORIGINAL["table_delete_item"](self, hash_key, range_key)
        if item is not None:
            _written(self, _key(self, item), None)
        return item


def _update_item(self: DynamoDBBackend, table_name: str, *args: Any, **kwargs: Any) -> Item:
    with _LOCK:
        _local.updating += 1
        try:
            item: Item = _ORIGINAL["update_item"](self, table_name, *args, **kwargs)
        finally:
            _local.updating -= 1
        table = self.get_table(table_name)
        _written(table, _key(table, item), item)
        return item


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    # Replicated item by item, but only once the transaction has succeeded.
    with _LOCK:
        _local.transaction = []
        try:
            _ORIGINAL["transact_write_items"](self, transact_items)
            writes = _local.transaction
        finally:
            _local.transaction = None
        for table, key, item in writes:
            _written(table, key, item)


def _delete_table(self: DynamoDBBackend, name: str) -> Table:
    table: Table = _ORIGINAL["delete_table"](self, name)
    with _LOCK:
        if _group(table) is not None:
            _forget(table.account_id, table.name, table.region_name)
    return table


def _describe(self: Table, *args: Any, **kwargs: Any) -> dict[str, Any]:
    described: dict[str, Any] = _ORIGINAL["describe"](self, *args, **kwargs)
    group = _group(self)
    if group is None:
        return described
    body = next(iter(described.values()))
    body["GlobalTableVersion"] = VERSION
    body["Replicas"] = [{"RegionName": region, "ReplicaStatus": status}
                        for region, status in sorted(group.regions.items())
                        if region != self.region_name]
    return described


def _handle_update_table(self: DynamoHandler) -> Any:
    updates = self.body.get("ReplicaUpdates")
    if updates:
        with _LOCK:
            _replica_updates(self.dynamodb_backend, self.body["TableName"], updates)
            answer = _ORIGINAL["handle_update_table"](self)
            group = _GROUPS.get((self.dynamodb_backend.account_id, self.body["TableName"]))
            for region in group.regions if group else {}:
                group.regions[region] = "ACTIVE"  # type: ignore[union-attr]
            return answer
    return _ORIGINAL["handle_update_table"](self)


def install() -> None:
    """Patch moto's DynamoDB with global tables version 2019.11.21 (idempotent)."""
    if getattr(DynamoDBBackend, _MARK, False):
        return
    for name, owner, attr, patch in (
        ("table_put_item", Table, "put_item", _table_put_item),
        ("table_delete_item", Table, "delete_item", _table_delete_item),
        ("describe", Table, "describe", _describe),
        ("update_item", DynamoDBBackend, "update_item", _update_item),
        ("transact_write_items", DynamoDBBackend, "transact_write_items",
         _transact_write_items),
        ("delete_table", DynamoDBBackend, "delete_table", _delete_table),
        ("handle_update_table", DynamoHandler, "update_table", _handle_update_table),
    ):
        _ORIGINAL[name] = getattr(owner, attr)
        setattr(owner, attr, patch)
    setattr(DynamoDBBackend, _MARK, True)


# ------------------------------------------------------------------ twin-only control

_NAMES = {"source": "table", "destination": "destination_table"}


def _selector(request: dict[str, Any]) -> Selector:
    unknown = set(request) - {"source_region", "destination_region", "table", "all"}
    if unknown:
        raise JsonRESTError("ValidationException",
                            f"unknown field(s) {sorted(unknown)}; a selector has "
                            "source_region, destination_region, table")
    values = [request.get(k) for k in ("source_region", "destination_region", "table")]
    if any(v is not None and not isinstance(v, str) for v in values):
        raise JsonRESTError("ValidationException", "selector fields are strings")
    return Selector(values[0], values[1], values[2])


def global_table_settings(request: dict[str, Any]) -> dict[str, Any]:
    """Set the lag distribution and metric period (see the module docstring)."""
    return replicator.configure(request)


def pause_replication(request: dict[str, Any]) -> dict[str, Any]:
    """Stop replication over every matching link; writes queue up."""
    replicator.pause(_selector(request))
    return _status()


def resume_replication(request: dict[str, Any]) -> dict[str, Any]:
    """Lift one pause (or all); queued writes drain in write order."""
    selector = _selector(request)
    replicator.resume(None if request.get("all") is True else selector)
    return _status()


def replication_status(request: dict[str, Any]) -> dict[str, Any]:
    """Settings, pauses and every link's backlog."""
    return _status()


def _status() -> dict[str, Any]:
    status = replicator.status(_NAMES)
    for entry in status["links"]:
        entry.pop("destination_table", None)  # a global table has one name
        entry.pop("pending_bytes", None)
        entry.pop("rule", None)
    return status


#: Twin-only control endpoints, served at POST /drills-twin/<name>.
ROUTES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "dynamodb/global-table-settings": global_table_settings,
    "dynamodb/pause-replication": pause_replication,
    "dynamodb/resume-replication": resume_replication,
    "dynamodb/replication-status": replication_status,
}
