"""Steps for the S3 vault data: runbook 3.5 faults on one vault, 4.4 steps 1-3, per-vault RTO/RPO.

The service-wide probes read the vault population round-robin, so one damaged vault is hit
only once per round. The fault steps therefore also start a probe of their own on the
damaged vault (from before the fault until teardown): it detects the damage, and its first
run of intact reads after the restore is the vault's measured recovery.

To show what step 2 as written loses, the damaged vault is one the canary takes for itself:
the canary updates it on cue after the corruption (legitimate writes), and its record says
exactly which writes a restore rolls back.

For step 3 every version of a probed vault's object is deleted (a copy kept in the fault's
journal entry), after checking that the replica bucket holds its current version; the
operator copies it back with the AWS CLI (`drills.procedures.s3_replica`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pytest_bdd import parsers, then, when

from drills.config import ProbeSettings
from drills.drill import Drill
from drills.errors import MeasurementError, NotSteady, ObjectiveBreached, ProbeError
from drills.evidence.fmt import secs
from drills.faults import ActiveFault, Fault
from drills.faults.s3 import CorruptVaultObject, DeleteVaultObject
from drills.faults.s3_replica import PurgeVaultObject
from drills.measure.canary import CanaryWrite, CanaryWriter
from drills.measure.probes import KnownVault, ProbeRunner
from drills.measure.rpo import LostWrite, RpoResult, Truth, verify
from drills.procedures.s3 import (
    Restore,
    copy_version_over,
    envelope_verifier,
    ledger_checksum,
    remove_delete_marker,
    restore_last_good_version,
)
from drills.procedures.s3_replica import left_in_primary, replica_problem, restore_from_replica
from drills.vault import Unavailability, VaultUnavailable, digest

#: How often the damaged vault's own probe reads it, in seconds.
WATCH_INTERVAL = 0.2
DETECT_TIMEOUT = 60.0
READ_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class DamagedVault:
    """The vault a data fault damaged, the fault, and the probe watching that vault alone."""

    vault: KnownVault
    active: ActiveFault
    watch: ProbeRunner


def _damage(drill: Drill, kind: type[Fault], vault: KnownVault | None = None,
            **params: Any) -> Iterator[DamagedVault]:
    vault = vault or random.choice(drill.target.known_vaults())  # any probed vault will do
    watch = ProbeRunner(drill.loop, drill.client, [vault], ProbeSettings(
        WATCH_INTERVAL, drill.settings.probes.timeout, drill.settings.probes.consecutive))
    watch.start()  # before the fault: its first reads are the vault's steady state
    try:
        active = drill.inject(kind, bucket=drill.target.names.bucket, vault_id=vault.vault_id,
                              **params)
    except BaseException:
        watch.stop()
        raise
    try:
        yield DamagedVault(vault, active, watch)
    finally:
        try:
            drill.revert(active)
        finally:
            watch.stop()


@when("the data object of one probed vault is deleted", target_fixture="damaged_vault")
def vault_object_deleted(drill: Drill) -> Iterator[DamagedVault]:
    """DeleteObject without a version id on one vault's data (a delete marker); reverted."""
    yield from _damage(drill, DeleteVaultObject)


@when(parsers.parse("the data object of one probed vault is overwritten {count:d} times with "
                    "corrupt data"), target_fixture="damaged_vault")
def vault_object_corrupted(drill: Drill, count: int) -> Iterator[DamagedVault]:
    """PutObject of garbage over one vault's data, `count` times; reverted at teardown."""
    yield from _damage(drill, CorruptVaultObject, count=count)


@when("the data object of one canary vault is overwritten with corrupt data",
      target_fixture="damaged_vault")
def canary_vault_corrupted(drill: Drill) -> Iterator[DamagedVault]:
    """The canary gives up one of its vaults (idle, last write acknowledged) to the drill;
    its object is overwritten with garbage once; reverted at teardown if still ours."""
    canary = _canary(drill)
    vault_id = canary.take()
    last = [w for w in canary.writes() if w.vault_id == vault_id][-1]
    yield from _damage(drill, CorruptVaultObject, KnownVault(vault_id, last.sha256), count=1)


@when("every version of the data object of one probed vault is deleted",
      target_fixture="damaged_vault")
