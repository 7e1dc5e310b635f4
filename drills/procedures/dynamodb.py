"""Runbook 2.2, automated: on-demand backups and point-in-time recovery of DynamoDB items.

The calls are the runbook's own (`create-backup`, `restore-table-to-point-in-time` into
`<table>-restored`), then the step the runbook leaves to the operator: copy the affected items
from the restored table back into the live one, verify them, and delete the restored table.

Two ways of doing that step, both drilled:

- `recover_table`, the runbook as written: `--use-latest-restorable-time`, then every item of
  the restored table put back over the live one ("take the table from the backup"; items
  created since stay). Every write acknowledged between the restore time and the copy to an
  item that existed then is rolled back: lost.
- `recover_items`, the corrected procedure: restore as of just before the damage, copy back
  only the damaged items, then replay onto them what was written since the restore time
  (`replay_from_vault_objects`: the vault's data object in S3 is the last write its item
  must name). Nothing acknowledged is rolled back.

Restore times have one-second granularity on the wire (boto3 and the AWS CLI send whole
seconds; AWS restores "to the state based on the selected date and time
(day:hour:minute:second)"), so a restore "just before" a fault restores to the whole second
at or before it, and says so in its result.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from drills.clients import Clients
from drills.errors import RecoveryError
from drills.procedures.kms import UnreadableVault, unseal
from drills.procedures.s3 import object_key
from drills.vault import digest, unb64

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# -- item images, as the journal can hold them ------------------------------------------------
def encode_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item (boto3 wire form) as JSON: binary values base64-encoded."""
    return {name: _encode(value) for name, value in item.items()}


def decode_item(item: dict[str, Any]) -> dict[str, Any]:
    """The inverse of `encode_item`."""
    return {name: _decode(value) for name, value in item.items()}


def _encode(value: dict[str, Any]) -> dict[str, Any]:
    kind, inner = next(iter(value.items()))
    if kind == "B":
        return {"B": base64.b64encode(inner).decode()}
    if kind == "BS":
        return {"BS": [base64.b64encode(b).decode() for b in inner]}
    if kind == "M":
        return {"M": encode_item(inner)}
    if kind == "L":
        return {"L": [_encode(v) for v in inner]}
    return {kind: inner}


def _decode(value: dict[str, Any]) -> dict[str, Any]:
    kind, inner = next(iter(value.items()))
    if kind == "B":
        return {"B": base64.b64decode(inner)}
    if kind == "BS":
        return {"BS": [base64.b64decode(b) for b in inner]}
    if kind == "M":
        return {"M": decode_item(inner)}
    if kind == "L":
        return {"L": [_decode(v) for v in inner]}
    return {kind: inner}


def item_digest(item: dict[str, Any] | None) -> str:
    """A content hash of an item (wire form); '' for no item. Attribute order is irrelevant."""
    if item is None:
        return ""
    return hashlib.sha256(json.dumps(encode_item(item), sort_keys=True).encode()).hexdigest()


# -- table facts ------------------------------------------------------------------------------
def key_schema(clients: Clients, table: str, region: str) -> tuple[str, str | None]:
    """(partition key, sort key or None) of `table`."""
    schema = clients("dynamodb", region).describe_table(TableName=table)["Table"]["KeySchema"]
    hash_key = next(k["AttributeName"] for k in schema if k["KeyType"] == "HASH")
    range_key = next((k["AttributeName"] for k in schema if k["KeyType"] == "RANGE"), None)
    return hash_key, range_key


@dataclass(frozen=True, slots=True)
class PitrWindow:
    """Point-in-time recovery of a table, as describe-continuous-backups reports it."""

    table: str
    enabled: bool
    earliest: datetime | None
    latest: datetime | None


def pitr_window(clients: Clients, table: str, region: str) -> PitrWindow:
    """`aws dynamodb describe-continuous-backups --table-name <table>`."""
    desc = clients("dynamodb", region).describe_continuous_backups(TableName=table)[
        "ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription", {})
    return PitrWindow(table, desc.get("PointInTimeRecoveryStatus") == "ENABLED",
                      desc.get("EarliestRestorableDateTime"), desc.get("LatestRestorableDateTime"))


@dataclass(frozen=True, slots=True)
class BackupRef:
    """An on-demand backup the runbook takes before a change."""

    name: str
    arn: str


