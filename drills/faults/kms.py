"""Faults of the KMS sealing key (runbook 3.4, 4.3), and the twin-only key deletion of 4.3 step 3.

The sealing key faults use the calls an operator's mistake would make (DisableKey,
ScheduleKeyDeletion), so they act the same on the twin and on an account; their reverts
bring the key back to the state it was in. A key deleted after its waiting period cannot
be brought back by anyone: that fault never touches the sealing key, only a scratch key it
creates itself, and it runs only on the twin, whose control endpoint ends the waiting
period at once.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from botocore.exceptions import ClientError

from drills.capabilities import Capability
from drills.errors import ConfigError, FaultError
from drills.faults.base import Fault
from drills.procedures.kms import (
    DELETED,
    DISABLED,
    ENABLED,
    PENDING_DELETION,
    PENDING_STATES,
    SealedVault,
    diagnose,
    remove_objects,
    seal_scratch_vaults,
)
from drills.twin.control import request as control_request

#: ScheduleKeyDeletion's PendingWindowInDays must lie in 7..30 (KMS API Reference).
MIN_WINDOW_DAYS, MAX_WINDOW_DAYS = 7, 30
MAX_SCRATCH_VAULTS = 50
#: Seconds a revert waits for the scratch vaults' replication to the DR bucket to finish.
REPLICATION_WAIT = 60.0


def _window(days: Any) -> int:
    """The deletion window, validated like AWS does, before anything is journaled."""
    if isinstance(days, bool) or not isinstance(days, int) or not (
            MIN_WINDOW_DAYS <= days <= MAX_WINDOW_DAYS):
        raise ConfigError(f"a KMS key deletion window must be {MIN_WINDOW_DAYS} to "
                          f"{MAX_WINDOW_DAYS} days (ScheduleKeyDeletion PendingWindowInDays), "
                          f"got {days!r}; nothing was injected")
    return days


class _KeyFault(Fault):
    target_kind = "key"

    @property
    def target(self) -> str:
        return str(self.params["key"])


    @property
    def kms(self) -> Any:
        return self.ctx.clients("kms", self.region)

    def _state(self) -> str:
        return diagnose(self.ctx.clients, self.region, self.target).state

    def _require(self, *states: str) -> str:
        state = self._state()
        if state not in states:
            raise FaultError(f"refusing to {self.describe()}: the key is {state}, not "
                             f"{' or '.join(states)}; recover it first (runbook 4.3)")
        return state


class DisableKey(_KeyFault):
    """DisableKey on the sealing key (runbook 3.4); revert: EnableKey."""

    kind = "kms.disable-key"
    calls = ("kms:DisableKey",)
    revert_calls = ("kms:EnableKey",)

    def describe(self) -> str:
        return f"disable KMS key {self.target}"

    def prepare(self) -> None:
        self.params["state_before"] = self._require(ENABLED)

    def inject(self) -> None:
        self.kms.disable_key(KeyId=self.target)

    def revert(self) -> None:
        # Only undo what this fault did: a key since scheduled for deletion is another fault's.
        if self._state() == DISABLED:
            self.kms.enable_key(KeyId=self.target)


class ScheduleKeyDeletion(_KeyFault):
    """ScheduleKeyDeletion of the sealing key; revert: CancelKeyDeletion, then EnableKey."""

    kind = "kms.schedule-key-deletion"
    calls = ("kms:ScheduleKeyDeletion",)
    revert_calls = ("kms:CancelKeyDeletion", "kms:EnableKey")

    def describe(self) -> str:
        return (f"schedule deletion of KMS key {self.target} in "
                f"{self.params.get('days')} days")

    def prepare(self) -> None:
        _window(self.params.get("days"))
        self.params["state_before"] = self._require(ENABLED, DISABLED)

    def inject(self) -> None:
        self.kms.schedule_key_deletion(KeyId=self.target,
                                       PendingWindowInDays=int(self.params["days"]))

    def revert(self) -> None:
        state = self._state()
        if state in PENDING_STATES:
            self.kms.cancel_key_deletion(KeyId=self.target)
            state = self._state()  # Disabled: AWS never re-enables on cancel
        if state == DISABLED and self.params.get("state_before") == ENABLED:
            self.kms.enable_key(KeyId=self.target)
        elif state == DELETED:
            raise FaultError(f"KMS key {self.target} was deleted before this fault could be "
                             "reverted; it cannot come back (runbook 4.3 step 3)")


class ScratchKeyDeleted(Fault):
    """A scratch key sealing scratch vaults, deleted after its waiting period (4.3 step 3).

    Twin only: the waiting period is ended by the twin's control endpoint, and the key is
    the drill's own. The scratch vaults live under their own prefix of the vault bucket
    (the bucket is this fault's target); revert removes them and any scratch key left.
    """

    kind = "kms.scratch-key-deleted"
    calls = ("kms:CreateKey", "kms:CreateAlias", "s3:PutObject", "kms:ScheduleKeyDeletion",
             "twin:kms/expire-deletion")
    revert_calls = ("s3:DeleteObject", "kms:ScheduleKeyDeletion", "twin:kms/expire-deletion")
    target_kind = "bucket"
    requires = frozenset({Capability.CONTROL})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_arn = ""
        self.sealed: list[SealedVault] = []

    @property
    def target(self) -> str:
        return str(self.params["bucket"])


    def describe(self) -> str:
        return (f"delete a scratch KMS key sealing {self.params.get('count')} scratch vaults "
                f"under {self.params.get('prefix', 'drills-scratch/')} in bucket {self.target} "
                f"(its {self.params.get('days', MIN_WINDOW_DAYS)}-day waiting period ended "
                "by the twin)")

    def prepare(self) -> None:
        count = self.params.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or not (
                1 <= count <= MAX_SCRATCH_VAULTS):
            raise ConfigError(f"scratch vaults to seal must be 1 to {MAX_SCRATCH_VAULTS}, got "
                              f"{count!r}; nothing was injected")
        self.params["days"] = _window(self.params.get("days", MIN_WINDOW_DAYS))
        token = uuid.uuid4().hex[:12]
        self.params["prefix"] = f"drills-scratch/{token}/"
        self.params["alias"] = f"alias/drills-scratch-{token}"

    def inject(self) -> None:
        kms = self.ctx.clients("kms", self.region)
        key = kms.create_key(Description="drills scratch key (runbook 4.3 step 3 drill); "
                             "deleted by the drill", Tags=[{"TagKey": "drills",
                                                            "TagValue": "scratch"}])
        self.key_arn = key["KeyMetadata"]["Arn"]
        kms.create_alias(AliasName=self.params["alias"], TargetKeyId=self.key_arn)
        self.sealed = seal_scratch_vaults(self.ctx.clients, self.region, self.target,
                                          self.key_arn, self.params["prefix"],
                                          int(self.params["count"]))
        self.acting()  # the key and its vaults are the drill's own; deleting it is the fault
        self._delete_now(self.key_arn)

    def revert(self) -> None:
        replicas = self._replicas()
        if replicas:
            self._wait_replicated()
        remove_objects(self.ctx.clients, self.region, self.target, self.params["prefix"])
        # Replication copied the scratch vaults to the DR bucket: left there, runbook 5.3's
        # reverse sync would bring them back, sealed under a key that no longer exists.
        for bucket, region in replicas:
            remove_objects(self.ctx.clients, region, bucket, self.params["prefix"])
        try:  # a scratch key still there (inject stopped half-way): it is ours to delete
            meta = self.ctx.clients("kms", self.region).describe_key(
                KeyId=self.params["alias"])["KeyMetadata"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NotFoundException":
                return
            raise
        self._delete_now(meta["Arn"], scheduled=meta["KeyState"] == PENDING_DELETION)

    def _replicas(self) -> list[tuple[str, str]]:
        """(bucket, region) of each bucket the scratch bucket replicates to."""
        s3 = self.ctx.clients("s3", self.region)
        try:
            rules = s3.get_bucket_replication(Bucket=self.target)["ReplicationConfiguration"][
                "Rules"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "ReplicationConfigurationNotFoundError":
                return []
            raise
        out = []
        for bucket in sorted({r["Destination"]["Bucket"].rsplit(":", 1)[-1] for r in rules
                              if r.get("Status") == "Enabled"}):
            location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
            out.append((bucket, location or "us-east-1"))
        return out

    def _wait_replicated(self) -> None:
        """Wait (up to REPLICATION_WAIT seconds) until no scratch version is still PENDING
        replication: a replica landing after the revert would be left behind."""
        s3 = self.ctx.clients("s3", self.region)
        deadline = time.monotonic() + REPLICATION_WAIT
        while time.monotonic() < deadline:
            listing = s3.list_object_versions(Bucket=self.target, Prefix=self.params["prefix"])
            if not any(self._status(s3, v) == "PENDING" for v in listing.get("Versions", [])):
                return
            time.sleep(0.5)

    def _status(self, s3: Any, version: dict[str, Any]) -> str:
        """A scratch version's replication status ("" when S3 answers none, or no HEAD)."""
        try:
            head = s3.head_object(Bucket=self.target, Key=version["Key"],
                                  VersionId=version["VersionId"])
        except ClientError:
            return ""  # gone meanwhile, or unreadable: nothing to wait for
        return str(head.get("ReplicationStatus", ""))

    def _delete_now(self, key_arn: str, scheduled: bool = False) -> None:
        if not scheduled:
            self.ctx.clients("kms", self.region).schedule_key_deletion(
                KeyId=key_arn, PendingWindowInDays=int(self.params["days"]))
        url = self.ctx.clients.endpoint_url
        if not url:  # required `control`: only an endpoint of our own has the routes
            raise FaultError(f"cannot end the waiting period of {key_arn}: the target's AWS "
                             "endpoint has no URL, so no control routes; run on the twin")
        status, reply = control_request(url, "kms/expire-deletion", {"key_id": key_arn})
        if status != 200:
            raise FaultError(f"the twin refused to expire the deletion of {key_arn} "
                             f"(HTTP {status}: {reply.get('message', reply)})")
