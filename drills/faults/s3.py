"""Faults of the S3 vault data (runbook 3.5, 4.4 steps 1-2): a vault's object deleted or corrupted.

Both act only on a versioned bucket, where the previous version survives: without
versioning they would destroy data nothing could restore, so they refuse before anything is
journaled. Each records in `prepare()` the version that was current, so its revert (and
`drills rollback`) can put exactly that version back, and only if the damage is still ours.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from botocore.exceptions import ClientError

from drills.errors import ConfigError, FaultError
from drills.faults.base import Fault
from drills.procedures.s3 import object_key, versions

MAX_CORRUPT_WRITES = 5
#: Metadata that marks an object version as this fault's garbage, with the fault's token.
MARK = "drills-fault"


class _VaultObjectFault(Fault):
    target_kind = "bucket"

    @property
    def target(self) -> str:
        return str(self.params["bucket"])


    @property
    def key(self) -> str:
        return object_key(str(self.params["vault_id"]))

    @property
    def s3(self) -> Any:
        return self.ctx.clients("s3", self.region)

    def _head_versioned(self) -> dict[str, Any]:
        """The current object, after making sure the bucket keeps old versions."""
        status = self.s3.get_bucket_versioning(Bucket=self.target).get("Status", "never enabled")
        if status != "Enabled":
            raise FaultError(f"refusing to {self.describe()}: versioning of bucket "
                             f"{self.target} is {status}, so the object could not be restored; "
                             "enable versioning (runbook 2.1) before drilling it")
        try:
            return dict(self.s3.head_object(Bucket=self.target, Key=self.key))
        except ClientError as exc:
            raise FaultError(f"cannot {self.describe()}: head-object answered "
                             f"{exc.response.get('Error', {}).get('Code')}; choose a vault "
                             "whose data exists") from None


class DeleteVaultObject(_VaultObjectFault):
    """DeleteObject without a version id: a delete marker hides the vault's data."""

    kind = "s3.delete-vault-object"
    calls = ("s3:DeleteObject",)
    revert_calls = ("s3:DeleteObject",)

    def describe(self) -> str:
        return f"delete {self.key} in bucket {self.target} (delete marker, no version id)"

    def prepare(self) -> None:
        self.params["version_id"] = self._head_versioned()["VersionId"]

    def inject(self) -> None:
        self.s3.delete_object(Bucket=self.target, Key=self.key)

    def revert(self) -> None:
        # Remove the markers on top of the version we hid, and only if it is still the one
        # under them: anything written since is not ours to undo.
        entries = versions(self.s3, self.target, str(self.params["vault_id"]))
        markers: list[str] = []
        for entry in entries:
            if not entry.delete_marker:
                if entry.version_id == self.params["version_id"]:
                    for marker in markers:
                        self.s3.delete_object(Bucket=self.target, Key=self.key,
                                              VersionId=marker)
                return
            markers.append(entry.version_id)


class CorruptVaultObject(_VaultObjectFault):
    """PutObject of garbage over a vault's data, `count` times; revert restores the good version."""

    kind = "s3.corrupt-vault-object"
    calls = ("s3:PutObject",)
    revert_calls = ("s3:CopyObject",)

    def describe(self) -> str:
        return (f"overwrite {self.key} in bucket {self.target} with corrupt data "
                f"({self.params.get('count', 1)} time(s))")

    def prepare(self) -> None:
        count = self.params.setdefault("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or not (
                1 <= count <= MAX_CORRUPT_WRITES):
            raise ConfigError(f"corrupt writes must be 1 to {MAX_CORRUPT_WRITES}, got "
                              f"{count!r}; nothing was injected")
        head = self._head_versioned()
        self.params["good_version"] = head["VersionId"]
        self.params["size"] = int(head["ContentLength"])
        self.params["token"] = uuid.uuid4().hex

    def inject(self) -> None:
        for _ in range(int(self.params["count"])):
            # Garbage the size of the real object: what a broken writer leaves behind.
            self.s3.put_object(Bucket=self.target, Key=self.key,
                               Body=os.urandom(max(1, int(self.params["size"]))),
                               Metadata={MARK: self.params["token"]})

    def revert(self) -> None:
        try:
            head = self.s3.head_object(Bucket=self.target, Key=self.key)
        except ClientError:
            return  # deleted since: not ours to bring back
        if head.get("Metadata", {}).get(MARK) != self.params["token"]:
            return  # already restored (or rewritten by the service): nothing of ours is current
        self.s3.copy_object(Bucket=self.target, Key=self.key, CopySource={
            "Bucket": self.target, "Key": self.key, "VersionId": self.params["good_version"]})
