"""Steps for PCR rotation (runbook 6): enclave builds, the apps' expected PCR sets, rollouts by
instance refresh, rollbacks, and what the app population feels (attestation, per cohort)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from botocore.exceptions import ClientError
from pytest_bdd import given, parsers, then, when

from drills.api_client import ApiClient, Cohort, Population
from drills.attestation import ExpectedPcrs, PcrSet, build_pcrs
from drills.drill import Drill
from drills.errors import ObjectiveBreached, ProbeError, RecoveryError
from drills.evidence.model import RolloutRecord
from drills.faults import ActiveFault
from drills.faults.release import ReleaseEnclaveBuild
from drills.measure.rollout import CapacityWatch, cohort_windows
from drills.procedures import enclave as procedure

DETECT_TIMEOUT = 120.0


@dataclass
class Rollout:
    """The rollout (or rollback) a scenario started: its refresh, and what it watches."""

    refresh_id: str
    image: str
    min_healthy: int
    started_at: float  # monotonic: start-instance-refresh returned
    watch: CapacityWatch
    ended_at: float | None = None
    status: str = ""


@dataclass
class Rotation:
    """What a PCR scenario did, in order: builds by version, rollouts, the rollback."""

    builds: dict[str, ActiveFault] = field(default_factory=dict)
    rollouts: list[Rollout] = field(default_factory=list)
    rollback_at: float | None = None  # monotonic: the decision to roll back


def _population(drill: Drill) -> Population:
    client = drill.client
    if not isinstance(client, ApiClient) or client.population is None:
        raise ProbeError("PCR drills need probes through the vault API that verify "
                         "attestation (probes.path = \"api\" and an attestation root)")
    return client.population


def _pcr_set(version: str) -> PcrSet:
    return PcrSet(version, build_pcrs(version))


@given("the PCR rotation is tracked", target_fixture="rotation")
def rotation_tracked(drill: Drill) -> Iterator[Rotation]:
    """Keep what the scenario builds and rolls out, for the steps that measure it; at
    teardown the apps carry the PCR sets they had before the scenario again (the probes of
    the drills after it act as the same apps)."""
    population = _population(drill)
    before = list(population.cohorts)
    yield Rotation()
    population.replace(before)


@given(parsers.parse('every app carries the PCR sets of builds "{versions}"'))
def every_app_carries(drill: Drill, versions: str) -> None:
    """One cohort, all apps, accepting the PCR sets of these builds (comma-separated)."""
    sets = tuple(_pcr_set(v.strip()) for v in versions.split(",") if v.strip())
    _population(drill).replace([Cohort("all apps", 1.0, ExpectedPcrs(sets))])


@given(parsers.parse('{share:d}% of apps carry the PCR sets of builds "{both}" and the rest '
                     'only "{old}"'))
def cohorts_carry(drill: Drill, share: int, both: str, old: str) -> None:
    """Two cohorts: the updated apps (share %) and those still on the old app version."""
    updated = ExpectedPcrs(tuple(_pcr_set(v.strip()) for v in both.split(",")))
    _population(drill).replace([Cohort("updated apps", share / 100, updated),
                                Cohort("old apps", 1 - share / 100,
                                       ExpectedPcrs((_pcr_set(old),)))])


@when(parsers.re(r'enclave build "(?P<version>[^"]+)"(?: with defect "(?P<defect>[^"]+)")? is '
                 r"built \(runbook 6\.2 step 1\)"))
def build(drill: Drill, rotation: Rotation, version: str,
          defect: str | None) -> Iterator[ActiveFault]:
    """Register the build's AMI (its PCRs recorded on it); everything the scenario does with
    it is undone at teardown: parameters, instances, the AMI."""
    names = drill.target.names
    active = drill.inject(ReleaseEnclaveBuild, asg=drill.target.asg_name(), version=version,
                          defect=defect or "", current_param=names.param_current_ami,
                          latest_param=names.param_latest_ami)
    rotation.builds[version] = active
    pcrs = active.fault.params["pcrs"]
    drill.progress(f"runbook 6.2 step 1: build {version}: AMI {active.fault.params['ami']}; "
                   + ", ".join(f"PCR{i} {v[:16]}..." for i, v in sorted(pcrs.items())),
                   every=0.0)
    yield active
    drill.revert(active)


def _ami(rotation: Rotation, version: str) -> str:
    if version not in rotation.builds:
        raise ProbeError(f"build {version} was not built in this scenario; add 'When enclave "
                         f"build \"{version}\" is built (runbook 6.2 step 1)' first")
    return str(rotation.builds[version].fault.params["ami"])


@when(parsers.parse('latest-ami names build "{version}" (runbook 6.2 step 2)'))
def latest_ami(drill: Drill, rotation: Rotation, version: str) -> None:
    """`aws ssm put-parameter --name /vettid/nitro-enclave/latest-ami --value <new-ami-id>`."""
    drill.target.clients("ssm", drill.target.region).put_parameter(
        Name=drill.target.names.param_latest_ami, Value=_ami(rotation, version),
        Type="String", Overwrite=True)


@when(parsers.parse('every app gains the PCR set of build "{version}" (runbook 6.2 step 3)'))
def apps_gain(drill: Drill, version: str) -> None:
    """The app update, installed by every app: the new set is added, the old ones kept."""
    population = _population(drill)
    population.replace([Cohort(c.name, c.share, c.expected.with_set(_pcr_set(version)))
                        for c in population.cohorts])


def _start_rollout(drill: Drill, rotation: Rotation, image: str,
                   min_healthy: int | None) -> Rollout:
    target = drill.target
    asg = target.asg_name()

    def serving() -> tuple[int, int]:
        seen = drill.capacity()
        return seen.serving, seen.desired

    watch = CapacityWatch(serving).start()
    try:
        refresh = procedure.start_instance_refresh(target.clients, asg, target.region,
                                                   min_healthy)
    except ClientError as exc:
        watch.stop()
        raise RecoveryError(f"start-instance-refresh failed: "
                            f"{exc.response['Error'].get('Code')}: "
                            f"{exc.response['Error'].get('Message')}") from exc
    rollout = Rollout(refresh, image, min_healthy if min_healthy is not None else 90,
                      time.monotonic(), watch)
    rotation.rollouts.append(rollout)
    drill.progress(f"instance refresh {refresh} started (MinHealthyPercentage "
                   f"{rollout.min_healthy}), rolling out {image}", every=0.0)
    return rollout


@when(parsers.parse('current-ami names build "{version}" and an instance refresh rolls it out '
                    "with MinHealthyPercentage {pct:d} (runbook 6.2 step 4)"))
def deploy(drill: Drill, rotation: Rotation, version: str, pct: int) -> None:
    """put-parameter current-ami, then start-instance-refresh --preferences
    '{"MinHealthyPercentage": <pct>}'."""
    ami = _ami(rotation, version)
    drill.target.clients("ssm", drill.target.region).put_parameter(
        Name=drill.target.names.param_current_ami, Value=ami, Type="String", Overwrite=True)
    _start_rollout(drill, rotation, ami, pct)


def _finish(drill: Drill, rollout: Rollout, timeout: float) -> procedure.RefreshOutcome:
    target = drill.target
    try:
        outcome = procedure.wait_for_instance_refresh(
            target.clients, target.asg_name(), target.region, rollout.refresh_id, timeout,
            lambda m: drill.progress(m, every=5.0))
    finally:
        rollout.watch.stop()
    rollout.status = outcome.status
    if outcome.status == "Successful":
        rollout.ended_at = time.monotonic()
    drill.record.rollouts.append(RolloutRecord(
        refresh_id=rollout.refresh_id, to_image=rollout.image,
        min_healthy_percentage=rollout.min_healthy, status=outcome.status,
        duration=(rollout.ended_at - rollout.started_at) if rollout.ended_at else None,
        desired=rollout.watch.desired, lowest_serving=rollout.watch.lowest or 0,
        samples=rollout.watch.samples))
    return outcome


@then(parsers.parse('the rollout completes within the "{component}" objective'))
def rollout_completes(drill: Drill, rotation: Rotation, component: str) -> None:
    """The last instance refresh reaches Successful; its duration (start-instance-refresh to
    Successful) against the component's objective."""
    if not rotation.rollouts:
        raise ProbeError("no rollout was started in this scenario")
    rollout = rotation.rollouts[-1]
    objective = drill.settings.objectives.for_component(component)
    outcome = _finish(drill, rollout, objective.window)
    ok = outcome.status == "Successful"
    drill.assert_met(drill.record_event(
        "rollout", component, (rollout.ended_at or 0) - rollout.started_at if ok else None,
        0.5, f"start-instance-refresh (MinHealthyPercentage {rollout.min_healthy}) to "
        f"Successful, polled every 0.5 s; statuses {' -> '.join(outcome.statuses_seen)}"))