def create_on_demand_backup(clients: Clients, table: str, region: str,
                            timeout: float = 300.0) -> BackupRef:
    """`aws dynamodb create-backup --backup-name pre-change-<ts>`, waited until AVAILABLE."""
    ddb = clients("dynamodb", region)
    name = f"pre-change-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    arn = ddb.create_backup(TableName=table, BackupName=name)["BackupDetails"]["BackupArn"]
    deadline = time.monotonic() + timeout
    while True:
        status = ddb.describe_backup(BackupArn=arn)["BackupDescription"]["BackupDetails"][
            "BackupStatus"]
        if status == "AVAILABLE":
            return BackupRef(name, arn)
        if status == "DELETED" or time.monotonic() > deadline:
            raise RecoveryError(f"on-demand backup {name} of {table} is {status}, not AVAILABLE, "
                                f"after {timeout:g}s; check `aws dynamodb describe-backup "
                                f"--backup-arn {arn}` before changing the table")
        time.sleep(1.0)


# -- restore and copy back ---------------------------------------------------------------------
class ItemOutcome(StrEnum):
    """What copying one item back did."""

    RESTORED = "restored"  # the live item differed (or was missing) and was replaced
    UNCHANGED = "unchanged"  # the live item already equalled the restored one
    NOT_IN_RESTORE = "not-in-restore"  # the item did not exist at the restore time
    #: restored, then brought forward to a write made after the restore time (replayed)
    REPLAYED = "replayed"


@dataclass(frozen=True, slots=True)
class ItemCopy:
    """One affected item after the copy back; `restored` is what the live table now holds."""

    key: str
    outcome: ItemOutcome
    restored: dict[str, Any] | None
    verified: bool  # the live item read back equal to the restored one


@dataclass(frozen=True, slots=True)
class ItemRecovery:
    """A finished runbook 2.2 recovery of some items."""

    table: str
    restored_table: str
    restore_time: datetime  # the moment the restored table holds (whole seconds)
    use_latest: bool
    items: tuple[ItemCopy, ...]
    waited_restorable: float  # seconds spent waiting for the restore time to be restorable
    restore_seconds: float  # restore call until the restored table was ACTIVE
    diff: TableDiff  # the verification read that chose the items

    @property
    def verified(self) -> bool:
        return all(i.verified for i in self.items)


def restored_name(table: str) -> str:
    """The runbook's name for the restored copy: `<table>-restored`."""
    return f"{table}-restored"


def wait_restorable(clients: Clients, table: str, region: str, moment: datetime,
                    timeout: float, progress: Progress = _quiet) -> float:
    """Wait until LatestRestorableDateTime reaches `moment`; returns seconds waited."""
    started = time.monotonic()
    while True:
        window = pitr_window(clients, table, region)
        if not window.enabled:
            raise RecoveryError(f"point-in-time recovery is not enabled on {table}; restore "
                                "from an on-demand backup instead (list-backups)")
        if window.earliest is not None and moment < window.earliest:
            raise RecoveryError(f"{moment.isoformat()} is before the earliest restorable time "
                                f"of {table} ({window.earliest.isoformat()}); restore from an "
                                "on-demand backup instead (list-backups)")
        if window.latest is not None and window.latest >= moment:
            return time.monotonic() - started
        waited = time.monotonic() - started
        if waited > timeout:
            raise RecoveryError(f"{table} is still not restorable to {moment.isoformat()} "
                                f"after {timeout:g}s (latest restorable "
                                f"{window.latest.isoformat() if window.latest else 'unknown'})")
        progress(f"runbook 2.2: waiting for {table} to be restorable to "
                 f"{moment:%H:%M:%S} (latest restorable "
                 f"{window.latest:%H:%M:%S}, {waited:.0f}s)" if window.latest else
                 f"runbook 2.2: waiting for {table}'s restorable window ({waited:.0f}s)")
        time.sleep(0.5)