def vault_object_purged(drill: Drill) -> Iterator[DamagedVault]:
    """DeleteObject with each VersionId: no version or delete marker is left of one vault's
    object (a copy kept in the journal); teardown writes it back if nothing else did. The
    vault is one whose current version the replica bucket holds (runbook 5.1), checked first:
    step 3 could not restore another."""
    names, clients = drill.target.names, drill.target.clients
    source, replica = clients("s3", names.primary_region), clients("s3", names.dr_region)
    vault = random.choice(drill.target.known_vaults())
    deadline = time.monotonic() + DETECT_TIMEOUT
    while problem := replica_problem(source, replica, names, vault.vault_id):
        if time.monotonic() > deadline:
            raise NotSteady(f"{names.dr_bucket} holds no copy of the current version of vault "
                            f"{vault.vault_id} after {DETECT_TIMEOUT:g}s ({problem}); runbook "
                            "4.4 step 3 could not restore it: check replication (runbook 7.1)")
        drill.progress(f"waiting for the replica bucket to hold vault {vault.vault_id}: "
                       f"{problem}")
        time.sleep(0.5)
    yield from _damage(drill, PurgeVaultObject, vault)


@then("no version of the damaged vault's object is left in the vault data bucket")
def nothing_left(drill: Drill, damaged_vault: DamagedVault) -> None:
    """Runbook 4.4's diagnosis: list-object-versions shows no delete marker for step 1 to
    remove and no version for step 2 to copy: only step 3 can restore it."""
    left = left_in_primary(drill.target.clients, drill.target.names,
                           damaged_vault.vault.vault_id)
    if left:
        raise ObjectiveBreached(f"{len(left)} version(s) of vault {damaged_vault.vault.vault_id}"
                                f"'s object remain in {drill.target.names.bucket} "
                                f"({[v.version_id for v in left][:3]}): steps 1-2 apply")


@when("the operator copies the vault's objects back from the replica bucket (runbook 4.4 "
      "step 3)", target_fixture="restore")
def restore_from_dr(drill: Drill, damaged_vault: DamagedVault) -> Restore:
    """Runbook 4.4 step 3 with the AWS CLI: aws s3 cp s3://<replica>/vaults/<id>/
    s3://<bucket>/vaults/<id>/ --recursive --source-region <DR region>."""
    return restore_from_replica(drill.target.clients, drill.target.names,
                                damaged_vault.vault.vault_id,
                                lambda m: drill.progress(m, every=0.0))


@when(parsers.parse("the canary makes {count:d} acknowledged updates of the damaged vault"),
      target_fixture="canary_updates")
def canary_updates_damaged_vault(drill: Drill, damaged_vault: DamagedVault,
                                 count: int) -> list[CanaryWrite]:
    """Legitimate writes after the corruption: `count` updates of the damaged vault through
    the service, each acknowledged (the first one replaces the corrupt object)."""
    canary, vault_id = _canary(drill), damaged_vault.vault.vault_id
    updates = []
    for _ in range(count):
        write = canary.update(vault_id)
        if not write.acked:
            raise ProbeError(f"the service did not acknowledge an update of canary vault "
                             f"{vault_id} ({write.detail}); the drill needs acknowledged "
                             "writes after the corruption: check the service and run it again")
        updates.append(write)
    drill.observer.waiting(drill.record, f"the canary updated vault {vault_id} {count} times "
                                         "after the corruption, each acknowledged")
    return updates


