"""KMS key-state rules on the twin, each checked against what AWS documents.

References: the key state table, https://docs.aws.amazon.com/kms/latest/developerguide/key-state.html
("key state table" below), the KMS API Reference pages named in each test, and for
multi-Region keys "Multi-Region keys in AWS KMS" and "How multi-Region keys work"
(https://docs.aws.amazon.com/kms/latest/developerguide/multi-region-keys-overview.html,
.../mrk-how-it-works.html; "MRK guide" below).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core.utils import utcnow
from moto.kms.models import kms_backends

from drills.twin.aws import AwsEndpoint, fake_credentials
from drills.twin.control import request as control_request
from drills.twin.fidelity.kms import key_problem

REGION = "us-east-1"
DR_REGION = "us-west-2"
PROJECT_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def kms(aws: AwsEndpoint) -> Any:
    creds = fake_credentials()
    return boto3.client(
        "kms",
        endpoint_url=aws.url,
        region_name=REGION,
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="module")
def kms_dr(aws: AwsEndpoint) -> Any:
    """The KMS client of the DR region, us-west-2."""
    creds = fake_credentials()
    return boto3.client(
        "kms",
        endpoint_url=aws.url,
        region_name=DR_REGION,
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture
def mrk(kms: Any) -> str:
    """A multi-Region primary key in us-east-1, replicated to us-west-2."""
    key_id = str(kms.create_key(Description="sealing", MultiRegion=True)["KeyMetadata"]["KeyId"])
    kms.replicate_key(KeyId=key_id, ReplicaRegion=DR_REGION)
    return key_id


@pytest.fixture
def key(kms: Any) -> str:
    return str(kms.create_key(Description="fidelity")["KeyMetadata"]["KeyId"])


def error_of(call: Callable[[], object]) -> tuple[str, int, str]:
    """(error code, HTTP status, message) of a call that must fail."""
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def state_of(kms: Any, key_id: str) -> str:
    return str(kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"])


# The five cryptographic operations of the key state table, each as a call that uses
# `key` for its KMS key. Decrypt and ReEncrypt name no key: the ciphertext does.
CryptoCall = Callable[[Any, str, bytes], object]
CRYPTO_CALLS: dict[str, CryptoCall] = {
    "Encrypt": lambda kms, key, blob: kms.encrypt(KeyId=key, Plaintext=b"p"),
    "Decrypt": lambda kms, key, blob: kms.decrypt(CiphertextBlob=blob),
    "ReEncrypt": lambda kms, key, blob: kms.re_encrypt(
        CiphertextBlob=blob, DestinationKeyId=kms.create_key()["KeyMetadata"]["KeyId"]
    ),
    "GenerateDataKey": lambda kms, key, blob: kms.generate_data_key(KeyId=key, KeySpec="AES_256"),
    "GenerateDataKeyWithoutPlaintext": lambda kms, key, blob: (
        kms.generate_data_key_without_plaintext(KeyId=key, KeySpec="AES_256")
    ),
}


@pytest.mark.parametrize("operation", CRYPTO_CALLS)
def test_crypto_on_a_disabled_key_is_disabled_exception(kms: Any, key: str, operation: str) -> None:
    """AWS (key state table; API_Encrypt/Decrypt/ReEncrypt/GenerateDataKey*.html Errors):
    a cryptographic operation on a Disabled key fails with DisabledException, HTTP 400."""
    blob = kms.encrypt(KeyId=key, Plaintext=b"p")["CiphertextBlob"]
    kms.disable_key(KeyId=key)
    code, status, message = error_of(lambda: CRYPTO_CALLS[operation](kms, key, blob))
    assert (code, status) == ("DisabledException", 400)
    assert message.endswith(f"key/{key} is disabled.")


@pytest.mark.parametrize("operation", CRYPTO_CALLS)
def test_crypto_on_a_key_pending_deletion_is_invalid_state(
    kms: Any, key: str, operation: str
) -> None:
    """AWS (key state table): a cryptographic operation on a PendingDeletion key fails
    with KMSInvalidStateException "<key ARN> is pending deletion.", HTTP 400."""
    blob = kms.encrypt(KeyId=key, Plaintext=b"p")["CiphertextBlob"]
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    code, status, message = error_of(lambda: CRYPTO_CALLS[operation](kms, key, blob))
    assert (code, status) == ("KMSInvalidStateException", 400)
    assert message.endswith(f"key/{key} is pending deletion.")


def test_reencrypt_to_a_disabled_destination_is_disabled_exception(kms: Any, key: str) -> None:
    """AWS (API_ReEncrypt.html, key state table): ReEncrypt needs both keys enabled;
    a Disabled destination key fails with DisabledException."""
    blob = kms.encrypt(KeyId=key, Plaintext=b"p")["CiphertextBlob"]
    destination = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=destination)
    code, _, message = error_of(
        lambda: kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=destination)
    )
    assert code == "DisabledException"
    assert destination in message


def test_crypto_works_again_once_the_key_is_enabled(kms: Any, key: str) -> None:
    """AWS (API_EnableKey.html): EnableKey on a Disabled key makes it usable again."""
    kms.disable_key(KeyId=key)
    kms.enable_key(KeyId=key)
    blob = kms.encrypt(KeyId=key, Plaintext=b"p")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"p"


@pytest.mark.parametrize("days", [1, 6, 31, 365])
def test_deletion_window_outside_7_to_30_days_is_validation_exception(
    kms: Any, key: str, days: int
) -> None:
    """AWS (API_ScheduleKeyDeletion.html): PendingWindowInDays "must be between 7 and
    30, inclusive"; anything else is a ValidationException and the key is untouched."""
    code, status, _ = error_of(
        lambda: kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=days)
    )
    assert (code, status) == ("ValidationException", 400)
    assert state_of(kms, key) == "Enabled"


