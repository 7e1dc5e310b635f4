"""KMS key-state rules that moto 5.2 lacks, patched into the moto server process.

What AWS documents, and this module makes moto do:

- Key state table ("Key states of AWS KMS keys", KMS Developer Guide,
  https://docs.aws.amazon.com/kms/latest/developerguide/key-state.html): Encrypt,
  Decrypt, ReEncrypt, GenerateDataKey and GenerateDataKeyWithoutPlaintext fail with
  `DisabledException` on a Disabled key and with `KMSInvalidStateException` on a
  PendingDeletion key; EnableKey, DisableKey and ScheduleKeyDeletion fail with
  `KMSInvalidStateException` on a PendingDeletion key. For Decrypt the key is the one
  the ciphertext names (API_Decrypt.html).
- ScheduleKeyDeletion (KMS API Reference, API_ScheduleKeyDeletion.html):
  PendingWindowInDays "must be between 7 and 30, inclusive"; "After the waiting period
  ends, KMS deletes the KMS key, its key material, and all KMS data associated with it,
  including all aliases that refer to it."
- CancelKeyDeletion (API_CancelKeyDeletion.html): "When this operation succeeds, the
  key state of the KMS key is Disabled"; it needs a PendingDeletion key (key state table).

moto 5.2.1 allows all crypto calls in any state, silently ignores a window outside
7..30, lets EnableKey revive a PendingDeletion key, cancels deletion of keys that were
never scheduled (disabling them), and never deletes anything.

Multi-Region keys ("Multi-Region keys in AWS KMS" and "How multi-Region keys work", KMS
Developer Guide, https://docs.aws.amazon.com/kms/latest/developerguide/multi-region-keys-overview.html
and mrk-how-it-works.html; API_ReplicateKey.html, API_KeyMetadata.html,
API_ScheduleKeyDeletion.html):

- A primary and its replicas "have the same key ID, key material, and other metadata, you
  can use them interchangeably to encrypt data in one AWS Region and decrypt it in a
  different AWS Region without re-encrypting the data or making a cross-Region call".
  moto 5.2.1 writes the key ID into a 36-byte ciphertext header and its `mrk-` IDs have 40
  characters, so every `mrk-` ciphertext failed to decrypt, even in its own region. The
  twin writes the whole ID (the header of every other key is moto's, byte for byte).
- Key policy, grants, aliases and the key state are independent properties of each key of
  the set. moto's ReplicateKey makes a shallow copy: the replica shared the primary's
  aliases, grants and MultiRegionConfiguration (so describing the replica turned the
  primary into `MultiRegionKeyType: REPLICA`). Each key now has its own, and
  MultiRegionConfiguration is computed from the keys that exist: `PrimaryKey`, and
  `ReplicaKeys` listing every replica (a replica included, as AWS documents).
- ReplicateKey into a region that already holds a replica is `AlreadyExistsException`; a
  key pending deletion (or replica deletion) cannot be replicated (key state table).
- ScheduleKeyDeletion of a primary that still has replicas: "its key state changes to
  PendingReplicaDeletion and it cannot be replicated or used in cryptographic operations";
  the answer has no DeletionDate, and DescribeKey shows `PendingDeletionWindowInDays`. "When
  the last replica key in the multi-Region key is deleted, the KeyState of the scheduled
  primary key changes from PendingReplicaDeletion to PendingDeletion and the deletion date
  appears". CancelKeyDeletion works in both states and leaves the key Disabled.
- Twin wording: a key pending replica deletion is refused with KMSInvalidStateException
  "<key ARN> is pending replica deletion." (AWS documents the code, not the message).

Twin-only control endpoint (no such thing in AWS; see `ROUTES`):

    POST /drills-twin/kms/expire-deletion   {"key_id": "<id or ARN>", "region": "<opt>"}

ends the waiting period of a PendingDeletion key now, so "the key is gone" is testable
without waiting 7 days. From then on the key is deleted: DescribeKey answers
`NotFoundException`, ListKeys omits it, and crypto calls with it fail.

Other services' fidelity modules (S3 SSE-KMS, SSM SecureString) ask `key_problem()` whether
a key they are about to use is usable, so every service sees the same key states.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.core.utils import unix_time, utcnow
from moto.kms import utils as kms_utils
from moto.kms.exceptions import AlreadyExistsException, NotFoundException, ValidationException
from moto.kms.models import Key, KmsBackend, kms_backends
from moto.kms.responses import KmsResponse

__all__ = [
    "ROUTES",
    "DisabledException",
    "KMSInvalidStateException",
    "KeyProblem",
    "install",
    "key_problem",
]

_MARK = "_drills_twin_fidelity"
_ORIGINAL: dict[str, Callable[..., Any]] = {}
#: (account, region, key ID) -> ARN of every key deleted after its waiting period, so
#: other services can answer "does not exist" for data that still names it.
_DELETED: dict[tuple[str, str, str], str] = {}


class DisabledException(JsonRESTError):
    """AWS: "The request was rejected because the specified KMS key is not enabled." """

    code = 400

    def __init__(self, key: Key) -> None:
        super().__init__("DisabledException", f"{key.arn} is disabled.")


class KMSInvalidStateException(JsonRESTError):
    """AWS: the key state of the KMS key is not compatible with the operation."""

    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("KMSInvalidStateException", message)


PENDING_REPLICA_DELETION = "PendingReplicaDeletion"
#: Key states in which a key waits to be deleted and refuses every use but cancelling.
_PENDING = ("PendingDeletion", PENDING_REPLICA_DELETION)


def _pending_deletion(key: Key) -> KMSInvalidStateException:
    if key.key_state == PENDING_REPLICA_DELETION:
        return KMSInvalidStateException(f"{key.arn} is pending replica deletion.")
    return KMSInvalidStateException(f"{key.arn} is pending deletion.")


# ------------------------------------------------------------------ key state lookups


def _find(backend: KmsBackend, key_id: str | None) -> Key | None:
    """The key for any key ID, ARN or alias, or None (moto then raises its own error)."""
    if not key_id:
        return None
    try:
        return backend.keys.get(backend.any_id_to_key_id(key_id))
    except AttributeError:  # moto's any_id_to_key_id on an unknown alias
        return None


def _require_enabled(key: Key | None) -> None:
    """Cryptographic operations need an Enabled key (key state table)."""
    if key is None:
        return
    if key.key_state == "Disabled":
        raise DisabledException(key)
    if key.key_state in _PENDING:
        raise _pending_deletion(key)


def _ciphertext_key(backend: KmsBackend, ciphertext_blob: bytes) -> Key | None:
    # moto's own blob format names the key in its header; a malformed blob is left
    # to moto, which answers InvalidCiphertextException.
    try:
        key_id = _deserialize_ciphertext_blob(ciphertext_blob).key_id
    except Exception:
        return None
    return backend.keys.get(key_id)


def _forget_deleted(backend: KmsBackend) -> None:
    """Delete every key of the account whose deletion date has passed, as KMS does after
    the window; then start the window of primaries whose last replica is gone."""
    now = utcnow()
    regions = kms_backends[backend.account_id]
    gone = False
    for region_backend in list(regions.values()):
        for key in list(region_backend.keys.values()):
            if (key.key_state == "PendingDeletion" and key.deletion_date
                    and key.deletion_date <= now):
                _DELETED[(region_backend.account_id, region_backend.region_name, key.id)] = (
                    key.arn)
                region_backend.delete_key(key.id)  # also drops its aliases, grants and tags
                gone = True
    if gone:
        for region_backend in list(regions.values()):
            for key in list(region_backend.keys.values()):
                if key.key_state == PENDING_REPLICA_DELETION and not _replica_regions(key):
                    key.key_state = "PendingDeletion"
                    key.deletion_date = now + timedelta(days=_window(key))


# ------------------------------------------------------------------ multi-Region keys
# moto writes the key ID into a fixed 36-byte header ("mrk-" IDs have 40 characters). The
# twin writes the whole ID of an `mrk-` key; every other header stays moto's byte for byte.

_MRK = "mrk-"
_MRK_ID_LEN = 40  # moto's "mrk-" + a UUID with hyphens


def _serialize_ciphertext_blob(ciphertext: kms_utils.Ciphertext) -> bytes:
    key_id = ciphertext.key_id.encode("utf-8")
    width = _MRK_ID_LEN if ciphertext.key_id.startswith(_MRK) else kms_utils.KEY_ID_LEN
    header = struct.pack(f">{width}s{kms_utils.IV_LEN}s{kms_utils.TAG_LEN}s", key_id,
                         ciphertext.iv, ciphertext.tag)
    return header + ciphertext.ciphertext


def _deserialize_ciphertext_blob(ciphertext_blob: bytes) -> kms_utils.Ciphertext:
    width = _MRK_ID_LEN if ciphertext_blob.startswith(_MRK.encode()) else kms_utils.KEY_ID_LEN
    end = width + kms_utils.IV_LEN + kms_utils.TAG_LEN
    key_id, iv, tag = struct.unpack(f">{width}s{kms_utils.IV_LEN}s{kms_utils.TAG_LEN}s",
                                    ciphertext_blob[:end])
    return kms_utils.Ciphertext(key_id=key_id.decode("utf-8"), iv=iv,
                                ciphertext=ciphertext_blob[end:], tag=tag)


def _primary_region(key: Key) -> str:
    return str(key.multi_region_configuration["PrimaryKey"]["Region"])


def _related(key: Key) -> dict[str, Key]:
    """Every key of `key`'s multi-Region set that exists now, by region."""
    return {region: backend.keys[key.id]
            for region, backend in list(kms_backends[key.account_id].items())
            if key.id in backend.keys}


