"""DynamoDB global tables (version 2019.11.21) on the twin, checked against what AWS documents.

References (Amazon DynamoDB Developer Guide unless named): "Global tables: How it works",
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2globaltables_HowItWorks.html
("how it works" below); "Global tables - multi-active, multi-Region replication"
(GlobalTables.html); "DynamoDB metrics and dimensions" (metrics-dimensions.html); API
Reference: API_UpdateTable.html, API_ReplicationGroupUpdate.html, API_TableDescription.html;
AWS FIS User Guide, "AWS FIS Actions reference" (aws:dynamodb:global-table-pause-replication).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from drills.clients import Clients
from drills.twin.aws import AwsEndpoint
from drills.twin.control import request as control_request
from tests.conftest import wait_for

REGION, DR_REGION = "us-east-1", "us-west-2"
PROJECT_ROOT = Path(__file__).resolve().parents[3]
WAIT = 20.0  # seconds: deadline of every wait (the lag is set to 50 ms below)


@pytest.fixture(scope="module")
def dr(aws: AwsEndpoint) -> Clients:
    """boto3 clients of the DR region, us-west-2."""
    return Clients.for_twin(aws.url, DR_REGION)


def control(aws: AwsEndpoint, route: str, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = control_request(aws.url, f"dynamodb/{route}", body)
    assert status == 200, answer
    return answer


@pytest.fixture(autouse=True)
def short_lag(aws: AwsEndpoint) -> Iterator[None]:
    """Every item takes 50 ms to replicate; metrics every 0.5 s; no pause left behind."""
    control(aws, "global-table-settings", {"median": 0.05, "sigma": 0, "max": 1,
                                           "metric_period": 0.5})
    yield
    control(aws, "resume-replication", {"all": True})


def make_table(ddb: Any, gsi: bool = False) -> str:
    name = f"g-{uuid.uuid4().hex[:8]}"
    extra: dict[str, Any] = {}
    attrs = [{"AttributeName": "id", "AttributeType": "S"}]
    if gsi:
        attrs.append({"AttributeName": "owner", "AttributeType": "S"})
        extra["GlobalSecondaryIndexes"] = [{
            "IndexName": "by-owner", "KeySchema": [{"AttributeName": "owner",
                                                    "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"}}]
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=attrs, BillingMode="PAY_PER_REQUEST", **extra)
    return name


@pytest.fixture
def table(clients: Clients) -> str:
    """A global table in us-east-1 with its replica in us-west-2."""
    name = make_table(clients("dynamodb"))
    clients("dynamodb").update_table(TableName=name, ReplicaUpdates=[
        {"Create": {"RegionName": DR_REGION}}])
    return name


def item(key: str, value: str) -> dict[str, Any]:
    return {"id": {"S": key}, "v": {"S": value}}


def value_of(ddb: Any, name: str, key: str) -> str | None:
    found = ddb.get_item(TableName=name, Key={"id": {"S": key}}, ConsistentRead=True)
    return found["Item"]["v"]["S"] if "Item" in found else None


def wait_value(ddb: Any, name: str, key: str, wanted: str | None) -> None:
    wait_for(lambda: value_of(ddb, name, key) == wanted, WAIT, f"{name}[{key}] == {wanted}")


def link(aws: AwsEndpoint, name: str, source: str) -> dict[str, Any]:
    links = control(aws, "replication-status", {})["links"]
    return next(e for e in links if e["table"] == name and e["source_region"] == source)


def error_of(call: Callable[[], object]) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


# ------------------------------------------------------------------ replicas


def test_creating_a_replica_copies_the_schema_and_items(clients: Clients, dr: Clients) -> None:
    """How it works: "Every replica has the same table name and the same primary key
    schema" (and, in 2019.11.21, its global secondary indexes) and stores the same items.
    API_TableDescription.html: DescribeTable shows GlobalTableVersion and the Replicas with
    their ReplicaStatus (CREATING in UpdateTable's answer, then ACTIVE); each region lists
    the other replicas, not itself."""
    ddb, ddb_dr = clients("dynamodb"), dr("dynamodb")
    name = make_table(ddb, gsi=True)
    ddb.put_item(TableName=name, Item={**item("a", "1"), "owner": {"S": "ana"}})
    answer = ddb.update_table(TableName=name, ReplicaUpdates=[
        {"Create": {"RegionName": DR_REGION}}])["TableDescription"]
    assert answer["Replicas"] == [{"RegionName": DR_REGION, "ReplicaStatus": "CREATING"}]

    east, west = (c.describe_table(TableName=name)["Table"] for c in (ddb, ddb_dr))
    assert (east["GlobalTableVersion"], west["GlobalTableVersion"]) == ("2019.11.21",
                                                                        "2019.11.21")
    assert east["Replicas"] == [{"RegionName": DR_REGION, "ReplicaStatus": "ACTIVE"}]
    assert west["Replicas"] == [{"RegionName": REGION, "ReplicaStatus": "ACTIVE"}]
    assert west["KeySchema"] == east["KeySchema"]
    assert [i["IndexName"] for i in west["GlobalSecondaryIndexes"]] == ["by-owner"]
    assert value_of(ddb_dr, name, "a") == "1"


def test_replica_updates_that_cannot_be_done_are_refused(clients: Clients, dr: Clients,
                                                         table: str) -> None:
    """API_UpdateTable.html: a replica in the table's own region, or a second one in a
    region, is a ValidationException, as is a replica where a table of that name already
    exists (AWS: "... because one or more replicas already existed as tables.")."""
    ddb = clients("dynamodb")
    for region in (REGION, DR_REGION):
        code, _ = error_of(lambda r=region: ddb.update_table(  # type: ignore[misc]
            TableName=table, ReplicaUpdates=[{"Create": {"RegionName": r}}]))
        assert code == "ValidationException"
    lone = make_table(ddb)
    make_table_named(dr("dynamodb"), lone)
    code, message = error_of(lambda: ddb.update_table(
        TableName=lone, ReplicaUpdates=[{"Create": {"RegionName": DR_REGION}}]))
    assert code == "ValidationException"
    assert message.endswith("because one or more replicas already existed as tables.")


def make_table_named(ddb: Any, name: str) -> None:
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")


def test_deleting_a_replica_ends_its_replication(aws: AwsEndpoint, clients: Clients,
                                                 dr: Clients, table: str) -> None:
    """API_ReplicationGroupUpdate.html: Delete "deleting the replica and all if its items in
    the destination Region"; the remaining table is no longer replicated."""
    ddb = clients("dynamodb")
    ddb.update_table(TableName=table, ReplicaUpdates=[{"Delete": {"RegionName": DR_REGION}}])
    assert error_of(lambda: dr("dynamodb").describe_table(TableName=table))[0] == (
        "ResourceNotFoundException")
    assert "Replicas" not in ddb.describe_table(TableName=table)["Table"]
    ddb.put_item(TableName=table, Item=item("a", "1"))
    assert all(e["table"] != table or e["pending"] == 0
               for e in control(aws, "replication-status", {})["links"])


def test_a_table_made_again_after_a_reset_is_not_global(aws: AwsEndpoint,
                                                       clients: Clients) -> None:
    """A global table is its replica tables: once moto forgets them (POST /moto-api/reset),
    a new table of the same name is a plain regional table, with no Replicas and nothing
    replicated."""
    from drills.twin.aws import reset

    ddb = clients("dynamodb")
    name = make_table(ddb)
    ddb.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": DR_REGION}}])
    reset(aws)
    make_table_named(ddb, name)
    assert "Replicas" not in ddb.describe_table(TableName=name)["Table"]
    ddb.put_item(TableName=name, Item=item("a", "1"))
    assert all(e["table"] != name or e["pending"] == 0
               for e in control(aws, "replication-status", {})["links"])


# ------------------------------------------------------------------ replication


def test_every_kind_of_write_in_either_region_reaches_the_other(
        clients: Clients, dr: Clients, table: str) -> None:
    """How it works: "When an application writes data to a replica table in one Region,
    DynamoDB propagates the write to the other replica tables in the other AWS Regions
    automatically": PutItem, UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems,
    from us-east-1 and from us-west-2."""
    ddb, ddb_dr = clients("dynamodb"), dr("dynamodb")
    ddb.put_item(TableName=table, Item=item("put", "1"))
    ddb.put_item(TableName=table, Item=item("gone", "1"))
    ddb.update_item(TableName=table, Key={"id": {"S": "upd"}}, UpdateExpression="SET v = :v",
                    ExpressionAttributeValues={":v": {"S": "2"}})
    ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": item("batch", "3")}}]})
    ddb.transact_write_items(TransactItems=[{"Put": {"TableName": table,
                                                     "Item": item("tx", "4")}}])
    ddb_dr.put_item(TableName=table, Item=item("west", "5"))
    wait_value(ddb_dr, table, "gone", "1")
    ddb.delete_item(TableName=table, Key={"id": {"S": "gone"}})
    for key, value in (("put", "1"), ("upd", "2"), ("batch", "3"), ("tx", "4"),
                       ("gone", None)):
        wait_value(ddb_dr, table, key, value)
    wait_value(ddb, table, "west", "5")


def test_a_failed_transaction_replicates_nothing(aws: AwsEndpoint, clients: Clients,
                                                 dr: Clients, table: str) -> None:
    """GlobalTables.html: transactions are not replicated as a unit, item by item; a
    transaction that is cancelled wrote nothing, so nothing of it is replicated."""
    ddb = clients("dynamodb")
    ddb.put_item(TableName=table, Item=item("guard", "1"))
    wait_value(dr("dynamodb"), table, "guard", "1")
    done = link(aws, table, REGION)["completed"]
    with pytest.raises(ClientError):
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": table, "Item": item("new", "x")}},
            {"ConditionCheck": {"TableName": table, "Key": {"id": {"S": "guard"}},
                                "ConditionExpression": "v = :no",
                                "ExpressionAttributeValues": {":no": {"S": "no"}}}}])
    entry = link(aws, table, REGION)
    assert (entry["pending"], entry["completed"]) == (0, done)
    assert value_of(dr("dynamodb"), table, "new") is None


