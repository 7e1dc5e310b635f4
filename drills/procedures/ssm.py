"""Runbook 2.3 and 7.1 "Test SSM parameter backup restoration", automated.

    Export    aws ssm get-parameters-by-path --path /vettid/ --recursive --with-decryption
              aws s3 cp ... s3://vettid-dr-backups/ssm/ --sse aws:kms
    Restore   aws ssm put-parameter --name N --value V --type T [--key-id K] --overwrite

Unlike the runbook's shell, the export never touches the local disk: the backup is built in
memory and uploaded from there (no `rm` to forget). Parameter values, SecureStrings above all,
never appear in a result's repr, a log line, an exception message or the journal: results
carry names, types and whether a value *matches*, compared in memory.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import nats
from botocore.exceptions import ClientError

from drills.clients import Clients
from drills.environment import Names
from drills.errors import RecoveryError
from drills.loop import LoopThread

#: The runbook's backup bucket and the prefix its `aws s3 cp` writes under.
BACKUP_BUCKET = "vettid-dr-backups"
BACKUP_PREFIX = "ssm/"
FORMAT = "vettid-ssm-backup/1"

# Fingerprints are keyed per process, so even a leaked one cannot be tested against guesses.
_FINGERPRINT_KEY = secrets.token_bytes(32)


def fingerprint(value: str) -> str:
    """A keyed hash of a value, for comparisons; meaningless outside this process."""
    return hmac.new(_FINGERPRINT_KEY, value.encode(), "sha256").hexdigest()


@dataclass(frozen=True, slots=True)
class BackupRef:
    """Where a backup lives. Holds no value: safe for the journal and the report."""

    bucket: str
    key: str
    version_id: str
    names: tuple[str, ...] = ()

    def to_params(self) -> dict[str, str]:
        """The journal form (bucket, key, version)."""
        return {"bucket": self.bucket, "key": self.key, "version_id": self.version_id}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> BackupRef:
        return cls(str(params["bucket"]), str(params["key"]), str(params.get("version_id", "")))

    def __str__(self) -> str:
        version = f"?versionId={self.version_id}" if self.version_id else ""
        return f"s3://{self.bucket}/{self.key}{version}"


@dataclass(frozen=True, slots=True)
class Parameter:
    """One parameter as backed up or as read now; the value never shows in its repr."""

    name: str
    type: str
    key_id: str | None
    data_type: str
    value: str = field(repr=False)

    def same_as(self, other: Parameter | None) -> bool:
        """Same type, key and value (compared in memory)."""
        return other is not None and (self.type, self.key_id, self.data_type) == (
            other.type, other.key_id, other.data_type) and hmac.compare_digest(
            fingerprint(self.value), fingerprint(other.value))


# -- reading parameters ---------------------------------------------------------------------------
def read_path(clients: Clients, region: str, path: str) -> list[Parameter]:
    """Every parameter under `path`, decrypted, with the KMS key of each SecureString."""
    ssm = clients("ssm", region)
    keys = {}
    for page in ssm.get_paginator("describe_parameters").paginate(ParameterFilters=[
            {"Key": "Path", "Option": "Recursive", "Values": [path]}]):
        keys.update({p["Name"]: p.get("KeyId") for p in page["Parameters"]})
    out = []
    for page in ssm.get_paginator("get_parameters_by_path").paginate(
            Path=path, Recursive=True, WithDecryption=True):
        for p in page["Parameters"]:
            key_id = keys.get(p["Name"]) if p["Type"] == "SecureString" else None
            out.append(Parameter(p["Name"], p["Type"], key_id, p.get("DataType", "text"),
                                 p["Value"]))
    return out


def read_parameter(clients: Clients, region: str, name: str) -> Parameter | None:
    """One parameter, decrypted, or None when it does not exist."""
    ssm = clients("ssm", region)
    try:
        p = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ParameterNotFound":
            return None
        raise
    key_id = None
    if p["Type"] == "SecureString":
        found = ssm.describe_parameters(ParameterFilters=[
            {"Key": "Name", "Option": "Equals", "Values": [name]}])["Parameters"]
        key_id = found[0].get("KeyId") if found else None
    return Parameter(p["Name"], p["Type"], key_id, p.get("DataType", "text"), p["Value"])


def write_parameter(clients: Clients, region: str, param: Parameter, value: str | None = None
                    ) -> None:
    """`aws ssm put-parameter --overwrite` with the parameter's type (and key for SecureString)."""
    extra = {"KeyId": param.key_id} if param.type == "SecureString" and param.key_id else {}
    clients("ssm", region).put_parameter(
        Name=param.name, Value=param.value if value is None else value, Type=param.type,
        DataType=param.data_type, Overwrite=True, **extra)


