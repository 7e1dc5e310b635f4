"""Runbook 2.3 automated (export to an SSE-KMS object, restore, verify by hash) on a real moto
server, the boot check on the session twin, and a scan proving no secret value leaks."""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from drills.clients import Clients
from drills.environment import Names
from drills.errors import DrillError, RecoveryError
from drills.faults import AllowList, FaultContext, FaultInjector
from drills.faults.ssm import CorruptParameter, DeleteParameter
from drills.journal import Journal
from drills.loop import LoopThread
from drills.procedures.ssm import (
    BackupRef,
    Outcome,
    Parameter,
    boot_check,
    export_parameters,
    load_backup,
    read_parameter,
    restore_parameters,
    verify_parameters,
)
from drills.twin.manager import Twin

REGION = "us-east-1"


@pytest.fixture(scope="module")
def key_id(clients: Clients) -> str:
    return str(clients("kms").create_key()["KeyMetadata"]["KeyId"])


@pytest.fixture
def secret() -> str:
    return f"s3cr3t-{uuid.uuid4().hex}"


@pytest.fixture
def path(clients: Clients, key_id: str, secret: str) -> str:
    """A fresh parameter tree: a SecureString under its own KMS key, and two Strings."""
    root = f"/t-{uuid.uuid4().hex[:8]}/"
    ssm = clients("ssm")
    ssm.put_parameter(Name=f"{root}nitro/creds", Value=json.dumps({"password": secret}),
                      Type="SecureString", KeyId=key_id)
    ssm.put_parameter(Name=f"{root}nitro/key-arn", Value="arn:aws:kms:x", Type="String")
    ssm.put_parameter(Name=f"{root}ami", Value="ami-123", Type="String")
    return root


def export(clients: Clients, path: str) -> BackupRef:
    return export_parameters(clients, REGION, path=path, bucket="dr-backups",
                             create_bucket=True)


def test_export_writes_one_sse_kms_object_with_every_parameter(clients: Clients,
                                                               path: str) -> None:
    """Runbook 2.3: every parameter under the path, decrypted, into s3://<bucket>/ssm/ with
    ServerSideEncryption aws:kms, in a bucket the twin creates versioned."""
    ref = export(clients, path)
    assert ref.key.startswith("ssm/vettid-ssm-backup-")
    assert ref.version_id
    head = clients("s3").head_object(Bucket=ref.bucket, Key=ref.key, VersionId=ref.version_id)
    assert head["ServerSideEncryption"] == "aws:kms"
    versioning = clients("s3").get_bucket_versioning(Bucket=ref.bucket)
    assert versioning["Status"] == "Enabled"
    assert sorted(ref.names) == sorted(f"{path}{n}" for n in ("nitro/creds", "nitro/key-arn",
                                                               "ami"))
    loaded = {p.name: p for p in load_backup(clients, REGION, ref)}
    assert loaded[f"{path}nitro/creds"].type == "SecureString"
    assert loaded[f"{path}nitro/creds"].key_id is not None


def test_export_writes_nothing_to_local_disk(clients: Clients, path: str,
                                             tmp_path: Path) -> None:
    """No plaintext on local disk: during the export no file is opened for writing at all
    (an audit hook sees every open() and os.open())."""
    writes: list[str] = []
    watching = [True]

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if not watching[0] or event != "open":
            return
        target, mode, flags = args
        write_mode = isinstance(mode, str) and any(c in mode for c in "wax+")
        write_flags = isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        if write_mode or write_flags:
            writes.append(str(target))

    sys.addaudithook(hook)  # cannot be removed: it switches itself off below
    try:
        export(clients, path)
    finally:
        watching[0] = False
    assert writes == []


def test_export_on_an_account_needs_the_bucket_to_exist(clients: Clients, path: str) -> None:
    """On a real account the backup bucket is not created by the drill: a clear error."""
    with pytest.raises(RecoveryError, match="does not exist; create it"):
        export_parameters(clients, REGION, path=path, bucket=f"nope-{uuid.uuid4().hex[:8]}")


def test_restore_puts_back_missing_and_changed_with_type_and_key(
        clients: Clients, path: str, key_id: str, secret: str) -> None:
    """put-parameter --overwrite with the original type and KMS key, only where needed: an
    identical parameter is left alone (its version does not move)."""
    ref = export(clients, path)
    ssm = clients("ssm")
    ssm.delete_parameter(Name=f"{path}nitro/creds")
    ssm.put_parameter(Name=f"{path}ami", Value="ami-bad", Type="String", Overwrite=True)
    version = ssm.get_parameter(Name=f"{path}nitro/key-arn")["Parameter"]["Version"]
    results = {r.name: r.outcome for r in restore_parameters(clients, REGION, ref)}
    assert results == {f"{path}nitro/creds": Outcome.RESTORED, f"{path}ami": Outcome.RESTORED,
                       f"{path}nitro/key-arn": Outcome.UNCHANGED}
    creds = read_parameter(clients, REGION, f"{path}nitro/creds")
    assert creds is not None
    assert (creds.type, creds.key_id) == ("SecureString", key_id)
    assert json.loads(creds.value) == {"password": secret}
    assert ssm.get_parameter(Name=f"{path}nitro/key-arn")["Parameter"]["Version"] == version
    assert all(c.ok for c in verify_parameters(clients, REGION, ref))


