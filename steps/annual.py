"""Steps of the annual full DR exercise (runbook 7.3): the people in it and the soak.

Human steps (`drills.human`) are asked of a role (the incident commander declares the
disaster and approves failover and failback, the executor runs 5.2 step 1 and confirms the
smoke tests, each escalation level acknowledges the page); each is timed and goes on the
phase timeline. The failover and failback themselves are the quarterly's steps
(`steps/region.py`). The MTTR step cuts the incident's time to recovery into the phases
people live through (`drills.measure.mttr`); the soak operates in the DR region for
`--soak` (`drills.measure.soak`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from pytest_bdd import given, parsers, step, then, when

from drills.capabilities import Capability
from drills.config import SERVICE_COMPONENT, Objective
from drills.drill import Drill
from drills.errors import ObjectiveBreached, ProbeError
from drills.evidence.fmt import secs
from drills.evidence.model import EscalationRecord, Measurement
from drills.evidence.programme import is_on_call
from drills.faults import ActiveFault, SetDesiredCapacity
from drills.human import LEVEL_ROLE, Ack, Crew, HumanStep, Role, record
from drills.measure import figures
from drills.measure.mttr import Moments, mttr
from drills.measure.soak import REQUIRED, Soak
from drills.procedures import alarms
from drills.procedures import region as procedure
from drills.session import DrillsRun

#: The component whose outage the exercise's incident is (the primary's enclaves).
INCIDENT_COMPONENT = "Nitro Enclave ASG"
DR_CAPACITY = 2  # runbook 5.2 step 1


def _origin(drill: Drill) -> float | None:
    """The exercise's first fault (monotonic): the zero of its timeline."""
    return drill.injector.active[0].injected_at if drill.injector.active else None


def _done(drill: Drill, ack: Ack) -> Ack:
    """Put a human step into the evidence and on the phase timeline."""
    drill.record.human_steps.append(record(ack, _origin(drill)))
    drill.phase(ack.step.key, f"{ack.step.action}: {ack.mode.value}, by {ack.by} ({ack.role}) "
                f"{secs(ack.took)} after it was asked", at=ack.answered)
    return ack


@when("the primary region loses every enclave (the exercise's incident)",
      target_fixture="outage")
def incident(drill: Drill) -> Iterator[ActiveFault]:
    """The incident the team responds to: the primary ASG's desired capacity set to 0 (no
    enclave answers; runbook 3.2's symptoms). Reverted by 'the primary region is repaired',
    else at teardown."""
    active = drill.inject(SetDesiredCapacity, asg=drill.target.asg_name(), to=0)
    drill.phase("incident", f"{drill.target.asg_name()} desired capacity set to 0",
                at=active.injected_at)
    yield active
    drill.revert(active)


@then("the escalation path acknowledges the page level by level (runbook appendix L1-L4)")
def escalation_acknowledged(drill: Drill, crew: Crew, outage: ActiveFault) -> None:
    """Each level of the appendix's path, L1 to L4, is paged in turn and acknowledges,
    timed. Whether the appendix's rule engages the level for this outage (so far) is
    recorded with it; a level it does not engage is paged to exercise the path."""
    objective = drill.settings.objectives.for_component(INCIDENT_COMPONENT)
    page = next((m for m in drill.record.measurements
                 if m.name == "time-to-page" and m.fault_id == outage.fault_id), None)
    if page is None or page.rto is None:
        raise ProbeError("the page has not been measured; add 'the on-call engineer is paged "
                         "for ...' before the escalation step")
    engaged = {s.level: s for s in alarms.escalate(
        INCIDENT_COMPONENT, objective.priority, page.rto, None, data_loss=False,
        user_facing=objective.priority in ("P1", "P2")).steps}
    for level in alarms.Level:
        rule = engaged.get(level.value)
        why = rule.reason if rule else "not engaged by the appendix's rule for this outage " \
            "so far: paged to exercise the path"
        ack = _done(drill, crew.acknowledge(HumanStep(
            f"ack-{level.value}", f"acknowledge the page as {level.value} "
            f"({alarms.CONTACTS[level]})", LEVEL_ROLE[level.value], "appendix",
            f"Escalation path {level.value}, {alarms.CONTACTS[level]}; when: "
            f"{alarms.WHEN[level]}.\n{INCIDENT_COMPONENT} is down since "
            f"{secs(time.monotonic() - outage.injected_at)} ago; {why}.")))
        drill.record.escalation.append(EscalationRecord(
            level.value, alarms.CONTACTS[level], why, round(ack.answered - outage.injected_at,
                                                            3)))


@step("the incident commander declares a disaster (human step)")
def declare(drill: Drill, crew: Crew, outage: ActiveFault) -> None:
    """The incident commander declares the disaster; the recovery is runbook 5.2."""
    _decide(drill, crew, "declare", "declare a disaster", "3.2, 5",
            f"Impact: no vault operations in {drill.target.names.primary_region} for "
            f"{secs(time.monotonic() - outage.injected_at)} (no InService enclave). Declare "
            "a disaster: the recovery is runbook section 5, failover to the DR region.")


