"""A vault's data object lost beyond what versioning can undo (runbook 3.5, for 4.4 step 3).

`PurgeVaultObject` deletes every version and delete marker of one vault's object, each by its
version ID: what a lifecycle rule expiring noncurrent versions, or an operator purging a
prefix, leaves behind. Steps 1 and 2 of runbook 4.4 then have nothing to restore from; a
delete naming a version ID is not replicated (S3 User Guide, "What is replicated"), so the
DR replica still holds the object, and step 3 copies it back.

The fault never destroys what it cannot put back: `prepare()` reads every version (body,
metadata, content type) into its journal entry, which is written with fsync before the first
delete, so its revert (or `drills rollback` after a crash) can write them back, oldest first,
if the key is still empty. Version IDs and dates cannot be recreated; the replica keeps the
originals. Each version written back carries `drills-restored: <token>:<n>`, so a revert cut
short resumes where it stopped, and anything else found on the key is left alone.
"""

from __future__ import annotations

import base64
import uuid

from drills.errors import FaultError
from drills.faults.s3 import _VaultObjectFault
from drills.procedures.s3 import versions

#: The journal keeps a copy of what the fault deletes: no more than this, in bytes.
MAX_KEPT_BYTES = 256 * 1024
#: Metadata that marks a version written back by the revert: "<token>:<index>".
RESTORED = "drills-restored"


class PurgeVaultObject(_VaultObjectFault):
    """Every version and delete marker of a vault's object deleted by version ID; revert
    writes the versions back from the copy kept in the journal, if the key is still empty."""

    kind = "s3.purge-vault-object"
    calls = ("s3:DeleteObject",)
    revert_calls = ("s3:PutObject",)

    def describe(self) -> str:
        return (f"delete every version of {self.key} in bucket {self.target} (by version ID, "
                "beyond what versioning can restore)")

    def prepare(self) -> None:
        self._head_versioned()  # the object exists (and the bucket keeps versions)
        entries = versions(self.s3, self.target, str(self.params["vault_id"]))
        kept, size = [], 0
        for entry in reversed(entries):  # oldest first: the order to write them back in
            if entry.delete_marker:
                continue
            got = self.s3.get_object(Bucket=self.target, Key=self.key,
                                     VersionId=entry.version_id)
            body = got["Body"].read()
            size += len(body)
            if size > MAX_KEPT_BYTES:
                raise FaultError(f"refusing to {self.describe()}: its versions exceed "
                                 f"{MAX_KEPT_BYTES} bytes, too much to keep in the journal for "
                                 "the revert; drill a vault with a smaller history")
            kept.append({"version_id": entry.version_id,
                         "body": base64.b64encode(body).decode(),
                         "metadata": dict(got.get("Metadata", {})),
                         "content_type": got.get("ContentType", "binary/octet-stream")})
        self.params["kept"] = kept
        self.params["deleted"] = [e.version_id for e in entries]
        self.params["token"] = uuid.uuid4().hex

    def inject(self) -> None:
        for version_id in self.params["deleted"]:
            self.s3.delete_object(Bucket=self.target, Key=self.key, VersionId=version_id)

    def revert(self) -> None:
        start = self._resume_at()
        if start is None:
            return  # the key holds something that is not ours: restored, or rewritten since
        kept = self.params.get("kept", [])
        for n in range(start, len(kept)):
            version = kept[n]
            self.s3.put_object(
                Bucket=self.target, Key=self.key, Body=base64.b64decode(version["body"]),
                ContentType=version["content_type"],
                Metadata={**version["metadata"], RESTORED: f"{self.params['token']}:{n}"})

    def _resume_at(self) -> int | None:
        """Index of the first kept version still to write back; None: leave the key alone."""
        current = next(iter(versions(self.s3, self.target, str(self.params["vault_id"]))), None)
        if current is None:
            return 0
        if current.delete_marker:
            return None
        head = self.s3.head_object(Bucket=self.target, Key=self.key,
                                   VersionId=current.version_id)
        token, _, index = head.get("Metadata", {}).get(RESTORED, "").partition(":")
        if token != self.params.get("token") or not index.isdigit():
            return None
        return int(index) + 1
