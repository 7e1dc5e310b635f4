"""Steps for the DynamoDB vault metadata (runbook 2.2): items deleted or corrupted, restored
from point-in-time recovery; measured through the writes that need those items.

Two recoveries: the runbook as written (the latest restorable time, every item copied back),
whose loss is checked write by write against the canary's own record, and the corrected one
(just before the damage, only the damaged items, what was written since replayed)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from pytest_bdd import given, parsers, then, when

from drills.config import ProbeSettings
from drills.drill import Drill
from drills.errors import (
    ConfigError,
    MeasurementError,
    NotSteady,
    ObjectiveBreached,
    ProbeError,
    RecoveryError,
)
from drills.evidence.fmt import secs
from drills.evidence.model import Measurement
from drills.faults import ActiveFault
from drills.faults.dynamodb import CorruptItems, DeleteItems
from drills.measure.canary import CanaryWriter
from drills.measure.probes import WriteProbes
from drills.measure.rpo import RESOLUTION, LostWrite, RpoResult, rollback_truth, verify
from drills.procedures.dynamodb import (
    ItemRecovery,
    TableRecovery,
    decode_item,
    item_digest,
    pitr_window,
    recover_items,
    recover_table,
    replay_from_vault_objects,
    restored_name,
)

#: Each write probe is a get and a put (seven AWS calls): a slower pace than read probes
#: keeps the twin's shared CPU for the drill; the bracket of the RTO widens accordingly.
WRITE_PROBE_INTERVAL = 0.2
WRITE_PROBE_TIMEOUT = 2.0
RECOVERY_TIMEOUT = 900.0
#: Waiting for the latest restorable time to pass the canary's first writes: AWS puts it
#: "typically 5 minutes" behind the current time; the twin's profile sets its own lag.
RESTORABLE_TIMEOUT = 900.0
CANARY_TIMEOUT = 60.0


@given(parsers.re(r'vault writes to (?:(?P<count>\d+) enrolled vaults?|the vaults '
                  r'"(?P<ids>[^"]+)") are probed'))
def write_probes(drill: Drill, count: str | None, ids: str | None) -> None:
    """Probe with content-preserving writes to N random known vaults (or the named ones).

    Must come before "the vault service is healthy", which then waits for K successful writes.
    """
    if drill.probes is not None:
        raise ProbeError("probes are already running; put 'vault writes to ... are probed' "
                         "before 'the vault service is healthy'")
    known = {v.vault_id: v for v in drill.target.known_vaults()}
    if ids:
        wanted = [i.strip() for i in ids.split(",") if i.strip()]
        missing = [i for i in wanted if i not in known]
        if missing:
            raise ConfigError(f"unknown vault(s) {', '.join(missing)}; name vaults whose "
                              "content hash the target knows")
        vaults = [known[i] for i in wanted]
    else:
        if not count or int(count) > len(known) or int(count) < 1:
            raise ConfigError(f"cannot probe {count} vaults: the target knows {len(known)}")
        vaults = random.sample(sorted(known.values(), key=lambda v: v.vault_id), int(count))
    settings = ProbeSettings(WRITE_PROBE_INTERVAL, WRITE_PROBE_TIMEOUT,
                             drill.settings.probes.consecutive)
    probes = WriteProbes(drill.loop, drill.client, vaults, settings)
    probes.start()
    drill.probes = probes


@given(parsers.parse('the point-in-time recovery of "{table}" holds the canary\'s first '
                     "{count:d} acknowledged writes"))
def canary_restorable(drill: Drill, table: str, count: int) -> None:
    """Wait until `table`'s LatestRestorableDateTime (describe-continuous-backups) is past the
    canary's first `count` acknowledged writes, so that a restore to it holds vaults the
    canary goes on updating, whatever the lag of the target (AWS: typically 5 minutes)."""
    table = drill.target.names.named(table)  # as configured
    drill.wait_for_canary(count, CANARY_TIMEOUT)
    acked = sorted((w for w in _canary(drill).writes() if w.acked), key=lambda w: w.done)
    moment = datetime.fromisoformat(acked[count - 1].done_utc).timestamp() + RESOLUTION
    deadline = time.monotonic() + RESTORABLE_TIMEOUT
    while True:
        latest = pitr_window(drill.target.clients, table, drill.target.region).latest
        if latest is not None and latest.timestamp() > moment:
            return
        if time.monotonic() > deadline:
            raise NotSteady(f"the latest restorable time of {table} ({latest}) did not pass "
                            f"the canary's first {count} writes in {RESTORABLE_TIMEOUT:g}s; "
                            "check its point-in-time recovery (describe-continuous-backups)")
        drill.progress(f"waiting for the latest restorable time of {table} "
                       f"({latest.astimezone(UTC):%H:%M:%S} UTC) to pass the canary's first "
                       f"{count} writes"
                       if latest is not None else f"waiting for {table}'s restorable window")
        time.sleep(0.5)


@when(parsers.re(r'the metadata items of the probed vaults are (?P<action>deleted from|'
                 r'corrupted in) "(?P<table>[^"]+)"'))
def damage_items(drill: Drill, action: str, table: str) -> Iterator[ActiveFault]:
    """Delete or corrupt the probed vaults' items (on-demand backup first); reverted at teardown."""
    table = drill.target.names.named(table)  # as configured
    probes = _write_probes(drill)
    kind = DeleteItems if action.startswith("deleted") else CorruptItems
    with probes.quiesced():
        active = drill.inject(kind, table=table, keys=[v.vault_id for v in probes.vaults])
    yield active
    drill.revert(active)