@then(parsers.parse("serving capacity never fell below {pct:d}% of desired during the rollout"))
def capacity_held(drill: Drill, rotation: Rotation, pct: int) -> None:
    """The fewest instances serving while the refresh ran (polled), against MinHealthy."""
    record = drill.record.rollouts[-1] if drill.record.rollouts else None
    if record is None or not record.samples:
        raise ProbeError("no rollout's capacity was watched in this scenario")
    drill.progress(f"lowest serving capacity during the rollout: {record.lowest_serving} of "
                   f"{record.desired} ({record.lowest_serving_percentage:.0f}%, "
                   f"{record.samples} polls)", every=0.0)
    if record.lowest_serving_percentage < pct:
        raise ObjectiveBreached(f"serving capacity fell to {record.lowest_serving} of "
                                f"{record.desired} ({record.lowest_serving_percentage:.0f}%) "
                                f"during the rollout, below {pct}%")


@then(parsers.parse('every enclave instance runs build "{version}"'))
def instances_run(drill: Drill, rotation: Rotation, version: str) -> None:
    """Every InService instance was launched from the build's AMI."""
    target = drill.target
    ami = _ami(rotation, version) if version in rotation.builds else \
        str(drill.injector.active[0].fault.params.get("current_before", ""))
    images = procedure.instance_images(target.clients, target.asg_name(), target.region)
    wrong = {i: a for i, a in images.items() if a != ami}
    if not images or wrong:
        raise ObjectiveBreached(f"instances not on build {version} ({ami}): "
                                f"{wrong or 'no instance in service'}")


