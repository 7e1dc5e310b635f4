"""Runbook 2.1-2.4 "Backup Verification", as checks any drill run can start with.

Each check makes the runbook's own read-only call and returns a `CheckResult`; none injects
anything. A failed check names the resource, what was found, what the runbook expects, the
section, and the command that fixes it.

    2.1  aws s3api get-bucket-versioning / get-bucket-encryption --bucket vettid-vault-data-<acct>
    2.2  aws dynamodb describe-continuous-backups --table-name <each vault table>
    2.3  aws ssm get-parameter --name <each critical parameter>
    2.4  aws kms describe-key --key-id $(aws ssm get-parameter --name /vettid/nitro/sealing-key-arn)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from drills.clients import Clients
from drills.environment import Names


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One backup-verification check: what was checked, found and expected."""

    check: str  # e.g. "bucket versioning"
    section: str  # runbook section, e.g. "2.1"
    resource: str  # bucket, table, key or parameter name
    passed: bool
    found: str
    expected: str
    fix: str = ""  # the command that makes the check pass

    @property
    def message(self) -> str:
        """One sentence for the on-call engineer."""
        head = (f"{self.check} of {self.resource}: found {self.found}, expected {self.expected} "
                f"(runbook {self.section} Backup Verification)")
        return head if self.passed or not self.fix else f"{head}; fix: {self.fix}"


def _error(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "error"))


def bucket_versioning(clients: Clients, names: Names, region: str) -> CheckResult:
    """2.1: the vault bucket keeps every version ("recover from accidental deletion")."""
    bucket = names.bucket
    try:
        found = clients("s3", region).get_bucket_versioning(Bucket=bucket).get("Status")
    except ClientError as exc:
        found = _error(exc)
    return CheckResult("bucket versioning", "2.1", bucket, found == "Enabled",
                       repr(found or "never enabled"), "'Enabled'",
                       f"aws s3api put-bucket-versioning --bucket {bucket} "
                       "--versioning-configuration Status=Enabled")


def bucket_encryption(clients: Clients, names: Names, region: str) -> CheckResult:
    """2.1: the vault bucket encrypts new objects with SSE-KMS by default."""
    bucket = names.bucket
    try:
        rules = clients("s3", region).get_bucket_encryption(Bucket=bucket)[
            "ServerSideEncryptionConfiguration"]["Rules"]
        algos = [r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm")
                 for r in rules]
        found = ", ".join(str(a) for a in algos) or "no default encryption rule"
        passed = any(a in ("aws:kms", "aws:kms:dsse") for a in algos)
    except ClientError as exc:
        found, passed = _error(exc), False
    return CheckResult("default encryption", "2.1", bucket, passed, found, "SSE-KMS (aws:kms)",
                       f"aws s3api put-bucket-encryption --bucket {bucket} "
                       "--server-side-encryption-configuration with SSEAlgorithm aws:kms and "
                       "the sealing key")


def table_pitr(clients: Clients, table: str, region: str) -> CheckResult:
    """2.2: point-in-time recovery is ENABLED on `table`."""
    try:
        desc = clients("dynamodb", region).describe_continuous_backups(TableName=table)[
            "ContinuousBackupsDescription"]
        found = desc.get("PointInTimeRecoveryDescription", {}).get(
            "PointInTimeRecoveryStatus", "DISABLED")
    except ClientError as exc:
        found = _error(exc)
    return CheckResult("point-in-time recovery", "2.2", table, found == "ENABLED", found,
                       "ENABLED",
                       f"aws dynamodb update-continuous-backups --table-name {table} "
                       "--point-in-time-recovery-specification PointInTimeRecoveryEnabled=true")


def sealing_key(clients: Clients, names: Names, region: str) -> CheckResult:
    """2.4 (as 4.3's diagnosis): the key named by the SSM parameter is Enabled, not pending
    deletion."""
    try:
        arn = clients("ssm", region).get_parameter(Name=names.param_sealing_key)[
            "Parameter"]["Value"]
    except ClientError as exc:
        return CheckResult("sealing key", "2.4", names.param_sealing_key, False,
                           f"{_error(exc)} reading the parameter", "the key ARN",
                           "restore the parameter from the SSM backup (runbook 2.3)")
    try:
        meta: dict[str, Any] = clients("kms", region).describe_key(KeyId=arn)["KeyMetadata"]
    except ClientError as exc:
        return CheckResult("sealing key", "2.4", arn, False, _error(exc),
                           "KeyState Enabled", "see runbook 4.3 step 3 (key deleted)")
    state = str(meta.get("KeyState"))
    passed = state == "Enabled" and bool(meta.get("Enabled")) and not meta.get("DeletionDate")
    fix = (f"aws kms cancel-key-deletion --key-id {meta['KeyId']} && aws kms enable-key "
           f"--key-id {meta['KeyId']}" if state == "PendingDeletion" else
           f"aws kms enable-key --key-id {meta['KeyId']}")
    return CheckResult("sealing key", "2.4", arn, passed, f"KeyState {state}",
                       "KeyState Enabled, not pending deletion", fix)


def critical_parameter(clients: Clients, name: str, region: str) -> CheckResult:
    """2.3: a critical parameter exists (its value is not read: presence is what is checked)."""
    try:
        found = clients("ssm", region).describe_parameters(ParameterFilters=[
            {"Key": "Name", "Option": "Equals", "Values": [name]}])["Parameters"]
        seen = f"present ({found[0]['Type']})" if found else "missing"
    except ClientError as exc:
        found, seen = [], _error(exc)
    return CheckResult("critical parameter", "2.3", name, bool(found), seen, "present",
                       "restore it from the SSM backup in vettid-dr-backups (runbook 2.3)")


def critical_parameters(names: Names) -> tuple[str, ...]:
    """Runbook 2.3's four critical parameters."""
    return (names.param_nats_creds, names.param_current_ami, names.param_latest_ami,
            names.param_sealing_key)


def backup_verification(clients: Clients, names: Names, region: str) -> list[CheckResult]:
    """Every check of runbook 2.1-2.4, in the runbook's order."""
    return [bucket_versioning(clients, names, region), bucket_encryption(clients, names, region),
            *(table_pitr(clients, t, region) for t in names.tables),
            *(critical_parameter(clients, p, region) for p in critical_parameters(names)),
            sealing_key(clients, names, region)]
