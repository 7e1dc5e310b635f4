"""Steps of the DR-region exercises: runbook 7.2's quarterly failover (5.2, 5.3) and 3.6's
region outage. Each phase goes on the drill's phase timeline (detect, decide, DR capacity
ready, DNS INSYNC, first enrolment in DR, failback complete), timed from the first fault."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from pytest_bdd import given, parsers, then, when

from drills.capabilities import Capability, needs
from drills.comms import Template, notice
from drills.config import SERVICE_COMPONENT
from drills.drill import Drill
from drills.errors import ProbeError, RecoveryError
from drills.faults import ActiveFault
from drills.faults.region import Failover, IsolateRegion
from drills.measure import figures
from drills.measure.figures import Watch
from drills.measure.rpo import RpoResult, count_loss, verify
from drills.procedures import region as procedure
from drills.vault import VaultApi, VaultUnavailable

PREREQUISITES_TIMEOUT = 30.0
SMOKE_VAULTS = 5  # known vaults read back in the DR region
DNS_TIMEOUT = 20.0  # seconds 5.2 step 2 may take before it is recorded as not answered


def _dr(drill: Drill) -> str:
    return drill.target.names.dr_region


def _members(drill: Drill, region: str, asg: str) -> set[str]:
    return procedure.group_members(drill.target.clients, region, asg)


def _failover(drill: Drill) -> Failover:
    for active in reversed(drill.injector.active):
        if isinstance(active.fault, Failover):
            return active.fault
    raise ProbeError("no failover in this drill; add 'When the operator fails over to the DR "
                     "region (runbook 5.2 steps 1-2)' first")


@given("the maintenance window is scheduled and users are notified (runbook 7.2 items 1-2)")
def maintenance_window(drill: Drill) -> None:
    """Record the window (from now, as long as the service's RTO objective allows an outage)
    and the user notification, in the appendix template's own words."""
    window = drill.settings.objectives.rto
    sent = notice(Template.SERVICE_DEGRADED,
                  f"maintenance window for the quarterly failover test, {window / 60:g} min "
                  "from now (runbook 7.2 items 1-2)")
    drill.phase("notify", sent.summary())


@given("the DR prerequisites of runbook 5.2 hold", target_fixture="dr_plan")
def prerequisites(drill: Drill) -> dict[str, Any]:
    """Runbook 5.2 "Pre-requisites", read from each service (nothing changes); and what
    failover will need, read while the primary region answers."""
    checks = procedure.prerequisites(drill.target.clients, drill.target.names)
    for check in checks:
        drill.progress(f"5.2 pre-requisite {'met' if check.met else 'NOT MET'}: {check.name} "
                       f"({check.found})", every=0.0)
    unmet = [f"{c.name}: {c.found}" for c in checks if not c.met]
    if unmet:
        raise RecoveryError("runbook 5.2 pre-requisites not met, so failover would fail: "
                            + "; ".join(unmet))
    drill.phase("preflight", f"{len(checks)} pre-requisites of runbook 5.2 met")
    return procedure.read_plan(drill.target.clients, drill.target.names)


@when("the operator fails over to the DR region (runbook 5.2 steps 1-2)",
      target_fixture="failover")
def fail_over(drill: Drill, dr_plan: dict[str, Any]) -> Iterator[ActiveFault]:
    """5.2 step 1 (the DR ASG to 2) and step 2 (the DNS change), with the aws CLI; journaled,
    so a run that dies here is failed back by `drills rollback`. Step 2 gets DNS_TIMEOUT:
    Route 53's control plane may be dark with us-east-1. From then on, the phases that follow
    are watched at once: DR capacity, the change INSYNC, the first enrolment served in DR."""
    active = drill.inject(Failover, names=drill.target.names.to_dict(), capacity=2,
                          dns_timeout=DNS_TIMEOUT, **dr_plan)
    drill.phase("decide", "failover started (5.2 step 1: set-desired-capacity)",
                at=active.injected_at)
    fault = active.fault
    assert isinstance(fault, Failover)
    names, clients = drill.target.names, drill.target.clients
    component = SERVICE_COMPONENT

    def capacity() -> str | None:
        seen = procedure.region_capacity(clients, names.dr_region, names.dr_asg)
        return None if seen.ready else (f"desired {seen.desired}, InService {seen.in_service}, "
                                        f"healthy targets {seen.healthy_targets}")

    def insync() -> str | None:
        if not fault.dns_ready:
            return "change-resource-record-sets still running"
        dns = fault.dns
        if dns is None or dns.change_id is None:
            raise RecoveryError("runbook 5.2 step 2 was not accepted: " + (
                dns.command.why() if dns else "it did not run"))
        return None if procedure.change_status(clients, dns.change_id) == "INSYNC" else (
            f"change {dns.change_id} PENDING")

    drill.watch("dr-capacity", component, capacity)
    drill.watch("dns-insync", component, insync)
    drill.watch("first-dr-enrolment", component, _served_in_dr(drill), poll=1.0)
    yield active
    drill.revert(active)


def _served_in_dr(drill: Drill) -> Callable[[], str | None]:
    """An app's enrolment through the service's name, resolved as the apps resolve it (the
    TTL of their last answer honoured): None once an enclave of the DR region answers."""
    names, client = drill.target.names, _app(drill)
    dr = _members(drill, names.dr_region, names.dr_asg)

    def check() -> str | None:
        vault = f"drills-probe-dr-{uuid.uuid4().hex[:8]}"
        try:
            reply = drill.loop.run(client.enroll(vault, b"dr-enrolment", timeout=5),
                                   timeout=15)
        except VaultUnavailable as exc:
            return str(exc)
        if reply.instance_id in dr:
            return None
        dr.update(_members(drill, names.dr_region, names.dr_asg))  # booted meanwhile
        return None if reply.instance_id in dr else f"answered by {reply.instance_id}"

    return check


def _watched(drill: Drill, name: str) -> Watch:
    for watch in drill.watches:
        if watch.name == name:
            return watch
    raise ProbeError(f"nothing watches {name}: it starts with 'When the operator fails over "
                     "to the DR region (runbook 5.2 steps 1-2)'")


@then(parsers.parse('the DR region serves at desired capacity within the "{component}" '
                    'objective'))
def dr_capacity(drill: Drill, component: str) -> None:
    """The DR ASG's instances pass their load balancer health check (the enclave answers)."""
    names = drill.target.names
    measurement, polled = drill.measure_watched(
        _watched(drill, "dr-capacity"), component, what=f"{names.dr_asg} to serve",
        method="polled the DR Auto Scaling group and its target group every 0.25 s from the "
               "failover: desired capacity reached by healthy targets")
    drill.phase("dr-capacity", f"{names.dr_asg} serving at desired capacity",
                at=polled.at, reached=polled.held)
    drill.assert_met(measurement)


@then(parsers.parse('the DNS change is INSYNC within the "{component}" objective'))
def dns_insync(drill: Drill, component: str) -> None:
    """5.2 step 2's change reaches every Route 53 name server (GetChange: INSYNC)."""
    dns = _failover(drill).dns
    if dns is None or dns.change_id is None:
        raise RecoveryError("runbook 5.2 step 2 was not accepted: " + (
            dns.command.why() if dns else "it did not run"))
    measurement, polled = drill.measure_watched(
        _watched(drill, "dns-insync"), component, what=f"change {dns.change_id} to be INSYNC",
        method="polled Route 53 GetChange every 0.25 s from the change until INSYNC")
    drill.phase("dns-insync", f"change {dns.change_id} INSYNC", at=polled.at,
                reached=polled.held)
    drill.assert_met(measurement)


@then("the runbook's enrolment test answers from api-dr.vettid.dev (runbook 5.2 step 3)")
def enrolment_test(drill: Drill) -> None:
    """5.2 step 3's curl, run by the curl binary; the name resolved as the target's DNS
    answers it (on the twin, given to curl with --resolve)."""
    target, names = drill.target, drill.target.names
    resolver = target.resolver()
    address = resolver.resolve(names.dr_api_host) if resolver else None
    done = procedure.enrolment_test(target.api_url(names.dr_region), target.ca_bundle(),
                                    address)
    if not done.ok:
        raise RecoveryError(f"runbook 5.2 step 3 failed: {done.line}: {done.why()}")
    reply = json.loads(done.stdout)
    drill.phase("enrolment-test", f"{done.line.split(' -d ')[0]} answered session "
                f"{reply.get('session_id')} from {reply.get('instance_id')}")


@then(parsers.parse('the first enrolment through api.vettid.dev is served by the DR region '
                    'within the "{component}" objective'))
def first_dr_enrolment(drill: Drill, component: str) -> None:
    """An app enrols (start-direct + complete, attestation verified) through the service's
    name every second from the failover, until an enclave of the DR region answers."""
    measurement, polled = drill.measure_watched(
        _watched(drill, "first-dr-enrolment"), component,
        what="an enrolment through the service's name to be served in the DR region",
        method="an app's enrolment (start-direct + complete, attestation verified) through "
               "the service's name every second from the failover, resolved as the apps "
               "resolve it; reached when an instance of the DR ASG answered")
    drill.phase("first-dr-enrolment", "an enrolment through the service's name served by the "
                "DR region", at=polled.at, reached=polled.held)
    drill.assert_met(measurement)


@then("the smoke tests pass in the DR region (runbook 7.2 item 4)")
def smoke_tests(drill: Drill) -> None:
    """Through the service's name, now the DR region's: vaults enrolled in the primary read
    back intact (replicated data, opened with the replica key), and a new vault is written
    and read back."""
    client = _app(drill)
    known = drill.target.known_vaults()[:SMOKE_VAULTS]

    async def smoke() -> list[str]:
        failures = []
        for vault in known:
            data = await client.get(vault.vault_id, timeout=10)
            if hashlib.sha256(data).hexdigest() != vault.sha256:
                failures.append(f"{vault.vault_id} does not match its content hash")
        probe = f"drills-probe-smoke-{uuid.uuid4().hex[:8]}"
        await client.enroll(probe, b"smoke", timeout=10)
        await client.put(probe, b"smoke-2", timeout=10)
        if await client.get(probe, timeout=10) != b"smoke-2":
            failures.append(f"{probe} did not read back what was written")
        return failures

    try:
        failures = drill.loop.run(smoke(), timeout=120)
    except VaultUnavailable as exc:
        failures = [str(exc)]
    if failures:
        raise RecoveryError("smoke tests in the DR region failed: " + "; ".join(failures))
    drill.phase("smoke-tests", f"{len(known)} replicated vaults read back intact, a new vault "
                "written and read back")


@when("the operator fails back to the primary region (runbook 5.3)")
def fail_back(drill: Drill, failover: ActiveFault) -> None:
    """Runbook 5.3 (the failover's revert) with step 3 before step 2, so that nothing in DR
    acknowledges a write while the bucket is synced (`FailbackOrder.DR_STOPPED_FIRST`), each
    step on the timeline."""
    _run_failback(drill, failover, procedure.FailbackOrder.DR_STOPPED_FIRST)


@when("the operator fails back in the runbook's order (5.3 steps 1, 2, 3, 4)")
def fail_back_as_written(drill: Drill, failover: ActiveFault) -> None:
    """Runbook 5.3 exactly as printed: the sync while DR still serves, DR scaled down, then
    DNS back. The operator moves from step 2 to step 3 at a person's pace, in which the apps
    write through the service: the drill goes on once the DR region has acknowledged a write
    sent after the sync ended (on a loaded machine the harness alone can be quicker than any
    write), so what the order risks is measured, not left to timing. (A run killed before
    this step is failed back by `drills rollback` in the order that stops DR first, which
    the journal holds.)"""
    _run_failback(drill, failover, procedure.FailbackOrder.AS_WRITTEN,
                  pace=_write_after_sync(drill))


#: The longest the operator's pace after 5.3 step 2 waits for a write the apps sent after it.
PACE_LIMIT = 60.0


def _write_after_sync(drill: Drill) -> Callable[[procedure.FailbackStep], None]:
    """Between 5.3's steps: after step 2, the apps update one canary vault through the
    service (still the DR region's) and the operator goes on once that write is acknowledged
    (at most `PACE_LIMIT` s, then go on and say so). The vault is one the canary takes for
    itself: the round-robin would write it again after failback, and a later write that
    lands in the primary hides an earlier one lost (the RPO check counts what a vault holds,
    as its users see it), which made this drill pass on a loaded machine."""
    def pace(step: procedure.FailbackStep) -> None:
        canary = drill.canary
        if step.step != "5.3 step 2" or canary is None:
            return
        deadline, tried = time.monotonic() + PACE_LIMIT, []
        while time.monotonic() < deadline:
            drill.progress("the operator's pace: the apps write a vault after the sync")
            try:
                vault_id = canary.take(timeout=max(0.1, deadline - time.monotonic()))
            except ProbeError as exc:
                tried.append(str(exc))
                break
            write = canary.update(vault_id)
            if write.acked:
                drill.observer.waiting(drill.record, f"after 5.3 step 2 the DR region "
                                       f"acknowledged an update of canary vault {vault_id} "
                                       "(kept out of the canary's round-robin from here on)")
                return
            tried.append(f"{vault_id}: {write.detail or 'not acknowledged'}")
        drill.record.deviations.append(
            f"no write the apps sent after 5.3 step 2 was acknowledged within "
            f"{PACE_LIMIT:g}s ({'; '.join(tried[-3:]) or 'none sent'}); step 3 followed "
            "without one")
    return pace


def _run_failback(drill: Drill, failover: ActiveFault, order: procedure.FailbackOrder,
                  pace: Callable[[procedure.FailbackStep], None] | None = None) -> None:
    failover.fault.params["failback"] = order.value
    if pace is not None and isinstance(failover.fault, Failover):
        failover.fault.pace = pace
    drill.revert(failover)
    for step in _failback(failover).steps:
        drill.phase(f"failback {step.step}", f"{step.what}: {step.detail or 'done'}",
                    at=step.ended)


@then(parsers.parse('failback completes within the "{component}" objective'))
def failback_time(drill: Drill, component: str, failover: ActiveFault) -> None:
    """From the start of 5.3 to its last step done, against the objective."""
    failback = _failback(failover)
    steps = failback.steps
    took = steps[-1].ended - steps[0].started
    objective = drill.settings.objectives.for_component(component)
    measurement = drill.record_measurement(figures.from_event(
        "failback", objective, took, 0.5, failover.fault_id,
        f"runbook 5.3 in the {failback.order} order, from its first step to its last"))
    drill.phase("failback", f"failback complete in {took:.1f}s", at=steps[-1].ended)
    drill.assert_met(measurement)


@then("api.vettid.dev is served by the primary region again")
def primary_again(drill: Drill) -> None:
    """A fresh client (nothing cached) enrols through the service's name, answered by an
    instance of the primary ASG."""
    names = drill.target.names
    primary = _members(drill, names.primary_region, names.asg)
    client = drill.target.api()
    try:
        reply = drill.loop.run(client.enroll(f"drills-probe-back-{uuid.uuid4().hex[:8]}",
                                             b"back", timeout=10), timeout=30)
    finally:
        drill.loop.run(client.close(), timeout=10)
    if reply.instance_id not in primary:
        raise RecoveryError(f"after failback, {names.api_host} was answered by "
                            f"{reply.instance_id}, not an instance of {names.asg}")


@then("the exercise's issues are recorded as findings (runbook 7.2 item 6)")
def record_issues(drill: Drill, failover: ActiveFault) -> None:
    """Runbook 7.2 item 6: what this exercise found in the runbook, and the restored notice."""
    if _failback(failover).order is procedure.FailbackOrder.DR_STOPPED_FIRST:
        drill.runbook_finding(
            "5.3", "failback syncs the DR bucket while DR still takes writes",
            "As written, step 2 (aws s3 sync) runs while the DR region still takes writes and "
            "step 3 scales it down before step 4 moves DNS back: writes acknowledged in DR "
            "after the sync never reach the primary (scenarios/failback_as_written.feature "
            "shows the loss). Two tempting fixes lose writes as well: syncing again afterwards "
            "(aws s3 sync skips a same-sized object whose copy in the primary is newer, and "
            "the first sync's copies are), and moving DNS back before the sync (it overwrites "
            "what the primary takes meanwhile). This drill ran step 3 before step 2 and waited "
            "until the DR ASG had no instance, then synced and moved DNS back: a planned "
            "outage from DR's scale-down until clients follow DNS, and no write lost.")
    drill.runbook_finding(
        "5.2 step 2", "dr-failover-records.json is not in the runbook",
        "The runbook runs change-resource-record-sets with file://dr-failover-records.json but "
        "does not say what it holds; the drill UPSERTs the PRIMARY failover record of the API "
        "name with the DR name's answer and the SECONDARY's health check. Put the file (or its "
        "contents) in the runbook.", "low")
    drill.phase("notify-restored", notice(Template.SERVICE_RESTORED,
                                          "end of the quarterly failover test").summary())


@when(parsers.parse("{region} is isolated (a region-wide outage)"), target_fixture="outage")
def isolate(drill: Drill, region: str) -> Iterator[ActiveFault]:
    """Runbook 3.6: every AWS API, NATS node, enclave and the API endpoint of the region stop
    answering; replication out of and into it stops."""
    active = drill.inject(IsolateRegion, region=region)
    yield active
    drill.revert(active)


@then(parsers.parse('the outage is detected by the Route 53 health check within the '
                    '"{component}" objective'))
def detected(drill: Drill, component: str, dr_plan: dict[str, Any]) -> None:
    """The primary's health check turns unhealthy (its checkers' verdict, the one the name
    servers act on)."""
    check = str(dr_plan["primary_check"])
    measurement, polled = drill.measure_polled(
        "detect", component,
        lambda: "healthy" if drill.target.health_check_healthy(check) else None,
        what=f"Route 53 health check {check} to fail",
        method=f"polled Route 53's verdict on health check {check} every 0.25 s")
    drill.phase("detect", f"health check {check} unhealthy", at=polled.at, reached=polled.held)
    drill.assert_met(measurement)


@then(parsers.parse('the writes acknowledged in {region} but not replicated when it went dark '
                    'are counted against the "{component}" RPO objective'))
def unreplicated(drill: Drill, region: str, component: str, outage: ActiveFault) -> None:
    """Exactly: every canary write sent before the outage and acknowledged, checked in the DR
    region's own stores (its ledger replica, and the object version that ledger item names in
    the replica bucket), read there while the region is dark and before DR takes a write.
    With asynchronous replication RPO 0 may be out of reach: a loss is recorded with its
    count and window, and as a finding against the runbook's objective."""
    names, clients = drill.target.names, drill.target.clients
    canary = drill.canary
    if canary is None:
        raise ProbeError("no canary is writing; add 'And a canary writer makes acknowledged "
                         "vault writes' before the outage")
    dark = outage.injected_at
    writes = [w for w in canary.writes() if w.sent < dark]
    held = procedure.replica_states(clients, names, sorted({w.vault_id for w in writes}))
    result = count_loss(writes, held)
    window = result.loss_window
    method = (f"the {len(writes)} canary writes sent before {region} went dark, each vault's "
              f"last acknowledged content looked up in {names.dr_region}: the ledger replica "
              f"(DynamoDB global table) and the object version it names in {names.dr_bucket}")
    drill.conclude_rpo(component, result, method, expected_loss=True)
    if result.lost_count:
        drill.runbook_finding(
            "1 (RPO 0) / 3.6", "a region outage loses the writes not yet replicated",
            f"{result.lost_count} of {result.acknowledged} acknowledged writes (window "
            f"{window:.2f}s) were in {region} only when it went dark: S3 replication and "
            "global tables are asynchronous, so RPO 0 does not hold for a region loss. "
            "State the RPO for region loss, or make writes wait for the replica.", "high")
    drill.phase("rpo-at-outage", f"{result.lost_count} of {result.acknowledged} acknowledged "
                f"writes not in {names.dr_region} (window {window:.2f}s)")


@then(parsers.parse("the runbook's DNS change could not be made while {region} was dark"))
def dns_change_refused(drill: Drill, region: str) -> None:
    """5.2 step 2 needs Route 53's control plane, which is in us-east-1: recorded as a
    finding; the health-checked failover records moved the clients all the same."""
    dns = _failover(drill).dns
    if dns is not None and dns.change_id is not None:
        drill.phase("dns-change", f"5.2 step 2 accepted as change {dns.change_id}")
        return
    why = dns.command.why() if dns else "it did not run"
    drill.runbook_finding(
        "5.2 step 2", f"the DNS change cannot be made while {region} is down",
        f"change-resource-record-sets did not answer ({why}): Route 53's control plane is in "
        "us-east-1. Failover worked through the health-checked failover records (Route 53's "
        "data plane) once the DR region was healthy; say so in 5.2 and keep step 2 for "
        "planned failovers.", "high")
    drill.phase("dns-change", f"5.2 step 2 not answered: {why}")


@then(parsers.parse('vault operations recover within the "{component}" objective of the '
                    'outage'))
def recovered_from_outage(drill: Drill, component: str, outage: ActiveFault) -> None:
    """The apps' view (probes through the service's name): the RTO from the outage's start."""
    measurement = drill.measure_service(component, fault=outage)
    drill.phase("service-recovered", "probes through the service's name settled",
                at=outage.injected_at + measurement.rto if measurement.rto is not None else None,
                reached=measurement.rto is not None)
    drill.assert_met(measurement)


@when(parsers.parse("{region} returns"), target_fixture="returned_at")
def region_returns(drill: Drill, region: str, outage: ActiveFault) -> float:
    """The outage ends (the isolation reverted); the held replication drains. From this
    moment (returned), the region's health check can pass again and move clients back."""
    returned = time.monotonic()
    drill.revert(outage)
    drill.phase("region-returns", f"{region} answers again", at=returned)
    return returned


@then(parsers.parse('no write acknowledged before {region} returned is lost, apart from '
                    'writes a late replica buried in DR (the "{component}" RPO objective)'))
def no_loss_before_return(drill: Drill, region: str, component: str,
                          returned_at: float) -> None:
    """Every acknowledged canary write read back after failback. Those acknowledged after
    the region returned went to whichever region the apps' DNS answer named: the health-
    checked failover records move clients back as soon as its health check passes, before
    5.3 has synced DR's writes back; their loss is measured and reported as a finding."""
    _failback_rpo(drill, component, returned=(region, returned_at))


@then(parsers.parse('no acknowledged vault write is lost, apart from writes a late replica '
                    'buried in DR (the "{component}" RPO objective)'))
def no_loss_after_failback(drill: Drill, component: str) -> None:
    """Every acknowledged canary write read back after failback."""
    _failback_rpo(drill, component)


def _failback_rpo(drill: Drill, component: str,
                  returned: tuple[str, float] | None = None) -> None:
    """The RPO across failover and failback: every acknowledged canary write read back
    through the service (hash-checked) and its ledger item. A loss is explained, measured
    and recorded as a finding, not asserted, when a replica from the primary buried the
    write in the DR bucket (`procedure.buried_in_dr`: the primary acknowledged writes while
    DR did, and replication landed after DR's own newer write), or when it was acknowledged
    after `returned` (region, monotonic time). Any other loss breaches the objective."""
    canary = drill.canary
    if canary is None:
        raise ProbeError("no canary is writing; add 'And a canary writer makes acknowledged "
                         "vault writes' first")
    canary.stop()
    drill.progress("verifying every acknowledged canary write", every=0.0)
    writes = canary.writes()
    result = verify(drill.loop, drill.client, writes, ledger=drill.target.ledger())
    names = drill.target.names
    buried = procedure.buried_in_dr(drill.target.clients, names,
                                    sorted({x.item for x in result.lost}))
    done = {w.seq: w.done for w in writes}
    after = returned[1] if returned else float("inf")
    by_replica = tuple(x for x in result.lost if x.item in buried)
    late = tuple(x for x in result.lost if x.item not in buried and done[x.seq] >= after)
    acked_buried = sum(1 for w in writes if w.acked and w.vault_id in buried)
    acked_late = sum(1 for w in writes if w.acked and w.vault_id not in buried
                     and w.done >= after)
    method = ("each acknowledged canary write read back after failback through the service "
              "and hash-checked, and its ledger item in DynamoDB")
    if by_replica:
        drill.conclude_rpo(component, RpoResult(acked_buried, lost=by_replica),
                           f"{method}: the writes a late replica buried in "
                           f"{names.dr_bucket}", expected_loss=True)
        drill.runbook_finding(
            "5.2", "replication from the primary can bury writes made in DR",
            f"{len(by_replica)} acknowledged writes were lost: both regions took writes to "
            "the same vaults (the primary until the apps' cached DNS answers expired, or "
            "with replication held), and the primary's version reached the DR bucket after "
            "DR's own newer one. A replica becomes the current version when it arrives and "
            "keeps its source's LastModified, so 5.3's aws s3 sync copied the older one back "
            "(" + "; ".join(f"{v}: {buried[v]}" for v in sorted({x.item for x in by_replica}))
            + "). Stop the primary's writes and let replication drain before DNS moves.",
            "high")
    if returned is not None:
        region = returned[0]
        drill.conclude_rpo(component, RpoResult(acked_late, lost=late),
                           f"{method}: the writes acknowledged after {region} returned",
                           expected_loss=True)
        if late:
            drill.runbook_finding(
                "5.3", f"clients return to {region} before failback has synced DR's writes",
                f"{len(late)} of {acked_late} writes acknowledged after {region} returned "
                "were lost: the health-checked failover records answered the primary again "
                "as soon as its health check passed, so both regions took writes until DR "
                "was scaled down, and the reverse aws s3 sync overwrote the primary's newer "
                "objects with DR's. After an outage in which 5.2 step 2 could not be made, "
                "make it (pin the name to DR) before the primary's API passes its health "
                "check, then fail back.", "high")
    explained = {x.seq for x in (*by_replica, *late)}
    drill.conclude_rpo(component, RpoResult(
        result.acknowledged - acked_buried - acked_late, result.unacknowledged,
        tuple(x for x in result.lost if x.seq not in explained), result.unverified,
        result.note), f"{method}: every other write")


@then(parsers.parse('replication catches up within the "{component}" objective'))
@needs(Capability.CONTROL)
def replication_drains(drill: Drill, component: str, outage: ActiveFault) -> None:
    """Every write held while the region was dark reaches the other region."""
    measurement, polled = drill.measure_polled(
        "replication-drained", component,
        lambda: (f"{n} writes pending" if (n := drill.target.replication_backlog()) else None),
        fault=outage, what="the replication backlog to drain",
        method="polled the S3 and global-table replication backlog every 0.25 s")
    drill.phase("replication-drained", "no write pending replication", at=polled.at,
                reached=polled.held)
    drill.assert_met(measurement)


def _failback(failover: ActiveFault) -> procedure.Failback:
    """Runbook 5.3 as the failover's revert ran it."""
    fault = failover.fault
    if not isinstance(fault, Failover) or fault.failback is None:
        raise ProbeError("the failover has not been failed back; add 'When the operator fails "
                         "back to the primary region (runbook 5.3)' first")
    return fault.failback


def _app(drill: Drill) -> VaultApi:
    """The drill's app client; these steps need the apps' path (DNS, the API), not NATS."""
    if drill.path != "api":
        raise ProbeError("the DR-region steps call the vault API as an app does (DNS, then "
                         "HTTPS); run with [probes] path = \"api\", the default")
    return drill.client