@pytest.mark.parametrize("days", [7, 30])
def test_deletion_window_of_7_or_30_days_is_accepted(kms: Any, key: str, days: int) -> None:
    """AWS (API_ScheduleKeyDeletion.html): 7 and 30 are valid windows; the key becomes
    PendingDeletion with a DeletionDate."""
    response = kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=days)
    assert response["DeletionDate"] is not None
    assert state_of(kms, key) == "PendingDeletion"


@pytest.mark.parametrize("operation", ["enable_key", "disable_key"])
def test_enable_or_disable_a_key_pending_deletion_is_invalid_state(
    kms: Any, key: str, operation: str
) -> None:
    """AWS (key state table, EnableKey/DisableKey rows): refused on a PendingDeletion
    key with KMSInvalidStateException; the key stays PendingDeletion."""
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    code, status, _ = error_of(lambda: getattr(kms, operation)(KeyId=key))
    assert (code, status) == ("KMSInvalidStateException", 400)
    assert state_of(kms, key) == "PendingDeletion"


def test_scheduling_a_key_already_pending_deletion_is_invalid_state(kms: Any, key: str) -> None:
    """AWS (key state table, ScheduleKeyDeletion row): a PendingDeletion key cannot be
    scheduled again; its original deletion date stands."""
    first = kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)["DeletionDate"]
    code, _, _ = error_of(lambda: kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=30))
    assert code == "KMSInvalidStateException"
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["DeletionDate"] == first


def test_cancel_key_deletion_leaves_the_key_disabled(kms: Any, key: str) -> None:
    """AWS (API_CancelKeyDeletion.html): "When this operation succeeds, the key state
    of the KMS key is Disabled. To enable the KMS key, use EnableKey." """
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    kms.cancel_key_deletion(KeyId=key)
    metadata = kms.describe_key(KeyId=key)["KeyMetadata"]
    assert (metadata["KeyState"], metadata["Enabled"]) == ("Disabled", False)
    assert "DeletionDate" not in metadata
    assert error_of(lambda: kms.encrypt(KeyId=key, Plaintext=b"p"))[0] == "DisabledException"