@when(parsers.parse('the canary keeps updating {count:d} of its vaults while their metadata '
                    'items and the probed vaults\' are deleted from "{table}"'))
def canary_items_deleted(drill: Drill, count: int, table: str) -> Iterator[ActiveFault]:
    """The canary gives up `count` idle vaults and updates them back to back while their
    items and the probed vaults' are deleted (on-demand backup first), until the deletion:
    later updates fail ("not enrolled") and retire their vault. Restore times are whole
    seconds, so the updates acknowledged in the second of the deletion lie after the restore
    time: only a replay keeps them."""
    table = drill.target.names.named(table)  # as configured
    probes, canary = _write_probes(drill), _canary(drill)
    vaults = [canary.take() for _ in range(count)]
    done = threading.Event()
    failed: list[BaseException] = []

    def update_until_done() -> None:
        live = list(vaults)
        try:
            while live and not done.is_set():
                for vault_id in list(live):
                    if not canary.update(vault_id).acked:
                        live.remove(vault_id)  # its content is no longer known: retired
        except Exception as exc:  # raised in the step below, not lost with the thread
            failed.append(exc)

    writer = threading.Thread(target=update_until_done, name="canary-updates", daemon=True)
    with probes.quiesced():
        writer.start()
        try:
            active = drill.inject(DeleteItems, table=table,
                                  keys=[v.vault_id for v in probes.vaults] + vaults)
        finally:
            done.set()
            writer.join(timeout=canary.timeout + 10)
    if failed:
        raise ProbeError(f"the canary's updates of {', '.join(vaults)} failed: "
                         f"{type(failed[0]).__name__}: {failed[0]}") from failed[0]
    acked = [w for w in canary.writes() if w.vault_id in vaults and w.acked and w.version > 1]
    drill.observer.waiting(drill.record, f"the canary made {len(acked)} acknowledged updates of "
                                         f"{count} vaults up to their deletion")
    yield active
    drill.revert(active)


@when(parsers.re(r'the operator restores the damaged items of "(?P<table>[^"]+)" '
                 r'(?P<when>as of just before the fault|from the latest restorable time) '
                 r'\(runbook 2\.2\)'), target_fixture="item_recovery")
