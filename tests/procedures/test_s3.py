"""Runbook 4.4 steps 1-2 automated, on a real moto server (and on the twin's own vault data)."""

from __future__ import annotations

import os

import pytest

from drills.clients import Clients
from drills.errors import RecoveryError
from drills.procedures.kms import seal
from drills.procedures.s3 import (
    copy_version_over,
    envelope_verifier,
    ledger_checksum,
    object_key,
    remove_delete_marker,
    restore_last_good_version,
    versions,
)
from drills.twin.manager import Twin
from drills.vault import digest

REGION = "us-east-1"


@pytest.fixture(scope="module")
def key(clients: Clients) -> str:
    return str(clients("kms").create_key()["KeyMetadata"]["Arn"])


def put_sealed(clients: Clients, bucket: str, key: str, vault_id: str) -> tuple[str, str]:
    """Write a sealed vault version; (version id, content hash)."""
    data = os.urandom(32)
    body, _ = seal(clients("kms"), key, vault_id, data)
    put = clients("s3").put_object(Bucket=bucket, Key=object_key(vault_id), Body=body)
    return put["VersionId"], digest(data)


def test_step_1_removes_the_delete_marker(clients: Clients, bucket: str, key: str) -> None:
    """Runbook 4.4 step 1: the latest delete marker is deleted by its version id and the
    version it hid is current again."""
    version, _ = put_sealed(clients, bucket, key, "v1")
    clients("s3").delete_object(Bucket=bucket, Key=object_key("v1"))
    restore = remove_delete_marker(clients, REGION, bucket, "v1")
    assert restore.restored_version == version
    assert "--version-id" in restore.command
    assert [v.delete_marker for v in versions(clients("s3"), bucket, "v1")] == [False]


def test_step_1_refuses_an_object_that_is_not_deleted(clients: Clients, bucket: str,
                                                      key: str) -> None:
    """Head-object finds the object: step 1 does not apply, and nothing is deleted."""
    put_sealed(clients, bucket, key, "v1")
    with pytest.raises(RecoveryError, match="not deleted"):
        remove_delete_marker(clients, REGION, bucket, "v1")


def test_step_2_skips_every_bad_version_and_copies_the_last_good_one(
        clients: Clients, bucket: str, key: str) -> None:
    """Runbook 4.4 step 2 by verification, not by 'the previous version': with two corrupt
    writes and an older good write below the good one, the newest version that opens and
    matches the last acknowledged checksum is copied back."""
    put_sealed(clients, bucket, key, "v2")  # an older, superseded write
    good, sha = put_sealed(clients, bucket, key, "v2")
    for _ in range(2):
        clients("s3").put_object(Bucket=bucket, Key=object_key("v2"), Body=os.urandom(300))
    restore = restore_last_good_version(clients, REGION, bucket, "v2",
                                        envelope_verifier(clients("kms"), sha))
    assert restore.restored_version == good
    assert len(restore.skipped) == 2
    assert all("not a sealed envelope" in c.reason for c in restore.skipped)
    listed = versions(clients("s3"), bucket, "v2")
    assert listed[0].version_id == restore.new_version
    assert len(listed) == 5


def test_step_2_rejects_a_version_that_decrypts_to_other_content(
        clients: Clients, bucket: str, key: str) -> None:
    """A version that opens but is not the last acknowledged write (an older one put back by
    mistake) is rejected on its checksum."""
    good, sha = put_sealed(clients, bucket, key, "v3")
    put_sealed(clients, bucket, key, "v3")  # sealed fine, but not what the ledger holds
    restore = restore_last_good_version(clients, REGION, bucket, "v3",
                                        envelope_verifier(clients("kms"), sha))
    assert restore.restored_version == good
    assert restore.skipped[0].reason.startswith("decrypts, but its content is not")


def test_step_2_leaves_a_current_version_that_verifies(clients: Clients, bucket: str,
                                                      key: str) -> None:
    """The vault was written again after the corruption: its current version already holds the
    last acknowledged write, so step 2 copies nothing (a copy would roll that write back)."""
    put_sealed(clients, bucket, key, "v5")
    clients("s3").put_object(Bucket=bucket, Key=object_key("v5"), Body=os.urandom(300))
    current, sha = put_sealed(clients, bucket, key, "v5")  # the legitimate update
    restore = restore_last_good_version(clients, REGION, bucket, "v5",
                                        envelope_verifier(clients("kms"), sha))
    assert (restore.restored_version, restore.new_version, restore.command) == (current, "", "")
    assert [c.good for c in restore.checked] == [True]
    assert len(versions(clients("s3"), bucket, "v5")) == 3


def test_step_2_as_written_rolls_back_writes_made_after_the_corruption(
        clients: Clients, bucket: str, key: str) -> None:
    """Step 2 as printed: the version from before the corruption is copied over the current
    one, even though a legitimate update replaced the corrupt object since: that update is
    rolled back (the object now opens to the older content)."""
    before, old_sha = put_sealed(clients, bucket, key, "v6")
    clients("s3").put_object(Bucket=bucket, Key=object_key("v6"), Body=os.urandom(300))
    update, new_sha = put_sealed(clients, bucket, key, "v6")
    restore = copy_version_over(clients, REGION, bucket, "v6", before)
    assert f"versionId={before}" in restore.command
    assert restore.skipped[0].version_id == update
    assert len(restore.skipped) == 2
    body = clients("s3").get_object(Bucket=bucket, Key=object_key("v6"))["Body"].read()
    assert envelope_verifier(clients("kms"), old_sha)("v6", body) is None
    assert envelope_verifier(clients("kms"), new_sha)("v6", body) is not None
    with pytest.raises(RecoveryError, match="not among the versions"):
        copy_version_over(clients, REGION, bucket, "v6", "no-such-version")


def test_step_2_fails_clearly_when_no_version_is_good(clients: Clients, bucket: str) -> None:
    """No version passes verification: RecoveryError pointing at the replica (step 3)."""
    clients("s3").put_object(Bucket=bucket, Key=object_key("v4"), Body=b"junk")
    with pytest.raises(RecoveryError, match=r"runbook 4\.4 step 3"):
        restore_last_good_version(clients, REGION, bucket, "v4",
                                  envelope_verifier(clients("kms"), "0" * 64))


def test_ledger_checksum_verifies_the_twins_own_vault_data(twin: Twin) -> None:
    """The verifier opens what the twin's enclave workers wrote: the current version of a
    population vault decrypts to its enrolment hash, which is also the ledger's checksum."""
    vault = twin.population()[0]
    names, clients = twin.names, twin.clients
    sha = ledger_checksum(clients, REGION, names.credentials_table, vault.vault_id)
    assert sha == vault.sha256
    body = clients("s3").get_object(Bucket=names.bucket,
                                    Key=object_key(vault.vault_id))["Body"].read()
    assert envelope_verifier(clients("kms"), sha)(vault.vault_id, body) is None
