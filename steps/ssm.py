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
from drills.evidence.model import Measurement, RpoMeasurement
from drills.faults import ActiveFault
from drills.faults.ssm import CorruptParameter, DeleteParameter
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
from drills.target import TwinTarget

DETECT_TIMEOUT = 60.0
POLL = 0.25


@given(parsers.re(r'every "(?P<path>[^"]+)" SSM parameter is backed up to an encrypted object '
                  r'in "(?P<bucket>[^"]+)" \(runbook 2\.3\)'), target_fixture="ssm_backup")
def backup(drill: Drill, path: str, bucket: str) -> BackupRef:
    """Runbook 2.3's export, from memory into one SSE-KMS object (the twin creates the bucket)."""
    ref = export_parameters(drill.target.clients, drill.target.region, path=path, bucket=bucket,
                            create_bucket=isinstance(drill.target, TwinTarget))
    drill.observer.waiting(drill.record, f"backed up {len(ref.names)} parameter(s) under "
                                         f"{path} to {ref} (SSE-KMS)")
    return ref


@when(parsers.re(r'the SSM parameters? (?P<names>"[^"]+"(?:(?:, | and )"[^"]+")*) '
                 r'(?:is|are) (?P<action>deleted|corrupted)'), target_fixture="ssm_faults")
def damage(drill: Drill, ssm_backup: BackupRef, names: str,
           action: str) -> Iterator[list[ActiveFault]]:
    """Delete or corrupt the named parameters (journal: names and the backup's location only)."""
    kind = DeleteParameter if action == "deleted" else CorruptParameter
    faults = [drill.inject(kind, name=name, backup=ssm_backup.to_params())
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
    assert check.ok, f"an enclave booting now would fail: {check.detail}"


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
    objective = drill.settings.objectives.for_component(component)
    first = _first_fault(drill)
    lower = ssm_restore.started
    while True:
        polled = time.monotonic()
        checks = verify_parameters(drill.target.clients, drill.target.region, ssm_backup)
        if all(c.ok for c in checks) or polled - first.injected_at > objective.window:
            break
        lower = polled
        drill.progress(f"waiting for the parameters to match the backup: {_problems(checks)}")
        time.sleep(POLL)
    done = time.monotonic()
    ok = all(c.ok for c in checks)
    rto = done - first.injected_at if ok else None
    measurement = Measurement(
        name="parameters", component=component, objective_rto=objective.rto,
        verdict="recovered" if ok else "not-recovered", rto=rto,
        rto_lower=(lower - first.injected_at) if ok else None,
        uncertainty=(done - lower) if ok else None, time_to_detect=None,
        met=ok and rto is not None and rto <= objective.rto, fault_id=first.fault_id,
        method=(f"every {POLL:g} s, each of the {len(checks)} backed-up parameters read back "
                "from SSM (decrypted) and compared with the backup by type, KMS key and a "
                "keyed hash of the value"))
    drill.record_measurement(measurement)
    drill.assert_met(measurement)


@then(parsers.parse('no backed-up SSM parameter is lost (the "{component}" RPO objective)'))
def none_lost(drill: Drill, ssm_backup: BackupRef, component: str) -> None:
    """RPO: parameters of the backup not restored identically (missing, or type, key or value
    differs), named in the evidence without their values."""
    objective = drill.settings.objectives.for_component(component)
    checks = verify_parameters(drill.target.clients, drill.target.region, ssm_backup)
    lost = [c for c in checks if not c.ok]
    measurement = RpoMeasurement(
        component=component, objective_writes=objective.rpo_writes, acknowledged=len(checks),
        unacknowledged=0, lost=len(lost), loss_window=0.0, unverified=0,
        met=len(lost) <= objective.rpo_writes,
        lost_writes=[{"seq": i, "vault_id": c.name, "reason": c.problem}
                     for i, c in enumerate(checks) if not c.ok],
        method=(f"each of the {len(checks)} parameters of backup {ssm_backup} read back from "
                "SSM and compared by type, KMS key and a keyed hash of the value"))
    drill.record_rpo(measurement)
    if not measurement.met:
        raise ObjectiveBreached(f"{component} RPO breached: {len(lost)} of {len(checks)} "
                                f"parameters not restored identically ({_problems(checks)})")


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