@pytest.mark.parametrize("disabled", [False, True], ids=["enabled", "disabled"])
def test_cancel_key_deletion_of_a_key_not_pending_deletion_is_invalid_state(
    kms: Any, key: str, disabled: bool
) -> None:
    """AWS (key state table, CancelKeyDeletion row): only a PendingDeletion key can have
    its deletion cancelled; otherwise KMSInvalidStateException and no state change."""
    if disabled:
        kms.disable_key(KeyId=key)
    code, _, message = error_of(lambda: kms.cancel_key_deletion(KeyId=key))
    assert code == "KMSInvalidStateException"
    assert message.endswith("is not pending deletion.")
    assert state_of(kms, key) == ("Disabled" if disabled else "Enabled")


def test_key_is_deleted_once_its_deletion_window_has_passed(
    aws: AwsEndpoint, kms: Any, key: str
) -> None:
    """AWS (API_ScheduleKeyDeletion.html): after the waiting period KMS deletes the key
    and its aliases; it is then unknown to DescribeKey and ListKeys and unusable.
    Twin-only: POST /drills-twin/kms/expire-deletion ends the window now."""
    blob = kms.encrypt(KeyId=key, Plaintext=b"p")["CiphertextBlob"]
    kms.create_alias(AliasName="alias/doomed", TargetKeyId=key)
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    assert state_of(kms, key) == "PendingDeletion"  # still there within the window

    status, body = control_request(aws.url, "kms/expire-deletion", {"key_id": key})

    assert status == 200
    assert body["KeyId"].endswith(f"key/{key}")
    assert error_of(lambda: kms.describe_key(KeyId=key))[0] == "NotFoundException"
    assert key not in [k["KeyId"] for k in kms.list_keys()["Keys"]]
    assert "alias/doomed" not in [a["AliasName"] for a in kms.list_aliases()["Aliases"]]
    assert error_of(lambda: kms.encrypt(KeyId=key, Plaintext=b"p"))[0] == "NotFoundException"
    error_of(lambda: kms.decrypt(CiphertextBlob=blob))  # fails; AWS's exact code unverified
    assert error_of(lambda: kms.cancel_key_deletion(KeyId=key))[0] == "NotFoundException"


def test_expire_deletion_accepts_a_key_arn(aws: AwsEndpoint, kms: Any, key: str) -> None:
    """The twin-only expire-deletion endpoint takes a key ARN as well as a key ID."""
    arn = kms.describe_key(KeyId=key)["KeyMetadata"]["Arn"]
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=30)
    assert control_request(aws.url, "kms/expire-deletion", {"key_id": arn})[0] == 200
    assert error_of(lambda: kms.describe_key(KeyId=key))[0] == "NotFoundException"


def test_expire_deletion_refuses_a_key_not_pending_deletion(
    aws: AwsEndpoint, kms: Any, key: str
) -> None:
    """The twin-only endpoint never deletes a key that was not scheduled for deletion."""
    status, body = control_request(aws.url, "kms/expire-deletion", {"key_id": key})
    assert (status, body["__type"]) == (400, "KMSInvalidStateException")
    assert state_of(kms, key) == "Enabled"


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"key_id": "11111111-2222-3333-4444-555555555555"}, 400, "NotFoundException"),
        ({}, 400, "ValidationException"),
    ],
    ids=["unknown-key", "no-key"],
)
def test_expire_deletion_rejects_bad_requests(
    aws: AwsEndpoint, body: dict[str, Any], status: int, error: str
) -> None:
    """The twin-only endpoint answers an unknown or missing key with a JSON error."""
    got_status, got_body = control_request(aws.url, "kms/expire-deletion", body)
    assert (got_status, got_body["__type"]) == (status, error)


def test_unknown_control_route_is_404(aws: AwsEndpoint) -> None:
    """/drills-twin/ paths that name no route answer 404 and list the routes."""
    status, body = control_request(aws.url, "kms/no-such-thing", {})
    assert status == 404
    assert "/drills-twin/kms/expire-deletion" in body["routes"]