def _replica_regions(key: Key) -> list[str]:
    primary = _primary_region(key)
    return sorted(region for region in _related(key) if region != primary)


def _window(key: Key) -> int:
    return int(getattr(key, "_drills_pending_window", 30))


def _multi_region_configuration(key: Key) -> dict[str, Any]:
    """MultiRegionConfiguration as DescribeKey shows it, from the keys that exist now."""
    primary = _primary_region(key)
    related = _related(key)
    primary_arn = key.multi_region_configuration["PrimaryKey"]["Arn"]
    return {
        "MultiRegionKeyType": "PRIMARY" if key.region == primary else "REPLICA",
        "PrimaryKey": {"Arn": primary_arn, "Region": primary},
        "ReplicaKeys": [{"Arn": related[region].arn, "Region": region}
                        for region in sorted(related) if region != primary],
    }


# ------------------------------------------------------------------ patched backend methods
# Same signatures as moto's KmsBackend methods. GenerateDataKey(WithoutPlaintext) and
# ReEncrypt reach `encrypt`/`decrypt` through moto's own `self.encrypt`/`self.decrypt`,
# so these two checks cover all five cryptographic operations (each has a test).


def _encrypt(
    self: KmsBackend, key_id: str, plaintext: bytes, encryption_context: dict[str, str]
) -> tuple[bytes, str]:
    _forget_deleted(self)
    _require_enabled(_find(self, key_id))
    return _ORIGINAL["encrypt"](self, key_id, plaintext, encryption_context)


