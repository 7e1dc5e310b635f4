"""KMS faults on a real moto server with the twin's fidelity layer: journaled before acting,
bad input refused before journaling, reverted to the key's state before, and the twin-only
key deletion refused anywhere but the twin before anything acts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drills.capabilities import ALL
from drills.clients import Clients
from drills.environment import DR_REGION
from drills.errors import CapabilityMissing, ConfigError, FaultError, TargetNotAllowed
from drills.faults import AllowList, FaultContext, FaultInjector, rollback
from drills.faults.kms import DisableKey, ScheduleKeyDeletion, ScratchKeyDeleted
from drills.journal import Journal
from drills.procedures.kms import check_recoverable, diagnose
from tests.procedures.conftest import fresh_names, replicating_buckets

REGION = "us-east-1"


class TwinStandIn:
    """What the scratch-key fault asks of the twin: only that it runs on one (its control
    endpoint is the moto server's, reached through the clients' endpoint)."""


@pytest.fixture
def key(clients: Clients) -> str:
    return str(clients("kms").create_key()["KeyMetadata"]["Arn"])


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.jsonl")


def injector_for(journal: Journal, **allow: tuple[str, ...]) -> FaultInjector:
    return FaultInjector(journal, "run-1", "env-a", AllowList(allow))


def state(clients: Clients, key: str) -> str:
    return diagnose(clients, REGION, key).state


def test_disable_key_is_journaled_then_reverted_to_enabled(clients: Clients, key: str,
                                                           journal: Journal) -> None:
    """The disable fault records the key's state, disables it, and revert enables it."""
    injector = injector_for(journal, key=(key,))
    active = injector.inject(DisableKey(FaultContext(clients), {"key": key, "region": REGION}))
    assert journal.pending()[0].params["state_before"] == "Enabled"
    assert state(clients, key) == "Disabled"
    injector.revert(active)
    assert state(clients, key) == "Enabled"
    active.fault.revert()  # idempotent
    assert state(clients, key) == "Enabled"


def test_disable_refuses_a_key_that_is_not_enabled(clients: Clients, key: str,
                                                   journal: Journal) -> None:
    """A key already Disabled is not a healthy starting point: FaultError, nothing journaled."""
    clients("kms").disable_key(KeyId=key)
    with pytest.raises(FaultError, match="the key is Disabled, not Enabled"):
        injector_for(journal, key=(key,)).inject(DisableKey(FaultContext(clients), {"key": key}))
    assert journal.entries() == []


def test_a_key_not_on_the_allow_list_is_refused(clients: Clients, key: str,
                                                journal: Journal) -> None:
    """Only allowed keys may be disabled: TargetNotAllowed, the key untouched."""
    with pytest.raises(TargetNotAllowed):
        injector_for(journal, key=("arn:other",)).inject(
            DisableKey(FaultContext(clients), {"key": key}))
    assert state(clients, key) == "Enabled"
    assert journal.entries() == []


def test_scheduled_deletion_reverts_by_cancel_then_enable(clients: Clients, key: str,
                                                          journal: Journal) -> None:
    """Revert of a scheduled deletion cancels it (the key is then Disabled, as AWS leaves
    it) and enables the key again, since it was Enabled before."""
    active = injector_for(journal, key=(key,)).inject(
        ScheduleKeyDeletion(FaultContext(clients), {"key": key, "days": 7}))
    assert state(clients, key) == "PendingDeletion"
    active.fault.revert()
    assert state(clients, key) == "Enabled"


@pytest.mark.parametrize("days", [6, 31, 0, "7", True, None])
def test_deletion_window_outside_7_to_30_is_refused_before_journaling(
        clients: Clients, key: str, journal: Journal, days: Any) -> None:
    """A window AWS would reject is a ConfigError before anything is journaled or done."""
    with pytest.raises(ConfigError, match="must be 7 to 30 days"):
        injector_for(journal, key=(key,)).inject(
            ScheduleKeyDeletion(FaultContext(clients), {"key": key, "days": days}))
    assert journal.entries() == []
    assert state(clients, key) == "Enabled"


