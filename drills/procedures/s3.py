"""Runbook 4.4 steps 1-2, S3 vault data recovery, with the calls the runbook prints.

    Diagnosis   aws s3api head-object --key vaults/<vault-id>/data.enc
                aws s3api list-object-versions --prefix vaults/<vault-id>/  (DeleteMarkers)
    Step 1      deleted:      aws s3api delete-object --version-id <delete-marker-version-id>
    Step 2      overwritten:  aws s3api list-object-versions, then
                              aws s3api copy-object --copy-source ...?versionId=<old-version-id>

Step 2 needs "the last good version". We never assume it is the previous one (two bad
writes in a row are enough to make that wrong): each version, newest first, is opened the
way the vault service opens it and its content hash compared with the last acknowledged
write recorded in the credentials ledger; the first that passes is the one restored.

`copy_version_over` is step 2 as the runbook prints it, for the drill that shows its flaw:
the operator copies the version from before the corruption over the current one, whatever
was written since. Legitimate writes made after the corruption are rolled back with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from drills.clients import Clients
from drills.errors import RecoveryError
from drills.journal import utc_now
from drills.procedures.kms import UnreadableVault, unseal
from drills.vault import digest

Progress = Callable[[str], None]
#: Says why a candidate version is not the vault's last good content, or None when it is.
Verifier = Callable[[str, bytes], str | None]


def _quiet(_: str) -> None:
    pass


def object_key(vault_id: str) -> str:
    """Where a vault's sealed data lives in the bucket (runbook 4.4)."""
    return f"vaults/{vault_id}/data.enc"


@dataclass(frozen=True, slots=True)
class ObjectVersion:
    """One entry of list-object-versions for a vault's object: a version or a delete marker."""

    version_id: str
    is_latest: bool
    delete_marker: bool
    last_modified: str


def versions(s3: Any, bucket: str, vault_id: str) -> list[ObjectVersion]:
    """`aws s3api list-object-versions --prefix vaults/<id>/` for its object, newest first."""
    key, out = object_key(vault_id), []
    for page in s3.get_paginator("list_object_versions").paginate(
            Bucket=bucket, Prefix=f"vaults/{vault_id}/"):
        for entry, marker in [(v, False) for v in page.get("Versions", [])] + [
                (m, True) for m in page.get("DeleteMarkers", [])]:
            if entry["Key"] == key:
                out.append(ObjectVersion(entry["VersionId"], bool(entry.get("IsLatest")),
                                         marker, entry["LastModified"].isoformat()))
    # S3 lists each kind newest first, versions and markers apart. LastModified (whole
    # seconds) merges them; the stable sort keeps S3's own order within a second, and the
    # entry S3 marks IsLatest goes first.
    merged = sorted(out, key=lambda v: v.last_modified, reverse=True)
    return sorted(merged, key=lambda v: not v.is_latest)


def exists(s3: Any, bucket: str, vault_id: str) -> bool:
    """`aws s3api head-object`: False when S3 answers 404 (no object, or a delete marker)."""
    try:
        s3.head_object(Bucket=bucket, Key=object_key(vault_id))
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return False
        raise
    return True


@dataclass(frozen=True, slots=True)
class VersionCheck:
    """Why one version was passed over by step 2 (or that it was the good one)."""

    version_id: str
    good: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Restore:
    """What a runbook 4.4 step did to one vault's object."""

    vault_id: str
    step: str  # "4.4 step 1" or "4.4 step 2"
    command: str  # "" when nothing had to be done
    restored_version: str  # the version that is current again (step 1) or was copied (step 2)
    new_version: str  # the version id the restore itself created ("": step 1, or no copy)
    checked: tuple[VersionCheck, ...]
    utc: str
    seconds: float

    @property
    def skipped(self) -> tuple[VersionCheck, ...]:
        """Versions step 2 examined and rejected before finding the good one."""
        return tuple(c for c in self.checked if not c.good)


def remove_delete_marker(clients: Clients, region: str, bucket: str, vault_id: str,
                         progress: Progress = _quiet) -> Restore:
    """Runbook 4.4 step 1: delete the delete marker that hides the vault's object."""
    s3, started = clients("s3", region), time.monotonic()
    if exists(s3, bucket, vault_id):
        raise RecoveryError(f"{object_key(vault_id)} in {bucket} is not deleted (head-object "
                            "finds it); runbook 4.4 step 1 does not apply: check step 2")
    entries = versions(s3, bucket, vault_id)
    marker = next((v for v in entries if v.delete_marker and v.is_latest), None)
    if marker is None:
        raise RecoveryError(f"no delete marker hides {object_key(vault_id)} in {bucket} and no "
                            "version exists: the object was never written or was deleted by "
                            "version; restore from the replica (runbook 4.4 step 3)")
    command = (f"aws s3api delete-object --bucket {bucket} --key {object_key(vault_id)} "
               f"--version-id {marker.version_id}")
    progress(f"runbook 4.4 step 1: {command}")
    s3.delete_object(Bucket=bucket, Key=object_key(vault_id), VersionId=marker.version_id)
    current = next((v for v in versions(s3, bucket, vault_id) if v.is_latest), None)
    if current is None or current.delete_marker:
        raise RecoveryError(f"{object_key(vault_id)} is still deleted after removing marker "
                            f"{marker.version_id} (another marker is on top); run step 1 again")
    return Restore(vault_id, "4.4 step 1", command, current.version_id, "", (), utc_now(),
                   time.monotonic() - started)