@then("apps are refused attestation")
def refused(drill: Drill) -> None:
    """A request after the last fault is refused attestation by the app that made it."""
    population, since = _population(drill), drill.last_fault.injected_at
    deadline = time.monotonic() + DETECT_TIMEOUT
    while not any(o.result == "attestation" for o in population.outcomes(since)):
        if time.monotonic() > deadline:
            raise ObjectiveBreached(f"no app was refused attestation within "
                                    f"{DETECT_TIMEOUT:g}s of the rollout")
        drill.progress("waiting for an app to refuse an enclave's attestation")
        time.sleep(0.1)


@then("the rollout stalls: a replacement instance never serves")
def rollout_stalls(drill: Drill, rotation: Rotation) -> None:
    """The refresh stays InProgress, waiting for an instance that does not start."""
    rollout = rotation.rollouts[-1]
    target = drill.target
    deadline = time.monotonic() + DETECT_TIMEOUT
    while True:
        refresh = target.clients("autoscaling", target.region).describe_instance_refreshes(
            AutoScalingGroupName=target.asg_name(),
            InstanceRefreshIds=[rollout.refresh_id])["InstanceRefreshes"][0]
        seen = drill.capacity()
        if refresh["Status"] == "InProgress" and seen.serving < seen.desired and \
                time.monotonic() - rollout.started_at > 10:
            drill.progress(f"refresh {rollout.refresh_id} InProgress: "
                           f"{refresh.get('StatusReason', '')}; serving {seen.serving} of "
                           f"{seen.desired}", every=0.0)
            return
        if refresh["Status"] == "Successful" or time.monotonic() > deadline:
            raise ObjectiveBreached(f"the refresh of a build that does not start did not stall "
                                    f"(status {refresh['Status']}, serving {seen.serving})")
        time.sleep(0.5)


@when(parsers.re(r"the operator rolls back to the previous AMI \(runbook 6\.3 step 1"
                 r"(?P<fixed>, cancelling the stuck refresh first)?\)"))
def roll_back(drill: Drill, rotation: Rotation, fixed: str | None) -> None:
    """Runbook 6.3 step 1: put-parameter current-ami <previous-ami-id>, then
    start-instance-refresh; with the fix, cancel-instance-refresh of a stuck one first."""
    target, rotation.rollback_at = drill.target, time.monotonic()
    asg, param = target.asg_name(), target.names.param_current_ami
    previous = procedure.previous_known_good_ami(target.clients, target.region, param)
    procedure.roll_back_ami(target.clients, target.region, param, previous)
    if rotation.rollouts:
        rotation.rollouts[-1].watch.stop()
    if fixed:
        procedure.cancel_instance_refreshes(target.clients, asg, target.region,
                                            lambda m: drill.progress(m, every=2.0))
    try:
        _start_rollout(drill, rotation, previous, None)
    except RecoveryError as exc:
        raise ObjectiveBreached(f"runbook 6.3 step 1 as written cannot roll back: {exc}; the "
                                "service stays on the bad build") from exc


