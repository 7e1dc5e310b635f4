"""Steps for the SSM parameters (runbook 2.3, 7.1 "Test SSM parameter backup restoration"):
an encrypted backup, parameters lost, restored from it, verified by hash, enclaves booting."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

from pytest_bdd import given, parsers, then, when

from drills.drill import Drill
from drills.errors import ObjectiveBreached, ProbeError
from drills.evidence.fmt import secs
from drills.faults import ActiveFault
from drills.faults.ssm import CorruptParameter, DeleteParameter
from drills.measure.rpo import LostWrite, RpoResult
from drills.procedures.ssm import (
    BackupRef,
    BootCheck,
    ParameterCheck,
    ParameterRestore,
    boot_check,
    export_parameters,
    restore_parameters,
    verify_parameters,
)

DETECT_TIMEOUT = 60.0
POLL = 0.25


@given(parsers.re(r'every "(?P<path>[^"]+)" SSM parameter is backed up to an encrypted object '
                  r'in "(?P<bucket>[^"]+)" \(runbook 2\.3\)'), target_fixture="ssm_backup")
def backup(drill: Drill, path: str, bucket: str) -> BackupRef:
    """Runbook 2.3's export, from memory into one SSE-KMS object (the twin creates the bucket)."""
    bucket = drill.target.names.named(bucket)  # as configured
    path = drill.target.names.named(path)  # as configured
    ref = export_parameters(drill.target.clients, drill.target.region, path=path, bucket=bucket,
                            create_bucket=drill.target.owns_backups)
    drill.observer.waiting(drill.record, f"backed up {len(ref.names)} parameter(s) under "
                                         f"{path} to {ref} (SSE-KMS)")
    return ref


@when(parsers.re(r'the SSM parameters? (?P<names>"[^"]+"(?:(?:, | and )"[^"]+")*) '
                 r'(?:is|are) (?P<action>deleted|corrupted)'), target_fixture="ssm_faults")
def damage(drill: Drill, ssm_backup: BackupRef, names: str,
           action: str) -> Iterator[list[ActiveFault]]:
    """Delete or corrupt the named parameters (journal: names and the backup's location only)."""
    kind = DeleteParameter if action == "deleted" else CorruptParameter
    faults = [drill.inject(kind, name=drill.target.names.named(name),
                           backup=ssm_backup.to_params())
              for name in re.findall(r'"([^"]+)"', names)]
    yield faults
    for active in reversed(faults):
        drill.revert(active)


@then(parsers.parse('an enclave booting now fails with "{kind}"'))
def boot_fails(drill: Drill, kind: str) -> None:
    """The symptom: what an enclave reads from SSM at boot fails, with `kind` in the error."""
    deadline = time.monotonic() + DETECT_TIMEOUT
    check = _boot(drill)
    while check.ok or kind not in check.detail:
        if time.monotonic() > deadline:
            raise ObjectiveBreached(f"an enclave booting now does not fail with {kind!r} "
                                    f"{DETECT_TIMEOUT:g}s after the fault (it "
                                    f"{'boots fine' if check.ok else 'fails: ' + check.detail})")
        drill.progress(f"waiting for a booting enclave to fail with {kind!r}")
        time.sleep(POLL)
        check = _boot(drill)


@then("an enclave booting now reads its parameters and connects to NATS")
def boot_works(drill: Drill) -> None:
    """What an enclave reads at boot is back: sealing key ARN, NATS credentials that connect."""
    check = _boot(drill)
    if not check.ok:
        raise ObjectiveBreached(f"an enclave booting now would fail: {check.detail}")


@dataclass(frozen=True, slots=True)
class RestoreRun:
    """The operator's restore: when it started (monotonic) and what it did per parameter."""

    started: float
    results: tuple[ParameterRestore, ...]


@when("the operator restores the SSM parameters from the backup (runbook 2.3)",
      target_fixture="ssm_restore")
def restore(drill: Drill, ssm_backup: BackupRef) -> RestoreRun:
    """put-parameter --overwrite, with the original type and KMS key, for every parameter of
    the backup that is missing or differs."""
    started = time.monotonic()
    results = restore_parameters(drill.target.clients, drill.target.region, ssm_backup)
    drill.observer.waiting(drill.record, f"restored from {ssm_backup} in "
                           f"{secs(time.monotonic() - started)}: " + ", ".join(
                               f"{r.name} ({r.outcome.value})" for r in results))
    return RestoreRun(started, results)


@then(parsers.parse('every backed-up SSM parameter is restored identically within the '
                    '"{component}" objective'))
def restored_identically(drill: Drill, ssm_backup: BackupRef, ssm_restore: RestoreRun,
                         component: str) -> None:
    """Measured RTO: first fault until every backed-up parameter is present with its type,
    KMS key and value (compared by hash), polled from SSM. The parameters were damaged at
    least until the restore began: that bounds the RTO from below."""
    def problem() -> str | None:
        checks = verify_parameters(drill.target.clients, drill.target.region, ssm_backup)
        return None if all(c.ok for c in checks) else _problems(checks)

    measurement, _ = drill.measure_polled(
        "parameters", component, problem, poll=POLL, fault=_first_fault(drill),
        down_until=ssm_restore.started, what="the parameters to match the backup",
        method=(f"every {POLL:g} s, each backed-up parameter read back from SSM (decrypted) "
                "and compared with the backup by type, KMS key and a keyed hash of the value"))
    drill.assert_met(measurement)


@then(parsers.parse('no backed-up SSM parameter is lost (the "{component}" RPO objective)'))
def none_lost(drill: Drill, ssm_backup: BackupRef, component: str) -> None:
    """RPO: parameters of the backup not restored identically (missing, or type, key or value
    differs), named in the evidence without their values."""
    checks = verify_parameters(drill.target.clients, drill.target.region, ssm_backup)
    drill.conclude_rpo(component, RpoResult(
        acknowledged=len(checks),
        lost=tuple(LostWrite(i, c.name, "not-restored", detail=c.problem)
                   for i, c in enumerate(checks) if not c.ok)),
        f"each of the {len(checks)} parameters of backup {ssm_backup} read back from SSM and "
        "compared by type, KMS key and a keyed hash of the value")


def _boot(drill: Drill) -> BootCheck:
    return boot_check(drill.target.clients, drill.target.names, drill.target.region,
                      drill.target.nats_urls(), drill.loop)


def _first_fault(drill: Drill) -> ActiveFault:
    faults = [a for a in drill.injector.active
              if isinstance(a.fault, DeleteParameter | CorruptParameter)]
    if not faults:
        raise ProbeError("no SSM parameter fault was injected in this drill; measure after a "
                         "'When the SSM parameter ... is deleted' step")
    return faults[0]


def _problems(checks: tuple[ParameterCheck, ...]) -> str:
    return ", ".join(f"{c.name} {c.problem}" for c in checks if not c.ok) or "none"
