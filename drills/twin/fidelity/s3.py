"""S3 SSE-KMS follows the KMS key's state, as AWS documents; moto 5.2 ignores the key.

An SSE-KMS object is stored under a data key that S3 gets from KMS when it writes the
object and decrypts through KMS each time it reads it ("Protecting data with server-side
encryption with AWS KMS keys", S3 User Guide,
https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html). So when
that KMS key is not usable, S3 fails the request with the KMS error, prefixed `KMS.`
(e.g. `KMS.DisabledException`, `KMS.KMSInvalidStateException`, `KMS.NotFoundException`;
the first two are the `AmazonS3Exception` codes the RDS User Guide lists in "Failure
messages for Amazon S3 export tasks for Amazon RDS" for a write under an unusable key):

- PutObject (explicit `aws:kms`, or the bucket's default encryption) needs the key to
  generate a data key;
- GetObject of an SSE-KMS object needs it to decrypt the object's data key;
- CopyObject needs both: decrypt the source, encrypt the destination. Multipart uploads
  are completed through the same write path and are checked there.

HeadObject, ListObjectVersions and DeleteObject do not touch object data, need no KMS
call, and keep working, which is what lets an operator diagnose and clean up.

Keys this twin never knew (and AWS managed `aws/s3`) are left alone, as moto leaves them.
One simplification, on the side of showing the failure: with S3 Bucket Keys enabled, AWS
may keep using a bucket-level key it obtained earlier for a short while after the KMS key
changes state; the twin applies the new state to the very next request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.s3.exceptions import S3ClientError
from moto.s3.models import FakeKey, S3Backend
from moto.s3.responses import S3Response

from drills.twin.fidelity import kms as kms_fidelity

__all__ = ["ROUTES", "KmsKeyUnusable", "install"]

_MARK = "_drills_twin_fidelity_s3"
_ORIGINAL: dict[str, Callable[..., Any]] = {}


class KmsKeyUnusable(S3ClientError):
    """S3's answer when the object's KMS key cannot be used: `KMS.<KMS error>`, HTTP 400."""

    def __init__(self, problem: kms_fidelity.KeyProblem) -> None:
        super().__init__(f"KMS.{problem.code}", problem.message)


def _require_usable(account_id: str, region: str, encryption: str | None,
                    kms_key_id: str | None) -> None:
    if encryption not in ("aws:kms", "aws:kms:dsse"):
        return  # SSE-S3 (AES256) or no encryption: KMS is not involved
    problem = kms_fidelity.key_problem(account_id, region, kms_key_id)
    if problem is not None:
        raise KmsKeyUnusable(problem)


def _effective_encryption(backend: S3Backend, bucket_name: str, encryption: str | None,
                          kms_key_id: str | None) -> tuple[str | None, str | None, str]:
    """(encryption, key, bucket region) a write will use: the request's, else the bucket's."""
    bucket = backend.get_bucket(bucket_name)
    if bucket.encryption:
        default = bucket.encryption["Rule"]["ApplyServerSideEncryptionByDefault"]
        kms_key_id = kms_key_id or default.get("KMSMasterKeyID")
        encryption = encryption or default["SSEAlgorithm"]
    return encryption, kms_key_id, bucket.region_name


def _require_readable(backend: S3Backend, key: FakeKey) -> None:
    region = backend.get_bucket(str(key.bucket_name)).region_name
    _require_usable(backend.account_id, region, key.encryption, key.kms_key_id)


# ------------------------------------------------------------------ patches


def _put_object(self: S3Backend, bucket_name: str, key_name: str, value: bytes,
                *args: Any, **kwargs: Any) -> FakeKey:
    # Same signature as S3Backend.put_object; moto passes encryption and key by keyword.
    encryption, kms_key_id, region = _effective_encryption(
        self, bucket_name, kwargs.get("encryption"), kwargs.get("kms_key_id"))
    _require_usable(self.account_id, region, encryption, kms_key_id)
    return _ORIGINAL["put_object"](self, bucket_name, key_name, value, *args, **kwargs)


def _copy_object(self: S3Backend, src_key: FakeKey, *args: Any, **kwargs: Any) -> None:
    _require_readable(self, src_key)  # the destination is checked by put_object
    _ORIGINAL["copy_object"](self, src_key, *args, **kwargs)


def _get_object(self: S3Response) -> Any:
    key, _ = self._get_key()  # raises NoSuchKey / NoSuchVersion exactly as moto does
    _require_readable(self.backend, key)
    return _ORIGINAL["get_object"](self)


def install() -> None:
    """Patch moto's S3 so SSE-KMS reads and writes need a usable KMS key (idempotent)."""
    if getattr(S3Backend, _MARK, False):
        return
    for owner, name, patch in ((S3Backend, "put_object", _put_object),
                               (S3Backend, "copy_object", _copy_object),
                               (S3Response, "get_object", _get_object)):
        _ORIGINAL[name] = getattr(owner, name)
        setattr(owner, name, patch)
    setattr(S3Backend, _MARK, True)


#: No twin-only control endpoints for S3.
ROUTES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}