def _decrypt(
    self: KmsBackend,
    ciphertext_blob: bytes,
    encryption_context: dict[str, str],
    key_id: str | None = None,
) -> tuple[bytes, str]:
    _forget_deleted(self)
    _require_enabled(_ciphertext_key(self, ciphertext_blob))
    return _ORIGINAL["decrypt"](self, ciphertext_blob, encryption_context, key_id)


def _enable_key(self: KmsBackend, key_id: str) -> None:
    key = _find(self, key_id)
    if key is not None and key.key_state in _PENDING:
        raise _pending_deletion(key)
    # moto indexes `keys` with the raw argument: pass the bare ID so an ARN works too.
    _ORIGINAL["enable_key"](self, key.id if key else key_id)


def _disable_key(self: KmsBackend, key_id: str) -> None:
    key = _find(self, key_id)
    if key is not None and key.key_state in _PENDING:
        raise _pending_deletion(key)
    _ORIGINAL["disable_key"](self, key.id if key else key_id)


def _schedule_key_deletion(self: KmsBackend, key_id: str,
                           pending_window_in_days: int) -> float | None:
    if pending_window_in_days < 7:
        bound = "greater than or equal to 7"
    elif pending_window_in_days > 30:
        bound = "less than or equal to 30"
    else:
        bound = ""
    if bound:
        raise ValidationException(
            f"1 validation error detected: Value '{pending_window_in_days}' at "
            f"'pendingWindowInDays' failed to satisfy constraint: Member must have value {bound}"
        )
    key = _find(self, key_id)
    if key is not None and key.key_state in _PENDING:
        raise _pending_deletion(key)
    if key is not None and key.multi_region and key.region == _primary_region(key) \
            and _replica_regions(key):
        # The primary's waiting period starts when its last replica is deleted.
        key.enabled = False
        key.key_state = PENDING_REPLICA_DELETION
        key.deletion_date = None
        key._drills_pending_window = pending_window_in_days  # type: ignore[attr-defined]
        return None
    deletion: float = _ORIGINAL["schedule_key_deletion"](
        self, key.id if key else key_id, pending_window_in_days)
    return deletion