def test_conflicting_writes_converge_last_writer_wins(aws: AwsEndpoint, clients: Clients,
                                                      dr: Clients, table: str) -> None:
    """How it works: "DynamoDB global tables use a last writer wins reconciliation between
    concurrent updates": two regions update one item while neither has seen the other's
    write; once replication catches up both hold the later write, whichever region made it."""
    ddb, ddb_dr = clients("dynamodb"), dr("dynamodb")
    for first, second, later in ((ddb_dr, ddb, "east"), (ddb, ddb_dr, "west")):
        control(aws, "pause-replication", {"table": table})
        first.put_item(TableName=table, Item=item("k", "earlier"))
        second.put_item(TableName=table, Item=item("k", later))
        control(aws, "resume-replication", {"table": table})
        wait_for(lambda: link(aws, table, REGION)["pending"] == 0
                 and link(aws, table, DR_REGION)["pending"] == 0, WAIT, "both backlogs empty")
        assert (value_of(ddb, table, "k"), value_of(ddb_dr, table, "k")) == (later, later)


def test_a_paused_region_queues_writes_that_drain_in_order_on_resume(
        aws: AwsEndpoint, clients: Clients, dr: Clients, table: str) -> None:
    """FIS aws:dynamodb:global-table-pause-replication "pauses Amazon DynamoDB global table
    replication to any replica table"; writes are still accepted and, when replication
    resumes, reach the replica in the order they were made (the last one stays)."""
    ddb, ddb_dr = clients("dynamodb"), dr("dynamodb")
    control(aws, "pause-replication", {"source_region": REGION})
    for n in range(5):
        ddb.put_item(TableName=table, Item=item("k", str(n)))
    ddb.put_item(TableName=table, Item=item("other", "x"))
    entry = link(aws, table, REGION)
    assert (entry["paused"], entry["pending"]) == (True, 6)
    assert value_of(ddb_dr, table, "k") is None
    control(aws, "resume-replication", {"source_region": REGION})
    wait_for(lambda: link(aws, table, REGION)["pending"] == 0, WAIT, "the backlog drained")
    assert (value_of(ddb_dr, table, "k"), value_of(ddb_dr, table, "other")) == ("4", "x")