def restore_table(clients: Clients, table: str, region: str, *,
                  restore_time: datetime | None = None, use_latest: bool = False,
                  timeout: float = 600.0, progress: Progress = _quiet) -> tuple[str, datetime]:
    """`restore-table-to-point-in-time` into `<table>-restored`, waited until ACTIVE.

    Returns (restored table, the moment it holds). Refuses when `<table>-restored` exists: a
    leftover from an earlier restore must be looked at (and deleted) by a person.
    """
    ddb = clients("dynamodb", region)
    target = restored_name(table)
    request: dict[str, Any] = {"SourceTableName": table, "TargetTableName": target}
    if use_latest == (restore_time is not None):
        raise RecoveryError("restore to either a given time or the latest restorable time")
    if restore_time is not None:
        request["RestoreDateTime"] = restore_time
    else:
        request["UseLatestRestorableTime"] = True
    try:
        ddb.restore_table_to_point_in_time(**request)
    except ClientError as exc:
        err = exc.response["Error"]
        hint = (f"delete the leftover with `aws dynamodb delete-table --table-name {target}` "
                "once nothing needs it" if err["Code"] in (
                    "TableAlreadyExistsException", "ResourceInUseException") else
                "check the table's point-in-time recovery (describe-continuous-backups)")
        raise RecoveryError(f"restore-table-to-point-in-time of {table} into {target} failed: "
                            f"{err['Code']}: {err.get('Message', '')}; {hint}") from None
    deadline = time.monotonic() + timeout
    while True:
        desc = ddb.describe_table(TableName=target)["Table"]
        summary = desc.get("RestoreSummary", {})
        if desc["TableStatus"] == "ACTIVE" and not summary.get("RestoreInProgress"):
            return target, summary.get("RestoreDateTime") or restore_time or datetime.now(UTC)
        if time.monotonic() > deadline:
            raise RecoveryError(f"{target} is {desc['TableStatus']} {timeout:g}s after the "
                                "restore started; check it in the console before copying back")
        progress(f"runbook 2.2: waiting for {target} to be ACTIVE ({desc['TableStatus']})")
        time.sleep(0.5)


@dataclass(frozen=True, slots=True)
class TableDiff:
    """How the live table differs from the restored copy, by partition key value."""

    missing: tuple[str, ...]  # in the restored copy, gone from the live table
    changed: tuple[str, ...]  # in both, with different content