def _cancel_key_deletion(self: KmsBackend, key_id: str) -> None:
    key = _find(self, key_id)
    if key is not None and key.key_state not in _PENDING:
        raise KMSInvalidStateException(f"{key.arn} is not pending deletion.")
    # moto already leaves the key Disabled (enabled=False since scheduling), as AWS does.
    _ORIGINAL["cancel_key_deletion"](self, key.id if key else key_id)


def _replicate_key(self: KmsBackend, key_id: str, replica_region: str) -> Key:
    key = _find(self, key_id)
    if key is None:
        raise NotFoundException(f"Key '{key_id}' does not exist")
    if key.key_state in _PENDING:
        raise _pending_deletion(key)
    if key.multi_region and replica_region in _related(key):
        raise AlreadyExistsException(
            f"Replica key {key.id} already exists in region {replica_region}.")
    replica: Key = _ORIGINAL["replicate_key"](self, key.id, replica_region)
    # moto's copy() shares the primary's dicts; policy, grants, aliases and the
    # configuration belong to each key (the key material is shared, as in AWS).
    replica.aliases = {}
    replica.grants = {}
    if key.multi_region:
        key.multi_region_configuration = _multi_region_configuration(key)
        replica.multi_region_configuration = _multi_region_configuration(replica)
    return replica


def _key_to_dict(self: Key) -> dict[str, Any]:
    if self.multi_region:
        self.multi_region_configuration = _multi_region_configuration(self)
    described: dict[str, Any] = _ORIGINAL["key_to_dict"](self)
    if self.key_state == PENDING_REPLICA_DELETION:
        described["KeyMetadata"]["PendingDeletionWindowInDays"] = _window(self)
    return described


def _schedule_key_deletion_response(self: KmsResponse) -> str:
    # AWS's answer (API_ScheduleKeyDeletion.html): the key ARN, its new state and the
    # waiting period; DeletionDate only once the waiting period has begun.
    key_id = self._get_param("KeyId")
    days = self._get_param("PendingWindowInDays")
    days = 30 if days is None else days
    self._validate_cmk_id(key_id)
    deletion = self.kms_backend.schedule_key_deletion(key_id, days)
    key = self.kms_backend.keys[self.kms_backend.get_key_id(key_id)]
    answer: dict[str, Any] = {"KeyId": key.arn, "KeyState": key.key_state,
                              "PendingWindowInDays": days}
    if deletion is not None:
        answer["DeletionDate"] = deletion
    return json.dumps(answer)


_PATCHES: dict[str, Callable[..., Any]] = {
    "encrypt": _encrypt,
    "decrypt": _decrypt,
    "enable_key": _enable_key,
    "disable_key": _disable_key,
    "schedule_key_deletion": _schedule_key_deletion,
    "cancel_key_deletion": _cancel_key_deletion,
    "replicate_key": _replicate_key,
}


def _kms_backend(self: KmsResponse) -> KmsBackend:
    # Every KMS API call reaches the backend through this property, also DescribeKey and
    # ListKeys, which check `backend.keys` directly: forgetting deleted keys here makes
    # them vanish from every operation at once.
    backend: KmsBackend = _ORIGINAL["kms_backend"](self)
    _forget_deleted(backend)
    return backend


