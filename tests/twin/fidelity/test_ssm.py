"""SSM SecureString parameters on the twin follow their KMS key's state, as AWS does.

References: "AWS KMS encryption for Parameter Store SecureString parameters",
https://docs.aws.amazon.com/systems-manager/latest/userguide/secure-string-parameter-kms-encryption.html
("SecureString guide" below: Parameter Store calls KMS Encrypt when it writes a SecureString
and Decrypt when it is read with decryption); the PutParameter / GetParameter API Reference
(Errors: `InvalidKeyId`, HTTP 400); and the error AWS returns for a disabled key, as SDKs
show it: "InvalidKeyId: arn:aws:kms:...:key/... is disabled. (Service: AWSKMS; Status Code:
400; Error Code: DisabledException; ...)" (quoted in turbot/steampipe-plugin-aws,
aws/table_aws_ssm_parameter.go).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from drills.clients import Clients
from drills.twin.provision import provision_aws
from drills.twin.state import Names

REGION = "us-east-1"
PROJECT_ROOT = Path(__file__).resolve().parents[3]
SECRET = "s3cr3t-value-never-in-errors"


@pytest.fixture(scope="module")
def ssm(clients: Clients) -> Any:
    return clients("ssm")


@pytest.fixture(scope="module")
def kms(clients: Clients) -> Any:
    return clients("kms")


@pytest.fixture
def key(kms: Any) -> str:
    return str(kms.create_key(Description="ssm")["KeyMetadata"]["KeyId"])


@pytest.fixture
def name(ssm: Any, key: str) -> str:
    """A SecureString parameter holding SECRET under `key`, alone under its path."""
    param = f"/fidelity/{uuid.uuid4().hex[:10]}/secret"
    ssm.put_parameter(Name=param, Value=SECRET, Type="SecureString", KeyId=key)
    return param


def error_of(call: Callable[[], object]) -> tuple[str, int, str]:
    """(error code, HTTP status, message) of a call that must fail."""
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"],
            response["Error"]["Message"])


def decrypting_reads(ssm: Any, name: str) -> dict[str, Callable[[], object]]:
    """Every read that returns a SecureString's value, with decryption."""
    return {
        "GetParameter": lambda: ssm.get_parameter(Name=name, WithDecryption=True),
        "GetParameters": lambda: ssm.get_parameters(Names=[name], WithDecryption=True),
        "GetParametersByPath": lambda: ssm.get_parameters_by_path(
            Path=name.rsplit("/", 1)[0], WithDecryption=True),
        "GetParameterHistory": lambda: ssm.get_parameter_history(Name=name,
                                                                 WithDecryption=True),
    }


@pytest.mark.parametrize("operation", ["GetParameter", "GetParameters", "GetParametersByPath",
                                       "GetParameterHistory"])
def test_decrypting_read_under_a_disabled_key_is_invalid_key_id(
        ssm: Any, kms: Any, key: str, name: str, operation: str) -> None:
    """SecureString guide + API Reference: reading with decryption calls KMS Decrypt; with
    the key Disabled the call fails with InvalidKeyId (HTTP 400) wrapping KMS's
    DisabledException, and the message never contains the secret value."""
    kms.disable_key(KeyId=key)
    code, status, message = error_of(decrypting_reads(ssm, name)[operation])
    assert (code, status) == ("InvalidKeyId", 400)
    assert f"key/{key} is disabled. (Service: AWSKMS; Status Code: 400; Error Code: " \
           "DisabledException;" in message
    assert SECRET not in message


def test_reads_without_decryption_need_no_key(ssm: Any, kms: Any, key: str, name: str) -> None:
    """SecureString guide: without decryption Parameter Store returns the encrypted value and
    calls no KMS operation, so it works under a Disabled key (and never shows the secret)."""
    kms.disable_key(KeyId=key)
    parameter = ssm.get_parameter(Name=name, WithDecryption=False)["Parameter"]
    assert parameter["Type"] == "SecureString"
    assert parameter["Value"] != SECRET
    assert ssm.describe_parameters()["Parameters"]