def test_install_is_idempotent() -> None:
    """install() twice patches moto once: the second call changes nothing."""
    script = """
from moto.kms.models import KmsBackend
from moto.kms.responses import KmsResponse
from drills.twin import fidelity
from drills.twin.fidelity import kms
fidelity.install()
patched = (KmsBackend.encrypt, KmsResponse.kms_backend, dict(kms._ORIGINAL))
fidelity.install()
assert (KmsBackend.encrypt, KmsResponse.kms_backend, kms._ORIGINAL) == patched
assert all(original.__module__.startswith("moto.") for original in kms._ORIGINAL.values())
"""
    subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, check=True, timeout=60)


def test_key_problem_tells_other_services_why_a_key_is_unusable() -> None:
    """S3 SSE-KMS and SSM SecureString ask key_problem() before using a key. It answers in
    KMS's terms (key state table; API_ScheduleKeyDeletion.html for a deleted key): None for an
    Enabled, unknown or AWS managed key; DisabledException, KMSInvalidStateException, or,
    once the waiting period is over, NotFoundException "Key '<ARN>' does not exist"; and
    it finds the key by ID, ARN or alias."""
    with mock_aws():
        client = boto3.client("kms", region_name=REGION)
        meta = client.create_key()["KeyMetadata"]
        key_id, arn, account = meta["KeyId"], meta["Arn"], meta["AWSAccountId"]
        client.create_alias(AliasName="alias/probe", TargetKeyId=key_id)
        for ref in (key_id, arn, "alias/probe", "alias/aws/s3", "no-such-key", None):
            assert key_problem(account, REGION, ref) is None
        client.disable_key(KeyId=key_id)
        problem = key_problem(account, REGION, "alias/probe")
        assert problem is not None
        assert (problem.code, problem.message) == ("DisabledException", f"{arn} is disabled.")
        client.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
        problem = key_problem(account, None, key_id)  # no region: found in whichever holds it
        assert problem is not None
        assert (problem.code, problem.message) == ("KMSInvalidStateException",
                                                   f"{arn} is pending deletion.")
        kms_backends[account][REGION].keys[key_id].deletion_date = utcnow()  # window over
        for ref in (key_id, arn):
            problem = key_problem(account, REGION, ref)
            assert problem is not None
            assert (problem.code, problem.message) == ("NotFoundException",
                                                       f"Key '{arn}' does not exist")


def test_decrypt_under_a_deleted_key_is_access_denied(aws: AwsEndpoint, kms: Any,
                                                      key: str) -> None:
    """KMS answers Decrypt of a ciphertext whose key no longer exists with
    AccessDeniedException ("The ciphertext refers to a customer master key that does not
    exist, does not exist in this region, or you are not allowed to access.", the KMS
    message as AWS SDKs show it, e.g. wrapped by SSM in tryolabs/aws-workshop issue #6):
    what runbook 4.3 step 3 means by "permanently unrecoverable". (moto's reply carries
    the code but drops that message.)"""
    blob = kms.encrypt(KeyId=key, Plaintext=b"p")["CiphertextBlob"]
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    assert control_request(aws.url, "kms/expire-deletion", {"key_id": key})[0] == 200
    code, status, _ = error_of(lambda: kms.decrypt(CiphertextBlob=blob))
    assert (code, status) == ("AccessDeniedException", 400)


# ------------------------------------------------------------------ multi-Region keys


def test_mrk_ciphertext_decrypts_in_its_own_region(kms: Any) -> None:
    """MRK guide: a multi-Region key is "a fully functional KMS key" in its region; its
    ciphertext decrypts there (moto's 36-byte key-ID header broke every `mrk-` ciphertext)."""
    key_id = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    assert key_id.startswith("mrk-")
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"sealed")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"sealed"
    data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    assert kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"])["Plaintext"] == (
        data_key["Plaintext"])


