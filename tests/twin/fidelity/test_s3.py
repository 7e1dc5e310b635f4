"""S3 SSE-KMS on the twin follows the KMS key's state, as AWS documents.

References: "Protecting data with server-side encryption with AWS KMS keys (SSE-KMS)",
https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html ("SSE-KMS
guide" below): S3 asks KMS for a data key on every write and to decrypt it on every read;
the S3 error codes `KMS.DisabledException` / `KMS.KMSInvalidStateException` are those the
RDS User Guide lists as `AmazonS3Exception` codes for S3 writes under an unusable key
("Failure messages for Amazon S3 export tasks for Amazon RDS"), and the
KMS key state table (https://docs.aws.amazon.com/kms/latest/developerguide/key-state.html)
says which states refuse cryptographic operations.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from drills.twin.aws import AwsEndpoint, fake_credentials

REGION = "us-east-1"
PROJECT_ROOT = Path(__file__).resolve().parents[3]


def _client(aws: AwsEndpoint, service: str) -> Any:
    creds = fake_credentials()
    return boto3.client(service, endpoint_url=aws.url, region_name=REGION,
                        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"])


@pytest.fixture(scope="module")
def s3(aws: AwsEndpoint) -> Any:
    return _client(aws, "s3")


@pytest.fixture(scope="module")
def kms(aws: AwsEndpoint) -> Any:
    return _client(aws, "kms")


@pytest.fixture
def key(kms: Any) -> str:
    return str(kms.create_key(Description="sse")["KeyMetadata"]["Arn"])


@pytest.fixture
def bucket(s3: Any, key: str) -> str:
    """A versioned bucket whose default encryption is SSE-KMS under `key` (like the vault's)."""
    name = f"fidelity-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                               "KMSMasterKeyID": key},
        "BucketKeyEnabled": True}]})
    return name


def error_of(call: Callable[[], object]) -> tuple[str, int, str]:
    """(error code, HTTP status, message) of a call that must fail."""
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"],
            response["Error"]["Message"])


def versions(s3: Any, bucket: str, key: str) -> list[str]:
    listed = s3.list_object_versions(Bucket=bucket, Prefix=key)
    return [v["VersionId"] for v in listed.get("Versions", [])]


def test_get_of_an_sse_kms_object_under_a_disabled_key_is_kms_disabled(
        s3: Any, kms: Any, bucket: str, key: str) -> None:
    """SSE-KMS guide: S3 decrypts the object's data key with KMS on every GET; with the key
    Disabled, GetObject fails with KMS.DisabledException (HTTP 400), naming the key."""
    s3.put_object(Bucket=bucket, Key="a", Body=b"sealed")
    kms.disable_key(KeyId=key)
    code, status, message = error_of(lambda: s3.get_object(Bucket=bucket, Key="a"))
    assert (code, status) == ("KMS.DisabledException", 400)
    assert message == f"{key} is disabled."


def test_get_works_again_once_the_key_is_enabled(s3: Any, kms: Any, bucket: str,
                                                 key: str) -> None:
    """Nothing is lost while the key is disabled: EnableKey makes the object readable again."""
    s3.put_object(Bucket=bucket, Key="a", Body=b"sealed")
    kms.disable_key(KeyId=key)
    error_of(lambda: s3.get_object(Bucket=bucket, Key="a"))
    kms.enable_key(KeyId=key)
    assert s3.get_object(Bucket=bucket, Key="a")["Body"].read() == b"sealed"


@pytest.mark.parametrize("explicit", [True, False], ids=["request-key", "bucket-default"])
def test_put_under_a_disabled_key_is_kms_disabled_and_stores_nothing(
        s3: Any, kms: Any, bucket: str, key: str, explicit: bool) -> None:
    """SSE-KMS guide: a write needs a data key from KMS, whether the request names the key or
    the bucket's default encryption does; under a Disabled key PutObject fails and no
    version is created."""
    kms.disable_key(KeyId=key)
    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key} if explicit else {}
    code, status, _ = error_of(lambda: s3.put_object(Bucket=bucket, Key="b", Body=b"x",
                                                     **extra))
    assert (code, status) == ("KMS.DisabledException", 400)
    assert versions(s3, bucket, "b") == []


def test_a_key_pending_deletion_is_kms_invalid_state_for_get_and_put(
        s3: Any, kms: Any, bucket: str, key: str) -> None:
    """Key state table: PendingDeletion refuses cryptographic operations with
    KMSInvalidStateException; S3 surfaces it as KMS.KMSInvalidStateException."""
    s3.put_object(Bucket=bucket, Key="a", Body=b"sealed")
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    for call in (lambda: s3.get_object(Bucket=bucket, Key="a"),
                 lambda: s3.put_object(Bucket=bucket, Key="a", Body=b"new")):
        code, status, message = error_of(call)
        assert (code, status) == ("KMS.KMSInvalidStateException", 400)
        assert message == f"{key} is pending deletion."


