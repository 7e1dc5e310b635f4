"""Runbook 4.3, KMS key recovery, with the calls the runbook prints; and the proof of 4.3 step 3.

    Diagnosis   KEY_ARN=$(aws ssm get-parameter --name /vettid/nitro/sealing-key-arn ...)
                KEY_ID=$(echo $KEY_ARN | cut -d'/' -f2); aws kms describe-key --key-id $KEY_ID
    Step 1      Disabled:         aws kms enable-key
    Step 2      PendingDeletion:  aws kms cancel-key-deletion (the key is then Disabled, as AWS
                                  documents), aws kms enable-key
    Step 3      deleted:          nothing brings it back; data sealed under it is lost

Step 3 cannot be drilled on the sealing key, so its drill seals scratch vaults the way the
vault service seals real ones (envelope encryption: a KMS data key per vault, AES-GCM, the
sealed envelope in S3 under SSE-KMS), lets a scratch key be deleted, and proves with these
functions that nothing reads the scratch data back.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from drills.clients import Clients
from drills.environment import Names
from drills.errors import RecoveryError
from drills.journal import utc_now
from drills.vault import b64, digest, unb64

Progress = Callable[[str], None]

ENABLED, DISABLED, PENDING_DELETION = "Enabled", "Disabled", "PendingDeletion"
#: A multi-Region primary scheduled for deletion while it still has replicas (AWS: it waits
#: for them to be deleted first). The runbook names only PendingDeletion; cancel-key-deletion
#: works in both states.
PENDING_REPLICA_DELETION = "PendingReplicaDeletion"
PENDING_STATES = (PENDING_DELETION, PENDING_REPLICA_DELETION)
#: Not a KMS key state: what we call a key that describe-key no longer knows.
DELETED = "Deleted"
#: The vault service's envelope format (drills/twin/worker.py writes version 1).
ENVELOPE_FORMAT = 1


def _quiet(_: str) -> None:
    pass


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "ClientError"))


# ------------------------------------------------------------------ diagnosis and recovery


@dataclass(frozen=True, slots=True)
class KeyDiagnosis:
    """What runbook 4.3's diagnosis found about a key."""

    key_arn: str
    key_id: str
    state: str  # KeyMetadata.KeyState, or DELETED when describe-key answers NotFoundException
    enabled: bool


def sealing_key_arn(clients: Clients, names: Names, region: str) -> str:
    """`aws ssm get-parameter --name /vettid/nitro/sealing-key-arn` (a String parameter)."""
    param = clients("ssm", region).get_parameter(Name=names.param_sealing_key)["Parameter"]
    return str(param["Value"])


def diagnose(clients: Clients, region: str, key_arn: str) -> KeyDiagnosis:
    """`aws kms describe-key --key-id $KEY_ID`, KEY_ID cut from the ARN as the runbook does."""
    key_id = key_arn.split("/")[1] if "/" in key_arn else key_arn
    try:
        meta = clients("kms", region).describe_key(KeyId=key_id)["KeyMetadata"]
    except ClientError as exc:
        if _code(exc) == "NotFoundException":
            return KeyDiagnosis(key_arn, key_id, DELETED, False)
        raise
    return KeyDiagnosis(key_arn, key_id, str(meta["KeyState"]), bool(meta["Enabled"]))


def diagnose_sealing_key(clients: Clients, names: Names, region: str) -> KeyDiagnosis:
    """Runbook 4.3's diagnosis of the sealing key named in SSM."""
    return diagnose(clients, region, sealing_key_arn(clients, names, region))


@dataclass(frozen=True, slots=True)
class RecoveryStep:
    """One runbook command as it ran, and the key state observed right after it."""

    command: str
    state_after: str
    utc: str
    seconds: float


