"""Runbook 4.3 automated, on a real moto server with the twin's KMS fidelity layer."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest

from drills.clients import Clients
from drills.environment import Names
from drills.errors import RecoveryError
from drills.procedures.kms import (
    UnreadableVault,
    diagnose,
    recover_key,
    recover_sealing_key,
    seal,
    unseal,
)
from drills.twin.aws import AwsEndpoint
from drills.vault import b64, unb64

REGION = "us-east-1"


@pytest.fixture
def key(clients: Clients) -> str:
    return str(clients("kms").create_key()["KeyMetadata"]["Arn"])


def test_diagnosis_reads_the_key_arn_from_ssm_and_cuts_the_key_id(clients: Clients,
                                                                  key: str) -> None:
    """Runbook 4.3 diagnosis: KEY_ARN from /vettid/nitro/sealing-key-arn, KEY_ID the part
    after the '/', then describe-key; a missing key is reported as Deleted, not raised."""
    names = Names()
    clients("ssm").put_parameter(Name=names.param_sealing_key, Value=key, Type="String",
                                 Overwrite=True)
    recovery = recover_sealing_key(clients, names, REGION)
    assert (recovery.key_arn, recovery.found, recovery.steps) == (key, "Enabled", ())
    assert diagnose(clients, REGION, key).key_id == key.split("/")[1]
    gone = key.rsplit("/", 1)[0] + "/11111111-2222-3333-4444-555555555555"
    assert diagnose(clients, REGION, gone).state == "Deleted"


def test_step_1_enables_a_disabled_key(clients: Clients, key: str) -> None:
    """Runbook 4.3 step 1: a Disabled key gets one enable-key and is Enabled after it."""
    clients("kms").disable_key(KeyId=key)
    recovery = recover_key(clients, REGION, key)
    assert recovery.found == "Disabled"
    assert [s.command.split(" --")[0] for s in recovery.steps] == ["aws kms enable-key"]
    assert recovery.state_after("enable-key") == "Enabled"


def test_step_2_cancel_leaves_the_key_disabled_then_enable(clients: Clients, key: str) -> None:
    """Runbook 4.3 step 2: cancel-key-deletion leaves the key Disabled (as AWS documents),
    so enable-key must follow; both are recorded with the state seen after each."""
    clients("kms").schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    recovery = recover_key(clients, REGION, key)
    assert recovery.found == "PendingDeletion"
    assert recovery.state_after("cancel-key-deletion") == "Disabled"
    assert recovery.state_after("enable-key") == "Enabled"
    assert recovery.state == "Enabled"


def test_step_3_a_deleted_key_is_unrecoverable(aws: AwsEndpoint, clients: Clients,
                                               key: str) -> None:
    """Runbook 4.3 step 3: once the waiting period is over nothing brings the key back; the
    procedure says so, and what to do (AWS Support, user notification)."""
    clients("kms").schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    request = urllib.request.Request(f"{aws.url}/drills-twin/kms/expire-deletion",
                                     data=json.dumps({"key_id": key}).encode(), method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    with pytest.raises(RecoveryError, match=r"permanently unrecoverable.*AWS Support"):
        recover_key(clients, REGION, key)


def test_seal_and_unseal_round_trip_and_detect_tampering(clients: Clients, key: str) -> None:
    """The service's envelope: sealed data opens to the same bytes; a changed ciphertext
    fails AES-GCM's integrity check; a disabled key fails with KMS's error code."""
    kms = clients("kms")
    data = os.urandom(48)
    body, _ = seal(kms, key, "v-1", data)
    assert unseal(kms, "v-1", body) == data
    envelope = json.loads(body)
    ct = bytearray(unb64(envelope["ct"]))
    ct[0] ^= 0x01  # one flipped bit, as storage corruption would leave it
    envelope["ct"] = b64(bytes(ct))
    with pytest.raises(UnreadableVault, match="integrity check"):
        unseal(kms, "v-1", json.dumps(envelope).encode())
    with pytest.raises(UnreadableVault, match="not a sealed envelope"):
        unseal(kms, "v-1", os.urandom(64))
    kms.disable_key(KeyId=key)
    with pytest.raises(UnreadableVault, match="DisabledException") as caught:
        unseal(kms, "v-1", body)
    assert data.hex() not in str(caught.value)
