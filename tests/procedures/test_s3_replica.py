"""Runbook 4.4 step 3 with the real AWS CLI against a real moto server with the twin's
replication: a vault whose every version is gone from the vault bucket is copied back from
the replica bucket, exactly as the runbook prints the command."""

from __future__ import annotations

import shutil
import uuid
from typing import Any

import pytest

from drills.clients import Clients
from drills.environment import Names
from drills.errors import RecoveryError
from drills.procedures.s3 import object_key
from drills.procedures.s3_replica import (
    cli_env,
    left_in_primary,
    replica_problem,
    restore_from_replica,
)
from drills.twin.aws import AwsEndpoint
from drills.twin.control import post
from tests.conftest import wait_for

REGION, DR_REGION = "us-east-1", "us-west-2"
pytestmark = pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed")


@pytest.fixture(autouse=True)
def short_lag(aws: AwsEndpoint) -> None:
    post(aws.url, "s3/replication-settings", {"median": 0.05, "sigma": 0, "max": 1})


def purge(s3: Any, bucket: str, vault_id: str) -> None:
    """Every version deleted by version ID (not replicated)."""
    for version in s3.list_object_versions(Bucket=bucket, Prefix=f"vaults/{vault_id}/")[
            "Versions"]:
        s3.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])


def test_cli_env_points_the_cli_where_the_clients_point(clients: Clients) -> None:
    """The twin's endpoint and credentials, the region asked for; no other identity."""
    env = cli_env(clients, DR_REGION)
    assert env["AWS_ENDPOINT_URL"] == clients.endpoint_url
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("testing", "testing")
    assert env["AWS_DEFAULT_REGION"] == env["AWS_REGION"] == DR_REGION
    assert "AWS_PROFILE" not in env


def test_step_3_copies_the_vault_back_from_the_replica(clients: Clients, names: Names) -> None:
    """The vault's objects (its data and another file under its prefix) come back from the
    replica bucket with their content; the command is the runbook's, word for word."""
    s3, dr = clients("s3", REGION), clients("s3", DR_REGION)
    vault_id = f"v-{uuid.uuid4().hex[:8]}"
    s3.put_object(Bucket=names.bucket, Key=object_key(vault_id), Body=b"sealed-2")
    s3.put_object(Bucket=names.bucket, Key=f"vaults/{vault_id}/meta.json", Body=b"{}")
    wait_for(lambda: not replica_problem(s3, dr, names, vault_id), 20, "the replica")
    # Each object replicates on its own: the second may land after the first.
    wait_for(lambda: s3.head_object(Bucket=names.bucket, Key=f"vaults/{vault_id}/meta.json").get(
        "ReplicationStatus") == "COMPLETED", 20, "meta.json's replica")
    purge(s3, names.bucket, vault_id)
    assert left_in_primary(clients, names, vault_id) == []

    restore = restore_from_replica(clients, names, vault_id)
    assert restore.step == "4.4 step 3"
    assert restore.command == (
        f"aws s3 cp s3://{names.dr_bucket}/vaults/{vault_id}/ "
        f"s3://{names.bucket}/vaults/{vault_id}/ --recursive --source-region {DR_REGION}")
    assert s3.get_object(Bucket=names.bucket, Key=object_key(vault_id))["Body"].read() \
        == b"sealed-2"
    assert s3.get_object(Bucket=names.bucket, Key=f"vaults/{vault_id}/meta.json")[
        "Body"].read() == b"{}"
    assert restore.new_version
    assert restore.new_version != restore.restored_version


def test_a_vault_the_replica_does_not_hold_cannot_be_restored(clients: Clients,
                                                               names: Names) -> None:
    """With nothing in the replica bucket, step 3 says so (and escalates) before running."""
    with pytest.raises(RecoveryError, match=r"runbook 4\.4 step 3 cannot restore it"):
        restore_from_replica(clients, names, "never-written")


def test_a_version_the_replica_lacks_is_named(aws: AwsEndpoint, clients: Clients,
                                              names: Names) -> None:
    """While replication is paused the current version is PENDING: not yet in the replica."""
    s3, dr = clients("s3", REGION), clients("s3", DR_REGION)
    post(aws.url, "s3/pause-replication", {"source_bucket": names.bucket})
    try:
        s3.put_object(Bucket=names.bucket, Key=object_key("v-new"), Body=b"x")
        assert replica_problem(s3, dr, names, "v-new") == "v-new: replication PENDING"
    finally:
        post(aws.url, "s3/resume-replication", {"source_bucket": names.bucket})