@then(parsers.parse('attested vault operations recover within the "{component}" objective, '
                    "from the rollback"))
def recover_from_rollback(drill: Drill, rotation: Rotation, component: str) -> None:
    """RTO from the decision to roll back to the first of K consecutive probes the apps
    accepted, with none failed for the settle window after."""
    if rotation.rollback_at is None:
        raise ProbeError("no rollback was made in this scenario")
    if drill.probes is None:
        raise ProbeError("probes are not running; start with 'Given the vault service is "
                         "healthy'")
    k = drill.settings.probes.consecutive
    drill.assert_met(drill.measure_probes(
        component, drill.probes.results, interval=drill.settings.probes.interval,
        origin=rotation.rollback_at, name="rollback",
        what="attested vault operations after the rollback",
        method=(f"vault reads through the API whose attestation the apps accepted, from the "
                f"decision to roll back; recovered = first of {k} consecutive successes")))
    if rotation.rollouts:
        _finish(drill, rotation.rollouts[-1], drill.settings.objectives.for_component(
            component).window)


@when(parsers.parse('the apps deprecate the PCR set of build "{version}" (runbook 6.2 step 5)'))
def deprecate(drill: Drill, version: str) -> None:
    """The apps' update that marks the old set with a valid_until now past."""
    population = _population(drill)
    past = datetime.now(UTC)
    population.replace([Cohort(c.name, c.share, ExpectedPcrs(tuple(
        PcrSet(s.name, s.pcrs, past) if s.name == version else s for s in c.expected.sets)))
        for c in population.cohorts])


@then(parsers.parse('no app was refused attestation (the "{component}" objective)'))
def none_refused(drill: Drill, rotation: Rotation, component: str) -> None:
    """Per cohort, in the windows before, during and after each rollout: requests and
    failures; any attestation refused since the first fault breaches."""
    population = _population(drill)
    origin = drill.injector.active[0].injected_at if drill.injector.active else 0.0
    _observe_after(drill, rotation, population)
    windows = _windows(rotation, origin)
    drill.record.cohorts.extend(cohort_windows(population, windows, origin))
    refused_ = [o for o in population.outcomes(origin) if o.result == "attestation"]
    total = len(population.outcomes(origin))
    for c in drill.record.cohorts:
        if c.requests:
            drill.progress(f"{c.window}: cohort {c.cohort} ({c.share:.0%} of apps): "
                           f"{c.failures} of {c.requests} requests failed "
                           f"({c.failure_rate:.0%}; {c.attestation_failures} refused "
                           "attestation)", every=0.0)
    if refused_:
        cohorts = sorted({o.cohort for o in refused_})
        share = sum(c.share for c in population.cohorts if c.name in cohorts)
        raise ObjectiveBreached(
            f"{component}: {len(refused_)} of {total} app requests were refused attestation "
            f"(cohorts {', '.join(cohorts)}: {share:.0%} of the app population affected); "
            "objective: none")


def _observe_after(drill: Drill, rotation: Rotation, population: Population) -> None:
    """Let every cohort make requests after the last rollout ended: the settle window has
    passed since, and each cohort made K requests in it (or the detection timeout passed)."""
    ended = [r.ended_at for r in rotation.rollouts if r.ended_at]
    if not ended:
        return
    since, k = max(ended), drill.settings.probes.consecutive
    deadline = since + drill.settle + DETECT_TIMEOUT

    def enough() -> bool:
        made = [o.cohort for o in population.outcomes(since)]
        return time.monotonic() - since >= drill.settle and all(
            made.count(c.name) >= k for c in population.cohorts)

    while not enough() and time.monotonic() < deadline:
        drill.progress(f"observing the app population for {drill.settle:g}s after the rollout")
        time.sleep(0.1)


def _windows(rotation: Rotation, origin: float) -> list[tuple[str, float, float]]:
    now = time.monotonic()
    marks = [("before the rollout", origin)]
    for n, rollout in enumerate(rotation.rollouts):
        label = "the rollback" if rotation.rollback_at and rollout.started_at >= \
            rotation.rollback_at else "the rollout"
        marks.append((f"during {label}" + (f" #{n + 1}" if len(rotation.rollouts) > 2 else ""),
                      rollout.started_at))
        if rollout.ended_at:
            marks.append((f"after {label}", rollout.ended_at))
    out = []
    for i, (name, start) in enumerate(marks):
        end = marks[i + 1][1] if i + 1 < len(marks) else now
        if end > start:
            out.append((name, start, end))
    return out