def _decide(drill: Drill, crew: Crew, key: str, action: str, runbook: str, text: str,
            command: str = "") -> None:
    """A decision of the incident commander, asked, answered and recorded."""
    _done(drill, crew.acknowledge(HumanStep(key, action, Role.INCIDENT_COMMANDER, runbook,
                                            text, command)))


@step(parsers.re(r"the incident commander approves (?P<what>failover to the DR region|"
                 r"failback) \(human step\)"))
def approve(drill: Drill, crew: Crew, what: str) -> None:
    """The incident commander's decision to fail over (runbook 5.2 steps 1-3) or to fail
    back (5.3)."""
    names = drill.target.names
    if what == "failback":
        _decide(drill, crew, "approve-failback", "approve failback to the primary region",
                "5.3", f"Failback: 1. verify {names.primary_region} recovered; 3. scale up "
                f"{names.asg}, then {names.dr_asg} to 0; 2. sync {names.dr_bucket} back; 4. "
                "DNS back to the primary (step 3 before step 2: see the quarterly drill's "
                "finding).")
        return
    _decide(drill, crew, "approve-failover", "approve failover to the DR region", "5.2",
            f"Failover: 1. activate {names.dr_region} ({names.dr_asg} to {DR_CAPACITY}); 2. "
            f"move {names.api_host} to the DR region (Route 53); 3. verify with the "
            f"enrolment test against {names.dr_api_host}. The 5.2 pre-requisites were "
            "checked.", _scale_command(drill))


def _scale_command(drill: Drill) -> str:
    names = drill.target.names
    return (f"export AWS_DEFAULT_REGION={names.dr_region}\n"
            f"aws autoscaling set-desired-capacity --auto-scaling-group-name {names.dr_asg} "
            f"--desired-capacity {DR_CAPACITY}\n"
            f"(on the twin, point the aws CLI at it first: eval \"$(drills twin env --region "
            f"{names.dr_region})\")")


@when("the executor fails over to the DR region (runbook 5.2 steps 1-2)",
      target_fixture="failover")
def executor_fails_over(drill: Drill, crew: Crew, dr_plan: dict[str, Any],
                        outage: ActiveFault) -> Iterator[ActiveFault]:
    """5.2 step 1 is the executor's: at a terminal the harness shows the command and
    watches the DR ASG's desired capacity until it changes (timed from the prompt); then
    the quarterly's failover step journals the failover, repeats step 1 (a no-op by then)
    and makes step 2. Without a terminal the harness runs both, marked automated. A drill
    that stops before failback repairs the primary first at teardown: failback (5.3 step
    1) waits for it to serve."""
    names, clients = drill.target.names, drill.target.clients
    objective = drill.settings.objectives.for_component(SERVICE_COMPONENT)

    def scaled() -> str | None:
        seen = procedure.region_capacity(clients, names.dr_region, names.dr_asg)
        return None if seen.desired >= DR_CAPACITY else f"desired capacity {seen.desired}"

    _done(drill, crew.await_effect(HumanStep(
        "run-failover", f"scale up {names.dr_asg} (runbook 5.2 step 1)", Role.EXECUTOR,
        "5.2 step 1", "Activate DR region: scale up the standby ASG. The harness watches its "
        "desired capacity and then makes step 2 (the DNS change) itself.",
        _scale_command(drill)), scaled, timeout=objective.rto))
    # The quarterly's step, imported here: at import time this module comes before it among
    # the root conftest's plugins, and pytest could not rewrite it once imported.
    from steps.region import fail_over

    failover = fail_over(drill, dr_plan)
    active = next(failover)
    yield active
    drill.revert(outage)
    next(failover, None)  # its teardown: failback, unless the drill failed back already


@step("the executor confirms the smoke tests in the DR region (human step)")
def confirm_smoke(drill: Drill, crew: Crew) -> None:
    """The executor confirms what the smoke tests showed (runbook 7.2 item 4)."""
    smoke = next((p for p in reversed(drill.record.phases) if p.name == "smoke-tests"), None)
    if smoke is None:
        raise ProbeError("the smoke tests have not run; put 'the smoke tests pass in the DR "
                         "region (runbook 7.2 item 4)' before this step")
    _done(drill, crew.acknowledge(HumanStep(
        "confirm-smoke-tests", "confirm the smoke tests in the DR region", Role.EXECUTOR,
        "7.2 item 4", f"Smoke tests in {drill.target.names.dr_region}: {smoke.detail}.")))