def restore_items(drill: Drill, table: str, when: str) -> ItemRecovery:
    """Runbook 2.2, corrected: restore-table-to-point-in-time into <table>-restored, copy back
    the items deleted since and the changed ones of vaults whose writes fail, replay onto
    them what was written since the restore time (credentials ledger: from the vaults' data
    objects); verify; delete the copy."""
    table = drill.target.names.named(table)  # as configured
    fault = drill.last_fault
    probes = _write_probes(drill)
    target = drill.target
    before = None if when.startswith("from") else _journaled_at(drill, fault)
    # The credentials ledger names each vault's data object: what was written to a damaged
    # item since the restore time is replayed from the object's current version.
    replay = (replay_from_vault_objects(target.clients, target.region, target.names.bucket)
              if table == target.names.credentials_table else None)
    recovery = recover_items(target.clients, table, target.region,
                             lambda: probes.failed_vaults(fault.injected_at), before=before,
                             use_latest=before is None, timeout=RECOVERY_TIMEOUT,
                             progress=drill.progress, replay=replay)
    drill.observer.waiting(drill.record, (
        f"restored {table} as of {recovery.restore_time.astimezone(UTC):%Y-%m-%d %H:%M:%S} "
        f"UTC into "
        f"{recovery.restored_table} (waited {secs(recovery.waited_restorable)} to be "
        f"restorable, restore took {secs(recovery.restore_seconds)}); since then "
        f"{len(recovery.diff.missing)} item(s) deleted, {len(recovery.diff.changed)} changed; "
        "copied back: " + (", ".join(f"{i.key} ({i.outcome.value})" for i in recovery.items)
                           or "nothing")))
    if not recovery.items:
        raise RecoveryError(f"no damaged item of {table} was found to copy back (nothing "
                            "deleted since the restore time, no failing vault among the changed)")
    if not recovery.verified:
        raise RecoveryError(f"items copied back into {table} did not read back as restored: "
                            + ", ".join(i.key for i in recovery.items if not i.verified))
    return recovery


@when(parsers.parse('the operator restores "{table}" to its latest restorable time and copies '
                    "every item back (runbook 2.2 as written)"), target_fixture="table_recovery")
def restore_whole_table(drill: Drill, table: str) -> TableRecovery:
    """Runbook 2.2 as written: restore-table-to-point-in-time --use-latest-restorable-time into
    <table>-restored, put every item of it back over the live table (items created since
    stay), delete the copy."""
    table = drill.target.names.named(table)  # as configured
    recovery = recover_table(drill.target.clients, table, drill.target.region,
                             not_after=_journaled_at(drill, drill.last_fault),
                             timeout=RECOVERY_TIMEOUT, progress=drill.progress)
    drill.observer.waiting(drill.record, (
        f"restored {table} as of {recovery.restore_time.astimezone(UTC):%H:%M:%S.%f} UTC (its "
        f"latest restorable time) into {recovery.restored_table} in "
        f"{secs(recovery.restore_seconds)}; copied all {len(recovery.copied)} items back over "
        f"{table} in {secs(recovery.copy_seconds)}"))
    return recovery


@then("the writes lost are exactly the canary's acknowledged writes after the restore time")
def lost_exactly_after_restore(drill: Drill, table_recovery: TableRecovery) -> None:
    """Ground truth for runbook 2.2 as written. The canary stops; every write is read back
    (service and ledger) and the loss compared with what the canary's own record says: the
    acknowledged writes that landed after the restore time and before their item was copied
    back are lost, unless the item was written again after the copy; writes acknowledged
    before the restore time survive; writes straddling the restore time or their item's
    copy (sent before, answered after) are the measurement's uncertainty."""
    canary = _canary(drill)
    canary.stop()
    writes = canary.writes()
    result = verify(drill.loop, drill.client, writes, ledger=drill.target.ledger())
    truth = rollback_truth(writes, table_recovery.restore_time.timestamp(),
                           table_recovery.copy_times())
    uncertain_lost = sum(x.seq in truth.uncertain for x in result.lost)
    acked = sorted(x.acked_utc for x in result.lost)
    drill.observer.waiting(drill.record, (
        f"runbook 2.2 as written lost {result.lost_count} of {result.acknowledged} "
        f"acknowledged canary writes (window {secs(result.loss_window)}"
        + (f": acknowledged {acked[0]} to {acked[-1]}" if acked else "") + "); the canary's "
        f"record: {truth.after} acknowledged writes sent after the restore time, "
        f"{len(truth.lost)} certainly lost (acknowledged before their item was copied "
        f"back), {len(truth.uncertain)} uncertain (straddling the restore time or a copy: "
        f"{uncertain_lost} of them found lost); the others enrolled vaults the restore did "
        "not hold, or their vault was written again after the copy"))
    drill.rpo_truth = truth  # the RPO step checks its figure against it too
    problem = truth.disagreement(result)
    if problem is not None:
        raise MeasurementError(f"the RPO detector disagrees with the canary's own record of "
                         f"runbook 2.2 as written: {problem}; the measured loss cannot be "
                         "trusted (check drills.measure.rpo against this run's writes)")
    if not truth.lost:
        raise ProbeError("no canary write was acknowledged between the restore time and the "
                         "copy back, so this drill showed nothing; let the canary write "
                         "longer before the fault")


