"""DynamoDB point-in-time recovery as AWS documents it, patched into the moto server process.

What AWS documents (DynamoDB API Reference, API_RestoreTableToPointInTime.html,
API_PointInTimeRecoveryDescription.html, API_UpdateContinuousBackups.html), and this module
makes moto do:

- RestoreTableToPointInTime "restores your table data to the state based on the selected
  date and time" into a new table; `UseLatestRestorableTime` restores to
  `LatestRestorableDateTime`. moto 5.2.1 copies the source table's *current* items and
  ignores both arguments.
- `RestoreDateTime` "must be between EarliestRestorableDateTime and
  LatestRestorableDateTime", else `InvalidRestoreTimeException`; a source without point in
  time recovery gives `PointInTimeRecoveryUnavailableException`; an existing target table
  gives `TableAlreadyExistsException`; a missing source `TableNotFoundException` (the
  operation's documented error; moto says `SourceTableNotFoundException`).
- PointInTimeRecoveryDescription: `EarliestRestorableDateTime` is when recovery was
  enabled, or `RecoveryPeriodInDays` (1-35, default 35) ago, whichever is later;
  `LatestRestorableDateTime` "is typically 5 minutes before the current time". moto freezes
  both at the moment PITR was enabled.
- The restored table carries no point-in-time recovery setting ("You must manually set up
  ... Point in time recovery settings"), and its RestoreSummary names the restore time.

Also: CreateBackup and RestoreTableToPointInTime copy a table while other requests write to
it; moto's threaded server lets those copies fail with an internal error, AWS does not. Item
writes, backups and restores are serialised here.

How: while PITR is ENABLED on a table, every change of an item (PutItem, UpdateItem,
DeleteItem, BatchWriteItem, TransactWriteItems, PartiQL) is recorded as an image with its
wall-clock time, after a baseline of the items present when PITR was enabled. A restore
replays the baseline and the changes up to the restore time. A transaction that moto rolls
back is removed from the history again. Disabling PITR, or deleting the table, drops it.

Twin choices (AWS does not pin them down), reported through DescribeContinuousBackups:
- `LatestRestorableDateTime` = now - `latest_restorable_lag`, 10 s by default: the twin's
  fast timeline compresses AWS's typical 5 minutes, as its health checks compress 60 s to
  1 s. A drill that restores to a moment must wait for it to become restorable, on the twin
  as on AWS. Set it to 300 for AWS's figure (control endpoint below).
- The history keeps at most `max_changes` changes per table (100 000 by default); older ones
  are folded into the baseline and `EarliestRestorableDateTime` moves forward, as a shorter
  recovery period would. Changes older than the recovery period are folded the same way.
- Neither or both of `RestoreDateTime` and `UseLatestRestorableTime` is a
  `ValidationException` (AWS documents no behaviour for this).

Twin-only control endpoint (no such thing in AWS; see `ROUTES`):

    POST /drills-twin/dynamodb/pitr-settings  {"latest_restorable_lag": <s>, "max_changes": <n>}

sets either value (both optional) and answers the values in force.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.dynamodb.exceptions import (
    MockValidationException,
    PointInTimeRecoveryUnavailable,
    ResourceNotFoundException,
    TableAlreadyExistsException,
    TableNotFoundException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import RestoredPITTable, Table
from moto.dynamodb.responses import DynamoHandler, DynamoResult

__all__ = ["ROUTES", "InvalidRestoreTimeException", "install", "settings"]

_MARK = "_drills_twin_fidelity"
_ORIGINAL: dict[str, Callable[..., Any]] = {}
_DAY = 86400.0
_LOCK = threading.RLock()

Key = tuple[DynamoType, DynamoType | None]


class InvalidRestoreTimeException(JsonRESTError):
    """AWS: "RestoreDateTime must be between EarliestRestorableDateTime and
    LatestRestorableDateTime." """

    code = 400

    def __init__(self, requested: float, earliest: float, latest: float) -> None:
        super().__init__(
            "com.amazonaws.dynamodb.v20120810#InvalidRestoreTimeException",
            f"Invalid restore time specified - RestoreDateTime ({_iso(requested)}) must be "
            f"between EarliestRestorableDateTime ({_iso(earliest)}) and "
            f"LatestRestorableDateTime ({_iso(latest)})",
        )


