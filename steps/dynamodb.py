"""Steps for the DynamoDB vault metadata (runbook 2.2): items deleted or corrupted, restored
from point-in-time recovery; measured through the writes that need those items."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime

from pytest_bdd import given, parsers, then, when

from drills.config import ProbeSettings
from drills.drill import Drill
from drills.errors import ConfigError, ObjectiveBreached, ProbeError, RecoveryError
from drills.evidence.fmt import secs
from drills.evidence.model import Measurement
from drills.faults import ActiveFault
from drills.faults.dynamodb import CorruptItems, DeleteItems
from drills.measure.probes import WriteProbes
from drills.measure.rpo import LostWrite, RpoResult
from drills.procedures.dynamodb import (
    ItemRecovery,
    decode_item,
    item_digest,
    recover_items,
    restored_name,
)

#: Each write probe is a get and a put (seven AWS calls): a slower pace than read probes
#: keeps the twin's shared CPU for the drill; the bracket of the RTO widens accordingly.
WRITE_PROBE_INTERVAL = 0.2
WRITE_PROBE_TIMEOUT = 2.0
RECOVERY_TIMEOUT = 900.0


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


@when(parsers.re(r'the metadata items of the probed vaults are (?P<action>deleted from|'
                 r'corrupted in) "(?P<table>[^"]+)"'))
def damage_items(drill: Drill, action: str, table: str) -> Iterator[ActiveFault]:
    """Delete or corrupt the probed vaults' items (on-demand backup first); reverted at teardown."""
    probes = _write_probes(drill)
    kind = DeleteItems if action.startswith("deleted") else CorruptItems
    with probes.quiesced():
        active = drill.inject(kind, table=table, keys=[v.vault_id for v in probes.vaults])
    yield active
    drill.revert(active)


@when(parsers.re(r'the operator restores the damaged items of "(?P<table>[^"]+)" '
                 r'(?P<when>as of just before the fault|from the latest restorable time) '
                 r'\(runbook 2\.2\)'), target_fixture="item_recovery")
def restore_items(drill: Drill, table: str, when: str) -> ItemRecovery:
    """Runbook 2.2: restore-table-to-point-in-time into <table>-restored, copy back the items
    deleted since, and the changed ones of vaults whose writes fail; verify; delete the copy."""
    fault = drill.last_fault
    probes = _write_probes(drill)
    before = None if when.startswith("from") else _journaled_at(drill, fault)
    recovery = recover_items(drill.target.clients, table, drill.target.region,
                             lambda: probes.failed_vaults(fault.injected_at), before=before,
                             use_latest=before is None, timeout=RECOVERY_TIMEOUT,
                             progress=drill.progress)
    drill.observer.waiting(drill.record, (
        f"restored {table} as of {recovery.restore_time:%Y-%m-%d %H:%M:%S} UTC into "
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
    names = drill.target.clients("dynamodb", drill.target.region).list_tables()["TableNames"]
    if restored_name(table) in names:
        raise ObjectiveBreached(f"{restored_name(table)} still exists; delete it with `aws "
                                f"dynamodb delete-table --table-name {restored_name(table)}`")


# -- helpers ------------------------------------------------------------------------------------
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