@then(parsers.parse('vault writes recover within the "{component}" objective'))
def writes_recover(drill: Drill, component: str) -> None:
    """Measured RTO: fault until K consecutive vault writes succeed again, vs the objective."""
    drill.assert_met(_measure_writes(drill, component))


@then(parsers.parse('the restored items match their last acknowledged state (the "{component}" '
                    "RPO objective)"))
def items_match(drill: Drill, item_recovery: ItemRecovery, component: str) -> None:
    """RPO: damaged items whose restored content differs from the state last acknowledged
    before the fault (captured when the fault was prepared)."""
    fault = _item_fault(drill)
    restored = {i.key: i.restored for i in item_recovery.items}
    key_attr = fault.fault.params["key_attr"]
    lost = []
    for seq, image in enumerate(fault.fault.params["items"]):
        before = decode_item(image)
        key = before[key_attr]["S"]
        after = restored.get(key)
        if item_digest(after) != item_digest(before):
            lost.append(LostWrite(seq, key, "not-restored" if after is None else "corrupted",
                                  before.get("updated_at", {}).get("S", "")))
    drill.conclude_rpo(component, RpoResult(acknowledged=len(fault.fault.params["items"]),
                                            lost=tuple(lost)),
                       f"each damaged {item_recovery.table} item as copied back from the "
                       "point-in-time restore, hash-compared with its image read just before "
                       "the fault (no write to it was in flight then)")


@then(parsers.parse('no restored copy of "{table}" is left behind'))
def restored_copy_deleted(drill: Drill, table: str) -> None:
    """The runbook's `<table>-restored` was deleted once the items were copied back."""
    table = drill.target.names.named(table)  # as configured
    names = drill.target.clients("dynamodb", drill.target.region).list_tables()["TableNames"]
    if restored_name(table) in names:
        raise ObjectiveBreached(f"{restored_name(table)} still exists; delete it with `aws "
                                f"dynamodb delete-table --table-name {restored_name(table)}`")


# -- helpers ------------------------------------------------------------------------------------
def _canary(drill: Drill) -> CanaryWriter:
    if drill.canary is None:
        raise ProbeError("this step needs the canary; add 'Given a canary writer makes "
                         "acknowledged vault writes' first")
    return drill.canary


def _write_probes(drill: Drill) -> WriteProbes:
    if not isinstance(drill.probes, WriteProbes):
        raise ProbeError("this step needs vault write probes; add 'Given vault writes to N "
                         "enrolled vaults are probed' first")
    return drill.probes


def _item_fault(drill: Drill) -> ActiveFault:
    for active in reversed(drill.injector.active):
        if isinstance(active.fault, DeleteItems | CorruptItems):
            return active
    raise ProbeError("no DynamoDB item fault was injected in this drill")


def _journaled_at(drill: Drill, fault: ActiveFault) -> datetime:
    """When the journal recorded the fault as about to act: the last moment before it."""
    entry = next(e for e in drill.injector.journal.entries() if e.fault_id == fault.fault_id)
    return datetime.fromisoformat(entry.injected_utc.replace("Z", "+00:00"))


def _measure_writes(drill: Drill, component: str) -> Measurement:
    probes = _write_probes(drill)
    return drill.measure_probes(component, probes.results, interval=probes.settings.interval,
                                what="vault writes to recover", method=probes.method)