@dataclass(slots=True)
class Settings:
    """The twin's PITR choices (see the module docstring)."""

    latest_restorable_lag: float = 10.0
    max_changes: int = 100_000


settings = Settings()


@dataclass(slots=True)
class _History:
    """Item images of one PITR-enabled table: a baseline and the changes after it."""

    created_at: datetime  # identifies the table: a table re-created with its name is new
    earliest: float  # epoch seconds: the baseline's moment
    baseline: dict[Key, Item] = field(default_factory=dict)
    changes: deque[tuple[float, Key, Item | None]] = field(default_factory=deque)

    def record(self, key: Key, image: Item | None) -> None:
        # Wall clocks can step back; keep the history ordered so replay stays correct.
        now = max(time.time(), self.changes[-1][0] if self.changes else self.earliest)
        self.changes.append((now, key, copy.deepcopy(image)))

    def fold(self, until: float) -> None:
        """Fold every change at or before `until` into the baseline."""
        while self.changes and self.changes[0][0] <= until:
            _, key, image = self.changes.popleft()
            _apply(self.baseline, key, image)
        self.earliest = max(self.earliest, until)

    def state_at(self, moment: float) -> dict[Key, Item]:
        """The items as they were at `moment` (epoch seconds)."""
        items = {k: copy.deepcopy(v) for k, v in self.baseline.items()}
        for when, key, image in self.changes:
            if when > moment:
                break
            _apply(items, key, copy.deepcopy(image))
        return items


def _apply(items: dict[Key, Item], key: Key, image: Item | None) -> None:
    if image is None:
        items.pop(key, None)
    else:
        items[key] = image


#: (account, region, table name) -> history of that table while its PITR is enabled.
_HISTORIES: dict[tuple[str, str, str], _History] = {}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def _ident(table: Table) -> tuple[str, str, str]:
    return (table.account_id, table.region_name, table.name)


def _pitr_enabled(table: Table) -> bool:
    description = table.continuous_backups.get("PointInTimeRecoveryDescription", {})
    return bool(description.get("PointInTimeRecoveryStatus") == "ENABLED")


def _retention(table: Table) -> float:
    days = table.continuous_backups["PointInTimeRecoveryDescription"].get(
        "RecoveryPeriodInDays", 35)
    return float(days) * _DAY


def _items_of(table: Table) -> dict[Key, Item]:
    return {(i.hash_key, i.range_key): copy.deepcopy(i) for i in table.all_items()}


def _history(table: Table) -> _History | None:
    """The table's history, created on first use (and folded to its limits) if PITR is on."""
    if not _pitr_enabled(table):
        return None
    ident = _ident(table)
    history = _HISTORIES.get(ident)
    if history is None or history.created_at != table.created_at:
        history = _HISTORIES[ident] = _History(table.created_at, time.time(),
                                               _items_of(table))
    cutoff = time.time() - _retention(table)
    if len(history.changes) > settings.max_changes:
        cutoff = max(cutoff, history.changes[len(history.changes) - settings.max_changes - 1][0])
    if cutoff > history.earliest:
        history.fold(cutoff)
    return history


def _window(history: _History) -> tuple[float, float]:
    """(earliest, latest) restorable moments, epoch seconds."""
    latest = max(history.earliest, time.time() - settings.latest_restorable_lag)
    return history.earliest, latest


def _record(table: Table, item: Item | None, key: Key | None = None) -> None:
    with _LOCK:
        history = _history(table)
        if history is None:
            return
        if key is None:
            assert item is not None
            key = (item.hash_key, item.range_key)
        history.record(key, item)


