"""DynamoDB point-in-time recovery on the twin, each checked against what AWS documents.

References (DynamoDB API Reference): API_RestoreTableToPointInTime.html ("RestoreTableToPointInTime"
below), API_PointInTimeRecoveryDescription.html, API_UpdateContinuousBackups.html, and the
developer guide page "Restoring a DynamoDB table to a point in time" (PointInTimeRecovery.Tutorial).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from drills.twin.aws import AwsEndpoint, fake_credentials
from drills.twin.control import request as control_request

REGION = "us-east-1"
#: Every item write is stamped with the moto process's clock; leave a margin either side.
MARGIN = 0.05


@pytest.fixture(scope="module")
def ddb(aws: AwsEndpoint) -> Any:
    creds = fake_credentials()
    return boto3.client("dynamodb", endpoint_url=aws.url, region_name=REGION,
                        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"])


def control(aws: AwsEndpoint, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST to the twin-only PITR settings endpoint; (HTTP status, JSON body)."""
    return control_request(aws.url, "dynamodb/pitr-settings", body)


@pytest.fixture(autouse=True)
def no_lag(aws: AwsEndpoint) -> Iterator[None]:
    """Most tests restore to 'just now': make the latest restorable time the present."""
    control(aws, {"latest_restorable_lag": 0, "max_changes": 100_000})
    yield
    control(aws, {"latest_restorable_lag": 10, "max_changes": 100_000})


def make_table(ddb: Any, pitr: bool = True, range_key: bool = False) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    schema = [{"AttributeName": "id", "KeyType": "HASH"}]
    attrs = [{"AttributeName": "id", "AttributeType": "S"}]
    if range_key:
        schema.append({"AttributeName": "seq", "KeyType": "RANGE"})
        attrs.append({"AttributeName": "seq", "AttributeType": "N"})
    ddb.create_table(TableName=name, KeySchema=schema, AttributeDefinitions=attrs,
                     BillingMode="PAY_PER_REQUEST")
    if pitr:
        ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True})
    return name


def item(key: str, value: str) -> dict[str, Any]:
    return {"id": {"S": key}, "v": {"S": value}}


def moment() -> datetime:
    """The next whole second, once it has passed: a restore time between two writes.

    boto3 (like the AWS CLI) sends RestoreDateTime in whole seconds, and AWS restores "to
    the state based on the selected date and time (day:hour:minute:second)".
    """
    boundary = math.floor(time.time()) + 1
    time.sleep(boundary - time.time() + MARGIN)
    return datetime.fromtimestamp(boundary, UTC)


def items_of(ddb: Any, table: str) -> dict[str, str]:
    rows = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
    return {r["id"]["S"]: r.get("v", {}).get("S", "") for r in rows}


def restore(ddb: Any, source: str, **when: Any) -> str:
    target = f"{source}-restored-{uuid.uuid4().hex[:4]}"
    ddb.restore_table_to_point_in_time(SourceTableName=source, TargetTableName=target, **when)
    return target


