"""Runbook 4.4 step 3, "Restore from cross-region replica", with the `aws` CLI as printed:

    Diagnosis  aws s3api head-object --key vaults/<vault-id>/data.enc        (404)
               aws s3api list-object-versions --prefix vaults/<vault-id>/    (nothing left:
               no delete marker for step 1 to remove, no version for step 2 to copy)
    Step 3     aws s3 cp s3://vettid-vault-data-dr-<account-id>/vaults/<vault-id>/ \\
                         s3://vettid-vault-data-<account-id>/vaults/<vault-id>/ \\
                         --recursive --source-region us-west-2

The copy runs through the real AWS CLI, as the operator would type it: its environment points
it where the drill's boto3 clients point (the twin's endpoint and credentials; an account's
own credential chain when there is no endpoint), with the primary region as its region.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from drills.clients import Clients
from drills.environment import Names
from drills.errors import RecoveryError
from drills.journal import utc_now
from drills.procedures.s3 import ObjectVersion, Restore, object_key, versions

Progress = Callable[[str], None]
#: How long the CLI may take before the step gives up on it (seconds).
CLI_TIMEOUT = 300.0
#: boto3 credential arguments -> the variables the CLI reads them from.
_CREDENTIAL_VARS = {"aws_access_key_id": "AWS_ACCESS_KEY_ID",
                    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
                    "aws_session_token": "AWS_SESSION_TOKEN"}


def _quiet(_: str) -> None:
    pass


def cli_env(clients: Clients, region: str) -> dict[str, str]:
    """The environment that makes the `aws` CLI call what `clients` call, in `region`."""
    env = dict(os.environ)
    if clients.endpoint_url:
        env["AWS_ENDPOINT_URL"] = clients.endpoint_url
    if clients.credentials:  # explicit credentials: nothing of another identity may leak in
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            env.pop(name, None)
        env.update({_CREDENTIAL_VARS[k]: v for k, v in clients.credentials.items()
                    if k in _CREDENTIAL_VARS})
    env["AWS_DEFAULT_REGION"] = env["AWS_REGION"] = region
    return env


@dataclass(frozen=True, slots=True)
class CliRun:
    """One `aws` command as run: its line, exit code, output, and how long it took."""

    command: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def run_aws(args: Sequence[str], env: dict[str, str], timeout: float = CLI_TIMEOUT) -> CliRun:
    """Run `aws <args>`; RecoveryError when the CLI is missing or does not finish in time."""
    command = shlex.join(["aws", *args])
    started = time.monotonic()
    try:
        done = subprocess.run(["aws", *args], env=env, capture_output=True, text=True,
                              timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise RecoveryError(f"the AWS CLI is not installed, so `{command}` cannot run; install "
                            "it (pip install awscli) and run the step again") from None
    except subprocess.TimeoutExpired:
        raise RecoveryError(f"`{command}` did not finish within {timeout:g}s; check the AWS "
                            "endpoint and run it by hand") from None
    return CliRun(command, done.returncode, done.stdout, done.stderr,
                  time.monotonic() - started)


def left_in_primary(clients: Clients, names: Names, vault_id: str) -> list[ObjectVersion]:
    """Runbook 4.4's diagnosis: what the vault bucket still holds of the vault's object
    (versions and delete markers); empty when steps 1 and 2 have nothing to restore from."""
    return versions(clients("s3", names.primary_region), names.bucket, vault_id)


def replica_problem(source: Any, replica: Any, names: Names, vault_id: str) -> str:
    """Why the replica bucket does not hold the vault's current version ("" when it does):
    head-object of the source (ReplicationStatus COMPLETED), then of that version ID in the
    replica (S3 replication keeps version IDs)."""
    key = object_key(vault_id)
    try:
        head = source.head_object(Bucket=names.bucket, Key=key)
    except ClientError as exc:
        return f"{vault_id}: {exc.response.get('Error', {}).get('Code')} in {names.bucket}"
    status = head.get("ReplicationStatus", "no status")
    if status != "COMPLETED":
        return f"{vault_id}: replication {status}"
    try:
        replica.head_object(Bucket=names.dr_bucket, Key=key, VersionId=head["VersionId"])
    except ClientError as exc:
        return (f"{vault_id}: version {head['VersionId']} "
                f"{exc.response.get('Error', {}).get('Code')} in {names.dr_bucket}")
    return ""


def restore_from_replica(clients: Clients, names: Names, vault_id: str,
                         progress: Progress = _quiet, timeout: float = CLI_TIMEOUT) -> Restore:
    """Runbook 4.4 step 3 as printed: `aws s3 cp` of the vault's prefix from the replica
    bucket (DR region) to the vault bucket, recursively; then head-object of the object."""
    primary, dr = names.primary_region, names.dr_region
    prefix, key = f"vaults/{vault_id}/", object_key(vault_id)
    source = _head(clients("s3", dr), names.dr_bucket, key, lambda code: (
        f"the replica bucket {names.dr_bucket} has no {key} ({code}): runbook 4.4 step 3 "
        "cannot restore it; escalate (L3: data loss)"))
    started = time.monotonic()
    run = run_aws(["s3", "cp", f"s3://{names.dr_bucket}/{prefix}", f"s3://{names.bucket}/{prefix}",
                   "--recursive", "--source-region", dr], cli_env(clients, primary), timeout)
    progress(f"runbook 4.4 step 3: {run.command} (exit {run.returncode}, {run.seconds:.1f}s)")
    if run.returncode != 0:
        raise RecoveryError(f"`{run.command}` failed with exit {run.returncode}: "
                            f"{run.stderr.strip()[-300:] or run.stdout.strip()[-300:]}")
    copied = [line for line in run.stdout.replace("\r", "\n").splitlines()
              if line.startswith("copy:")]
    if not copied:
        raise RecoveryError(f"`{run.command}` copied nothing (output: "
                            f"{run.stdout.strip()[-200:]!r}); the replica holds nothing under "
                            f"{prefix}")
    head = _head(clients("s3", primary), names.bucket, key, lambda code: (
        f"{key} is still missing from {names.bucket} after `{run.command}` ({code}); check "
        "the copy by hand"))
    return Restore(vault_id, "4.4 step 3", run.command, str(source.get("VersionId", "")),
                   str(head.get("VersionId", "")), (), utc_now(), time.monotonic() - started)


def _head(s3: Any, bucket: str, key: str, why: Callable[[str], str]) -> dict[str, Any]:
    """head-object, or RecoveryError with `why(error code)`."""
    try:
        return dict(s3.head_object(Bucket=bucket, Key=key))
    except ClientError as exc:
        raise RecoveryError(why(str(exc.response.get("Error", {}).get("Code")))) from None
