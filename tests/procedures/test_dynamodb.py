"""Runbook 2.2 automated (on-demand backup, point-in-time restore, copy back), on a real moto
server with the twin's PITR fidelity; and the vault write probes on the session twin."""

from __future__ import annotations

import json
import math
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from drills.clients import Clients
from drills.config import ProbeSettings
from drills.errors import RecoveryError
from drills.loop import LoopThread
from drills.measure.probes import WriteProbes
from drills.procedures.dynamodb import (
    ItemCopy,
    ItemOutcome,
    create_on_demand_backup,
    decode_item,
    encode_item,
    item_digest,
    recover_items,
    recover_table,
    replay_from_vault_objects,
    replay_item,
    restore_table,
    restored_name,
    wait_restorable,
)
from drills.procedures.kms import seal
from drills.procedures.s3 import object_key
from drills.twin.aws import AwsEndpoint, start_aws, stop_aws
from drills.twin.manager import Twin, harness_connection
from drills.vault import digest

REGION = "us-east-1"


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsEndpoint]:
    endpoint = start_aws(tmp_path_factory.mktemp("aws-ddb-procedures"))
    lag(endpoint, 1.0)  # short, so restores "just before" something wait a second, not ten
    yield endpoint
    stop_aws(endpoint)


def lag(endpoint: AwsEndpoint, seconds: float) -> None:
    """Set the twin's LatestRestorableDateTime lag (twin-only control endpoint)."""
    request = urllib.request.Request(
        f"{endpoint.url}/drills-twin/dynamodb/pitr-settings", method="POST",
        data=json.dumps({"latest_restorable_lag": seconds}).encode())
    urllib.request.urlopen(request, timeout=10).close()


@pytest.fixture
def table(clients: Clients) -> str:
    name = f"ledger-{uuid.uuid4().hex[:8]}"
    ddb = clients("dynamodb")
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "vault_id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "vault_id", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
        "PointInTimeRecoveryEnabled": True})
    for n in range(4):
        put(clients, name, f"v{n}", "old")
    return name


def put(clients: Clients, table: str, key: str, value: str) -> None:
    clients("dynamodb").put_item(TableName=table, Item={
        "vault_id": {"S": key}, "sha256": {"S": value}, "edk": {"B": value.encode() * 8}})


def value_of(clients: Clients, table: str, key: str) -> str | None:
    item = clients("dynamodb").get_item(TableName=table, Key={"vault_id": {"S": key}},
                                        ConsistentRead=True).get("Item")
    return None if item is None else str(item["sha256"]["S"])


def wait_until(moment: float) -> None:
    """Wait until the wall clock reaches `moment` (epoch seconds)."""
    while time.time() < moment:
        time.sleep(min(0.05, max(0.0, moment - time.time())))


def next_second() -> datetime:
    """Wait until the next whole second has passed and return it (restore times are whole
    seconds on the wire)."""
    boundary = math.floor(time.time()) + 1
    time.sleep(boundary - time.time() + 0.05)
    return datetime.fromtimestamp(boundary, UTC)


def test_item_codec_round_trips_every_binary_form() -> None:
    """Journal images keep binary attributes exactly, nested ones too, as JSON."""
    item: dict[str, Any] = {"k": {"S": "a"}, "b": {"B": b"\x00\xff"}, "bs": {"BS": [b"x", b"y"]},
                            "m": {"M": {"n": {"B": b"\x01"}}}, "l": {"L": [{"B": b"\x02"}]}}
    encoded = encode_item(item)
    assert decode_item(json.loads(json.dumps(encoded))) == item


def test_item_digest_ignores_attribute_order_and_sees_values() -> None:
    """Two items with the same attributes hash alike; a changed value or a missing item do not."""
    a = {"k": {"S": "a"}, "v": {"B": b"1"}}
    assert item_digest(a) == item_digest({"v": {"B": b"1"}, "k": {"S": "a"}})
    assert item_digest(a) != item_digest({"k": {"S": "a"}, "v": {"B": b"2"}})
    assert item_digest(None) == ""