def ledger_checksum(clients: Clients, region: str, table: str, vault_id: str) -> str:
    """The content hash of the vault's last acknowledged write, from the credentials ledger."""
    item = clients("dynamodb", region).get_item(
        TableName=table, Key={"vault_id": {"S": vault_id}}, ConsistentRead=True).get("Item")
    if item is None or "sha256" not in item:
        raise RecoveryError(f"the credentials ledger {table} has no checksum for vault "
                            f"{vault_id}; the last good version cannot be verified, restore "
                            "it by hand after checking with the vault's owner")
    return str(item["sha256"]["S"])


def envelope_verifier(kms: Any, expected_sha256: str) -> Verifier:
    """A Verifier that opens a version as the vault service does and compares its hash."""

    def verify(vault_id: str, body: bytes) -> str | None:
        try:
            data = unseal(kms, vault_id, body)
        except UnreadableVault as exc:
            return str(exc)
        if digest(data) != expected_sha256:
            return "decrypts, but its content is not the last acknowledged write"
        return None

    return verify


def restore_last_good_version(clients: Clients, region: str, bucket: str, vault_id: str,
                              verify: Verifier, progress: Progress = _quiet) -> Restore:
    """Runbook 4.4 step 2: copy the newest version that `verify` accepts over the object; when
    that is the current version (written again since the damage), copy nothing."""
    s3, started = clients("s3", region), time.monotonic()
    key, checked = object_key(vault_id), []
    for version in versions(s3, bucket, vault_id):
        if version.delete_marker:
            continue
        body = s3.get_object(Bucket=bucket, Key=key, VersionId=version.version_id)["Body"].read()
        reason = verify(vault_id, body)
        checked.append(VersionCheck(version.version_id, reason is None, reason or "good"))
        if reason is None:
            break
        progress(f"runbook 4.4 step 2: version {version.version_id} rejected: {reason}")
    good = next((c for c in checked if c.good), None)
    if good is None:
        raise RecoveryError(f"none of the {len(checked)} versions of {key} in {bucket} holds "
                            "the vault's last acknowledged write; restore from the replica "
                            "(runbook 4.4 step 3) and escalate (L3: data loss risk)")
    if checked[0].good:
        # Written again since the damage (a legitimate update replaced it): copying any
        # older version back would roll that write back. Nothing to restore.
        progress(f"runbook 4.4 step 2: the current version {good.version_id} of {key} holds "
                 "the last acknowledged write: nothing to restore")
        return Restore(vault_id, "4.4 step 2", "", good.version_id, "", tuple(checked),
                       utc_now(), time.monotonic() - started)
    command = (f"aws s3api copy-object --bucket {bucket} --key {key} --copy-source "
               f"\"{bucket}/{key}?versionId={good.version_id}\"")
    progress(f"runbook 4.4 step 2: {command}")
    copied = s3.copy_object(Bucket=bucket, Key=key, CopySource={
        "Bucket": bucket, "Key": key, "VersionId": good.version_id})
    return Restore(vault_id, "4.4 step 2", command, good.version_id,
                   str(copied.get("VersionId", "")), tuple(checked), utc_now(),
                   time.monotonic() - started)


def copy_version_over(clients: Clients, region: str, bucket: str, vault_id: str,
                      version_id: str, progress: Progress = _quiet) -> Restore:
    """Runbook 4.4 step 2 as written: list the object's versions, then copy `version_id` (the
    version from before the corruption) over the current one, whatever is current now."""
    s3, started = clients("s3", region), time.monotonic()
    key = object_key(vault_id)
    listed = versions(s3, bucket, vault_id)
    chosen = next((v for v in listed if v.version_id == version_id), None)
    if chosen is None or chosen.delete_marker:
        raise RecoveryError(f"version {version_id} of {key} is not among the versions "
                            f"list-object-versions shows in {bucket}; choose another")
    newer = tuple(VersionCheck(v.version_id, False, "newer than the version restored")
                  for v in listed[:listed.index(chosen)] if not v.delete_marker)
    command = (f"aws s3api copy-object --bucket {bucket} --key {key} --copy-source "
               f"\"{bucket}/{key}?versionId={version_id}\"")
    progress(f"runbook 4.4 step 2 as written: {command}")
    copied = s3.copy_object(Bucket=bucket, Key=key, CopySource={
        "Bucket": bucket, "Key": key, "VersionId": version_id})
    return Restore(vault_id, "4.4 step 2", command, version_id,
                   str(copied.get("VersionId", "")),
                   (*newer, VersionCheck(version_id, True, "the version from before the "
                                                          "corruption (not verified)")),
                   utc_now(), time.monotonic() - started)