# ------------------------------------------------------------------ patched moto methods
# Table.put_item/delete_item see every write of PutItem, BatchWriteItem, PartiQL and
# transactions; UpdateItem changes an item in place, so the backend call is wrapped too.


# Writes hold the lock around moto's own call too: moto's server is threaded and a backup or
# a restore deep-copies a table, which fails ("dictionary changed size during iteration")
# when a write lands meanwhile.


def _table_put_item(self: Table, *args: Any, **kwargs: Any) -> Item:
    with _LOCK:
        item: Item = _ORIGINAL["table_put_item"](self, *args, **kwargs)
        _record(self, item)
        return item


def _table_delete_item(self: Table, hash_key: DynamoType, range_key: DynamoType | None) -> Any:
    with _LOCK:
        item = _ORIGINAL["table_delete_item"](self, hash_key, range_key)
        if item is not None:
            _record(self, None, (item.hash_key, item.range_key))
        return item


def _update_item(self: DynamoDBBackend, table_name: str, *args: Any, **kwargs: Any) -> Item:
    with _LOCK:
        item: Item = _ORIGINAL["update_item"](self, table_name, *args, **kwargs)
        _record(self.get_table(table_name), item)
        return item


def _create_backup(self: DynamoDBBackend, table_name: str, backup_name: str) -> Any:
    with _LOCK:
        return _ORIGINAL["create_backup"](self, table_name, backup_name)


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    # moto rolls a failed transaction back by restoring copies of the tables; the history
    # must forget the writes it recorded meanwhile, or a restore would resurrect them.
    with _LOCK:
        lengths = {ident: len(h.changes) for ident, h in _HISTORIES.items()}
        try:
            _ORIGINAL["transact_write_items"](self, transact_items)
        except Exception:
            for ident, history in _HISTORIES.items():
                while len(history.changes) > lengths.get(ident, 0):
                    history.changes.pop()
            raise


def _update_continuous_backups(self: DynamoDBBackend, table_name: str,
                               point_in_time_spec: dict[str, Any]) -> dict[str, Any]:
    with _LOCK:
        try:
            table = self.get_table(table_name)
        except ResourceNotFoundException:
            raise TableNotFoundException(table_name) from None
        was_enabled = _pitr_enabled(table)
        _ORIGINAL["update_continuous_backups"](self, table_name, point_in_time_spec)
        if not _pitr_enabled(table) or not was_enabled:
            # Disabling drops the history; enabling starts a new one from now.
            _HISTORIES.pop(_ident(table), None)
        return _describe(table)


def _describe_continuous_backups(self: DynamoDBBackend, table_name: str) -> dict[str, Any]:
    with _LOCK:
        try:
            table = self.get_table(table_name)
        except ResourceNotFoundException:
            raise TableNotFoundException(table_name) from None
        return _describe(table)


def _describe(table: Table) -> dict[str, Any]:
    description = copy.deepcopy(table.continuous_backups)
    history = _history(table)
    if history is not None:
        earliest, latest = _window(history)
        pitr = description["PointInTimeRecoveryDescription"]
        pitr["EarliestRestorableDateTime"] = earliest
        pitr["LatestRestorableDateTime"] = latest
    return description


def _delete_table(self: DynamoDBBackend, name: str) -> Table:
    table: Table = _ORIGINAL["delete_table"](self, name)
    with _LOCK:
        _HISTORIES.pop(_ident(table), None)
    return table