def test_primary_ciphertext_decrypts_in_the_replica_region(kms: Any, kms_dr: Any,
                                                           mrk: str) -> None:
    """API_ReplicateKey.html: primary and replica "have the same key ID, key material, and
    other metadata", so data encrypted in one Region decrypts in another "without
    re-encrypting the data or making a cross-Region call": the us-west-2 replica decrypts a
    us-east-1 ciphertext even while the primary is disabled, and the reverse works too."""
    blob = kms.encrypt(KeyId=mrk, Plaintext=b"vault", EncryptionContext={"v": "1"})[
        "CiphertextBlob"]
    kms.disable_key(KeyId=mrk)  # no help from us-east-1
    answer = kms_dr.decrypt(CiphertextBlob=blob, EncryptionContext={"v": "1"})
    assert answer["Plaintext"] == b"vault"
    assert answer["KeyId"] == f"arn:aws:kms:{DR_REGION}:123456789012:key/{mrk}"
    kms.enable_key(KeyId=mrk)
    back = kms_dr.encrypt(KeyId=mrk, Plaintext=b"from dr")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=back)["Plaintext"] == b"from dr"


def test_key_state_is_independent_per_region(kms: Any, kms_dr: Any, mrk: str) -> None:
    """MRK guide ("independent properties"): the key state of each key of a multi-Region
    set is its own: disabling or scheduling the deletion of the replica leaves the primary
    Enabled, and the other way round."""
    blob = kms.encrypt(KeyId=mrk, Plaintext=b"p")["CiphertextBlob"]
    kms_dr.disable_key(KeyId=mrk)
    assert error_of(lambda: kms_dr.decrypt(CiphertextBlob=blob))[0] == "DisabledException"
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"p"
    assert (state_of(kms, mrk), state_of(kms_dr, mrk)) == ("Enabled", "Disabled")
    kms_dr.enable_key(KeyId=mrk)
    kms.disable_key(KeyId=mrk)
    assert (state_of(kms, mrk), state_of(kms_dr, mrk)) == ("Disabled", "Enabled")
    kms.enable_key(KeyId=mrk)
    kms_dr.schedule_key_deletion(KeyId=mrk, PendingWindowInDays=7)
    assert (state_of(kms, mrk), state_of(kms_dr, mrk)) == ("Enabled", "PendingDeletion")


def test_describing_the_replica_leaves_the_primary_primary(kms: Any, kms_dr: Any,
                                                           mrk: str) -> None:
    """API_MultiRegionConfiguration.html: MultiRegionKeyType is PRIMARY for the primary and
    REPLICA for a replica; both name the primary, and ReplicaKeys lists every replica. (moto
    shares one dict: describing the replica made the primary a REPLICA.)"""
    replica = kms_dr.describe_key(KeyId=mrk)["KeyMetadata"]["MultiRegionConfiguration"]
    primary = kms.describe_key(KeyId=mrk)["KeyMetadata"]["MultiRegionConfiguration"]
    arn = f"arn:aws:kms:{{}}:123456789012:key/{mrk}"
    assert primary["MultiRegionKeyType"] == "PRIMARY"
    assert replica["MultiRegionKeyType"] == "REPLICA"
    for config in (primary, replica):
        assert config["PrimaryKey"] == {"Arn": arn.format(REGION), "Region": REGION}
        assert config["ReplicaKeys"] == [{"Arn": arn.format(DR_REGION), "Region": DR_REGION}]


def test_aliases_are_per_region(kms: Any, kms_dr: Any, mrk: str) -> None:
    """MRK guide: aliases are independent properties, "not shared or synchronized": an alias
    made in us-east-1 does not appear in us-west-2."""
    kms.create_alias(AliasName=f"alias/east-{mrk[4:12]}", TargetKeyId=mrk)
    east = [a["AliasName"] for a in kms.list_aliases(KeyId=mrk)["Aliases"]]
    west = [a["AliasName"] for a in kms_dr.list_aliases(KeyId=mrk)["Aliases"]]
    assert east == [f"alias/east-{mrk[4:12]}"]
    assert west == []