def test_verify_names_what_differs_without_values(clients: Clients, path: str,
                                                  secret: str) -> None:
    """Verification compares type, KMS key and a hash of the value; its findings say what
    differs ("missing", "type differs", "value differs"), never the value."""
    ref = export(clients, path)
    ssm = clients("ssm")
    ssm.delete_parameter(Name=f"{path}ami")
    ssm.put_parameter(Name=f"{path}nitro/creds", Value="plain", Type="String", Overwrite=True)
    problems = {c.name: c.problem for c in verify_parameters(clients, REGION, ref)}
    assert problems == {f"{path}ami": "missing",
                        f"{path}nitro/creds": "type differs, KMS key differs, value differs",
                        f"{path}nitro/key-arn": ""}
    assert secret not in repr(verify_parameters(clients, REGION, ref))


def test_a_backup_that_is_not_sse_kms_is_refused(clients: Clients, path: str) -> None:
    """A backup object without SSE-KMS is not trusted (runbook: --sse aws:kms)."""
    ref = export(clients, path)
    body = clients("s3").get_object(Bucket=ref.bucket, Key=ref.key)["Body"].read()
    put = clients("s3").put_object(Bucket=ref.bucket, Key=ref.key, Body=body,
                                   ServerSideEncryption="AES256")
    plain = BackupRef(ref.bucket, ref.key, put["VersionId"])
    with pytest.raises(RecoveryError, match="not SSE-KMS encrypted"):
        load_backup(clients, REGION, plain)


def test_parameter_repr_hides_the_value(secret: str) -> None:
    """A Parameter in an assertion message or a traceback never shows its value."""
    param = Parameter("/x", "SecureString", "k", "text", secret)
    assert secret not in repr(param)
    assert secret not in str(param)


def test_no_secret_in_journal_logs_output_or_errors(
        clients: Clients, path: str, secret: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    """The SecureString value never appears in the journal, log records, printed output,
    exception messages or results, through a backup, both faults, restores and reverts."""
    caplog.set_level(logging.DEBUG, logger="drills")
    caplog.set_level(logging.INFO)
    name = f"{path}nitro/creds"
    journal = Journal(tmp_path / "journal.jsonl")
    injector = FaultInjector(journal, "run", "env", AllowList({"ssm-parameter": (name,)}))
    ctx = FaultContext(clients)
    ref = export(clients, path)
    seen: list[str] = [str(ref), repr(ref)]
    for kind in (CorruptParameter, DeleteParameter):
        active = injector.inject(kind(ctx, {"region": REGION, "name": name,
                                            "backup": ref.to_params()}))
        seen += [active.fault.describe(), repr(verify_parameters(clients, REGION, ref))]
        seen += [repr(restore_parameters(clients, REGION, ref))]
        injector.revert(active)
    for bad in (lambda: load_backup(clients, REGION, BackupRef(ref.bucket, "ssm/none", "")),
                lambda: injector.inject(DeleteParameter(ctx, {
                    "region": REGION, "name": name, "backup": {"bucket": ref.bucket,
                                                               "key": "ssm/none"}}))):
        with pytest.raises(DrillError) as caught:
            bad()
        seen.append(str(caught.value))
    out, err = capsys.readouterr()
    for where, text in {"journal": journal.path.read_text(), "logs": caplog.text,
                        "stdout": out, "stderr": err, "messages": "\n".join(seen)}.items():
        assert secret not in text, f"the secret leaked into the {where}"
    assert read_parameter(clients, REGION, name) is not None


@pytest.mark.twin
def test_boot_check_reads_parameters_and_connects_like_an_enclave(twin: Twin) -> None:
    """The boot check does what an enclave does at boot, and fails with the real symptom:
    ParameterNotFound, credentials that are not JSON, or NATS refusing them; never showing
    the password."""
    ssm = twin.clients("ssm")
    real = ssm.get_parameter(Name=twin.names.param_nats_creds, WithDecryption=True)[
        "Parameter"]["Value"]
    password = json.loads(real)["password"]
    root = f"/drills-test/{uuid.uuid4().hex[:8]}/"
    names = Names(param_nats_creds=f"{root}creds", param_sealing_key=f"{root}key")
    ssm.put_parameter(Name=names.param_sealing_key, Value=twin.state.primary.key_arn,
                      Type="String")
    loop = LoopThread("test-boot-check")
    urls = twin.nats_spec().urls

    def check(creds: str | None) -> tuple[bool, str]:
        if creds is None:
            ssm.delete_parameter(Name=names.param_nats_creds)
        else:
            ssm.put_parameter(Name=names.param_nats_creds, Value=creds, Type="SecureString",
                              Overwrite=True)
        result = boot_check(twin.clients, names, REGION, urls, loop)
        assert password not in result.detail
        return result.ok, result.detail

    try:
        assert check(real) == (True, "")
        ok, detail = check(json.dumps({**json.loads(real), "password": "wrong"}))
        assert not ok
        assert "Authorization Violation" in detail
        ok, detail = check("not json")
        assert not ok
        assert detail.startswith("InvalidCredentials")
        ok, detail = check(None)
        assert not ok
        assert detail.startswith("ParameterNotFound")
    finally:
        loop.close()
        ssm.delete_parameters(Names=[names.param_nats_creds, names.param_sealing_key])