# -- the backup ---------------------------------------------------------------------------------
def ensure_bucket(clients: Clients, region: str, bucket: str, create: bool) -> None:
    """The backup bucket must exist; on the twin (`create`) it is made, versioned, if missing."""
    s3 = clients("s3", region)
    try:
        s3.head_bucket(Bucket=bucket)
        return
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
            raise RecoveryError(f"cannot reach backup bucket {bucket}: "
                                f"{exc.response['Error']['Code']}; check access to it") from None
    if not create:
        raise RecoveryError(f"backup bucket {bucket} does not exist; create it (versioned, with "
                            "SSE-KMS) before running runbook 2.3's export")
    extra = {} if region == "us-east-1" else {
        "CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, **extra)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def export_parameters(clients: Clients, region: str, *, path: str = "/vettid/",
                      bucket: str = BACKUP_BUCKET, create_bucket: bool = False,
                      kms_key_id: str | None = None) -> BackupRef:
    """Runbook 2.3's export: every parameter under `path`, decrypted, into one SSE-KMS object.

    Built and uploaded from memory; the object's encryption is checked after the upload.
    """
    params = read_path(clients, region, path)
    if not params:
        raise RecoveryError(f"no SSM parameter under {path} in {region}; nothing to back up")
    ensure_bucket(clients, region, bucket, create_bucket)
    now = datetime.now(UTC)
    body = json.dumps({"format": FORMAT, "path": path, "exported_utc": now.isoformat(),
                       "parameters": [{"Name": p.name, "Type": p.type, "Value": p.value,
                                       "KeyId": p.key_id, "DataType": p.data_type}
                                      for p in params]}).encode()
    key = f"{BACKUP_PREFIX}vettid-ssm-backup-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}.json"
    s3 = clients("s3", region)
    extra = {"SSEKMSKeyId": kms_key_id} if kms_key_id else {}
    put = s3.put_object(Bucket=bucket, Key=key, Body=body, ServerSideEncryption="aws:kms",
                        ContentType="application/json", **extra)
    head = s3.head_object(Bucket=bucket, Key=key, **_version(put.get("VersionId", "")))
    if head.get("ServerSideEncryption") != "aws:kms":
        raise RecoveryError(f"backup s3://{bucket}/{key} is not encrypted with SSE-KMS "
                            f"({head.get('ServerSideEncryption')}); delete it and check the "
                            "bucket's policy")
    return BackupRef(bucket, key, put.get("VersionId", ""), tuple(p.name for p in params))


def _version(version_id: str) -> dict[str, str]:
    return {"VersionId": version_id} if version_id else {}


def load_backup(clients: Clients, region: str, ref: BackupRef) -> list[Parameter]:
    """Read a backup back into memory; refuses one that is not SSE-KMS encrypted."""
    try:
        obj = clients("s3", region).get_object(Bucket=ref.bucket, Key=ref.key,
                                               **_version(ref.version_id))
    except ClientError as exc:
        raise RecoveryError(f"cannot read backup {ref}: {exc.response['Error']['Code']}; "
                            "check the object exists and this role may read it") from None
    if obj.get("ServerSideEncryption") != "aws:kms":
        raise RecoveryError(f"backup {ref} is not SSE-KMS encrypted; do not trust it, take a "
                            "new backup")
    try:
        doc = json.loads(obj["Body"].read())
        if doc.get("format") != FORMAT:
            raise ValueError
        return [Parameter(p["Name"], p["Type"], p.get("KeyId"), p.get("DataType", "text"),
                          p["Value"]) for p in doc["parameters"]]
    except (ValueError, KeyError, TypeError):
        raise RecoveryError(f"backup {ref} is not a {FORMAT} document") from None