def test_replication_latency_is_published_in_the_writing_region(
        clients: Clients, table: str) -> None:
    """metrics-dimensions.html: ReplicationLatency, "the elapsed time between when an item
    is written to a replica table, and when that item appears in another replica",
    Milliseconds, dimensions TableName and ReceivingRegion (namespace AWS/DynamoDB)."""
    ddb, cw = clients("dynamodb"), clients("cloudwatch")
    since = datetime.now(UTC) - timedelta(minutes=1)
    ddb.put_item(TableName=table, Item=item("m", "1"))

    def latency() -> float | None:
        points = cw.get_metric_statistics(
            Namespace="AWS/DynamoDB", MetricName="ReplicationLatency", StartTime=since,
            EndTime=datetime.now(UTC) + timedelta(minutes=1), Period=3600,
            Statistics=["Maximum"], Dimensions=[{"Name": "TableName", "Value": table},
                                                {"Name": "ReceivingRegion",
                                                 "Value": DR_REGION}])["Datapoints"]
        return float(points[0]["Maximum"]) if points else None

    milliseconds = wait_for(latency, WAIT, "a ReplicationLatency datapoint")
    assert 0 < milliseconds < WAIT * 1000


def test_point_in_time_recovery_of_a_replica_sees_replicated_writes(
        aws: AwsEndpoint, clients: Clients, dr: Clients, table: str) -> None:
    """PointInTimeRecovery of the receiving replica (API_RestoreTableToPointInTime.html)
    restores the items replication wrote into it, as the replica's own writes."""
    ddb_dr = dr("dynamodb")
    assert control_request(aws.url, "dynamodb/pitr-settings",
                           {"latest_restorable_lag": 0})[0] == 200
    try:
        ddb_dr.update_continuous_backups(TableName=table, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True})
        clients("dynamodb").put_item(TableName=table, Item=item("p", "1"))
        wait_value(ddb_dr, table, "p", "1")
        ddb_dr.restore_table_to_point_in_time(SourceTableName=table,
                                              TargetTableName=f"{table}-restored",
                                              UseLatestRestorableTime=True)
        assert value_of(ddb_dr, f"{table}-restored", "p") == "1"
    finally:
        control_request(aws.url, "dynamodb/pitr-settings", {"latest_restorable_lag": 10})