def error_of(call: Callable[[], object]) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def window(ddb: Any, table: str) -> tuple[datetime, datetime]:
    pitr = ddb.describe_continuous_backups(TableName=table)[
        "ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    return pitr["EarliestRestorableDateTime"], pitr["LatestRestorableDateTime"]


def test_restore_brings_back_items_deleted_after_the_restore_time(ddb: Any) -> None:
    """RestoreTableToPointInTime: "DynamoDB restores your table data to the state based on the
    selected date and time": an item deleted after that time is in the restored table."""
    table = make_table(ddb)
    ddb.put_item(TableName=table, Item=item("a", "1"))
    ddb.put_item(TableName=table, Item=item("b", "1"))
    before = moment()
    ddb.delete_item(TableName=table, Key={"id": {"S": "a"}})
    restored = restore(ddb, table, RestoreDateTime=before)
    assert items_of(ddb, restored) == {"a": "1", "b": "1"}
    assert items_of(ddb, table) == {"b": "1"}


def test_restore_has_item_contents_as_of_the_restore_time(ddb: Any) -> None:
    """RestoreTableToPointInTime: the restored data is the state at the chosen time: updates
    (PutItem overwrite, UpdateItem) made later are absent, items created later too."""
    table = make_table(ddb)
    ddb.put_item(TableName=table, Item=item("a", "old"))
    ddb.put_item(TableName=table, Item=item("b", "old"))
    before = moment()
    ddb.put_item(TableName=table, Item=item("a", "new"))
    ddb.update_item(TableName=table, Key={"id": {"S": "b"}}, UpdateExpression="SET v = :v",
                    ExpressionAttributeValues={":v": {"S": "new"}})
    ddb.put_item(TableName=table, Item=item("c", "new"))
    after = moment()
    assert items_of(ddb, restore(ddb, table, RestoreDateTime=before)) == {"a": "old", "b": "old"}
    assert items_of(ddb, restore(ddb, table, RestoreDateTime=after)) == {
        "a": "new", "b": "new", "c": "new"}


def test_restore_keeps_binary_attributes_byte_for_byte(ddb: Any) -> None:
    """RestoreTableToPointInTime restores the table data: binary attributes (our vault
    metadata's encrypted data keys) come back unchanged."""
    table = make_table(ddb)
    blob = bytes(range(256))
    ddb.put_item(TableName=table, Item={"id": {"S": "a"}, "edk": {"B": blob}})
    before = moment()
    ddb.put_item(TableName=table, Item={"id": {"S": "a"}, "edk": {"B": b"junk"}})
    restored = restore(ddb, table, RestoreDateTime=before)
    got = ddb.get_item(TableName=restored, Key={"id": {"S": "a"}})["Item"]["edk"]["B"]
    assert got == blob


def test_restore_sees_batch_writes_and_transactions(ddb: Any) -> None:
    """Every write API changes the table data PITR restores: BatchWriteItem puts and deletes
    and TransactWriteItems are in the history like single writes."""
    table = make_table(ddb)
    ddb.batch_write_item(RequestItems={table: [
        {"PutRequest": {"Item": item(k, "1")}} for k in ("a", "b", "c")]})
    before = moment()
    ddb.batch_write_item(RequestItems={table: [
        {"DeleteRequest": {"Key": {"id": {"S": "a"}}}}]})
    ddb.transact_write_items(TransactItems=[
        {"Delete": {"TableName": table, "Key": {"id": {"S": "b"}}}},
        {"Put": {"TableName": table, "Item": item("d", "1")}}])
    assert items_of(ddb, table) == {"c": "1", "d": "1"}
    assert items_of(ddb, restore(ddb, table, RestoreDateTime=before)) == {
        "a": "1", "b": "1", "c": "1"}


def test_a_cancelled_transaction_is_not_in_the_history(ddb: Any) -> None:
    """TransactWriteItems is all-or-nothing (API_TransactWriteItems.html): a cancelled
    transaction changed nothing, so no restore time can show its writes."""
    table = make_table(ddb)
    ddb.put_item(TableName=table, Item=item("a", "1"))
    code, _ = error_of(lambda: ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": table, "Item": item("z", "ghost")}},
        {"Delete": {"TableName": table, "Key": {"id": {"S": "a"}},
                    "ConditionExpression": "attribute_not_exists(id)"}}]))
    assert code == "TransactionCanceledException"
    after = moment()
    assert items_of(ddb, restore(ddb, table, RestoreDateTime=after)) == {"a": "1"}


def test_restore_works_on_a_table_with_a_sort_key(ddb: Any) -> None:
    """RestoreTableToPointInTime applies to any table: items of a composite-key table (our
    TransactionKeys) are restored per (partition, sort) key."""
    table = make_table(ddb, range_key=True)
    for seq in ("1", "2"):
        ddb.put_item(TableName=table, Item={"id": {"S": "a"}, "seq": {"N": seq}})
    before = moment()
    ddb.delete_item(TableName=table, Key={"id": {"S": "a"}, "seq": {"N": "1"}})
    restored = restore(ddb, table, RestoreDateTime=before)
    rows = ddb.scan(TableName=restored)["Items"]
    assert sorted(r["seq"]["N"] for r in rows) == ["1", "2"]


def test_use_latest_restorable_time_restores_as_of_latest_restorable(
        aws: AwsEndpoint, ddb: Any) -> None:
    """RestoreTableToPointInTime: UseLatestRestorableTime restores "to the latest possible
    time", LatestRestorableDateTime, which trails the present: writes newer than it are absent."""
    table = make_table(ddb)
    ddb.put_item(TableName=table, Item=item("a", "old"))
    time.sleep(1.2)
    control(aws, {"latest_restorable_lag": 1.0})
    ddb.put_item(TableName=table, Item=item("a", "new"))
    restored = restore(ddb, table, UseLatestRestorableTime=True)
    assert items_of(ddb, restored) == {"a": "old"}
    summary = ddb.describe_table(TableName=restored)["Table"]["RestoreSummary"]
    assert summary["RestoreInProgress"] is False
    assert (datetime.now(UTC) - summary["RestoreDateTime"]).total_seconds() >= 1.0