def test_replicating_into_a_region_twice_is_already_exists(kms: Any, mrk: str) -> None:
    """API_ReplicateKey.html (Errors): AlreadyExistsException when the Region already holds
    a replica of the key; the existing replica is untouched."""
    code, status, _ = error_of(lambda: kms.replicate_key(KeyId=mrk, ReplicaRegion=DR_REGION))
    assert (code, status) == ("AlreadyExistsException", 400)


def test_deleting_a_primary_with_replicas_waits_for_them(aws: AwsEndpoint, kms: Any,
                                                         kms_dr: Any, mrk: str) -> None:
    """API_ScheduleKeyDeletion.html: a primary with replicas goes to PendingReplicaDeletion,
    "cannot be replicated or used in cryptographic operations", answers no DeletionDate
    (API_KeyMetadata.html: PendingDeletionWindowInDays instead), and its waiting period
    begins when the last replica is deleted: then PendingDeletion with a DeletionDate."""
    blob = kms.encrypt(KeyId=mrk, Plaintext=b"p")["CiphertextBlob"]
    answer = kms.schedule_key_deletion(KeyId=mrk, PendingWindowInDays=7)
    assert answer["KeyState"] == "PendingReplicaDeletion"
    assert answer["PendingWindowInDays"] == 7
    assert "DeletionDate" not in answer
    meta = kms.describe_key(KeyId=mrk)["KeyMetadata"]
    assert (meta["KeyState"], meta["PendingDeletionWindowInDays"]) == (
        "PendingReplicaDeletion", 7)
    assert "DeletionDate" not in meta
    code, _, message = error_of(lambda: kms.decrypt(CiphertextBlob=blob))
    assert code == "KMSInvalidStateException"
    assert message.endswith("is pending replica deletion.")
    assert error_of(lambda: kms.enable_key(KeyId=mrk))[0] == "KMSInvalidStateException"
    assert kms_dr.decrypt(CiphertextBlob=blob)["Plaintext"] == b"p"  # the replica lives on

    kms_dr.schedule_key_deletion(KeyId=mrk, PendingWindowInDays=7)
    replica_arn = f"arn:aws:kms:{DR_REGION}:123456789012:key/{mrk}"
    assert control_request(aws.url, "kms/expire-deletion", {"key_id": replica_arn})[0] == 200

    meta = kms.describe_key(KeyId=mrk)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion"
    assert meta["MultiRegionConfiguration"]["ReplicaKeys"] == []
    days = (meta["DeletionDate"] - meta["CreationDate"]).total_seconds() / 86400
    assert 6.9 < days < 7.1


def test_cancelling_pending_replica_deletion_leaves_the_primary_disabled(kms: Any,
                                                                        mrk: str) -> None:
    """Key state table (CancelKeyDeletion row) and API_CancelKeyDeletion.html: deletion of a
    PendingReplicaDeletion primary can be cancelled; the key is then Disabled."""
    kms.schedule_key_deletion(KeyId=mrk, PendingWindowInDays=30)
    kms.cancel_key_deletion(KeyId=mrk)
    meta = kms.describe_key(KeyId=mrk)["KeyMetadata"]
    assert meta["KeyState"] == "Disabled"
    assert "PendingDeletionWindowInDays" not in meta


def test_ciphertext_header_of_other_keys_is_motos() -> None:
    """Only `mrk-` ciphertexts get the wider header: every other key's blob is moto's own,
    byte for byte, so both formats decode."""
    script = """
import os
from moto.kms import utils
from drills.twin.fidelity import kms
plain = utils.Ciphertext("11111111-2222-3333-4444-555555555555", os.urandom(12), b"c",
                         os.urandom(16))
moto_blob = utils._serialize_ciphertext_blob(plain)
kms.install()
assert utils._serialize_ciphertext_blob(plain) == moto_blob
assert utils._deserialize_ciphertext_blob(moto_blob) == plain
mrk = plain._replace(key_id="mrk-" + plain.key_id)
assert utils._deserialize_ciphertext_blob(utils._serialize_ciphertext_blob(mrk)) == mrk
"""
    subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, check=True, timeout=60)