def test_on_demand_backup_is_named_pre_change_and_available(clients: Clients, table: str) -> None:
    """Runbook 2.2: create-backup --backup-name pre-change-<YYYYmmdd-HHMMSS>, waited AVAILABLE."""
    backup = create_on_demand_backup(clients, table, REGION)
    assert backup.name.startswith("pre-change-")
    datetime.strptime(backup.name.removeprefix("pre-change-"), "%Y%m%d-%H%M%S")
    listed = clients("dynamodb").list_backups(TableName=table)["BackupSummaries"]
    assert [(b["BackupArn"], b["BackupStatus"]) for b in listed] == [(backup.arn, "AVAILABLE")]


def test_recover_items_restores_deleted_and_reported_items_only(clients: Clients,
                                                                table: str) -> None:
    """Restore just before the damage, copy back the deleted items and the changed items that
    are reported damaged; an unreported change and a new item stay; the copy is deleted."""
    before = next_second()
    clients("dynamodb").delete_item(TableName=table, Key={"vault_id": {"S": "v0"}})
    put(clients, table, "v1", "corrupt")  # reported by its users
    put(clients, table, "v2", "newer")  # a legitimate later write nobody reports
    put(clients, table, "v9", "created-after")
    recovery = recover_items(clients, table, REGION, lambda: ["v1"], before=before)
    assert recovery.restore_time == before
    assert recovery.diff.missing == ("v0",)
    assert recovery.diff.changed == ("v1", "v2")
    assert {i.key: i.outcome for i in recovery.items} == {
        "v0": ItemOutcome.RESTORED, "v1": ItemOutcome.RESTORED}
    assert recovery.verified
    assert [value_of(clients, table, k) for k in ("v0", "v1", "v2", "v3", "v9")] == [
        "old", "old", "newer", "old", "created-after"]
    assert restored_name(table) not in clients("dynamodb").list_tables()["TableNames"]


def test_recover_items_waits_until_the_restore_time_is_restorable(clients: Clients,
                                                                  table: str) -> None:
    """A restore time newer than LatestRestorableDateTime is refused by AWS: the procedure
    waits for it to become restorable (the twin trails by 1 s here) instead of failing."""
    put(clients, table, "v0", "last-acked")
    before = datetime.now(UTC)
    boundary = datetime.fromtimestamp(math.ceil(before.timestamp()), UTC)
    time.sleep(max(0.0, boundary.timestamp() - time.time()) + 0.05)
    clients("dynamodb").delete_item(TableName=table, Key={"vault_id": {"S": "v0"}})
    recovery = recover_items(clients, table, REGION, list, before=boundary)
    assert recovery.waited_restorable > 0.5
    assert value_of(clients, table, "v0") == "last-acked"


def test_recover_items_from_the_latest_restorable_time(aws: AwsEndpoint, clients: Clients,
                                                       table: str) -> None:
    """Runbook 2.2's --use-latest-restorable-time restores LatestRestorableDateTime: damage done
    within the lag is undone, and so is a write acknowledged within the lag: it is lost."""
    time.sleep(2.0)  # the table's items are now older than the lag set below
    put(clients, table, "v0", "acked-within-lag")
    clients("dynamodb").delete_item(TableName=table, Key={"vault_id": {"S": "v1"}})
    lag(aws, 1.5)
    try:
        recovery = recover_items(clients, table, REGION, lambda: ["v0"], use_latest=True)
    finally:
        lag(aws, 1.0)
    assert recovery.use_latest
    assert value_of(clients, table, "v1") == "old"
    assert value_of(clients, table, "v0") == "old"


