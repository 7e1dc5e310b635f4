"""Pre-flight steps: runbook 2.1-2.4 "Backup Verification", read-only, no fault needed."""

from __future__ import annotations

from pytest_bdd import parsers, then

from drills.drill import Drill
from drills.errors import ObjectiveBreached
from drills.procedures.preflight import (
    CheckResult,
    bucket_encryption,
    bucket_versioning,
    critical_parameter,
    critical_parameters,
    sealing_key,
    table_pitr,
)


def _passed(drill: Drill, results: list[CheckResult]) -> None:
    """Report every check in the drill's output; fail naming each one that did not pass."""
    for result in results:
        drill.observer.waiting(drill.record, ("ok: " if result.passed else "FAILED: ")
                               + result.message)
    failed = [r.message for r in results if not r.passed]
    if failed:
        raise ObjectiveBreached("; ".join(failed))


@then("the vault data bucket keeps every version (runbook 2.1)")
def bucket_versioned(drill: Drill) -> None:
    """get-bucket-versioning of vettid-vault-data-<account> says Enabled."""
    t = drill.target
    _passed(drill, [bucket_versioning(t.clients, t.names, t.region)])


@then("the vault data bucket encrypts new objects with SSE-KMS (runbook 2.1)")
def bucket_encrypted(drill: Drill) -> None:
    """get-bucket-encryption of the vault bucket has an aws:kms default rule."""
    t = drill.target
    _passed(drill, [bucket_encryption(t.clients, t.names, t.region)])


@then(parsers.parse('point-in-time recovery is enabled on "{table}" (runbook 2.2)'))
def pitr_enabled(drill: Drill, table: str) -> None:
    """describe-continuous-backups of `table` says PointInTimeRecoveryStatus ENABLED."""
    table = drill.target.names.named(table)  # as configured
    _passed(drill, [table_pitr(drill.target.clients, table, drill.target.region)])


@then("the sealing key is enabled and not pending deletion (runbook 2.4)")
def key_usable(drill: Drill) -> None:
    """describe-key of the key /vettid/nitro/sealing-key-arn names: Enabled, no deletion date."""
    t = drill.target
    _passed(drill, [sealing_key(t.clients, t.names, t.region)])


@then("the critical SSM parameters are present (runbook 2.3)")
def parameters_present(drill: Drill) -> None:
    """Runbook 2.3's four critical parameters exist (their values are not read)."""
    t = drill.target
    _passed(drill, [critical_parameter(t.clients, name, t.region)
                    for name in critical_parameters(t.names)])