def install() -> None:
    """Patch moto's KMS backend with the key-state rules above (idempotent)."""
    if getattr(KmsBackend, _MARK, False):
        return
    for name, patch in _PATCHES.items():
        _ORIGINAL[name] = getattr(KmsBackend, name)
        setattr(KmsBackend, name, patch)
    _ORIGINAL["kms_backend"] = KmsResponse.kms_backend.fget  # type: ignore[attr-defined]
    KmsResponse.kms_backend = property(_kms_backend)  # type: ignore[assignment,method-assign]
    _ORIGINAL["schedule_key_deletion_response"] = KmsResponse.schedule_key_deletion
    KmsResponse.schedule_key_deletion = _schedule_key_deletion_response  # type: ignore[method-assign]
    _ORIGINAL["key_to_dict"] = Key.to_dict
    Key.to_dict = _key_to_dict  # type: ignore[method-assign]
    # moto.kms.utils.encrypt/decrypt look these up at call time.
    for name, patch in (("serialize_ciphertext_blob", _serialize_ciphertext_blob),
                        ("deserialize_ciphertext_blob", _deserialize_ciphertext_blob)):
        _ORIGINAL[name] = getattr(kms_utils, f"_{name}")
        setattr(kms_utils, f"_{name}", patch)
    setattr(KmsBackend, _MARK, True)


# ------------------------------------------------------------------ for other services


@dataclass(frozen=True, slots=True)
class KeyProblem:
    """Why a KMS key cannot be used now: the KMS error `code` and its AWS `message`."""

    code: str  # DisabledException | KMSInvalidStateException | NotFoundException
    message: str


def _aws_managed(key_ref: str) -> bool:
    # "alias/aws/s3", "alias/aws/ssm": AWS managed keys are always enabled and cannot be
    # disabled or deleted (key state table); moto does not even create them.
    return key_ref.split(":")[-1].startswith("alias/aws/")


def key_problem(account_id: str, region: str | None, key_ref: str | None) -> KeyProblem | None:
    """Why the key `key_ref` (ID, ARN or alias) cannot encrypt or decrypt now, or None.

    None also for a key this twin never knew (moto lets services name any key; we only
    judge keys whose state we know). `region` None searches every region of the account.
    """
    if not key_ref or _aws_managed(key_ref):
        return None
    if key_ref.startswith("arn:"):
        region, account_id = key_ref.split(":")[3:5]
    regions = kms_backends[account_id]
    names = [region] if region else list(regions.keys())
    for number, name in enumerate(names):
        backend = regions[name]
        if number == 0:
            _forget_deleted(backend)  # in every region of the account
        key = _find(backend, key_ref)
        if key is None:
            raw_id = key_ref.rsplit("/", 1)[-1] if ":key/" in key_ref else key_ref
            arn = _DELETED.get((account_id, name, raw_id))
            if arn:
                return KeyProblem("NotFoundException", f"Key '{arn}' does not exist")
            continue
        if key.key_state == "Disabled":
            return KeyProblem("DisabledException", f"{key.arn} is disabled.")
        if key.key_state in _PENDING:
            return KeyProblem("KMSInvalidStateException", _pending_deletion(key).message)
        return None
    return None


# ------------------------------------------------------------------ twin-only control


def expire_deletion(request: dict[str, Any]) -> dict[str, Any]:
    """End the waiting period of a PendingDeletion key now: the key is deleted.

    Twin-only. Body: `{"key_id": <key ID or key ARN>, "region": <optional>}`; the
    region is needed only when the same key ID exists in several regions.
    """
    key_id = request.get("key_id")
    if not isinstance(key_id, str) or not key_id:
        raise ValidationException('"key_id" (a key ID or key ARN) is required')
    account, region = None, request.get("region")
    if key_id.startswith("arn:"):
        region, account = key_id.split(":")[3:5]
    raw_id = KmsBackend.get_key_id(key_id)
    found = [
        (backend, backend.keys[raw_id])
        for account_id, regions in list(kms_backends.items())
        if account in (None, account_id)
        for region_name, backend in list(regions.items())
        if region in (None, region_name) and raw_id in backend.keys
    ]
    if not found:
        raise NotFoundException(f"Key '{key_id}' does not exist")
    if len(found) > 1:
        raise ValidationException(
            f'key {key_id} exists in several regions; pass the key ARN or a "region"'
        )
    backend, key = found[0]
    if key.key_state != "PendingDeletion":
        raise KMSInvalidStateException(
            f"{key.arn} is not pending deletion; schedule its deletion first."
        )
    key.deletion_date = utcnow()
    _forget_deleted(backend)
    return {"KeyId": key.arn, "DeletionDate": unix_time(key.deletion_date)}


#: Twin-only control endpoints, served at POST /drills-twin/<name>.
ROUTES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "kms/expire-deletion": expire_deletion,
}
