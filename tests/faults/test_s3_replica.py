"""The purge of a vault object's versions on a real moto server: journaled with a copy of
every version before it acts, nothing left after, written back by revert (and by rollback
after a crash), resumed when a revert was cut short, never over anything else."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from drills.clients import Clients
from drills.errors import FaultError, TargetNotAllowed
from drills.faults import AllowList, FaultContext, FaultInjector, rollback, s3_replica
from drills.faults.s3_replica import RESTORED, PurgeVaultObject
from drills.journal import FaultState, Journal
from drills.procedures.s3 import object_key, versions

REGION = "us-east-1"


@pytest.fixture
def vault(clients: Clients, bucket: str) -> str:
    """A vault whose object has three versions (b'v1', b'v2', then b'v3' current) and a
    delete marker removed in between (history that step 2 could use)."""
    vault_id = f"v-{uuid.uuid4().hex[:8]}"
    s3, key = clients("s3"), object_key(vault_id)
    for body in (b"v1", b"v2", b"v3"):
        s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata={"n": body.decode()})
    return vault_id


@pytest.fixture
def injector(tmp_path: Path, bucket: str) -> FaultInjector:
    return FaultInjector(Journal(tmp_path / "journal.jsonl"), "run-1", "env-a",
                         AllowList({"bucket": (bucket,)}))


def purge(clients: Clients, bucket: str, vault_id: str) -> PurgeVaultObject:
    return PurgeVaultObject(FaultContext(clients), {"bucket": bucket, "vault_id": vault_id,
                                                    "region": REGION})


def bodies(clients: Clients, bucket: str, vault_id: str) -> list[bytes]:
    """Every version's content, oldest first."""
    s3 = clients("s3")
    return [s3.get_object(Bucket=bucket, Key=object_key(vault_id),
                          VersionId=v.version_id)["Body"].read()
            for v in reversed(versions(s3, bucket, vault_id)) if not v.delete_marker]


def test_purge_leaves_nothing_and_journals_a_copy_first(
        clients: Clients, bucket: str, vault: str, injector: FaultInjector) -> None:
    """No version and no delete marker is left for runbook 4.4 steps 1-2; the journal entry,
    written before the first delete, holds every version's content."""
    injector.inject(purge(clients, bucket, vault))
    assert versions(clients("s3"), bucket, vault) == []
    (entry,) = injector.journal.pending()
    assert [k["metadata"] for k in entry.params["kept"]] == [{"n": "v1"}, {"n": "v2"},
                                                             {"n": "v3"}]
    assert len(entry.params["deleted"]) == 3


def test_revert_writes_every_version_back_oldest_first(
        clients: Clients, bucket: str, vault: str, injector: FaultInjector) -> None:
    """Revert puts the versions back in their order: the content current before the fault is
    current again, and the history's contents are there under it."""
    active = injector.inject(purge(clients, bucket, vault))
    injector.revert(active)
    assert bodies(clients, bucket, vault) == [b"v1", b"v2", b"v3"]
    head = clients("s3").head_object(Bucket=bucket, Key=object_key(vault))
    assert head["Metadata"]["n"] == "v3"


def test_revert_leaves_a_restored_object_alone(clients: Clients, bucket: str, vault: str,
                                               injector: FaultInjector) -> None:
    """Once the runbook put the object back (step 3), revert writes nothing over it, twice."""
    active = injector.inject(purge(clients, bucket, vault))
    clients("s3").put_object(Bucket=bucket, Key=object_key(vault), Body=b"from the replica")
    active.fault.revert()
    active.fault.revert()
    assert bodies(clients, bucket, vault) == [b"from the replica"]


def test_a_revert_cut_short_resumes_where_it_stopped(clients: Clients, bucket: str,
                                                     vault: str, injector: FaultInjector) -> None:
    """A revert that wrote back only the first version (then crashed) is finished by the
    next one, without writing that version twice."""
    fault = purge(clients, bucket, vault)
    injector.inject(fault)
    first = fault.params["kept"][0]
    clients("s3").put_object(Bucket=bucket, Key=object_key(vault), Body=b"v1",
                             Metadata={**first["metadata"],
                                       RESTORED: f"{fault.params['token']}:0"})
    fault.revert()
    assert bodies(clients, bucket, vault) == [b"v1", b"v2", b"v3"]


def test_rollback_after_a_crash_writes_the_object_back_from_the_journal(
        clients: Clients, bucket: str, vault: str, injector: FaultInjector) -> None:
    """A killed harness leaves a pending entry; `drills rollback` rebuilds the fault from it
    and writes the versions back."""
    injector.inject(purge(clients, bucket, vault))
    results = rollback(injector.journal, FaultContext(clients), "env-a")
    assert [r.reverted for r in results] == [True]
    assert bodies(clients, bucket, vault) == [b"v1", b"v2", b"v3"]
    assert injector.journal.entries()[-1].state is FaultState.REVERTED


def test_a_history_too_large_to_keep_is_refused_before_anything_happens(
        clients: Clients, bucket: str, vault: str, injector: FaultInjector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The fault never deletes what it could not put back: over the limit it refuses,
    nothing journaled, nothing deleted."""
    monkeypatch.setattr(s3_replica, "MAX_KEPT_BYTES", 4)
    with pytest.raises(FaultError, match="too much to keep in the journal"):
        injector.inject(purge(clients, bucket, vault))
    assert injector.journal.pending() == []
    assert bodies(clients, bucket, vault) == [b"v1", b"v2", b"v3"]


def test_a_missing_object_or_another_bucket_is_refused(
        clients: Clients, bucket: str, injector: FaultInjector) -> None:
    """Nothing to purge is an error; a bucket off the allow-list is not touched."""
    with pytest.raises(FaultError, match="choose a vault whose data exists"):
        injector.inject(purge(clients, bucket, "no-such-vault"))
    with pytest.raises(TargetNotAllowed):
        injector.inject(purge(clients, "someone-elses-bucket", "v"))