# -- restore and verify ---------------------------------------------------------------------------
class Outcome(StrEnum):
    """What restoring one parameter did."""

    RESTORED = "restored"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class ParameterRestore:
    """One parameter after the restore."""

    name: str
    outcome: Outcome


def restore_parameters(clients: Clients, region: str, ref: BackupRef,
                       names: Sequence[str] | None = None) -> tuple[ParameterRestore, ...]:
    """Put back every backed-up parameter (or `names`) that is missing or differs."""
    out = []
    for param in load_backup(clients, region, ref):
        if names is not None and param.name not in names:
            continue
        if param.same_as(read_parameter(clients, region, param.name)):
            out.append(ParameterRestore(param.name, Outcome.UNCHANGED))
            continue
        write_parameter(clients, region, param)
        out.append(ParameterRestore(param.name, Outcome.RESTORED))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ParameterCheck:
    """One backed-up parameter compared with what SSM holds now (no value inside)."""

    name: str
    present: bool
    type_matches: bool
    key_matches: bool
    value_matches: bool

    @property
    def ok(self) -> bool:
        return self.present and self.type_matches and self.key_matches and self.value_matches

    @property
    def problem(self) -> str:
        """'' when identical, else 'missing' or what differs (never the value itself)."""
        if not self.present:
            return "missing"
        wrong = [what for what, good in (("type", self.type_matches), ("KMS key",
                 self.key_matches), ("value", self.value_matches)) if not good]
        return ", ".join(f"{w} differs" for w in wrong)


def verify_parameters(clients: Clients, region: str, ref: BackupRef
                      ) -> tuple[ParameterCheck, ...]:
    """Every backed-up parameter against SSM now: present, same type, KMS key and value."""
    out = []
    for param in load_backup(clients, region, ref):
        now = read_parameter(clients, region, param.name)
        out.append(ParameterCheck(
            param.name, now is not None,
            now is not None and now.type == param.type,
            now is not None and now.key_id == param.key_id,
            now is not None and hmac.compare_digest(fingerprint(now.value),
                                                    fingerprint(param.value))))
    return tuple(out)


# -- the symptom: an enclave booting ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BootCheck:
    """Whether an enclave booting now would get what it needs from SSM."""

    ok: bool
    detail: str  # what failed, never a value


def boot_check(clients: Clients, names: Names, region: str, nats_urls: list[str],
               loop: LoopThread, timeout: float = 10.0) -> BootCheck:
    """Do what an enclave does at boot: read the sealing key ARN and its NATS credentials
    (decrypted) from SSM, check the key exists, and connect to NATS with the credentials."""
    ssm = clients("ssm", region)
    try:
        key_arn = ssm.get_parameter(Name=names.param_sealing_key)["Parameter"]["Value"]
        raw = ssm.get_parameter(Name=names.param_nats_creds, WithDecryption=True)[
            "Parameter"]["Value"]
    except ClientError as exc:
        return BootCheck(False, f"{exc.response['Error']['Code']}: an enclave could not read "
                                "its parameters at boot")
    try:
        clients("kms", region).describe_key(KeyId=key_arn)
    except ClientError as exc:
        return BootCheck(False, f"{exc.response['Error']['Code']}: the sealing key named by "
                                f"{names.param_sealing_key} cannot be described")
    try:
        creds = json.loads(raw)
        user, password = str(creds["user"]), str(creds["password"])
    except (ValueError, KeyError, TypeError):
        return BootCheck(False, f"InvalidCredentials: {names.param_nats_creds} does not hold "
                                "JSON with a user and a password")
    try:
        loop.run(_connect_once(nats_urls, user, password), timeout=timeout)
    except Exception as exc:  # the connection's own words, e.g. "Authorization Violation"
        return BootCheck(False, f"NATS: {str(exc).replace(password, '***')}")
    return BootCheck(True, "")


async def _connect_once(urls: list[str], user: str, password: str) -> None:
    async def quiet(*_: Any) -> None:
        pass  # nats-py prints connection errors to stderr by default

    nc = await nats.connect(servers=urls, user=user, password=password, name="drills-boot-check",
                            allow_reconnect=False, connect_timeout=2, max_reconnect_attempts=0,
                            error_cb=quiet)
    await asyncio.wait_for(nc.flush(), timeout=2)
    await nc.close()