# ------------------------------------------------------------------ control routes


def test_settings_route_profiles_and_validation(aws: AwsEndpoint) -> None:
    """The twin-only settings route: `realistic` keeps AWS's "usually within a second"
    (p50 under a second, p99 near it); bad values are a 400 ValidationException."""
    answer = control(aws, "global-table-settings", {"profile": "realistic"})
    assert answer["profile"] == "realistic"
    assert answer["p50"] < 1 < answer["p99"] < 2
    for body in ({"profile": "x"}, {"max": -1}, {"metric_period": True}):
        status, reply = control_request(aws.url, "dynamodb/global-table-settings", body)
        assert (status, reply["__type"]) == (400, "ValidationException"), body
    status, reply = control_request(aws.url, "dynamodb/pause-replication", {"region": "x"})
    assert (status, reply["__type"]) == (400, "ValidationException")


def test_install_is_idempotent() -> None:
    """install() twice patches moto once, and wraps the PITR module's write hooks."""
    script = """
from moto.dynamodb.models.table import Table
from drills.twin import fidelity
from drills.twin.fidelity import dynamodb, dynamodb_global
fidelity.install()
patched = (Table.put_item, dict(dynamodb_global._ORIGINAL))
fidelity.install()
assert (Table.put_item, dynamodb_global._ORIGINAL) == patched
assert dynamodb_global._ORIGINAL["table_put_item"] is dynamodb._table_put_item
"""
    subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, check=True, timeout=60)