@dataclass(frozen=True, slots=True)
class KeyRecovery:
    """Runbook 4.3 as carried out: the state found, then each command and its effect."""

    key_arn: str
    found: str
    steps: tuple[RecoveryStep, ...]

    @property
    def state(self) -> str:
        """The key state after the last command (the state found if none ran)."""
        return self.steps[-1].state_after if self.steps else self.found

    def state_after(self, action: str) -> str | None:
        """The state observed after the first command that runs `action` (e.g. 'enable-key')."""
        return next((s.state_after for s in self.steps if f" {action} " in f" {s.command} "),
                    None)


def recover_key(clients: Clients, region: str, key_arn: str,
                progress: Progress = _quiet) -> KeyRecovery:
    """Runbook 4.3 steps 1-2 on `key_arn`: whatever its state, bring it back to Enabled.

    Raises RecoveryError for a deleted key (step 3: nothing can be done) and for states the
    runbook has no step for.
    """
    found = diagnose(clients, region, key_arn)
    if found.state == DELETED:
        raise RecoveryError(
            f"KMS key {key_arn} no longer exists: it was deleted after its waiting period "
            "(runbook 4.3 step 3); data sealed under it is permanently unrecoverable: "
            "contact AWS Support now and begin the user notification process")
    kms, steps = clients("kms", region), []

    def run(action: str, call: Callable[..., Any]) -> str:
        progress(f"runbook 4.3: aws kms {action} --key-id {found.key_id}")
        started = time.monotonic()
        call(KeyId=found.key_id)
        state = diagnose(clients, region, key_arn).state
        steps.append(RecoveryStep(f"aws kms {action} --key-id {found.key_id}", state,
                                  utc_now(), time.monotonic() - started))
        return state

    state = found.state
    if state in PENDING_STATES:
        state = run("cancel-key-deletion", kms.cancel_key_deletion)
    if state == DISABLED:
        state = run("enable-key", kms.enable_key)
    if state != ENABLED:
        raise RecoveryError(
            f"KMS key {key_arn} is {state} after runbook 4.3 (found {found.state}); the "
            "runbook covers Disabled and PendingDeletion (PendingReplicaDeletion for a "
            "multi-Region primary) only: check the key in the KMS console and escalate (L3: "
            "data loss risk)")
    return KeyRecovery(key_arn, found.state, tuple(steps))


def recover_sealing_key(clients: Clients, names: Names, region: str,
                        progress: Progress = _quiet) -> KeyRecovery:
    """Runbook 4.3 on the sealing key named in SSM /vettid/nitro/sealing-key-arn."""
    return recover_key(clients, region, sealing_key_arn(clients, names, region), progress)


# ------------------------------------------------------------------ sealing, as the service does


class UnreadableVault(RecoveryError):
    """Sealed vault data could not be opened; the message says why (never the data)."""


def _context(vault_id: str) -> dict[str, str]:
    return {"vault_id": vault_id}


def seal(kms: Any, key_arn: str, vault_id: str, data: bytes) -> tuple[bytes, bytes]:
    """Envelope-encrypt `data` as the vault service does: (sealed body, encrypted data key)."""
    key = kms.generate_data_key(KeyId=key_arn, KeySpec="AES_256",
                                EncryptionContext=_context(vault_id))
    nonce = os.urandom(12)
    sealed = AESGCM(key["Plaintext"]).encrypt(nonce, data, vault_id.encode())
    body = json.dumps({"v": ENVELOPE_FORMAT, "edk": b64(key["CiphertextBlob"]),
                       "nonce": b64(nonce), "ct": b64(sealed)}).encode()
    return body, key["CiphertextBlob"]


def data_key(kms: Any, vault_id: str, edk: bytes) -> bytes:
    """Decrypt a vault's data key with KMS; UnreadableVault with KMS's error if it cannot."""
    try:
        return bytes(kms.decrypt(CiphertextBlob=edk,
                                 EncryptionContext=_context(vault_id))["Plaintext"])
    except ClientError as exc:
        raise UnreadableVault(f"KMS cannot decrypt the data key of vault {vault_id}: "
                              f"{_code(exc)}") from None