def test_recover_table_as_written_rolls_back_every_write_since_the_restore_time(
        aws: AwsEndpoint, clients: Clients, table: str) -> None:
    """Runbook 2.2 as written: the table is restored to its latest restorable time and every
    item put back over the live one. The deleted item comes back, an item created since
    stays, and a write acknowledged after the restore time is rolled back: lost."""
    wait_until(time.time() + 3.0)  # the table's items are 3 s old
    middle = time.time()
    put(clients, table, "v0", "acked-after-restore-time")
    put(clients, table, "v9", "created-after")
    clients("dynamodb").delete_item(TableName=table, Key={"vault_id": {"S": "v1"}})
    lag(aws, time.time() - middle + 1.5)  # latest restorable: 1.5 s before `middle`
    try:
        recovery = recover_table(clients, table, REGION)
    finally:
        lag(aws, 1.0)
    assert recovery.restore_time.timestamp() < middle
    assert [c.key for c in recovery.copied] == ["v0", "v1", "v2", "v3"]
    assert all(c.started <= c.ended for c in recovery.copied)
    assert recovery.copy_times()["v0"][0] > middle
    assert [value_of(clients, table, k) for k in ("v0", "v1", "v2", "v3", "v9")] == [
        "old", "old", "old", "old", "created-after"]
    assert restored_name(table) not in clients("dynamodb").list_tables()["TableNames"]


def test_recover_table_refuses_a_restore_time_that_holds_the_damage(clients: Clients,
                                                                    table: str) -> None:
    """The latest restorable time is after the damage: the restored copy holds the damage
    too. Nothing is copied back, the copy is deleted, and the error says what to do."""
    with pytest.raises(RecoveryError, match="restore to a time before it"):
        recover_table(clients, table, REGION, not_after=datetime(2020, 1, 1, tzinfo=UTC))
    assert restored_name(table) not in clients("dynamodb").list_tables()["TableNames"]


def test_recover_items_replays_what_was_written_after_the_restore_time(clients: Clients,
                                                                       table: str) -> None:
    """Restore times are whole seconds: a write in the second of the damage is after the
    restore time and the copy back sets it back. The replay brings it forward again; an item
    the replay has nothing newer for keeps the restored state."""
    boundary = next_second()
    put(clients, table, "v0", "acked-in-the-second-of-the-damage")
    put(clients, table, "v1", "also-in-that-second")
    for key in ("v0", "v1"):
        clients("dynamodb").delete_item(TableName=table, Key={"vault_id": {"S": key}})

    def replay(key: str, item: dict[str, Any] | None) -> dict[str, Any] | None:
        if key != "v0" or item is None:
            return None
        return {**item, "sha256": {"S": "acked-in-the-second-of-the-damage"}}

    # As the drill does: the whole second at or before the damage, here the boundary itself.
    recovery = recover_items(clients, table, REGION, list, before=boundary, replay=replay)
    assert {i.key: i.outcome for i in recovery.items} == {
        "v0": ItemOutcome.REPLAYED, "v1": ItemOutcome.RESTORED}
    assert recovery.verified
    assert value_of(clients, table, "v0") == "acked-in-the-second-of-the-damage"
    assert value_of(clients, table, "v1") == "old"  # what the replay exists to prevent


def test_replay_never_overwrites_a_write_made_since_the_copy(clients: Clients,
                                                             table: str) -> None:
    """The service wrote the item after it was copied back: that write is newer than anything
    the replay knows, so the replay leaves it."""
    ddb = clients("dynamodb")
    restored = ddb.get_item(TableName=table, Key={"vault_id": {"S": "v2"}})["Item"]
    put(clients, table, "v2", "written-by-the-service-since")
    copied = ItemCopy("v2", ItemOutcome.RESTORED, restored, True)
    result = replay_item(clients, table, REGION, copied,
                         lambda key, item: {**restored, "sha256": {"S": "replayed"}})
    assert result == copied
    assert value_of(clients, table, "v2") == "written-by-the-service-since"