def test_latest_restorable_time_trails_now_by_the_twins_lag(aws: AwsEndpoint, ddb: Any) -> None:
    """PointInTimeRecoveryDescription: "LatestRestorableDateTime is typically 5 minutes before
    the current time"; the twin reports now minus its configured lag (set to AWS's 300 s here)."""
    table = make_table(ddb)
    time.sleep(0.2)
    control(aws, {"latest_restorable_lag": 300})
    earliest, latest = window(ddb, table)
    assert latest == earliest  # enabled moments ago: nothing is restorable past the start yet
    control(aws, {"latest_restorable_lag": 0.1})
    _, latest = window(ddb, table)
    assert abs((datetime.now(UTC) - latest).total_seconds() - 0.1) < 0.5


def test_earliest_restorable_time_is_when_pitr_was_enabled(ddb: Any) -> None:
    """PointInTimeRecoveryDescription: EarliestRestorableDateTime is the earliest point the
    table can be restored to: the moment recovery was enabled (within the recovery period)."""
    start = datetime.now(UTC)
    table = make_table(ddb)
    earliest, latest = window(ddb, table)
    assert abs((earliest - start).total_seconds()) < 1.0
    assert latest >= earliest


def test_restore_time_before_earliest_is_invalid_restore_time(ddb: Any) -> None:
    """RestoreTableToPointInTime, Errors: InvalidRestoreTimeException "RestoreDateTime must be
    between EarliestRestorableDateTime and LatestRestorableDateTime"."""
    table = make_table(ddb)
    earliest, _ = window(ddb, table)
    code, message = error_of(lambda: restore(
        ddb, table, RestoreDateTime=datetime.fromtimestamp(earliest.timestamp() - 60, UTC)))
    assert code == "InvalidRestoreTimeException"
    assert "EarliestRestorableDateTime" in message


def test_restore_time_after_latest_is_invalid_restore_time(aws: AwsEndpoint, ddb: Any) -> None:
    """RestoreTableToPointInTime, Errors: a RestoreDateTime newer than
    LatestRestorableDateTime (e.g. now, when the latest trails by minutes) is
    InvalidRestoreTimeException, and no table is created."""
    table = make_table(ddb)
    control(aws, {"latest_restorable_lag": 300})
    target = f"{table}-restored"
    code, _ = error_of(lambda: ddb.restore_table_to_point_in_time(
        SourceTableName=table, TargetTableName=target, RestoreDateTime=datetime.now(UTC)))
    assert code == "InvalidRestoreTimeException"
    assert target not in ddb.list_tables()["TableNames"]


def test_existing_target_table_is_table_already_exists(ddb: Any) -> None:
    """RestoreTableToPointInTime, Errors: TableAlreadyExistsException "A target table with the
    specified name already exists"."""
    table, other = make_table(ddb), make_table(ddb)
    code, _ = error_of(lambda: ddb.restore_table_to_point_in_time(
        SourceTableName=table, TargetTableName=other, UseLatestRestorableTime=True))
    assert code == "TableAlreadyExistsException"


def test_pitr_disabled_is_point_in_time_recovery_unavailable(ddb: Any) -> None:
    """RestoreTableToPointInTime, Errors: PointInTimeRecoveryUnavailableException "Point in
    time recovery has not yet been enabled for this source table"."""
    table = make_table(ddb, pitr=False)
    code, _ = error_of(lambda: restore(ddb, table, UseLatestRestorableTime=True))
    assert code == "PointInTimeRecoveryUnavailableException"


def test_missing_source_is_table_not_found(ddb: Any) -> None:
    """RestoreTableToPointInTime, Errors: TableNotFoundException "A source table with the name
    TableName does not currently exist within the subscriber's account"."""
    code, _ = error_of(lambda: restore(ddb, "no-such-table", UseLatestRestorableTime=True))
    assert code == "TableNotFoundException"


def test_restore_needs_exactly_one_of_time_or_latest(ddb: Any) -> None:
    """Twin choice (AWS documents none): neither or both of RestoreDateTime and
    UseLatestRestorableTime is a ValidationException rather than a guess."""
    table = make_table(ddb)
    assert error_of(lambda: restore(ddb, table))[0] == "ValidationException"
    assert error_of(lambda: restore(ddb, table, UseLatestRestorableTime=True,
                                    RestoreDateTime=datetime.now(UTC)))[0] == (
        "ValidationException")