def unseal(kms: Any, vault_id: str, body: bytes) -> bytes:
    """Open a sealed vault body; UnreadableVault says why it cannot be opened."""
    try:
        envelope = json.loads(body)
        edk, nonce, ct = (unb64(envelope[k]) for k in ("edk", "nonce", "ct"))
    except (ValueError, KeyError, TypeError) as exc:
        raise UnreadableVault(f"vault {vault_id} is not a sealed envelope "
                              f"({type(exc).__name__})") from None
    try:
        return AESGCM(data_key(kms, vault_id, edk)).decrypt(nonce, ct, vault_id.encode())
    except InvalidTag:
        raise UnreadableVault(f"vault {vault_id} fails its AES-GCM integrity check "
                              "(ciphertext corrupted)") from None


# ------------------------------------------------------------------ runbook 4.3 step 3, proven


@dataclass(frozen=True, slots=True)
class SealedVault:
    """A scratch vault the drill sealed: where it is and what it held (hash only)."""

    vault_id: str
    object_key: str
    sha256: str
    version_id: str
    sealed_utc: str
    sealed_at: float  # monotonic
    edk: bytes = field(repr=False)  # the encrypted data key, kept to try KMS directly later


def scratch_object_key(prefix: str, vault_id: str) -> str:
    """Where a scratch vault lives: the service's layout under the drill's own prefix."""
    return f"{prefix}vaults/{vault_id}/data.enc"


def seal_scratch_vaults(clients: Clients, region: str, bucket: str, key_arn: str, prefix: str,
                        count: int) -> list[SealedVault]:
    """Seal `count` scratch vaults of random data under `key_arn`, stored under `prefix`."""
    kms, s3, out = clients("kms", region), clients("s3", region), []
    for i in range(count):
        vault_id = f"scratch-{i:03d}-{uuid.uuid4().hex[:8]}"
        data = os.urandom(64)
        body, edk = seal(kms, key_arn, vault_id, data)
        key = scratch_object_key(prefix, vault_id)
        put = s3.put_object(Bucket=bucket, Key=key, Body=body, ServerSideEncryption="aws:kms",
                            SSEKMSKeyId=key_arn)
        out.append(SealedVault(vault_id, key, digest(data), put.get("VersionId", ""),
                               utc_now(), time.monotonic(), edk))
    return out


@dataclass(frozen=True, slots=True)
class LossCheck:
    """Every way we tried to read one sealed vault back, and whether any worked."""

    vault: SealedVault
    s3_error: str  # what GetObject answered; "" when it returned the sealed body
    unseal_error: str  # what opening the body answered; "" when it opened
    kms_error: str  # what decrypting the data key kept from sealing time answered
    recovered: bool  # True when any path gave back content with the sealed hash


def check_recoverable(clients: Clients, region: str, bucket: str,
                      vaults: list[SealedVault]) -> list[LossCheck]:
    """Try to read each sealed vault back: through S3 and the envelope, and through KMS alone."""
    kms, s3, out = clients("kms", region), clients("s3", region), []
    for vault in vaults:
        s3_error = unseal_error = kms_error = ""
        recovered = False
        try:
            body = s3.get_object(Bucket=bucket, Key=vault.object_key)["Body"].read()
        except ClientError as exc:
            s3_error = _code(exc)
        else:
            try:
                recovered = digest(unseal(kms, vault.vault_id, body)) == vault.sha256
            except UnreadableVault as exc:
                unseal_error = str(exc)
        try:
            data_key(kms, vault.vault_id, vault.edk)  # a usable data key would be recovery
            recovered = True
        except UnreadableVault as exc:
            kms_error = str(exc)
        out.append(LossCheck(vault, s3_error, unseal_error, kms_error, recovered))
    return out


def remove_objects(clients: Clients, region: str, bucket: str, prefix: str) -> int:
    """Delete every version and delete marker under `prefix` (scratch data only)."""
    s3, removed = clients("s3", region), 0
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
            if not entry["Key"].startswith(prefix):
                continue  # never trust a listing to have honoured the prefix
            s3.delete_object(Bucket=bucket, Key=entry["Key"], VersionId=entry["VersionId"])
            removed += 1
    return removed