def test_rollback_after_a_crash_restores_the_key(clients: Clients, key: str,
                                                 journal: Journal) -> None:
    """`drills rollback` rebuilds both key faults from the journal and undoes them."""
    injector = injector_for(journal, key=(key,))
    injector.inject(DisableKey(FaultContext(clients), {"key": key}))
    clients("kms").enable_key(KeyId=key)  # someone fixed it by hand in between
    injector.inject(ScheduleKeyDeletion(FaultContext(clients), {"key": key, "days": 30}))
    results = rollback(journal, FaultContext(clients), "env-a")
    assert [r.reverted for r in results] == [True, True]
    assert state(clients, key) == "Enabled"


def test_scratch_key_deletion_is_refused_off_the_twin_before_anything_acts(
        clients: Clients, bucket: str, journal: Journal) -> None:
    """The key-deletion fault requires `control`: on a target without it (an account) it is
    refused before any key is created, any object written, or anything journaled."""
    keys_before = len(clients("kms").list_keys()["Keys"])
    with pytest.raises(CapabilityMissing, match="control"):
        injector_for(journal, bucket=(bucket,)).inject(
            ScratchKeyDeleted(FaultContext(clients), {"bucket": bucket, "count": 2}))
    assert len(clients("kms").list_keys()["Keys"]) == keys_before
    assert "Versions" not in clients("s3").list_object_versions(Bucket=bucket)
    assert journal.entries() == []


def test_scratch_key_deletion_loses_the_scratch_data_and_revert_removes_it(
        clients: Clients, bucket: str, journal: Journal) -> None:
    """On the twin: scratch vaults are sealed under a new scratch key, the key is deleted
    after its (expired) waiting period, nothing reads them back; revert removes every
    scratch object. No other key is touched."""
    other = clients("kms").create_key()["KeyMetadata"]["Arn"]
    active = injector_for(journal, bucket=(bucket,)).inject(
        ScratchKeyDeleted(FaultContext(clients, TwinStandIn(), ALL),
                          {"bucket": bucket, "count": 3}))
    fault = active.fault
    assert isinstance(fault, ScratchKeyDeleted)
    assert len(fault.sealed) == 3
    assert state(clients, fault.key_arn) == "Deleted"
    checks = check_recoverable(clients, REGION, bucket, fault.sealed)
    assert [c.recovered for c in checks] == [False] * 3
    assert {c.s3_error for c in checks} == {"KMS.NotFoundException"}
    assert state(clients, other) == "Enabled"
    fault.revert()
    assert "Versions" not in clients("s3").list_object_versions(Bucket=bucket)


def test_scratch_key_rollback_removes_the_replicas_in_the_dr_bucket(
        clients: Clients, journal: Journal) -> None:
    """The scratch vaults replicate to the DR bucket; a rollback (the fault rebuilt from the
    journal, as after a kill) removes them there too: left behind, runbook 5.3's reverse
    sync would copy vaults sealed under a deleted key back into the vault bucket."""
    names = replicating_buckets(clients, fresh_names())
    injector_for(journal, bucket=(names.bucket,)).inject(
        ScratchKeyDeleted(FaultContext(clients, TwinStandIn(), ALL),
                          {"bucket": names.bucket, "count": 2}))
    (entry,) = journal.pending()
    replica = f"{entry.params['prefix']}replica-of-a-scratch-vault"
    dr = clients("s3", DR_REGION)
    dr.put_object(Bucket=names.dr_bucket, Key=replica, Body=b"sealed")
    (result,) = rollback(journal, FaultContext(clients, TwinStandIn(), ALL), "env-a")
    assert result.reverted, result.error
    for client, bucket in ((clients("s3"), names.bucket), (dr, names.dr_bucket)):
        listing = client.list_object_versions(Bucket=bucket, Prefix="drills-scratch/")
        assert not listing.get("Versions"), bucket
        assert not listing.get("DeleteMarkers"), bucket


@pytest.mark.parametrize("params", [{"count": 0}, {"count": 51}, {"count": 2, "days": 6}])
def test_scratch_key_bad_input_is_a_config_error(clients: Clients, bucket: str,
                                                 journal: Journal, params: Any) -> None:
    """A scratch vault count outside 1..50 or a window outside 7..30: ConfigError, nothing
    journaled."""
    with pytest.raises(ConfigError):
        injector_for(journal, bucket=(bucket,)).inject(
            ScratchKeyDeleted(FaultContext(clients, TwinStandIn(), ALL),
                              {"bucket": bucket, **params}))
    assert journal.entries() == []
