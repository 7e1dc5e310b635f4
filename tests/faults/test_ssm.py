"""SSM parameter faults (runbook 2.3) on a real moto server: a backup first, names only in the
journal, revert from the SSE-KMS backup without undoing a recovery."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from drills.clients import Clients
from drills.errors import FaultError, TargetNotAllowed
from drills.faults import AllowList, FaultContext, FaultInjector, rollback
from drills.faults.ssm import CorruptParameter, DeleteParameter
from drills.journal import Journal
from drills.procedures.ssm import BackupRef, export_parameters, read_parameter

REGION = "us-east-1"


@pytest.fixture(scope="module")
def key_id(clients: Clients) -> str:
    return str(clients("kms").create_key()["KeyMetadata"]["KeyId"])


@pytest.fixture
def secret() -> str:
    return f"pw-{uuid.uuid4().hex}"


@pytest.fixture
def name(clients: Clients, key_id: str, secret: str) -> str:
    """A SecureString parameter (with a String beside it) in a fresh tree."""
    root = f"/f-{uuid.uuid4().hex[:8]}/"
    clients("ssm").put_parameter(Name=f"{root}creds", Value=secret, Type="SecureString",
                                 KeyId=key_id)
    clients("ssm").put_parameter(Name=f"{root}ami", Value="ami-1", Type="String")
    return f"{root}creds"


@pytest.fixture
def backup(clients: Clients, name: str) -> BackupRef:
    return export_parameters(clients, REGION, path=name.rsplit("/", 1)[0] + "/",
                             bucket="dr-backups", create_bucket=True)


@pytest.fixture
def injector(tmp_path: Path, name: str) -> FaultInjector:
    return FaultInjector(Journal(tmp_path / "journal.jsonl"), "run-1", "env-a",
                         AllowList({"ssm-parameter": (name,)}))


def params(name: str, backup: BackupRef) -> dict[str, object]:
    return {"region": REGION, "name": name, "backup": backup.to_params()}


def test_delete_then_revert_restores_value_type_and_key(
        clients: Clients, name: str, backup: BackupRef, injector: FaultInjector, key_id: str,
        secret: str) -> None:
    """DeleteParameter removes the parameter; revert puts it back from the backup with its
    value, type and KMS key."""
    active = injector.inject(DeleteParameter(FaultContext(clients), params(name, backup)))
    assert read_parameter(clients, REGION, name) is None
    injector.revert(active)
    now = read_parameter(clients, REGION, name)
    assert now is not None
    assert (now.type, now.key_id, now.value) == ("SecureString", key_id,
                                                                     secret)


def test_journal_holds_names_and_backup_location_never_the_value(
        clients: Clients, name: str, backup: BackupRef, injector: FaultInjector,
        secret: str) -> None:
    """The journal line has the parameter name and the backup's bucket, key and version."""
    injector.inject(CorruptParameter(FaultContext(clients), params(name, backup)))
    text = injector.journal.path.read_text()
    assert secret not in text
    first = json.loads(text.splitlines()[0])
    assert first["params"]["name"] == name
    assert first["params"]["backup"] == backup.to_params()
    assert first["params"]["corrupt_value"].startswith("drill-corrupted-")


def test_corrupt_keeps_type_and_key_and_reverts(
        clients: Clients, name: str, backup: BackupRef, injector: FaultInjector, key_id: str,
        secret: str) -> None:
    """CorruptParameter overwrites the value only (same type and KMS key); revert restores it."""
    active = injector.inject(CorruptParameter(FaultContext(clients), params(name, backup)))
    bad = read_parameter(clients, REGION, name)
    assert bad is not None
    assert (bad.type, bad.key_id) == ("SecureString", key_id)
    assert bad.value == active.fault.params["corrupt_value"]
    injector.revert(active)
    injector.revert(active)
    now = read_parameter(clients, REGION, name)
    assert now is not None
    assert now.value == secret


def test_revert_never_undoes_a_recovery_or_a_newer_value(
        clients: Clients, name: str, backup: BackupRef, injector: FaultInjector,
        key_id: str) -> None:
    """A parameter written again after the fault is left as it is by revert."""
    for kind in (DeleteParameter, CorruptParameter):
        active = injector.inject(kind(FaultContext(clients), params(name, backup)))
        clients("ssm").put_parameter(Name=name, Value="rotated", Type="SecureString",
                                     KeyId=key_id, Overwrite=True)
        injector.revert(active)
        now = read_parameter(clients, REGION, name)
        assert now is not None
        assert now.value == "rotated"


def test_refuses_without_a_backup_or_one_that_lacks_the_parameter(
        clients: Clients, name: str, injector: FaultInjector) -> None:
    """A drill never destroys what it cannot restore: no backup, or a backup without the
    parameter, is refused before anything is journaled or deleted."""
    ctx = FaultContext(clients)
    with pytest.raises(FaultError, match="without a backup"):
        injector.inject(DeleteParameter(ctx, {"region": REGION, "name": name}))
    other = export_parameters(clients, REGION, path=name.rsplit("/", 1)[0] + "/",
                              bucket="dr-backups", create_bucket=True)
    clients("ssm").put_parameter(Name=f"{name}-new", Value="x", Type="String")
    anything = FaultInjector(injector.journal, "run-1", "env-a",
                             AllowList({"ssm-parameter": ("*",)}))
    with pytest.raises(FaultError, match="holds no copy"):
        anything.inject(DeleteParameter(ctx, params(f"{name}-new", other)))
    assert not injector.journal.path.exists()
    assert read_parameter(clients, REGION, f"{name}-new") is not None
    assert read_parameter(clients, REGION, name) is not None


def test_a_parameter_off_the_allow_list_is_refused(clients: Clients, name: str,
                                                   backup: BackupRef, tmp_path: Path) -> None:
    """Destructive faults check their target: an SSM parameter needs an `ssm-parameter` entry."""
    injector = FaultInjector(Journal(tmp_path / "j.jsonl"), "r", "e", AllowList({}))
    with pytest.raises(TargetNotAllowed, match="ssm-parameter"):
        injector.inject(DeleteParameter(FaultContext(clients), params(name, backup)))
    assert read_parameter(clients, REGION, name) is not None


def test_rollback_restores_from_the_backup_after_a_crash(
        clients: Clients, name: str, backup: BackupRef, injector: FaultInjector,
        secret: str) -> None:
    """`drills rollback` rebuilds the fault from the journal and restores from the backup."""
    injector.inject(DeleteParameter(FaultContext(clients), params(name, backup)))
    assert [r.reverted for r in rollback(injector.journal, FaultContext(clients), "env-a")] == [
        True]
    now = read_parameter(clients, REGION, name)
    assert now is not None
    assert now.value == secret