def test_restored_table_has_no_pitr_and_names_its_restore_time(ddb: Any) -> None:
    """RestoreTableToPointInTime: point in time recovery settings must be set up manually on
    the restored table; RestoreSummary.RestoreDateTime is the "point in time" restored to."""
    table = make_table(ddb)
    at = moment()
    restored = restore(ddb, table, RestoreDateTime=at)
    pitr = ddb.describe_continuous_backups(TableName=restored)[
        "ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert pitr["PointInTimeRecoveryStatus"] == "DISABLED"
    summary = ddb.describe_table(TableName=restored)["Table"]["RestoreSummary"]
    assert abs((summary["RestoreDateTime"] - at).total_seconds()) < 0.01
    assert summary["SourceTableArn"].endswith(f"table/{table}")


def test_disabling_pitr_discards_the_history(ddb: Any) -> None:
    """UpdateContinuousBackups: disabling point in time recovery ends it; enabling it again
    starts a new window, so EarliestRestorableDateTime moves to the re-enable moment."""
    table = make_table(ddb)
    first, _ = window(ddb, table)
    spec = "PointInTimeRecoverySpecification"
    ddb.update_continuous_backups(TableName=table, **{spec: {"PointInTimeRecoveryEnabled": False}})
    desc = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    assert desc["PointInTimeRecoveryDescription"] == {"PointInTimeRecoveryStatus": "DISABLED"}
    time.sleep(0.2)
    ddb.update_continuous_backups(TableName=table, **{spec: {"PointInTimeRecoveryEnabled": True}})
    second, _ = window(ddb, table)
    assert (second - first).total_seconds() >= 0.2


def test_history_cap_moves_earliest_restorable_forward(aws: AwsEndpoint, ddb: Any) -> None:
    """Twin bound (documented in the module): past `max_changes` the oldest changes fold into
    the baseline; EarliestRestorableDateTime moves forward, so older times are refused as AWS
    refuses times outside the recovery window, and newer ones still restore correctly."""
    table = make_table(ddb)
    control(aws, {"max_changes": 3})
    ddb.put_item(TableName=table, Item=item("a", "1"))
    early = moment()
    for value in ("2", "3", "4", "5"):
        ddb.put_item(TableName=table, Item=item("a", value))
    earliest, _ = window(ddb, table)
    assert earliest > early
    assert error_of(lambda: restore(ddb, table, RestoreDateTime=early))[0] == (
        "InvalidRestoreTimeException")
    assert items_of(ddb, restore(ddb, table, UseLatestRestorableTime=True)) == {"a": "5"}


def test_backup_and_restore_succeed_while_items_are_written(ddb: Any) -> None:
    """CreateBackup (API_CreateBackup.html) and RestoreTableToPointInTime work on a table in
    use: writes landing meanwhile never make them fail (moto's threaded server would)."""
    table = make_table(ddb)
    for start in range(0, 1000, 25):  # big enough that copying it spans thread switches
        ddb.batch_write_item(RequestItems={table: [
            {"PutRequest": {"Item": item(f"p{n}", "x" * 200)}} for n in range(start, start + 25)]})
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():  # new keys: the table grows while it is being copied
            ddb.put_item(TableName=table, Item=item(uuid.uuid4().hex, "x" * 200))

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for n in range(10):
            ddb.create_backup(TableName=table, BackupName=f"backup-{n}")
            restore(ddb, table, UseLatestRestorableTime=True)
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def test_pitr_settings_rejects_bad_values(aws: AwsEndpoint) -> None:
    """The twin-only settings endpoint validates its body and changes nothing on error."""
    assert control(aws, {"latest_restorable_lag": -1})[0] == 400
    assert control(aws, {"max_changes": 0})[0] == 400
    status, body = control(aws, {})
    assert status == 200
    assert body == {"latest_restorable_lag": 0.0, "max_changes": 100_000}


def test_install_is_idempotent() -> None:
    """Installing twice must not wrap moto's methods twice (history would double)."""
    from moto.dynamodb.models.table import Table

    from drills.twin.fidelity import dynamodb

    dynamodb.install()
    before = Table.put_item
    dynamodb.install()
    assert Table.put_item is before