def test_an_object_whose_key_was_deleted_is_kms_not_found(
        aws: AwsEndpoint, s3: Any, kms: Any, bucket: str, key: str) -> None:
    """API_ScheduleKeyDeletion: after the waiting period the key and its material are gone,
    so data encrypted under it can no longer be read: GetObject fails with
    KMS.NotFoundException. (Twin-only control endpoint ends the window now.)"""
    s3.put_object(Bucket=bucket, Key="a", Body=b"sealed")
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    request = urllib.request.Request(
        f"{aws.url}/drills-twin/kms/expire-deletion", method="POST",
        data=json.dumps({"key_id": key}).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    code, status, message = error_of(lambda: s3.get_object(Bucket=bucket, Key="a"))
    assert (code, status) == ("KMS.NotFoundException", 400)
    assert message == f"Key '{key}' does not exist"


def test_metadata_and_delete_calls_need_no_key(s3: Any, kms: Any, bucket: str,
                                               key: str) -> None:
    """SSE-KMS guide: only object data is encrypted; HeadObject, ListObjectVersions and
    DeleteObject (markers and versions) do not call KMS and work under a Disabled key."""
    version = s3.put_object(Bucket=bucket, Key="a", Body=b"sealed")["VersionId"]
    kms.disable_key(KeyId=key)
    assert s3.head_object(Bucket=bucket, Key="a")["SSEKMSKeyId"] == key
    assert versions(s3, bucket, "a") == [version]
    marker = s3.delete_object(Bucket=bucket, Key="a")["VersionId"]
    s3.delete_object(Bucket=bucket, Key="a", VersionId=marker)
    s3.delete_object(Bucket=bucket, Key="a", VersionId=version)
    assert versions(s3, bucket, "a") == []


def test_copy_needs_the_source_key_and_the_destination_key(
        s3: Any, kms: Any, bucket: str, key: str) -> None:
    """API_CopyObject / SSE-KMS guide: a copy decrypts the source and encrypts the copy, so
    a Disabled key on either side fails the copy with KMS.DisabledException."""
    version = s3.put_object(Bucket=bucket, Key="a", Body=b"sealed")["VersionId"]
    source = {"Bucket": bucket, "Key": "a", "VersionId": version}
    other = kms.create_key()["KeyMetadata"]["Arn"]
    kms.disable_key(KeyId=other)
    code, _, message = error_of(lambda: s3.copy_object(
        Bucket=bucket, Key="b", CopySource=source, ServerSideEncryption="aws:kms",
        SSEKMSKeyId=other))
    assert (code, message) == ("KMS.DisabledException", f"{other} is disabled.")
    kms.disable_key(KeyId=key)
    code, _, message = error_of(lambda: s3.copy_object(
        Bucket=bucket, Key="a", CopySource=source))
    assert (code, message) == ("KMS.DisabledException", f"{key} is disabled.")
    kms.enable_key(KeyId=key)
    s3.copy_object(Bucket=bucket, Key="a", CopySource=source)
    assert s3.get_object(Bucket=bucket, Key="a")["Body"].read() == b"sealed"


def test_objects_not_under_kms_ignore_key_states(s3: Any, kms: Any, key: str) -> None:
    """SSE-S3 (AES256) and unencrypted objects involve no KMS key: disabling one changes
    nothing for them, nor for SSE-KMS under the AWS managed aws/s3 key."""
    name = f"plain-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    kms.disable_key(KeyId=key)
    s3.put_object(Bucket=name, Key="p", Body=b"p")
    s3.put_object(Bucket=name, Key="s", Body=b"s", ServerSideEncryption="AES256")
    s3.put_object(Bucket=name, Key="m", Body=b"m", ServerSideEncryption="aws:kms")
    assert [s3.get_object(Bucket=name, Key=k)["Body"].read() for k in "psm"] == [
        b"p", b"s", b"m"]


def test_install_is_idempotent() -> None:
    """install() twice patches moto once: the second call changes nothing."""
    script = """
from moto.s3.models import S3Backend
from moto.s3.responses import S3Response
from drills.twin import fidelity
from drills.twin.fidelity import s3
fidelity.install()
patched = (S3Backend.put_object, S3Backend.copy_object, S3Response.get_object,
           dict(s3._ORIGINAL))
fidelity.install()
assert (S3Backend.put_object, S3Backend.copy_object, S3Response.get_object,
        s3._ORIGINAL) == patched
assert all(original.__module__.startswith("moto.") for original in s3._ORIGINAL.values())
"""
    subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, check=True, timeout=60)
