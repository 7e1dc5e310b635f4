"""S3 vault data faults on a real moto server: journaled before acting, refused without
versioning, reverted exactly (also from the journal after a crash), idempotently."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from drills.clients import Clients
from drills.errors import ConfigError, FaultError
from drills.faults import AllowList, Fault, FaultContext, FaultInjector, rollback
from drills.faults.s3 import CorruptVaultObject, DeleteVaultObject
from drills.journal import Journal
from drills.procedures.s3 import object_key, versions

REGION = "us-east-1"


@pytest.fixture
def vault(clients: Clients, bucket: str) -> tuple[str, str]:
    """(vault id, version id) of a vault object holding b'good'."""
    vault_id = f"v-{uuid.uuid4().hex[:8]}"
    put = clients("s3").put_object(Bucket=bucket, Key=object_key(vault_id), Body=b"good")
    return vault_id, put["VersionId"]


@pytest.fixture
def injector(tmp_path: Path, bucket: str) -> FaultInjector:
    return FaultInjector(Journal(tmp_path / "journal.jsonl"), "run-1", "env-a",
                         AllowList({"bucket": (bucket,)}))


def read(clients: Clients, bucket: str, vault_id: str) -> bytes:
    return bytes(clients("s3").get_object(Bucket=bucket, Key=object_key(vault_id))["Body"].read())


def test_delete_leaves_a_marker_and_revert_removes_it(clients: Clients, bucket: str,
                                                      vault: tuple[str, str],
                                                      injector: FaultInjector) -> None:
    """The delete fault records the current version, hides it behind a delete marker (no
    version is destroyed), and revert removes the marker: the same version is current."""
    vault_id, version = vault
    active = injector.inject(DeleteVaultObject(FaultContext(clients), {
        "bucket": bucket, "vault_id": vault_id, "region": REGION}))
    assert injector.journal.pending()[0].params["version_id"] == version
    entries = versions(clients("s3"), bucket, vault_id)
    assert [(e.delete_marker, e.is_latest) for e in entries] == [(True, True), (False, False)]
    injector.revert(active)
    assert read(clients, bucket, vault_id) == b"good"
    assert [e.version_id for e in versions(clients("s3"), bucket, vault_id)] == [version]


def test_delete_revert_is_idempotent_and_leaves_newer_writes_alone(
        clients: Clients, bucket: str, vault: tuple[str, str], injector: FaultInjector) -> None:
    """Revert after the runbook already removed the marker, or after a newer write, changes
    nothing: it only undoes a marker that still hides the version it hid."""
    vault_id, _ = vault
    fault = DeleteVaultObject(FaultContext(clients), {"bucket": bucket, "vault_id": vault_id})
    injector.inject(fault)
    marker = versions(clients("s3"), bucket, vault_id)[0].version_id
    clients("s3").delete_object(Bucket=bucket, Key=object_key(vault_id), VersionId=marker)
    clients("s3").put_object(Bucket=bucket, Key=object_key(vault_id), Body=b"newer")
    clients("s3").delete_object(Bucket=bucket, Key=object_key(vault_id))
    fault.revert()
    fault.revert()
    assert versions(clients("s3"), bucket, vault_id)[0].delete_marker  # not our marker: kept


def test_corrupt_writes_garbage_versions_and_revert_copies_the_good_one_back(
        clients: Clients, bucket: str, vault: tuple[str, str], injector: FaultInjector) -> None:
    """The corrupt fault writes N garbage versions of the object's size; revert copies the
    version that was current before it (recorded before journaling) back on top."""
    vault_id, version = vault
    active = injector.inject(CorruptVaultObject(FaultContext(clients), {
        "bucket": bucket, "vault_id": vault_id, "count": 2}))
    assert injector.journal.pending()[0].params["good_version"] == version
    assert read(clients, bucket, vault_id) != b"good"
    assert len(versions(clients("s3"), bucket, vault_id)) == 3
    injector.revert(active)
    assert read(clients, bucket, vault_id) == b"good"
    active.fault.revert()  # again: the good content is current, nothing more is written
    assert len(versions(clients("s3"), bucket, vault_id)) == 4


def test_a_fault_rebuilt_from_the_journal_reverts_the_damage(
        clients: Clients, bucket: str, vault: tuple[str, str], injector: FaultInjector) -> None:
    """After a crash, `drills rollback` rebuilds each fault from its journal entry alone and
    its revert restores the data."""
    vault_id, _ = vault
    for kind in (CorruptVaultObject, DeleteVaultObject):
        injector.inject(kind(FaultContext(clients), {"bucket": bucket, "vault_id": vault_id}))
    results = rollback(injector.journal, FaultContext(clients), "env-a")
    assert [r.reverted for r in results] == [True, True]
    assert read(clients, bucket, vault_id) == b"good"


@pytest.mark.parametrize("status", [None, "Suspended"], ids=["never-enabled", "suspended"])
@pytest.mark.parametrize("kind", [DeleteVaultObject, CorruptVaultObject])
def test_bucket_without_versioning_is_refused_before_anything_acts(
        tmp_path: Path, clients: Clients, kind: type[Fault], status: str | None) -> None:
    """Without versioning the damage could not be undone: the fault refuses with a clear
    error naming the bucket; nothing is journaled and the object is untouched."""
    name = f"plain-{uuid.uuid4().hex[:10]}"
    clients("s3").create_bucket(Bucket=name)
    if status:
        clients("s3").put_bucket_versioning(Bucket=name,
                                            VersioningConfiguration={"Status": status})
    clients("s3").put_object(Bucket=name, Key=object_key("v"), Body=b"good")
    journal = Journal(tmp_path / "journal.jsonl")
    injector = FaultInjector(journal, "run-1", "env-a", AllowList({"bucket": (name,)}))
    with pytest.raises(FaultError, match=f"versioning of bucket {name} is "
                                         f"{status or 'never enabled'}"):
        injector.inject(kind(FaultContext(clients), {"bucket": name, "vault_id": "v"}))
    assert journal.entries() == []
    assert read(clients, name, "v") == b"good"


@pytest.mark.parametrize("count", [0, 6, "2", True])
def test_corrupt_count_out_of_range_is_a_config_error(
        clients: Clients, bucket: str, vault: tuple[str, str], injector: FaultInjector,
        count: Any) -> None:
    """A corrupt-write count outside 1..5 is bad input: ConfigError, nothing journaled."""
    with pytest.raises(ConfigError, match="corrupt writes must be 1 to 5"):
        injector.inject(CorruptVaultObject(FaultContext(clients), {
            "bucket": bucket, "vault_id": vault[0], "count": count}))
    assert injector.journal.entries() == []


def test_a_missing_vault_object_is_refused(clients: Clients, bucket: str,
                                           injector: FaultInjector) -> None:
    """A vault with no data object cannot be damaged: FaultError, nothing journaled."""
    with pytest.raises(FaultError, match="head-object answered"):
        injector.inject(DeleteVaultObject(FaultContext(clients), {
            "bucket": bucket, "vault_id": "no-such-vault"}))
    assert injector.journal.entries() == []
