"""Steps for the KMS sealing key: runbook 3.4 faults, 4.3 recovery, and 4.3 step 3's data loss."""

from __future__ import annotations

from collections.abc import Iterator

from pytest_bdd import parsers, then, when

from drills.drill import Drill
from drills.errors import ObjectiveBreached, ProbeError, RecoveryError
from drills.faults import ActiveFault
from drills.faults.kms import DisableKey, ScheduleKeyDeletion, ScratchKeyDeleted
from drills.measure.rpo import LostWrite, RpoResult
from drills.procedures.kms import (
    DELETED,
    KeyRecovery,
    check_recoverable,
    diagnose,
    diagnose_sealing_key,
    recover_key,
    recover_sealing_key,
    sealing_key_arn,
)


def _sealing_key(drill: Drill) -> str:
    return sealing_key_arn(drill.target.clients, drill.target.names, drill.target.region)


@when("the sealing key is disabled")
def sealing_key_disabled(drill: Drill) -> Iterator[ActiveFault]:
    """DisableKey on the key named in SSM /vettid/nitro/sealing-key-arn; reverted at teardown."""
    active = drill.inject(DisableKey, key=_sealing_key(drill))
    yield active
    drill.revert(active)


@when(parsers.parse("the sealing key is scheduled for deletion in {days:d} days"))
def sealing_key_scheduled(drill: Drill, days: int) -> Iterator[ActiveFault]:
    """ScheduleKeyDeletion of the sealing key (7-30 days); teardown cancels and re-enables."""
    active = drill.inject(ScheduleKeyDeletion, key=_sealing_key(drill), days=days)
    yield active
    drill.revert(active)


@then(parsers.parse('the runbook 4.3 diagnosis finds the sealing key "{state}"'))
def diagnosis_finds(drill: Drill, state: str) -> None:
    """Runbook 4.3 diagnosis (SSM parameter, then describe-key) sees the key in `state`."""
    found = diagnose_sealing_key(drill.target.clients, drill.target.names, drill.target.region)
    if found.state != state:
        raise ObjectiveBreached(f"runbook 4.3 diagnosis found sealing key {found.key_arn} "
                                f"{found.state}, expected {state}")


@when("the operator recovers the sealing key (runbook 4.3)", target_fixture="key_recovery")
def operator_recovers_key(drill: Drill) -> KeyRecovery:
    """Runbook 4.3 steps 1-2: diagnose the key, then cancel-key-deletion and/or enable-key."""
    return recover_sealing_key(drill.target.clients, drill.target.names, drill.target.region,
                               lambda m: drill.progress(m, every=0.0))


@then(parsers.parse('after {action} the sealing key was "{state}"'))
def state_after_action(key_recovery: KeyRecovery, action: str, state: str) -> None:
    """The key state observed right after the runbook command `action` (e.g. enable-key)."""
    seen = key_recovery.state_after(action)
    ran = [s.command for s in key_recovery.steps]
    if seen is None:
        raise ObjectiveBreached(f"runbook 4.3 never ran {action} (found the key "
                                f"{key_recovery.found}; ran {ran})")
    if seen != state:
        raise ObjectiveBreached(f"after {action} the sealing key was {seen}, expected {state}")


@when(parsers.parse("a scratch KMS key sealing {count:d} scratch vaults is deleted after its "
                    "waiting period"))
def scratch_key_deleted(drill: Drill, count: int) -> Iterator[ActiveFault]:
    """Twin only: seal scratch vaults under a new scratch key, then delete that key for good
    (the twin ends its waiting period). Never the sealing key. Teardown removes the scratch."""
    active = drill.inject(ScratchKeyDeleted, bucket=drill.target.names.bucket, count=count)
    yield active
    drill.revert(active)


def _scratch(drill: Drill) -> ScratchKeyDeleted:
    fault = drill.last_fault.fault
    if not isinstance(fault, ScratchKeyDeleted):
        raise ProbeError("this step needs a scratch KMS key deleted by an earlier 'When a "
                         "scratch KMS key sealing N scratch vaults is deleted ...' step")
    return fault


@then("runbook 4.3 cannot bring the deleted key back")
def deleted_key_unrecoverable(drill: Drill) -> None:
    """Runbook 4.3 on the deleted key: describe-key no longer knows it; recovery refuses."""
    fault = _scratch(drill)
    clients, region = drill.target.clients, drill.target.region
    state = diagnose(clients, region, fault.key_arn).state
    if state != DELETED:
        raise ObjectiveBreached(f"the scratch key {fault.key_arn} is {state}, not deleted")
    try:
        recover_key(clients, region, fault.key_arn)
    except RecoveryError as exc:
        if "permanently unrecoverable" not in str(exc):
            raise
    else:
        raise ObjectiveBreached(f"runbook 4.3 'recovered' the deleted key {fault.key_arn}")


@then("the data sealed under the deleted key is reported as permanently lost")
def sealed_data_lost(drill: Drill) -> None:
    """Every scratch vault is read back every way there is (S3 + envelope, KMS alone); none
    can be: the loss is detected, and recorded as an RPO measurement that does not meet
    its objective. This loss is the expected outcome of 4.3 step 3, not a failed drill."""
    fault = _scratch(drill)
    checks = check_recoverable(drill.target.clients, drill.target.region, fault.target,
                               fault.sealed)
    readable = [c.vault.vault_id for c in checks if c.recovered]
    if readable:
        raise ObjectiveBreached(f"{len(readable)} scratch vault(s) were still readable after "
                                f"their key was deleted ({readable}): the loss was not observed")
    first = checks[0]
    drill.conclude_rpo("KMS Sealing Key", RpoResult(
        acknowledged=len(checks),
        lost=tuple(LostWrite(i, c.vault.vault_id, "key-deleted", c.vault.sealed_utc)
                   for i, c in enumerate(checks))),
        f"EXPECTED LOSS (runbook 4.3 step 3, twin only): {len(checks)} scratch vaults "
        "sealed like the service seals vaults, under a scratch key standing in for the "
        "sealing key, whose deletion the twin completed; each was then read back "
        f"through S3 (answered {first.s3_error or 'the body'}) and its saved data key "
        f"through KMS ({first.kms_error or 'decrypted'}); none could be. A deleted "
        "sealing key loses every vault it sealed: this is the runbook's 'permanently "
        "unrecoverable' case, demonstrated, not an objective the drill can meet",
        expected_loss=True)