@then(parsers.parse('the damaged vault reads fail with "{kind}"'))
def damaged_vault_fails(drill: Drill, damaged_vault: DamagedVault, kind: str) -> None:
    """The damaged vault's own probe fails with `kind`, and so does a read made right now."""
    fault, vault_id = damaged_vault.active, damaged_vault.vault.vault_id

    def failed(results: list[Any]) -> bool:
        return any(r.done >= fault.injected_at and not r.ok and kind in r.detail
                   for r in results)

    if not damaged_vault.watch.wait_for(failed, DETECT_TIMEOUT, lambda s, t: drill.progress(
            f"waiting for reads of vault {vault_id} to fail with {kind!r} ({t:.0f}s)")):
        seen = sorted({r.detail[:80] for r in damaged_vault.watch.results()
                       if r.done >= fault.injected_at and not r.ok})
        raise ObjectiveBreached(f"reads of vault {vault_id} did not fail with {kind!r} within "
                                f"{DETECT_TIMEOUT:g}s of '{fault.fault.describe()}' "
                                f"(failures seen: {seen or 'none'})")
    try:
        _read(drill, vault_id)
    except VaultUnavailable as exc:
        failure = str(exc)
    else:
        raise ObjectiveBreached(f"vault {vault_id} read back after "
                                f"'{fault.fault.describe()}': the damage is not visible to the "
                                "service")
    if kind not in failure:
        raise ObjectiveBreached(f"reading vault {vault_id} failed with {failure}, not {kind!r}")


@when("the operator removes the delete marker (runbook 4.4 step 1)", target_fixture="restore")
def remove_marker(drill: Drill, damaged_vault: DamagedVault) -> Restore:
    """Runbook 4.4 step 1: head-object, list-object-versions, delete the delete marker."""
    return remove_delete_marker(drill.target.clients, drill.target.region,
                                drill.target.names.bucket, damaged_vault.vault.vault_id,
                                lambda m: drill.progress(m, every=0.0))


@when("the operator restores the last good version (runbook 4.4 step 2)",
      target_fixture="restore")
def restore_good_version(drill: Drill, damaged_vault: DamagedVault) -> Restore:
    """Runbook 4.4 step 2: the newest version that opens and matches the ledger's checksum
    of the last acknowledged write is copied back with copy-object --copy-source ?versionId."""
    target, vault_id = drill.target, damaged_vault.vault.vault_id
    expected = ledger_checksum(target.clients, target.region, target.names.credentials_table,
                               vault_id)
    return restore_last_good_version(
        target.clients, target.region, target.names.bucket, vault_id,
        envelope_verifier(target.clients("kms", target.region), expected),
        lambda m: drill.progress(m, every=0.0))


@when("the operator copies the version from before the corruption over the current one "
      "(runbook 4.4 step 2 as written)", target_fixture="restore")
def copy_version_from_before(drill: Drill, damaged_vault: DamagedVault) -> Restore:
    """Runbook 4.4 step 2 as written: list-object-versions, then copy-object of the version
    that was current before the corruption (the last version before the fault) over the
    current one, without checking what was written since."""
    target = drill.target
    return copy_version_over(target.clients, target.region, target.names.bucket,
                             damaged_vault.vault.vault_id,
                             damaged_vault.active.fault.params["good_version"],
                             lambda m: drill.progress(m, every=0.0))


@then("the writes lost are exactly the canary's updates of the damaged vault")
def lost_exactly_updates(drill: Drill, damaged_vault: DamagedVault,
                         canary_updates: list[CanaryWrite]) -> None:
    """Ground truth for runbook 4.4 step 2 as written: the canary stops, every write is read
    back (service and ledger), and the loss must be exactly the updates made after the
    corruption, from the canary's own record (they were all acknowledged before the copy,
    and nothing else wrote the vault: no uncertainty)."""
    canary = _canary(drill)
    canary.stop()
    result = verify(drill.loop, drill.client, canary.writes(), ledger=drill.target.ledger())
    truth = Truth(frozenset(w.seq for w in canary_updates), after=len(canary_updates))
    acked = sorted(x.acked_utc for x in result.lost)
    drill.observer.waiting(drill.record, (
        f"runbook 4.4 step 2 as written lost {result.lost_count} of {result.acknowledged} "
        f"acknowledged canary writes (window {secs(result.loss_window)}"
        + (f": acknowledged {acked[0]} to {acked[-1]}" if acked else "") + "); the canary's "
        f"record: {len(canary_updates)} acknowledged updates of vault "
        f"{damaged_vault.vault.vault_id} after the corruption, all rolled back"))
    drill.rpo_truth = truth  # the RPO step checks its figure against it too
    problem = truth.disagreement(result)
    if problem is not None:
        raise MeasurementError(f"the RPO detector disagrees with the canary's own record of "
                         f"runbook 4.4 step 2 as written: {problem}; the measured loss "
                         "cannot be trusted (check drills.measure.rpo against this run)")


