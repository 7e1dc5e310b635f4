"""DynamoDB item faults (runbook 2.2) on a real moto server: refuse what cannot be restored,
journal the images before acting, revert without overwriting a recovery."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from drills.clients import Clients
from drills.errors import FaultError, TargetNotAllowed
from drills.faults import AllowList, FaultContext, FaultInjector, rollback
from drills.faults.dynamodb import CorruptItems, DeleteItems
from drills.journal import FaultState, Journal

REGION = "us-east-1"
EDK = bytes(range(96))  # stands for a KMS ciphertext blob


def make_table(clients: Clients, pitr: bool = True, range_key: bool = False) -> str:
    name = f"ledger-{uuid.uuid4().hex[:8]}"
    schema = [{"AttributeName": "vault_id", "KeyType": "HASH"}]
    attrs = [{"AttributeName": "vault_id", "AttributeType": "S"}]
    if range_key:
        schema.append({"AttributeName": "seq", "KeyType": "RANGE"})
        attrs.append({"AttributeName": "seq", "AttributeType": "N"})
    ddb = clients("dynamodb")
    ddb.create_table(TableName=name, KeySchema=schema, AttributeDefinitions=attrs,
                     BillingMode="PAY_PER_REQUEST")
    ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
        "PointInTimeRecoveryEnabled": pitr})
    return name


def item(key: str) -> dict[str, Any]:
    return {"vault_id": {"S": key}, "sha256": {"S": f"hash-{key}"}, "edk": {"B": EDK},
            "size": {"N": "256"}}


@pytest.fixture
def table(clients: Clients) -> str:
    name = make_table(clients)
    for key in ("a", "b", "c"):
        clients("dynamodb").put_item(TableName=name, Item=item(key))
    return name


@pytest.fixture
def injector(tmp_path: Path, table: str) -> FaultInjector:
    return FaultInjector(Journal(tmp_path / "journal.jsonl"), "run-1", "env-a",
                         AllowList({"table": (table,)}))


def get(clients: Clients, table: str, key: str) -> dict[str, Any] | None:
    found = clients("dynamodb").get_item(TableName=table, Key={"vault_id": {"S": key}},
                                         ConsistentRead=True).get("Item")
    return None if found is None else dict(found)


def fault(kind: type[DeleteItems | CorruptItems], clients: Clients, table: str,
          keys: list[str]) -> DeleteItems | CorruptItems:
    return kind(FaultContext(clients), {"region": REGION, "table": table, "keys": keys})


def test_delete_items_journals_images_and_backup_before_deleting(
        clients: Clients, table: str, injector: FaultInjector) -> None:
    """prepare() takes the pre-change on-demand backup and captures the item images; the
    injecting journal line holds them (EDK base64, no plaintext) before anything is deleted."""
    active = injector.inject(fault(DeleteItems, clients, table, ["a", "b"]))
    assert get(clients, table, "a") is None
    assert get(clients, table, "b") is None
    assert get(clients, table, "c") == item("c")
    first = json.loads(injector.journal.path.read_text().splitlines()[0])
    assert first["event"] == "injecting"
    assert [i["vault_id"]["S"] for i in first["params"]["items"]] == ["a", "b"]
    assert first["params"]["backup_name"].startswith("pre-change-")
    backups = clients("dynamodb").list_backups(TableName=table)["BackupSummaries"]
    assert [b["BackupArn"] for b in backups] == [active.fault.params["backup_arn"]]


def test_delete_items_revert_restores_them_exactly(
        clients: Clients, table: str, injector: FaultInjector) -> None:
    """Revert puts every deleted item back as it was, binary attributes included."""
    active = injector.inject(fault(DeleteItems, clients, table, ["a"]))
    injector.revert(active)
    assert get(clients, table, "a") == item("a")


def test_revert_never_overwrites_a_recovered_or_newer_item(
        clients: Clients, table: str, injector: FaultInjector) -> None:
    """An item written again after the fault (a recovery, a newer write) is kept by revert."""
    active = injector.inject(fault(DeleteItems, clients, table, ["a"]))
    newer = {**item("a"), "sha256": {"S": "newer"}}
    clients("dynamodb").put_item(TableName=table, Item=newer)
    injector.revert(active)
    assert get(clients, table, "a") == newer


def test_corrupt_items_keeps_keys_and_types_and_reverts(
        clients: Clients, table: str, injector: FaultInjector) -> None:
    """Corruption replaces every non-key attribute by junk of the same type (a binary one
    keeps its length and header half); revert restores the original item."""
    active = injector.inject(fault(CorruptItems, clients, table, ["a"]))
    bad = get(clients, table, "a")
    assert bad is not None
    assert bad["vault_id"] == {"S": "a"}
    assert {k: next(iter(v)) for k, v in bad.items()} == {
        k: next(iter(v)) for k, v in item("a").items()}
    assert bad["sha256"] != item("a")["sha256"]
    assert bad["size"] != item("a")["size"]
    assert len(bad["edk"]["B"]) == len(EDK)
    assert bad["edk"]["B"][:48] == EDK[:48]
    assert bad["edk"]["B"][48:] != EDK[48:]
    injector.revert(active)
    injector.revert(active)  # idempotent
    assert get(clients, table, "a") == item("a")


def test_corrupt_revert_keeps_an_item_rewritten_since(
        clients: Clients, table: str, injector: FaultInjector) -> None:
    """Revert only undoes its own junk: an item rewritten after the corruption is kept."""
    active = injector.inject(fault(CorruptItems, clients, table, ["a"]))
    newer = {**item("a"), "sha256": {"S": "rewritten"}}
    clients("dynamodb").put_item(TableName=table, Item=newer)
    injector.revert(active)
    assert get(clients, table, "a") == newer


def test_refuses_a_table_without_pitr(clients: Clients, tmp_path: Path) -> None:
    """A drill never destroys data it cannot restore: no PITR, no fault, nothing journaled."""
    name = make_table(clients, pitr=False)
    clients("dynamodb").put_item(TableName=name, Item=item("a"))
    injector = FaultInjector(Journal(tmp_path / "j.jsonl"), "r", "e", AllowList({"table": (name,)}))
    with pytest.raises(FaultError, match="point-in-time recovery is not enabled"):
        injector.inject(fault(DeleteItems, clients, name, ["a"]))
    assert get(clients, name, "a") == item("a")
    assert not injector.journal.path.exists()


@pytest.mark.parametrize(("keys", "message"), [
    (["a", "missing"], "has no item vault_id='missing'"),
    ([], "distinct partition key values"),
    (["a", "a"], "distinct partition key values"),
])
def test_bad_keys_are_refused_before_anything_happens(
        clients: Clients, table: str, injector: FaultInjector, keys: list[str],
        message: str) -> None:
    """Bad input: a clear error, no backup taken, no journal line, no item touched."""
    with pytest.raises(FaultError, match=message):
        injector.inject(fault(DeleteItems, clients, table, keys))
    assert get(clients, table, "a") == item("a")
    assert not injector.journal.path.exists()
    assert clients("dynamodb").list_backups(TableName=table)["BackupSummaries"] == []


def test_refuses_a_table_with_a_sort_key(clients: Clients, tmp_path: Path) -> None:
    """Item faults name items by partition key only; a composite-key table is refused clearly."""
    name = make_table(clients, range_key=True)
    injector = FaultInjector(Journal(tmp_path / "j.jsonl"), "r", "e", AllowList({"table": (name,)}))
    with pytest.raises(FaultError, match="has a sort key"):
        injector.inject(fault(DeleteItems, clients, name, ["a"]))


def test_a_table_off_the_allow_list_is_refused(clients: Clients, table: str,
                                               tmp_path: Path) -> None:
    """The allow-list is checked before prepare(): no backup, no journal line."""
    injector = FaultInjector(Journal(tmp_path / "j.jsonl"), "r", "e", AllowList({"table": ()}))
    with pytest.raises(TargetNotAllowed):
        injector.inject(fault(DeleteItems, clients, table, ["a"]))
    assert clients("dynamodb").list_backups(TableName=table)["BackupSummaries"] == []


def test_rollback_restores_items_from_the_journal_alone(
        clients: Clients, table: str, injector: FaultInjector) -> None:
    """After a crash, `drills rollback` rebuilds the fault from its journal line and reverts it."""
    injector.inject(fault(DeleteItems, clients, table, ["a", "c"]))
    results = rollback(injector.journal, FaultContext(clients), "env-a")
    assert [r.reverted for r in results] == [True]
    assert get(clients, table, "a") == item("a")
    assert get(clients, table, "c") == item("c")
    assert injector.journal.entries()[0].state is FaultState.REVERTED