def _scan(ddb: Any, table: str, hash_key: str) -> dict[str, dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            items[str(next(iter(item[hash_key].values())))] = item
    return items


def diff_tables(clients: Clients, table: str, restored: str, region: str) -> TableDiff:
    """A verification read of both tables: which items were deleted or changed since the restore
    time. Items created since are not the restore's business and are left out."""
    ddb = clients("dynamodb", region)
    hash_key, _ = key_schema(clients, table, region)
    old, live = _scan(ddb, restored, hash_key), _scan(ddb, table, hash_key)
    return TableDiff(tuple(sorted(k for k in old if k not in live)),
                     tuple(sorted(k for k in old if k in live
                                  and item_digest(live[k]) != item_digest(old[k]))))


def copy_back(clients: Clients, table: str, restored: str, keys: Sequence[str],
              region: str) -> tuple[ItemCopy, ...]:
    """Copy the items of `keys` (partition key values) from `restored` into `table`."""
    ddb = clients("dynamodb", region)
    hash_key, _ = key_schema(clients, table, region)
    out = []
    for key in keys:
        wire_key = {hash_key: {"S": key}}
        old = ddb.get_item(TableName=restored, Key=wire_key, ConsistentRead=True).get("Item")
        if old is None:
            out.append(ItemCopy(key, ItemOutcome.NOT_IN_RESTORE, None, False))
            continue
        live = ddb.get_item(TableName=table, Key=wire_key, ConsistentRead=True).get("Item")
        outcome = ItemOutcome.UNCHANGED
        if item_digest(live) != item_digest(old):
            ddb.put_item(TableName=table, Item=old)
            outcome = ItemOutcome.RESTORED
        back = ddb.get_item(TableName=table, Key=wire_key, ConsistentRead=True).get("Item")
        out.append(ItemCopy(key, outcome, old, item_digest(back) == item_digest(old)))
    return tuple(out)


def delete_restored(clients: Clients, table: str, region: str, timeout: float = 300.0) -> None:
    """Delete `<table>-restored` and wait until it is gone."""
    ddb = clients("dynamodb", region)
    target = restored_name(table)
    try:
        ddb.delete_table(TableName=target)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return
        raise
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ddb.describe_table(TableName=target)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return
            raise
        time.sleep(0.5)
    raise RecoveryError(f"{target} still exists {timeout:g}s after delete-table; delete it by "
                        "hand")


#: Rebuilds a damaged item from the write acknowledged last: given the key and the item the
#: copy back left (None: not in the restore), the item it must be, or None when it already is.
Replay = Callable[[str, dict[str, Any] | None], dict[str, Any] | None]


def recover_items(clients: Clients, table: str, region: str,
                  suspects: Callable[[], Iterable[str]], *, before: datetime | None = None,
                  use_latest: bool = False, timeout: float = 900.0,
                  progress: Progress = _quiet, replay: Replay | None = None) -> ItemRecovery:
    """Runbook 2.2 end to end: restore to `before` (or the latest restorable time) into
    `<table>-restored`, copy the damaged items back, replay what was written to them since
    (with `replay`), verify them, delete the restored table.

    Damaged = deleted since the restore time, or changed since and named by `suspects()`
    (asked once the restored copy is ACTIVE: e.g. the vaults whose writes fail). A changed
    item nobody reports is left alone: it may hold a legitimate write newer than the restore.
    """
    waited = 0.0
    moment = None
    if before is not None:
        # The wire carries whole seconds: the restore point is the second at or before `before`.
        moment = datetime.fromtimestamp(math.floor(before.timestamp()), UTC)
        waited = wait_restorable(clients, table, region, moment, timeout, progress)
    started = time.monotonic()
    target, held = restore_table(clients, table, region, restore_time=moment,
                                 use_latest=use_latest, timeout=timeout, progress=progress)
    try:
        restore_seconds = time.monotonic() - started
        diff = diff_tables(clients, table, target, region)
        keys = sorted(set(diff.missing) | (set(diff.changed) & set(suspects())))
        progress(f"runbook 2.2: copying {len(keys)} item(s) from {target} back into {table}")
        items = copy_back(clients, table, target, keys, region)
    finally:
        delete_restored(clients, table, region)
    if replay is not None:
        items = tuple(replay_item(clients, table, region, i, replay) for i in items)
    return ItemRecovery(table, target, held, use_latest, items, waited, restore_seconds, diff)


def replay_item(clients: Clients, table: str, region: str, copied: ItemCopy,
                replay: Replay) -> ItemCopy:
    """Bring one copied-back item forward to what `replay` says it must be, unless a write
    has changed it since the copy (that write is newer still: keep it)."""
    newer = replay(copied.key, copied.restored)
    if newer is None:
        return copied
    ddb = clients("dynamodb", region)
    hash_key, _ = key_schema(clients, table, region)
    wire_key = {hash_key: {"S": copied.key}}
    condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(#k)",
                                 "ExpressionAttributeNames": {"#k": hash_key}}
    if copied.restored is not None:
        # Unchanged since the copy: every attribute as the copy left it.
        names = {f"#a{n}": a for n, a in enumerate(copied.restored)}
        condition = {"ConditionExpression": " AND ".join(f"#a{n} = :v{n}" for n in range(
            len(names))), "ExpressionAttributeNames": names, "ExpressionAttributeValues": {
            f":v{n}": v for n, v in enumerate(copied.restored.values())}}
    try:
        ddb.put_item(TableName=table, Item=newer, **condition)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return copied  # written by the service since the copy: newer than any replay
    back = ddb.get_item(TableName=table, Key=wire_key, ConsistentRead=True).get("Item")
    return ItemCopy(copied.key, ItemOutcome.REPLAYED, newer,
                    item_digest(back) == item_digest(newer))


def replay_from_vault_objects(clients: Clients, region: str, bucket: str) -> Replay:
    """A `Replay` for the credentials ledger from the vaults' data objects.

    The vault service writes a vault's object to S3 before its ledger item, so the object's
    current version is the last write the item must name. When the item copied back names an
    older version (or is not in the restore), it is rebuilt from the object: its version id,
    the envelope's data key (still encrypted under KMS) and the hash of the opened content.
    """
    s3, kms = clients("s3", region), clients("kms", region)

    def replay(vault_id: str, item: dict[str, Any] | None) -> dict[str, Any] | None:
        try:
            obj = s3.get_object(Bucket=bucket, Key=object_key(vault_id))
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None  # no object to replay from: the copy back is all there is
            raise
        version = str(obj.get("VersionId", ""))
        if item is not None and item.get("version_id", {}).get("S") == version:
            return None
        body = obj["Body"].read()
        try:
            data = unseal(kms, vault_id, body)
        except UnreadableVault as exc:
            raise RecoveryError(f"cannot replay the ledger item of vault {vault_id} from "
                                f"{object_key(vault_id)}: {exc}; restore the object first "
                                "(runbook 4.4), then replay") from None
        newer = dict(item or {"vault_id": {"S": vault_id}})
        newer.update(version_id={"S": version}, sha256={"S": digest(data)},
                     edk={"B": unb64(json.loads(body)["edk"])},
                     updated_at={"S": obj["LastModified"].astimezone(UTC).isoformat()})
        return newer

    return replay


# -- runbook 2.2 as written ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CopiedItem:
    """One item put back from the restored table; the put happened between the two epoch
    times (read just before its batch was sent and just after it was written)."""

    key: str
    started: float
    ended: float


@dataclass(frozen=True, slots=True)
class TableRecovery:
    """A finished runbook 2.2 as written: the table restored to its latest restorable time,
    every item of the restored copy put back over the live table, the copy deleted."""

    table: str
    restored_table: str
    restore_time: datetime  # what the restored table holds (RestoreSummary.RestoreDateTime)
    latest_restorable: datetime | None  # read just before the restore call
    copied: tuple[CopiedItem, ...]
    restore_seconds: float
    copy_seconds: float

    def copy_times(self) -> dict[str, tuple[float, float]]:
        """Each copied item's key and when it was put back (epoch seconds)."""
        return {c.key: (c.started, c.ended) for c in self.copied}


def copy_all_back(clients: Clients, table: str, restored: str, region: str,
                  progress: Progress = _quiet) -> tuple[CopiedItem, ...]:
    """Put every item of `restored` over `table`, as "take the table from the backup" does:
    items created since the restore time stay, every other one is set back to the restore.
    Written as a script would, 25 items per batch-write-item (the API's limit)."""
    ddb = clients("dynamodb", region)
    hash_key, _ = key_schema(clients, table, region)
    items = sorted(_scan(ddb, restored, hash_key).items())
    out: list[CopiedItem] = []
    for first in range(0, len(items), 25):
        batch = items[first:first + 25]
        request: dict[str, Any] = {table: [{"PutRequest": {"Item": item}} for _, item in batch]}
        started = time.time()
        for attempt in range(10):
            request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
            if not request:
                break
            time.sleep(0.05 * 2 ** attempt)  # throttled: back off as the SDKs do
        else:
            raise RecoveryError(f"batch-write-item into {table} still left "
                                f"{len(request.get(table, []))} item(s) unprocessed after 10 "
                                "attempts (throttled); run the restore and copy again")
        ended = time.time()
        out.extend(CopiedItem(key, started, ended) for key, _ in batch)
        if (first // 25) % 10 == 9:
            progress(f"runbook 2.2: copied {len(out)} of {len(items)} items from {restored}")
    return tuple(out)


def recover_table(clients: Clients, table: str, region: str, *,
                  not_after: datetime | None = None, timeout: float = 900.0,
                  progress: Progress = _quiet) -> TableRecovery:
    """Runbook 2.2 as written: `restore-table-to-point-in-time --use-latest-restorable-time`
    into `<table>-restored`, every item of it put back over `table`, the copy deleted.

    `not_after`: the damage's time. A restore time at or after it holds the damage too: then
    nothing is copied and RecoveryError says to restore to a time before the damage.
    """
    latest = pitr_window(clients, table, region).latest
    started = time.monotonic()
    target, held = restore_table(clients, table, region, use_latest=True, timeout=timeout,
                                 progress=progress)
    try:
        restore_seconds = time.monotonic() - started
        if not_after is not None and held >= not_after:
            raise RecoveryError(
                f"the latest restorable time of {table} ({held.isoformat()}) is not before the "
                f"damage ({not_after.isoformat()}): {target} holds the damage too; restore to "
                "a time before it (--restore-date-time) instead")
        copy_started = time.monotonic()
        progress(f"runbook 2.2: copying every item of {target} back into {table}")
        copied = copy_all_back(clients, table, target, region, progress)
        copy_seconds = time.monotonic() - copy_started
    finally:
        delete_restored(clients, table, region)
    return TableRecovery(table, target, held, latest, copied, restore_seconds, copy_seconds)