def _epoch(value: Any) -> float:
    """RestoreDateTime as epoch seconds, whatever form moto's parser handed over."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def restore_to_point_in_time(backend: DynamoDBBackend, source_name: str, target_name: str,
                             restore_time: Any, use_latest: bool) -> RestoredPITTable:
    """Create `target_name` holding the items `source_name` had at the restore time."""
    with _LOCK:
        try:
            source = backend.get_table(source_name)
        except ResourceNotFoundException:
            raise TableNotFoundException(source_name) from None
        if target_name in backend.tables:
            raise TableAlreadyExistsException(target_name)
        history = _history(source)
        if history is None:
            raise PointInTimeRecoveryUnavailable(source.name)
        if use_latest == (restore_time is not None):
            raise MockValidationException(
                "Specify exactly one of RestoreDateTime and UseLatestRestorableTime")
        earliest, latest = _window(history)
        moment = latest if use_latest else _epoch(restore_time)
        if not earliest <= moment <= latest:
            raise InvalidRestoreTimeException(moment, earliest, latest)
        target = RestoredPITTable(  # type: ignore[abstract]  # moto's own class, as moto uses it
            target_name, account_id=backend.account_id, region=backend.region_name, source=source)
        target.items = _as_table_items(target, history.state_at(moment))
        target.restore_date_time = datetime.fromtimestamp(moment, UTC).replace(tzinfo=None)
        backend.tables[target_name] = target
        return target


def _as_table_items(table: Table, items: dict[Key, Item]) -> Any:
    # moto's layout: items[hash] = Item, or items[hash][range] = Item with a range key.
    out: Any = defaultdict(dict)
    for (hash_key, range_key), item in items.items():
        if table.range_key_attr:
            out[hash_key][range_key] = item
        else:
            out[hash_key] = item
    return out


def _handle_restore(self: DynamoHandler) -> DynamoResult:
    body = self.body
    source = body.get("SourceTableName") or body.get("SourceTableArn")
    restored = restore_to_point_in_time(
        self.dynamodb_backend, source, body["TargetTableName"], body.get("RestoreDateTime"),
        bool(body.get("UseLatestRestorableTime")))
    return DynamoResult(restored.describe())


def install() -> None:
    """Patch moto's DynamoDB with the point-in-time recovery above (idempotent)."""
    if getattr(DynamoDBBackend, _MARK, False):
        return
    for name, owner, attr, patch in (
        ("table_put_item", Table, "put_item", _table_put_item),
        ("table_delete_item", Table, "delete_item", _table_delete_item),
        ("update_item", DynamoDBBackend, "update_item", _update_item),
        ("transact_write_items", DynamoDBBackend, "transact_write_items",
         _transact_write_items),
        ("update_continuous_backups", DynamoDBBackend, "update_continuous_backups",
         _update_continuous_backups),
        ("describe_continuous_backups", DynamoDBBackend, "describe_continuous_backups",
         _describe_continuous_backups),
        ("delete_table", DynamoDBBackend, "delete_table", _delete_table),
        ("create_backup", DynamoDBBackend, "create_backup", _create_backup),
        ("handle_restore", DynamoHandler, "restore_table_to_point_in_time", _handle_restore),
    ):
        _ORIGINAL[name] = getattr(owner, attr)
        setattr(owner, attr, patch)
    setattr(DynamoDBBackend, _MARK, True)


# ------------------------------------------------------------------ twin-only control


def pitr_settings(request: dict[str, Any]) -> dict[str, Any]:
    """Set the twin's PITR choices; answers the values in force.

    Body: `{"latest_restorable_lag": <seconds, >= 0>, "max_changes": <int, >= 1>}`, both
    optional.
    """
    lag = request.get("latest_restorable_lag")
    cap = request.get("max_changes")
    if lag is not None and (isinstance(lag, bool) or not isinstance(lag, int | float)
                            or lag < 0):
        raise JsonRESTError("ValidationException",
                            '"latest_restorable_lag" must be a number of seconds >= 0')
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise JsonRESTError("ValidationException", '"max_changes" must be a whole number >= 1')
    with _LOCK:
        if lag is not None:
            settings.latest_restorable_lag = float(lag)
        if cap is not None:
            settings.max_changes = cap
        return {"latest_restorable_lag": settings.latest_restorable_lag,
                "max_changes": settings.max_changes}


#: Twin-only control endpoints, served at POST /drills-twin/<name>.
ROUTES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "dynamodb/pitr-settings": pitr_settings,
}