def test_put_under_a_disabled_key_is_invalid_key_id_and_keeps_the_old_value(
        ssm: Any, kms: Any, key: str, name: str) -> None:
    """API_PutParameter: writing a SecureString calls KMS Encrypt; under a Disabled key it
    fails with InvalidKeyId and the parameter keeps its previous version. An overwrite that
    names no KeyId uses the parameter's key, so it fails the same way."""
    kms.disable_key(KeyId=key)
    for extra in ({"Type": "SecureString", "KeyId": key}, {}):
        code, _, message = error_of(lambda extra=extra: ssm.put_parameter(
            Name=name, Value="new-value", Overwrite=True, **extra))
        assert code == "InvalidKeyId"
        assert "Error Code: DisabledException" in message
    kms.enable_key(KeyId=key)
    parameter = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    assert (parameter["Value"], parameter["Version"]) == (SECRET, 1)


def test_a_key_pending_deletion_is_invalid_key_id_wrapping_invalid_state(
        ssm: Any, kms: Any, key: str, name: str) -> None:
    """Key state table: a PendingDeletion key refuses Encrypt/Decrypt with
    KMSInvalidStateException, which Parameter Store wraps in InvalidKeyId."""
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    code, _, message = error_of(lambda: ssm.get_parameter(Name=name, WithDecryption=True))
    assert code == "InvalidKeyId"
    assert "is pending deletion. (Service: AWSKMS" in message
    assert "Error Code: KMSInvalidStateException" in message


def test_value_is_readable_again_once_the_key_is_enabled(ssm: Any, kms: Any, key: str,
                                                         name: str) -> None:
    """API_EnableKey: re-enabling the key makes the SecureString readable, value intact."""
    kms.disable_key(KeyId=key)
    error_of(lambda: ssm.get_parameter(Name=name, WithDecryption=True))
    kms.enable_key(KeyId=key)
    assert ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"] == SECRET


def test_string_parameters_and_the_aws_managed_key_ignore_key_states(
        ssm: Any, kms: Any, key: str) -> None:
    """String parameters are not encrypted, and the AWS managed aws/ssm key cannot be
    disabled: neither is affected by a customer key being disabled."""
    kms.disable_key(KeyId=key)
    plain, managed = f"/fidelity/{uuid.uuid4().hex[:8]}", f"/fidelity/{uuid.uuid4().hex[:8]}"
    ssm.put_parameter(Name=plain, Value="p", Type="String")
    ssm.put_parameter(Name=managed, Value="m", Type="SecureString")
    assert ssm.get_parameter(Name=plain)["Parameter"]["Value"] == "p"
    assert ssm.get_parameter(Name=managed, WithDecryption=True)["Parameter"]["Value"] == "m"


def test_the_twins_own_provisioning_and_credential_reads_still_work(clients: Clients) -> None:
    """The twin's start-up puts the NATS credentials as a SecureString under the sealing key
    and every worker reads them with decryption: that must keep working while it is Enabled,
    and fail like AWS once the sealing key is disabled."""
    names = Names()
    made = provision_aws(clients, names, REGION, desired=2, nats_user="vettid-parent",
                         nats_password=f"pw-{uuid.uuid4().hex}")
    ssm, kms = clients("ssm"), clients("kms")
    value = ssm.get_parameter(Name=names.param_nats_creds, WithDecryption=True)
    assert made.nats_password in value["Parameter"]["Value"]
    kms.disable_key(KeyId=made.key_arn)
    code, _, message = error_of(lambda: ssm.get_parameter(Name=names.param_nats_creds,
                                                          WithDecryption=True))
    assert code == "InvalidKeyId"
    assert made.nats_password not in message
    assert ssm.get_parameter(Name=names.param_sealing_key)["Parameter"]["Value"] == made.key_arn
    kms.enable_key(KeyId=made.key_arn)


def test_install_is_idempotent() -> None:
    """install() twice patches moto once: the second call changes nothing."""
    script = """
from moto.ssm.models import Parameter, SimpleSystemManagerBackend
from drills.twin import fidelity
from drills.twin.fidelity import ssm
fidelity.install()
patched = (SimpleSystemManagerBackend.put_parameter, Parameter.response_object,
           dict(ssm._ORIGINAL))
fidelity.install()
assert (SimpleSystemManagerBackend.put_parameter, Parameter.response_object,
        ssm._ORIGINAL) == patched
assert all(original.__module__.startswith("moto.") for original in ssm._ORIGINAL.values())
"""
    subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, check=True, timeout=60)
