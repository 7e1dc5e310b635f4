"""Runbook 2.1-2.4 backup verification on a real moto server: every check passes on a well
protected stack, and each broken protection fails its own check, naming the resource, the
runbook section and the fix."""

from __future__ import annotations

import itertools
import random

import pytest

from drills.clients import Clients
from drills.environment import Names
from drills.procedures.preflight import (
    CheckResult,
    backup_verification,
    bucket_encryption,
    bucket_versioning,
    critical_parameter,
    sealing_key,
    table_pitr,
)
from drills.twin.aws import AwsEndpoint

#: Each test gets its own region (tables, keys, parameters) and account id (bucket name).
REGIONS = itertools.cycle(["us-east-2", "us-west-1", "eu-west-1", "eu-central-1", "ap-south-1",
                           "ap-northeast-1", "ca-central-1", "sa-east-1", "eu-north-1"])


@pytest.fixture
def stack(aws: AwsEndpoint) -> tuple[Clients, Names, str]:
    """A protected stack as the runbook describes it: versioned SSE-KMS bucket, PITR on the
    three tables, an enabled sealing key named by SSM, the four critical parameters."""
    region = next(REGIONS)
    names = Names(account_id=str(random.randrange(10**11, 10**12)))
    clients = Clients.for_twin(aws.url, region)
    key = clients("kms").create_key()["KeyMetadata"]
    s3 = clients("s3")
    s3.create_bucket(Bucket=names.bucket,
                     CreateBucketConfiguration={"LocationConstraint": region})
    s3.put_bucket_versioning(Bucket=names.bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(Bucket=names.bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                                "KMSMasterKeyID": key["Arn"]}}]})
    ddb = clients("dynamodb")
    for table in names.tables:
        ddb.create_table(TableName=table, KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                         BillingMode="PAY_PER_REQUEST")
        ddb.update_continuous_backups(TableName=table, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True})
    ssm = clients("ssm")
    ssm.put_parameter(Name=names.param_sealing_key, Value=key["Arn"], Type="String")
    ssm.put_parameter(Name=names.param_nats_creds, Value="{}", Type="SecureString",
                      KeyId=key["KeyId"])
    ssm.put_parameter(Name=names.param_current_ami, Value="ami-1", Type="String")
    ssm.put_parameter(Name=names.param_latest_ami, Value="ami-1", Type="String")
    return clients, names, region


def failed(result: CheckResult, resource: str, section: str, fix: str) -> None:
    """The failure message names the resource, the runbook section and the fix."""
    assert not result.passed
    assert resource in result.message
    assert f"runbook {section} Backup Verification" in result.message
    assert fix in result.message


def test_every_check_passes_on_a_protected_stack(stack: tuple[Clients, Names, str]) -> None:
    """2.1-2.4 all pass: 2 bucket checks, 3 tables, 4 parameters, the key (10 in all)."""
    clients, names, region = stack
    results = backup_verification(clients, names, region)
    assert len(results) == 10
    assert [r.message for r in results if not r.passed] == []


def test_suspended_versioning_fails_2_1(stack: tuple[Clients, Names, str]) -> None:
    """get-bucket-versioning Suspended: the bucket cannot recover deleted objects."""
    clients, names, region = stack
    clients("s3").put_bucket_versioning(Bucket=names.bucket,
                                        VersioningConfiguration={"Status": "Suspended"})
    failed(bucket_versioning(clients, names, region), names.bucket, "2.1",
           "put-bucket-versioning")


def test_aes256_default_encryption_fails_2_1(stack: tuple[Clients, Names, str]) -> None:
    """SSE-S3 (AES256) is not the SSE-KMS the runbook requires."""
    clients, names, region = stack
    clients("s3").put_bucket_encryption(Bucket=names.bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    result = bucket_encryption(clients, names, region)
    failed(result, names.bucket, "2.1", "put-bucket-encryption")
    assert "AES256" in result.found


def test_pitr_disabled_fails_2_2(stack: tuple[Clients, Names, str]) -> None:
    """describe-continuous-backups DISABLED on one table fails that table's check only."""
    clients, names, region = stack
    clients("dynamodb").update_continuous_backups(
        TableName=names.credentials_table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False})
    failed(table_pitr(clients, names.credentials_table, region), names.credentials_table, "2.2",
           "update-continuous-backups")
    assert table_pitr(clients, names.sessions_table, region).passed


def test_disabled_key_fails_2_4(stack: tuple[Clients, Names, str]) -> None:
    """describe-key (through the SSM parameter) says Disabled: fix with enable-key."""
    clients, names, region = stack
    arn = clients("ssm").get_parameter(Name=names.param_sealing_key)["Parameter"]["Value"]
    clients("kms").disable_key(KeyId=arn)
    failed(sealing_key(clients, names, region), arn, "2.4", "aws kms enable-key")


def test_key_pending_deletion_fails_2_4(stack: tuple[Clients, Names, str]) -> None:
    """A key pending deletion fails, with runbook 4.3 step 2 (cancel, then enable) as the fix."""
    clients, names, region = stack
    arn = clients("ssm").get_parameter(Name=names.param_sealing_key)["Parameter"]["Value"]
    clients("kms").schedule_key_deletion(KeyId=arn, PendingWindowInDays=7)
    result = sealing_key(clients, names, region)
    failed(result, arn, "2.4", "aws kms cancel-key-deletion")
    assert "PendingDeletion" in result.found


def test_missing_sealing_key_parameter_fails_2_4(stack: tuple[Clients, Names, str]) -> None:
    """Without /vettid/nitro/sealing-key-arn the key cannot even be found: say which parameter."""
    clients, names, region = stack
    clients("ssm").delete_parameter(Name=names.param_sealing_key)
    failed(sealing_key(clients, names, region), names.param_sealing_key, "2.4", "runbook 2.3")


def test_missing_critical_parameter_fails_2_3(stack: tuple[Clients, Names, str]) -> None:
    """A deleted critical parameter fails its own check (the others still pass)."""
    clients, names, region = stack
    clients("ssm").delete_parameter(Name=names.param_latest_ami)
    failed(critical_parameter(clients, names.param_latest_ami, region), names.param_latest_ami,
           "2.3", "vettid-dr-backups")
    assert critical_parameter(clients, names.param_nats_creds, region).passed