@then(parsers.parse("the restore passed over {count:d} corrupt versions to the version "
                    "current before the fault"))
def restore_chose_good_version(damaged_vault: DamagedVault, restore: Restore,
                               count: int) -> None:
    """Step 2 rejected exactly the corrupt versions and restored the one the fault replaced."""
    good = damaged_vault.active.fault.params["good_version"]
    if len(restore.skipped) != count:
        raise ObjectiveBreached(
            f"runbook 4.4 step 2 passed over {len(restore.skipped)} version(s), expected "
            f"{count}: {[(c.version_id, c.reason) for c in restore.skipped]}")
    if restore.restored_version != good:
        raise ObjectiveBreached(
            f"runbook 4.4 step 2 restored version {restore.restored_version}, but the version "
            f"current before the fault was {good}")


@then("the restore found the current version good and copied nothing")
def restore_left_current(restore: Restore) -> None:
    """Step 2 verified the current version (a legitimate write after the corruption) against
    the ledger and left it: no version was copied over it."""
    if restore.new_version or len(restore.checked) != 1 or not restore.checked[0].good:
        raise ObjectiveBreached(
            f"runbook 4.4 step 2 copied version {restore.restored_version} over a current "
            f"version that held the last acknowledged write ({restore.command}): the writes "
            "made since the corruption are rolled back")


@then(parsers.parse('the damaged vault reads back intact within the "{component}" objective'))
def damaged_vault_recovers(drill: Drill, damaged_vault: DamagedVault, component: str) -> None:
    """Measured RTO of the damaged vault: from the fault to the first of K consecutive reads
    of it whose content hash matches its last acknowledged write."""
    vault_id = damaged_vault.vault.vault_id
    k = drill.settings.probes.consecutive
    measurement = drill.measure_probes(
        component, damaged_vault.watch.results, name="vault",
        what=f"vault {vault_id} to read back intact",
        interval=WATCH_INTERVAL, fault=damaged_vault.active, outage_expected=True,
        method=(f"a probe of the damaged vault {vault_id} alone, every "
                f"{WATCH_INTERVAL * 1000:g} ms through NATS, enclave, KMS and S3 from before "
                f"the fault; recovered = first of {k} consecutive reads whose content hash is "
                "its last acknowledged write's"))
    drill.assert_met(measurement)


@then(parsers.parse('the damaged vault holds its last acknowledged write (the "{component}" '
                    "RPO objective)"))
def damaged_vault_intact(drill: Drill, damaged_vault: DamagedVault, component: str) -> None:
    """Read the damaged vault through the service: its content hash must be that of its last
    acknowledged write; anything else is a lost write against the component's RPO."""
    vault = damaged_vault.vault
    reason, unverified = "", 0
    try:
        data = _read(drill, vault.vault_id)
        if digest(data) != vault.sha256:
            reason = "corrupted"
    except VaultUnavailable as exc:
        unanswered = exc.kind in (Unavailability.TIMEOUT, Unavailability.BUSY)
        reason, unverified = ("", 1) if unanswered else ("missing", 0)
    drill.conclude_rpo(component, RpoResult(
        acknowledged=1, unverified=unverified,
        lost=(LostWrite(0, vault.vault_id, reason),) if reason else ()),
        "the damaged vault read back through the service after the restore and its content "
        "hash compared with that of its last acknowledged write")


def _read(drill: Drill, vault_id: str) -> bytes:
    """One read of the vault through the service; a busy refusal says nothing about the
    vault, so it is asked again (until DETECT_TIMEOUT)."""
    patience = time.monotonic() + DETECT_TIMEOUT
    while True:
        try:
            return drill.loop.run(drill.client.get(vault_id, timeout=READ_TIMEOUT),
                                  READ_TIMEOUT + 5)
        except VaultUnavailable as exc:
            if exc.kind is not Unavailability.BUSY or time.monotonic() > patience:
                raise
            time.sleep(min(1.0, max(0.05, exc.retry_after or 0.0)))


def _canary(drill: Drill) -> CanaryWriter:
    if drill.canary is None:
        raise ProbeError("this step needs the canary; add 'Given a canary writer makes "
                         "acknowledged vault writes' first")
    return drill.canary