def test_replay_from_vault_objects_rebuilds_an_item_from_the_current_object(
        clients: Clients) -> None:
    """The vault's object is written before its ledger item: when the item names an older
    version, the replay names the current one, with its data key and content hash; an item
    that names it needs nothing; an unreadable object is an error that says what to do."""
    bucket = f"vault-{uuid.uuid4().hex[:10]}"
    s3, kms = clients("s3"), clients("kms")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    replay = replay_from_vault_objects(clients, REGION, bucket)
    assert replay("nothing-here", None) is None
    first_body, edk = seal(kms, key_arn, "v", b"first")
    first = s3.put_object(Bucket=bucket, Key=object_key("v"), Body=first_body)["VersionId"]
    item = {"vault_id": {"S": "v"}, "version_id": {"S": first},
            "sha256": {"S": digest(b"first")}, "edk": {"B": edk}, "instance_id": {"S": "i-1"}}
    assert replay("v", item) is None
    second_body, second_edk = seal(kms, key_arn, "v", b"second")
    second = s3.put_object(Bucket=bucket, Key=object_key("v"), Body=second_body)["VersionId"]
    newer = replay("v", item)
    assert newer is not None
    assert (newer["version_id"], newer["sha256"], newer["edk"], newer["instance_id"]) == (
        {"S": second}, {"S": digest(b"second")}, {"B": second_edk}, {"S": "i-1"})
    s3.put_object(Bucket=bucket, Key=object_key("v"), Body=b"garbage")
    with pytest.raises(RecoveryError, match=r"restore the object first \(runbook 4\.4\)"):
        replay("v", item)


def test_restore_refuses_a_leftover_restored_table(clients: Clients, table: str) -> None:
    """`<table>-restored` left by an earlier restore is not overwritten or deleted: the
    procedure stops and says how to remove it."""
    restore_table(clients, table, REGION, use_latest=True)
    with pytest.raises(RecoveryError, match=f"delete-table --table-name {restored_name(table)}"):
        restore_table(clients, table, REGION, use_latest=True)


def test_wait_restorable_refuses_a_time_before_the_window(clients: Clients, table: str) -> None:
    """A time before EarliestRestorableDateTime can never be restored: say so, at once."""
    with pytest.raises(RecoveryError, match="before the earliest restorable time"):
        wait_restorable(clients, table, REGION, datetime(2020, 1, 1, tzinfo=UTC), timeout=5)


def test_wait_restorable_refuses_a_table_without_pitr(clients: Clients, table: str) -> None:
    """Without point-in-time recovery the only way back is an on-demand backup: say so."""
    clients("dynamodb").update_continuous_backups(TableName=table,
                                                  PointInTimeRecoverySpecification={
                                                      "PointInTimeRecoveryEnabled": False})
    with pytest.raises(RecoveryError, match="restore from an on-demand backup"):
        wait_restorable(clients, table, REGION, datetime.now(UTC), timeout=5)


@pytest.mark.twin
def test_write_probes_write_through_the_service_and_quiesce(twin: Twin) -> None:
    """Write probes succeed on healthy vaults without changing their content; while quiesced
    no write is in flight and the last one lies in an earlier wall-clock second."""
    loop = LoopThread("test-write-probes")
    try:
        client = harness_connection(twin, loop, name="test-write-probes")
        vaults = twin.population()[:2]
        probes = WriteProbes(loop, client, vaults, ProbeSettings(0.1, 2.0, 3))
        probes.start()
        try:
            assert probes.wait_for(lambda rs: sum(r.ok for r in rs) >= 4, 30)
            with probes.quiesced():
                count = len(probes.results())
                assert probes._inflight == 0
                assert math.floor(time.time()) > probes._last_write
                time.sleep(0.3)
                assert len(probes.results()) == count
        finally:
            probes.stop()
        assert all(r.ok for r in probes.results()), [r.detail for r in probes.results()]
        assert probes.failed_vaults(0.0) == set()
        got = loop.run(client.get(vaults[0].vault_id, timeout=5), timeout=10)
        from drills.vault import digest

        assert digest(got) == vaults[0].sha256
    finally:
        loop.close()