@then("the time to recovery as people experienced it is within the MTTR objective")
def mttr_met(drill: Drill, outage: ActiveFault) -> None:
    """Runbook 1 "MTTR < 30 minutes, including diagnosis": detection (incident to page),
    response (page to the L1 acknowledgement), diagnosis and decision (to the approval of
    failover), recovery (to the service's recovery as the apps see it), each on the
    timeline; the total against the MTTR objective."""
    fault_id, start = outage.fault_id, outage.injected_at
    figures_of = {m.name: m for m in drill.record.measurements if m.fault_id == fault_id}
    answered = {h.key: h.answered_at for h in drill.record.human_steps}
    page, service = figures_of.get("time-to-page"), figures_of.get("service")
    if page is None or service is None:
        raise ProbeError("MTTR needs the page and the service's recovery from the incident "
                         "measured first (the paging and 'vault operations recover ... of the "
                         "outage' steps)")
    origin = _origin(drill) or start
    shift = start - origin  # human steps are timed from the exercise's first fault

    def rel(key: str) -> float | None:
        at = answered.get(key)
        return None if at is None else round(at - shift, 3)

    result = mttr(Moments(page.rto, rel("ack-L1"), rel("approve-failover"), service.rto),
                  drill.settings.objectives.mttr)
    drill.record.mttr = result
    for phase in result.phases:
        drill.phase(f"mttr {phase.name}", f"{secs(phase.duration)} ({phase.marks})"
                    if phase.duration is not None else f"not measured ({phase.marks})",
                    at=start + phase.end if phase.end is not None else None,
                    reached=phase.end is not None)
    objective = Objective(SERVICE_COMPONENT, drill.settings.objectives.mttr)
    measurement: Measurement = drill.record_measurement(figures.from_event(
        "mttr", objective, result.total, service.uncertainty or 0.0, fault_id,
        "the incident's first action to the service's recovery as the apps see it, through "
        "detection (the page), response (L1's acknowledgement), diagnosis and decision (the "
        "incident commander's approval of failover) and recovery"))
    drill.assert_met(measurement)


@when("the service operates in the DR region for the soak (runbook 7.3 4-hour operation)")
def soak(drill: Drill, drills_run: DrillsRun) -> None:
    """Operate in the DR region for `--soak` with the probes, the canary, the load (with
    `--load`) and the replication backlog (where the target can read it) watched; a soak
    shorter than 4 hours is a rehearsal. Without `--soak` nothing is soaked, and the
    drill's deviations say so."""
    if drills_run.soak is None:
        drill.record.deviations.append(
            "no soak in the DR region: run with --soak DURATION (runbook 7.3 requires 4h)")
        drill.phase("soak", "not run (no --soak)", reached=False)
        return
    target, probes, canary = drill.target, drill.probes, drill.canary
    if probes is None or canary is None:
        raise ProbeError("the soak watches the probes and the canary; start them first "
                         "('the vault service is healthy', 'a canary writer makes "
                         "acknowledged vault writes')")
    every = min(60.0, max(5.0, drills_run.soak / 20))
    run = Soak(target.names.dr_region, drills_run.soak, probes.results, canary.writes,
               target.replication_backlog if Capability.CONTROL in target.capabilities
               else None, _origin(drill), drill.settings.probes.consecutive,
               sample=min(5.0, max(1.0, drills_run.soak / 20)),  # the backlog costs the
               progress=lambda line: drill.progress(line, every=every))  # AWS endpoint
    drill.phase("soak-start", f"operating in {target.names.dr_region} for "
                f"{secs(drills_run.soak)} (runbook 7.3 requires {secs(REQUIRED)})")
    result = run.run()
    if drills_run.load is not None:
        result.notes.append("simulated apps (--load) ran through the soak: see the drill's "
                            "load windows")
    drill.record.soak = result
    drill.phase("soak-end", f"{secs(result.ran)} in {result.region}"
                + (" (a REHEARSAL of the 4-hour soak)" if result.rehearsal else "")
                + f": {result.probes} probes ({result.probe_failures} failed), "
                f"{result.canary_acknowledged} canary writes acknowledged, "
                f"{len(result.outages)} outage(s)")


@then("no outage happened during the soak")
def soak_clean(drill: Drill) -> None:
    """Any outage in the soak (at least K failed probes not separated by K successes) is
    a finding, and breaches the exercise's 4-hour operation in DR."""
    result = drill.record.soak
    if result is None:
        return  # no --soak: the deviation says so
    if result.outages:
        raise ObjectiveBreached(
            f"{len(result.outages)} outage(s) during the soak in {result.region}: "
            + "; ".join(f"{secs(o.start)} to {secs(o.end)} after the incident, {o.failures} "
                        f"failed probes ({o.first_error[:80]})" for o in result.outages[:3]))


@when("the primary region is repaired (the incident's cause removed)")
def repaired(drill: Drill, outage: ActiveFault) -> None:
    """The incident ends: the primary ASG's desired capacity restored (failback's step 1
    then waits for it to serve)."""
    drill.revert(outage)
    drill.phase("primary-repaired", f"{drill.target.asg_name()} desired capacity restored")


@given("the exercise's participants include the on-call team (runbook 7.3)")
def participants(drill: Drill, drills_run: DrillsRun) -> None:
    """Record who takes part (--participant, --operator); without an on-call participant
    the run cannot count as 7.3's on-call participation, which the deviations say."""
    people = drills_run.record.participants
    for person in people:
        drill.progress(f"participant: {person['name']} ({person['role']})", every=0.0)
    if not any(is_on_call(p.get("role", "")) for p in people):
        drill.record.deviations.append(
            "no on-call participant was named (--participant NAME:on-call-l1 or --operator): "
            "runbook 7.3 'Include on-call team participation' is not shown by this run")
