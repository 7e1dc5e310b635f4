"""drills.hygiene: the drills' own vaults (ids drills-*) are deleted, every version and
item of them, and nothing else; a region without the DR stack is skipped."""

from __future__ import annotations

import uuid

from drills.clients import Clients
from drills.environment import Names
from drills.hygiene import VAULT_PREFIX, Swept, sweep


def _environment(clients: Clients) -> Names:
    """The vault bucket and the three tables in the primary region only (no DR stack)."""
    names = Names(vault_bucket=f"vault-{uuid.uuid4().hex[:8]}",
                  dr_vault_bucket=f"vault-dr-{uuid.uuid4().hex[:8]}",
                  sessions_table=f"s-{uuid.uuid4().hex[:6]}",
                  credentials_table=f"c-{uuid.uuid4().hex[:6]}",
                  transactions_table=f"t-{uuid.uuid4().hex[:6]}")
    s3, ddb = clients("s3"), clients("dynamodb")
    s3.create_bucket(Bucket=names.bucket)
    s3.put_bucket_versioning(Bucket=names.bucket, VersioningConfiguration={"Status": "Enabled"})
    for table, keys in ((names.sessions_table, ["session_id"]),
                        (names.credentials_table, ["vault_id"]),
                        (names.transactions_table, ["vault_id", "seq"])):
        ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": k, "AttributeType":
                                                "N" if k == "seq" else "S"} for k in keys],
                         KeySchema=[{"AttributeName": k, "KeyType": t}
                                    for k, t in zip(keys, ("HASH", "RANGE"), strict=False)])
    return names


def _write(clients: Clients, names: Names, vault_id: str) -> None:
    """What the service writes for a vault: two versions and a delete marker, a session, a
    ledger item, a transaction."""
    s3, ddb = clients("s3"), clients("dynamodb")
    for body in (b"one", b"two"):
        s3.put_object(Bucket=names.bucket, Key=f"vaults/{vault_id}/data.enc", Body=body)
    s3.delete_object(Bucket=names.bucket, Key=f"vaults/{vault_id}/data.enc")
    ddb.put_item(TableName=names.sessions_table, Item={
        "session_id": {"S": f"enroll-{vault_id}"}, "vault_id": {"S": vault_id}})
    ddb.put_item(TableName=names.credentials_table, Item={"vault_id": {"S": vault_id}})
    ddb.put_item(TableName=names.transactions_table, Item={
        "vault_id": {"S": vault_id}, "seq": {"N": "1"}})


def test_sweep_deletes_the_drills_vaults_and_keeps_the_apps(clients: Clients) -> None:
    names = _environment(clients)
    for vault_id in (f"{VAULT_PREFIX}canary-abc-000001", f"{VAULT_PREFIX}probe-x-01", "app-1"):
        _write(clients, names, vault_id)
    assert sweep(clients, names) == Swept(objects=6, items=6)
    left = clients("s3").list_object_versions(Bucket=names.bucket)
    assert {v["Key"] for v in [*left.get("Versions", []), *left.get("DeleteMarkers", [])]} == {
        "vaults/app-1/data.enc"}
    for table in names.tables:
        items = clients("dynamodb").scan(TableName=table)["Items"]
        assert [i["vault_id"]["S"] for i in items] == ["app-1"], table
    assert sweep(clients, names) == Swept()  # nothing left: a second sweep deletes nothing


def test_sweep_deletes_more_versions_than_one_listing_holds(clients: Clients) -> None:
    """A listing holds 1000 versions; a sweep deletes every one of 1001 (deleting while
    paging lost the second page: its marker named a version already deleted)."""
    names = _environment(clients)
    key = f"vaults/{VAULT_PREFIX}canary-many-000001/data.enc"
    for n in range(1001):
        clients("s3").put_object(Bucket=names.bucket, Key=key, Body=str(n).encode())
    assert sweep(clients, names) == Swept(objects=1001)
    assert "Versions" not in clients("s3").list_object_versions(Bucket=names.bucket)
